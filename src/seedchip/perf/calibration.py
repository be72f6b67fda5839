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

import re
from functools import lru_cache
from pathlib import Path

import yaml
from pydantic import Field, ValidationError

from ..errors import SpecError, UnknownNameError, one_line, validation_line
from ..formats import FORMATS, MATRIX_CLASSES
from ..spec_base import FrozenSpec
from ..yamlio import safe_load

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
    """Flash attention (prefill) and split-KV decode attention, in work units spread over
    the cores (:mod:`seedchip.perf.attention`). Times are per unit or per kernel; rates
    are fractions of the chip's own peaks, or per byte of a core's SRAM, so they carry to
    another chip through its ChipSpec."""
    # prefill: one unit = a 128-row query tile of one head against its keys
    prefill_compute_efficiency: dict[str, float] = Field(
        description="fraction of the matrix peak the tile matmuls reach, per matrix class")
    exp_per_pair: float = Field(1.0, ge=0, description="exponentials per (query, key, head) pair (one per score)")
    softmax_flops_per_pair: float = Field(
        0.0, ge=0, description="vector FLOP per (query, key, head) besides the exponential")
    softmax_overlap_p: float = Field(1e9, ge=1, description="p-norm joining a unit's matmul and softmax times")
    prefill_memory_efficiency: float = Field(
        1.0, gt=0, le=1, description="fraction of HBM bandwidth for Q, K, V, O")
    prefill_unit_s: float = Field(0.0, ge=0, description="fixed time per work unit, in waves over the cores")
    prefill_window_unit_s: float = Field(
        0.0, ge=0, description="added per query tile past a sliding window, in waves")
    prefill_overhead_s: float = Field(ge=0)
    overlap_p: float = Field(ge=1, description="p-norm joining compute and memory time (prefill)")
    # decode: one unit = one (sequence, KV head) group, or one query head where the kernel cannot group
    decode_max_group_heads: int = Field(
        32, ge=1, description="query heads one unit serves; wider groups run one unit per query head")
    decode_split_min_tokens: float = Field(128.0, gt=0, description="least context one split-KV partition holds")
    decode_split_target_waves: float = Field(
        8.0, gt=0, description="splits are cut back beyond this many waves of units")
    core_stream_per_sram_byte: float | None = Field(
        None, gt=0, description="Little's law: bytes per second one core streams per byte of its SRAM (the share "
                                "of it kept in flight / memory latency); None: no per-core limit")
    l2_reread_speedup: float = Field(
        1.0, ge=1, description="a core re-reads KV another unit already fetched this much faster (from L2)")
    decode_compute_efficiency: float = Field(
        1.0, gt=0, le=1, description="fraction of the matrix peak decode math reaches")
    decode_unit_s: dict[str, float] = Field(
        default_factory=dict, description="fixed time per unit in waves, per kernel: per_head, grouped_16bit, "
                                          "grouped_8bit")
    decode_unit_s_per_head_dim: float = Field(
        0.0, ge=0, description="added per unit per query head x head_dim / 128")
    decode_overhead_s: dict[str, float] = Field(
        default_factory=dict, description="fixed time per kernel, per kernel as decode_unit_s")
    decode_overlap_p: float = Field(1e9, ge=1, description="p-norm joining decode memory and compute time")
    unit_sram_bytes: int = Field(
        233472, gt=0, description="core SRAM one attention unit holds (units resident per core = per-core SRAM / "
                                  "this; an H100 SM holds one)")


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


ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


