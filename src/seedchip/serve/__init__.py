"""What happens in time: the serving simulator (requests, KV blocks, schedulers,
engine profiles, replicas, router, metrics) and the capacity search. All state lives
here; every time and energy comes from the oracle (seedchip.perf)."""

from .api import simulate
from .capacity import CapacityResult, capacity

__all__ = ["simulate", "capacity", "CapacityResult"]
