"""step_cost: the single oracle the simulator, explorer and planner ask.

``step_cost(model, deployment, step)`` prices one engine step: ``step`` lists, per
sequence, ``(new_tokens, context_len)`` (optionally a third item, whether the sequence
is sampled this step; default True). It returns the step's time and energy on the
deployment's chips, with a per-op breakdown and each op's binding resource. It is the
exact mode of :class:`seedchip.perf.pricer.StepPricer`, the one function that sums a
step (the simulator runs the same code, bucketed).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache

from ..errors import SpecError
from ..model.arch import ModelArch
from .deployment import Deployment
from .ops import OpCost
from .pricer import pricer_for

SeqWork = tuple[int, int] | tuple[int, int, bool]


@dataclass(frozen=True)
class StepCost:
    """Cost of one step. ``ops`` are one chip's ops on the critical path (the slowest
    replica, every pipeline stage), each with ``count`` = instances per step."""
    time_s: float
    energy_j: float                  # all chips of the deployment, idle power included
    ops: tuple[OpCost, ...]
    num_tokens: int
    num_seqs: int
    num_chips: int
    kernel_s: float = 0.0            # the critical path's kernels alone (time_s adds launches and host work)
    provenance: dict = field(default_factory=dict, compare=False)

    def by_class(self) -> dict[str, dict]:
        """Time, energy, work and binding resource summed per op class."""
        out: dict[str, dict] = {}
        for o in self.ops:
            d = out.setdefault(o.op_class, {"time_s": 0.0, "energy_j": 0.0, "flops": 0.0, "hbm_bytes": 0.0,
                                             "comm_bytes": 0.0, "_bound": {}})
            d["time_s"] += o.time_s * o.count
            d["energy_j"] += o.energy_j * o.count
            d["flops"] += o.flops * o.count
            d["hbm_bytes"] += o.hbm_bytes * o.count
            d["comm_bytes"] += o.comm_bytes * o.count
            d["_bound"][o.bound] = d["_bound"].get(o.bound, 0.0) + o.time_s * o.count
        for d in out.values():
            b = d.pop("_bound")
            d["bound"] = max(b, key=b.get)
        return out

    def by_op(self) -> dict[str, dict]:
        out: dict[str, dict] = {}
        for o in self.ops:
            d = out.setdefault(o.name, {"op_class": o.op_class, "time_s": 0.0, "energy_j": 0.0, "count": 0,
                                        "bound": o.bound})
            d["time_s"] += o.time_s * o.count
            d["energy_j"] += o.energy_j * o.count
            d["count"] += o.count
        return out

    def to_dict(self) -> dict:
        return {"time_s": self.time_s, "energy_j": self.energy_j, "kernel_s": self.kernel_s,
                "num_tokens": self.num_tokens, "num_seqs": self.num_seqs, "num_chips": self.num_chips,
                "by_class": self.by_class(), "ops": self.by_op(), "provenance": self.provenance}


def normalize_step(step: Iterable[Sequence]) -> tuple[tuple[int, int, bool], ...]:
    out = []
    for i, s in enumerate(step):
        if len(s) not in (2, 3):
            raise SpecError(f"step item {i} = {tuple(s)!r}: give (new_tokens, context_len[, sampled])")
        n, c = int(s[0]), int(s[1])
        if n <= 0 or c < 0:
            raise SpecError(f"step item {i}: new_tokens {n} must be > 0 and context_len {c} >= 0")
        out.append((n, c, bool(s[2]) if len(s) == 3 else True))
    if not out:
        raise SpecError("a step needs at least one sequence")
    return tuple(out)


@lru_cache(maxsize=100_000)
def _step_cost_cached(model: ModelArch, dep: Deployment, seqs: tuple[tuple[int, int, bool], ...]) -> StepCost:
    p = pricer_for(model, dep).price(seqs, detail=True)
    prov = {"chip": dep.chip.id, "chip_hash": dep.chip.spec_hash(), "model": model.id, "model_hash": model.spec_hash(),
            "calibration": dep.calibration.id, "deployment_hash": dep.spec_hash()}
    return StepCost(time_s=p.time_s, energy_j=p.energy_j, ops=p.ops, num_tokens=sum(n for n, _, _ in seqs),
                    num_seqs=len(seqs), num_chips=dep.num_chips, kernel_s=p.kernel_s, provenance=prov)


def step_cost(model: ModelArch, deployment: Deployment, step: Iterable[Sequence]) -> StepCost:
    """Price one step (see module doc). Pure and cached: the same inputs return the
    same object."""
    seqs = step if isinstance(step, tuple) and step and isinstance(step[0], tuple) and len(step[0]) == 3 \
        else normalize_step(step)
    return _step_cost_cached(model, deployment, seqs)


def decode_step(batch: int, context_len: int) -> tuple[tuple[int, int, bool], ...]:
    """A decode step of ``batch`` sequences each with ``context_len`` cached tokens."""
    return ((1, context_len, True),) * batch


def prefill_step(batch: int, input_len: int) -> tuple[tuple[int, int, bool], ...]:
    return ((input_len, 0, True),) * batch


__all__ = ["StepCost", "step_cost", "decode_step", "prefill_step", "normalize_step"]
