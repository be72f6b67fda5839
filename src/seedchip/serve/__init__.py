"""What happens in time: the serving simulator (requests, KV blocks, schedulers,
replicas, router, metrics) and the capacity search. All state lives here; every time
and energy comes from the oracle (seedchip.perf)."""

from .api import CapacityResult, capacity, simulate

__all__ = ["simulate", "capacity", "CapacityResult"]