class Calibration(FrozenSpec):
    id: str = Field(pattern=ID_PATTERN.pattern,
                    description="a name: letters, digits, '.', '_' or '-', at most 64 characters")
    description: str
    fitted_on: str = ""
    gemm: GemmCal
    attention: AttentionCal
    vector: VectorCal
    collective: CollectiveCal
    holdout_error: dict[str, dict[str, float]] = Field(default_factory=dict,
        description="median / p90 absolute % error on held-out measurements, per op class")
    roofline: bool = Field(False, description="pure roofline physics: no tile or wave quantization, every GEMM "
                                              "operand crosses HBM once, no power throttling (an upper bound)")

    @staticmethod
    def _per_class(table: dict[str, float], key: str) -> float:
        """``key`` is a matrix class or a format name (a format with its own figure, such
        as fp8-block, uses it; otherwise its class's). A class without its own figure
        takes fp8's (the nearest measured narrow format), else bf16's."""
        fmt = FORMATS.get(key)
        for c in (key, fmt.matrix_class if fmt else key, "fp8", "bf16"):
            if c in table:
                return table[c]
        raise KeyError(key)  # pragma: no cover - bf16 is required

    def prefill_efficiency(self, matrix_class: str) -> float:
        return self._per_class(self.attention.prefill_compute_efficiency, matrix_class)

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
    roofline=True,
    gemm=GemmCal(compute_efficiency={c: 1.0 for c in MATRIX_CLASSES}, memory_efficiency={"bf16": 1.0},
                 overlap_p=1e9, overhead_s={"bf16": 0.0}, min_tile=1),
    attention=AttentionCal(prefill_compute_efficiency={"bf16": 1.0}, exp_per_pair=0.0, prefill_overhead_s=0.0,
                           overlap_p=1e9),
    vector=VectorCal(memory_efficiency=1.0, overhead_s=0.0),
    collective=CollectiveCal(latency_s={c: 0.0 for c in COLLECTIVES}, latency_per_hop_s=0.0,
                             efficiency_curve={c: [(1.0, 1.0)] for c in COLLECTIVES}),
)


def check_id(cal_id: str | None) -> str | None:
    """A calibration id a user gives (``--id``): None, or a name the catalog can hold."""
    if cal_id is not None and not ID_PATTERN.match(cal_id):
        raise SpecError(f"--id {cal_id!r}: a calibration id is 1-64 letters, digits, '.', '_' or '-' (starting "
                        "with a letter or digit)")
    return cal_id


def calibration_ids() -> list[str]:
    return sorted(["ideal", *(p.stem for p in CAL_DIR.glob("*.yaml"))])


@lru_cache(maxsize=64)
def _load_file(path: str) -> Calibration:
    from ..outputs import read_text
    text = read_text(path, "calibration file")
    try:
        data = safe_load(text)
    except yaml.YAMLError as e:
        raise SpecError(f"calibration file {path!r} is not valid YAML: {one_line(e)[:300]}") from None
    if not isinstance(data, dict):
        raise SpecError(f"calibration file {path!r} must be a YAML mapping of fields (id, gemm, attention, ...), "
                        f"got {'an empty file' if data is None else type(data).__name__}")
    try:
        return Calibration.model_validate(data)
    except ValidationError as e:
        raise SpecError(validation_line(e, f"calibration file {path!r}")) from None


def load_calibration(name: str | Calibration | None = None) -> Calibration:
    """A calibration id (``h100-sxm``, ``ideal``), a YAML path, or None for the default."""
    if isinstance(name, Calibration):
        return name
    if name is not None and not str(name).strip():
        raise SpecError(f"calibration {name!r} is empty: give a calibration id ({', '.join(calibration_ids())}) "
                        "or a YAML path, or leave it out for the default")
    name = name or DEFAULT_CALIBRATION
    if name == "ideal":
        return IDEAL
    p = Path(name)
    if p.is_dir():
        raise SpecError(f"calibration {name!r} is a folder; give a calibration id ({', '.join(calibration_ids())}) "
                        "or a calibration YAML file")
    if name.endswith((".yaml", ".yml")) or p.is_file():
        if not p.is_file():
            raise SpecError(f"calibration file {name!r} does not exist")
        return _load_file(str(p.resolve()))
    f = CAL_DIR / f"{name}.yaml"
    if not f.is_file():
        raise UnknownNameError("calibration", name, calibration_ids())
    return _load_file(str(f))
