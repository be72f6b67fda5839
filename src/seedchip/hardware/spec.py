"""ChipSpec: what a chip IS, as drawn (datasheet peaks; no efficiency factors).

Achievable efficiency lives in the calibration layer (:mod:`seedchip.perf.calibration`),
never here. Every quantity is stored in SI base units; YAML may use human strings
("4.8 TB/s"). Every chip carries its sources; a number that is an estimate says so.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, PositiveInt, field_validator, model_validator

from ..formats import FALLBACK, MATRIX_CLASSES
from ..spec_base import (Bytes, BytesPerS, FlopPerS, FrozenSpec, Hertz, JoulePerByte,
                         JoulePerFlop, Seconds, Watts)


class Source(FrozenSpec):
    """Where numbers come from: a document and its year; ``estimate`` when they are ours."""
    what: str = Field(description="which fields this source supports")
    document: str = Field(description="document title, URL or both")
    year: int = Field(ge=1990, le=2100)
    estimate: bool = Field(False, description="true when the numbers are estimates, not published facts")


class MatrixUnits(FrozenSpec):
    """Dense (no sparsity) matrix throughput per format class and the geometry behind it."""
    peak_flops_per_s: dict[str, FlopPerS | None] = Field(
        description="dense FLOP/s per matrix class (bf16, fp8, int8, fp4); null or absent = not native")
    num_cores: PositiveInt = Field(description="independent matrix cores (SMs, CUs, NeuronCores, AI cores)")
    array_rows: PositiveInt = Field(description="MAC array rows per core (equivalent, bf16)")
    array_cols: PositiveInt = Field(description="MAC array columns per core (equivalent, bf16)")
    clock_hz: Hertz = Field(gt=0, description="matrix clock used for the peak figures")

    @field_validator("peak_flops_per_s")
    @classmethod
    def _classes(cls, v: dict[str, float | None]) -> dict[str, float | None]:
        bad = [k for k in v if k not in MATRIX_CLASSES]
        if bad:
            raise ValueError(f"unknown matrix class {bad[0]!r}; use {', '.join(MATRIX_CLASSES)}")
        if v.get("bf16") is None:
            raise ValueError("peak_flops_per_s needs a bf16 entry (the matrix path every format falls back to)")
        for k, x in v.items():
            if x is not None and x <= 0:
                raise ValueError(f"peak_flops_per_s.{k} = {x!r} must be > 0")
        return {k: v.get(k) for k in MATRIX_CLASSES}

    def peak(self, matrix_class: str) -> tuple[float, str]:
        """(FLOP/s, class actually used): a class the chip lacks falls back to a wider one."""
        c: str | None = matrix_class
        while c is not None:
            p = self.peak_flops_per_s.get(c)
            if p:
                return p, c
            c = FALLBACK[c]
        raise AssertionError("bf16 peak is required")  # pragma: no cover


class Sram(FrozenSpec):
    """On-chip memory: a shared level (L2 / global scratchpad) and a per-core level."""
    capacity_bytes: Bytes = Field(gt=0, description="shared on-chip SRAM (L2, global buffer)")
    per_core_bytes: Bytes = Field(gt=0, description="core-local SRAM (shared memory / L1 / local buffer)")
    bw_bytes_per_s: BytesPerS = Field(gt=0, description="aggregate bandwidth of the shared level")


class Hbm(FrozenSpec):
    """Off-chip DRAM as stacks; totals are derived."""
    generation: str = Field(description="hbm2e, hbm3, hbm3e, hbm4, lpddr5, ...")
    num_stacks: PositiveInt
    capacity_per_stack_bytes: Bytes = Field(gt=0)
    bw_per_stack_bytes_per_s: BytesPerS = Field(gt=0)

    @property
    def capacity_bytes(self) -> float:
        return self.num_stacks * self.capacity_per_stack_bytes

    @property
    def bw_bytes_per_s(self) -> float:
        return self.num_stacks * self.bw_per_stack_bytes_per_s


class Links(FrozenSpec):
    """Chip-to-chip scale-up links (NVLink, Infinity Fabric, ICI, NeuronLink, ...)."""
    bw_per_direction_bytes_per_s: BytesPerS = Field(gt=0, description="aggregate per chip, one direction")
    latency_s: Seconds = Field(ge=0, description="one hop, end to end (software included)")
    topology: Literal["switch", "full-mesh", "torus", "ring"] = "switch"


class Node(FrozenSpec):
    """The system a chip sits in."""
    scale_up_size: PositiveInt = Field(description="chips in one scale-up (link) domain")
    scale_out_bw_per_direction_bytes_per_s: BytesPerS = Field(gt=0, description="per chip, one direction (NICs)")
    scale_out_latency_s: Seconds = Field(ge=0)


class Energy(FrozenSpec):
    """Energy coefficients. Chips seldom publish these: most are estimates (see sources).

    Power while a kernel runs = idle_w + (share of cores it keeps busy) x active_w + the
    dynamic energy of its work (per FLOP, per byte moved) per second, capped at the TDP
    (the clocks throttle). Between kernels (host gaps, no request) the chip draws idle_w."""
    idle_w: Watts = Field(ge=0, description="powered on with an engine resident (memory allocated), no kernel "
                                            "running")
    active_w: Watts = Field(0.0, ge=0, description="added while every core is busy, whatever the work: clocks at "
                                                   "boost, instruction issue, register files, caches and on-chip "
                                                   "network toggling, leakage at boost voltage")
    matrix_j_per_flop: dict[str, JoulePerFlop] = Field(description="dynamic energy per matrix FLOP per class")
    vector_j_per_flop: JoulePerFlop = Field(gt=0)
    sram_j_per_byte: JoulePerByte = Field(gt=0)
    hbm_j_per_byte: JoulePerByte = Field(gt=0)
    link_j_per_byte: JoulePerByte = Field(gt=0)

    @field_validator("matrix_j_per_flop")
    @classmethod
    def _classes(cls, v: dict[str, float]) -> dict[str, float]:
        bad = [k for k in v if k not in MATRIX_CLASSES]
        if bad:
            raise ValueError(f"unknown matrix class {bad[0]!r}; use {', '.join(MATRIX_CLASSES)}")
        if "bf16" not in v:
            raise ValueError("matrix_j_per_flop needs a bf16 entry")
        return v

    def matrix(self, matrix_class: str) -> float:
        c: str | None = matrix_class
        while c is not None:
            if c in self.matrix_j_per_flop:
                return self.matrix_j_per_flop[c]
            c = FALLBACK[c]
        return self.matrix_j_per_flop["bf16"]


class ChipSpec(FrozenSpec):
    """A chip as designed. Frozen and validated; make variants with ``replace``."""
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9.\-]*$", description="lower-case with dashes, e.g. h200-sxm")
    name: str
    vendor: str
    year: int = Field(ge=1990, le=2100)
    kind: Literal["gpu", "tpu", "asic"] = "asic"
    process_node: str = Field(description="e.g. tsmc-n4; keys the silicon model")
    matrix: MatrixUnits
    vector_flops_per_s: FlopPerS = Field(gt=0, description="non-matrix FLOP/s (fp32 or bf16 SIMD)")
    exp_ops_per_s: FlopPerS | None = Field(
        None, gt=0, description="exponentials per second on the special-function units (a softmax needs one "
                                "per score); absent: vector_flops_per_s / 16, the ratio of NVIDIA SMs (16 "
                                "special-function results vs 128 FP32 lanes x 2 FLOP per clock)")
    sram: Sram
    hbm: Hbm
    links: Links
    node: Node
    tdp_w: Watts = Field(gt=0)
    energy: Energy
    sources: list[Source] = Field(min_length=1)
    notes: str = ""

    @model_validator(mode="after")
    def _consistent(self) -> "ChipSpec":
        if self.energy.idle_w + self.energy.active_w >= self.tdp_w:
            raise ValueError(f"energy.idle_w + energy.active_w = {self.energy.idle_w + self.energy.active_w} W must "
                             f"be below tdp_w = {self.tdp_w} W (the rest is what work can draw)")
        geo = (self.matrix.num_cores * self.matrix.array_rows * self.matrix.array_cols
               * 2 * self.matrix.clock_hz)
        bf16 = self.matrix.peak_flops_per_s["bf16"]
        if not 0.8 <= geo / bf16 <= 1.25:
            raise ValueError(
                f"matrix geometry gives {geo / 1e12:.0f} TFLOP/s bf16 (cores x rows x cols x 2 x clock) "
                f"but peak_flops_per_s.bf16 is {bf16 / 1e12:.0f} TFLOP/s; make them agree within 20%")
        return self

    # Derived totals, named with their units.
    @property
    def hbm_capacity_bytes(self) -> float:
        return self.hbm.capacity_bytes

    @property
    def hbm_bw_bytes_per_s(self) -> float:
        return self.hbm.bw_bytes_per_s

    @property
    def exp_rate_per_s(self) -> float:
        """Exponentials per second (``exp_ops_per_s``, or vector_flops_per_s / 16)."""
        return self.exp_ops_per_s if self.exp_ops_per_s else self.vector_flops_per_s / 16.0

    def peak_flops(self, matrix_class: str) -> tuple[float, str]:
        return self.matrix.peak(matrix_class)
