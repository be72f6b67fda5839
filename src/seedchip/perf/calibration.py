"""The calibration layer: achievable efficiency, kept apart from the ideal ChipSpec.

A ``Calibration`` holds dimensionless efficiencies (fractions of a spec peak) and a few
fixed times (kernel overheads, collective latencies). It is fitted on microbenchmarks
of one chip (the shipped ``h100-sxm`` file is fitted on ~230,000 measured H100 kernel
latencies) and carried to other chips through their specs: an efficiency multiplies
*that* chip's peak, so an H200 inherits the H100's compute efficiency and gets its own,
faster HBM. ``ideal`` is the pure roofline (efficiency 1, no overheads). Every result
names the calibration it used.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import yaml
from pydantic import Field, ValidationError

from ..errors import SpecError, UnknownNameError, one_line
from ..formats import MATRIX_CLASSES
from ..spec_base import FrozenSpec

CAL_DIR = Path(__file__).parent / "calibrations"
DEFAULT_CALIBRATION = "h100-sxm"

Frac = float


class GemmCal(FrozenSpec):
    compute_efficiency: dict[str, float] = Field(description="fraction of the matrix peak reached, per class")
    memory_efficiency: dict[str, float] = Field(description="fraction of HBM bandwidth a streaming GEMM reaches, per class")
    overlap_p: float = Field(ge=1, description="p of the p-norm joining compute and memory time (large = max)")
    overhead_s: dict[str, float] = Field(description="fixed time per GEMM kernel (launch, prologue, epilogue), per class")
    min_tile: int = Field(64, gt=0, description="smallest tile edge the mapping uses")


class AttentionCal(FrozenSpec):
    prefill_compute_efficiency: float = Field(gt=0, le=1)
    prefill_overhead_s: float = Field(ge=0)
    softmax_flops_per_pair: float = Field(0.0, ge=0, description="vector FLOP per (query, key, head) for the softmax")
    decode_memory_efficiency: float = Field(gt=0, le=1)
    decode_overhead_s: float = Field(ge=0)
    decode_block_s: float = Field(0.0, ge=0, description="fixed time per (sequence, query head) block, in waves over the cores")
    overlap_p: float = Field(ge=1)


class VectorCal(FrozenSpec):
    memory_efficiency: float = Field(gt=0, le=1)
    overhead_s: float = Field(ge=0)


class CollectiveCal(FrozenSpec):
    latency_s: dict[str, float] = Field(description="fixed start-up time per collective kind")
    latency_per_hop_s: float = Field(ge=0, description="added per ring step beyond the first")
    efficiency_curve: dict[str, list[tuple[float, float]]] = Field(
        description="per kind: (wire bytes per chip, fraction of link bandwidth reached), interpolated in log-log")

    def curve(self, kind: str) -> tuple[list[float], list[float]]:
        pts = self.efficiency_curve.get(kind) or self.efficiency_curve.get("allgather") or [(1.0, 1.0)]
        return [p[0] for p in pts], [p[1] for p in pts]


class Calibration(FrozenSpec):
    id: str
    description: str
    fitted_on: str = ""
    gemm: GemmCal
    attention: AttentionCal
    vector: VectorCal
    collective: CollectiveCal
    holdout_error: dict[str, dict[str, float]] = Field(default_factory=dict,
        description="median / p90 absolute % error on held-out measurements, per op class")

    @staticmethod
    def _per_class(table: dict[str, float], matrix_class: str) -> float:
        """A class without its own figure takes fp8's (the nearest measured narrow
        format), else bf16's."""
        for c in (matrix_class, "fp8", "bf16"):
            if c in table:
                return table[c]
        raise KeyError(matrix_class)  # pragma: no cover - bf16 is required

    def gemm_efficiency(self, matrix_class: str) -> float:
        return self._per_class(self.gemm.compute_efficiency, matrix_class)

    def gemm_memory_efficiency(self, matrix_class: str) -> float:
        return self._per_class(self.gemm.memory_efficiency, matrix_class)

    def gemm_overhead(self, matrix_class: str) -> float:
        return self._per_class(self.gemm.overhead_s, matrix_class)


COLLECTIVES = ("allreduce", "allgather", "reducescatter", "alltoall", "p2p")

IDEAL = Calibration(
    id="ideal",
    description="pure roofline: datasheet peaks, no overheads (an upper bound on speed)",
    gemm=GemmCal(compute_efficiency={c: 1.0 for c in MATRIX_CLASSES}, memory_efficiency={"bf16": 1.0},
                 overlap_p=1e9, overhead_s={"bf16": 0.0}, min_tile=1),
    attention=AttentionCal(prefill_compute_efficiency=1.0, prefill_overhead_s=0.0,
                           decode_memory_efficiency=1.0, decode_overhead_s=0.0,
                           overlap_p=1e9),
    vector=VectorCal(memory_efficiency=1.0, overhead_s=0.0),
    collective=CollectiveCal(latency_s={c: 0.0 for c in COLLECTIVES}, latency_per_hop_s=0.0,
                             efficiency_curve={c: [(1.0, 1.0)] for c in COLLECTIVES}),
)


def calibration_ids() -> list[str]:
    return sorted(["ideal", *(p.stem for p in CAL_DIR.glob("*.yaml"))])


@lru_cache(maxsize=64)
def _load_file(path: str) -> Calibration:
    try:
        data = yaml.safe_load(Path(path).read_text())
        return Calibration.model_validate(data)
    except (OSError, yaml.YAMLError, ValidationError) as e:
        raise SpecError(f"calibration file {path!r} is not valid: {one_line(e)[:300]}") from None


def load_calibration(name: str | Calibration | None = None) -> Calibration:
    """A calibration id (``h100-sxm``, ``ideal``), a YAML path, or None for the default."""
    if isinstance(name, Calibration):
        return name
    name = name or DEFAULT_CALIBRATION
    if name == "ideal":
        return IDEAL
    p = Path(name)
    if name.endswith((".yaml", ".yml")) or p.is_file():
        if not p.is_file():
            raise SpecError(f"calibration file {name!r} does not exist")
        return _load_file(str(p.resolve()))
    f = CAL_DIR / f"{name}.yaml"
    if not f.is_file():
        raise UnknownNameError("calibration", name, calibration_ids())
    return _load_file(str(f))
