"""Deployment: how a model is laid on chips (parallel plan, number formats)."""

from __future__ import annotations

import hashlib
import json
from typing import Any, Literal

from pydantic import Field, ValidationError, field_validator, model_validator

from ..errors import ParallelismError, SeedChipError, SpecError, inner_error, validation_line
from ..formats import FALLBACK, FORMATS, MATRIX_CLASSES, get_format
from ..hardware.catalog import load_chip
from ..hardware.spec import ChipSpec
from ..model.arch import ModelArch
from ..spec_base import FrozenSpec
from .calibration import Calibration, load_calibration
from .runtime import KERNELS, Runtime
from .uncertainty import Perturbation

QUANTIZED_ACT = {"fp8": "fp8", "fp8-block": "fp8", "int8": "int8", "fp4": "fp4", "mxfp4": "fp4"}


MAX_CHIPS = 1 << 20        # one deployment spans at most ~1M chips (the largest clusters hold ~100k)


class Parallelism(FrozenSpec):
    """How many chips and how they split a model (the part of a deployment every layer's
    spec shares: explore's options, the fleet's deployments). ``tp`` None: num_chips / pp
    (pure tensor parallel), or 1 with expert parallelism."""
    num_chips: int = Field(1, gt=0, le=MAX_CHIPS)
    tp: int | None = Field(None, gt=0, le=MAX_CHIPS)
    pp: int = Field(1, gt=0, le=MAX_CHIPS)
    ep: int = Field(1, gt=0, le=MAX_CHIPS)

    @classmethod
    def checked(cls, **kw) -> "Parallelism":
        """Validated, with the project's one-line error (before anything divides by them)."""
        try:
            return cls(**kw)
        except ValidationError as e:
            raise SpecError(validation_line(e, "parallelism")) from None

    def parallel_kwargs(self) -> dict:
        return {"num_chips": self.num_chips, "tp": self.tp, "pp": self.pp, "ep": self.ep}


class Layout(Parallelism):
    """Parallelism and number formats: what a deployment is, before an engine runs it."""
    weight_format: str = "bf16"
    kv_format: str = "bf16"
    act_format: str | None = Field(None, description="None: quantized like the weights when they are fp8/int8/fp4")

    @field_validator("weight_format", "kv_format", "act_format")
    @classmethod
    def _fmt(cls, v: str | None) -> str | None:
        if v is None:
            return v
        get_format(v)  # raises UnknownNameError with the known formats
        return v.lower()

    def layout_kwargs(self) -> dict:
        return dict(self.parallel_kwargs(), weight_format=self.weight_format, kv_format=self.kv_format,
                    act_format=self.act_format)


class Deployment(Layout):
    """``num_chips = dp x tp x pp``. Attention and dense layers: tensor parallel over
    ``tp``, replicated ``dp`` times (each replica serves its share of the sequences).
    MoE layers: the ``tp x dp`` chips of a pipeline stage form the expert group; experts
    are split over ``ep`` of them and each expert is tensor-sharded over the remaining
    ``tp x dp / ep``."""
    chip: ChipSpec
    tp: int = Field(1, gt=0)
    memory_fraction: float = Field(0.9, gt=0, le=1, description="share of memory the engine may use; see memory_basis")
    memory_basis: Literal["total", "free", "static"] = Field(
        "total", description="total: memory_fraction of the whole HBM holds weights, activations and KV (vLLM "
                             "gpu_memory_utilization); free: that fraction of what is left after weights and "
                             "activations holds the KV cache (TensorRT-LLM kv_cache_free_gpu_mem_fraction); "
                             "static: that fraction of the memory free at start holds weights and KV, activations "
                             "and graphs live in the rest (SGLang mem_fraction_static)")
    max_batched_tokens: int = Field(8192, gt=0, description="tokens per step the activation reserve is sized for")
    calibration: Calibration
    runtime: Runtime = Field(KERNELS, description="how the engine runs the kernels (fusion, launches, host work)")
    perturbation: Perturbation | None = Field(None, description="one draw of the model's error (for intervals)")

    @model_validator(mode="before")
    @classmethod
    def _resolve(cls, data: Any) -> Any:
        if isinstance(data, dict):
            data = dict(data)
            chip = data.get("chip")
            if isinstance(chip, dict):
                data["chip"] = ChipSpec.model_validate(chip)
            elif chip is not None and not isinstance(chip, ChipSpec):
                data["chip"] = load_chip(chip)
            cal = data.get("calibration")
            data["calibration"] = Calibration.model_validate(cal) if isinstance(cal, dict) else load_calibration(cal)
            for k in ("runtime", "perturbation"):
                if data.get(k) is None:
                    data.pop(k, None)
        return data

    @model_validator(mode="after")
    def _plan(self) -> "Deployment":
        if self.act_format is not None:
            cls = get_format(self.act_format).matrix_class
            if not self.chip.matrix.peak_flops_per_s.get(cls):
                have = [c for c in MATRIX_CLASSES if self.chip.matrix.peak_flops_per_s.get(c)]
                raise SpecError(f"--act-format {self.act_format}: {self.chip.id} has no {cls} matrix path "
                                f"(peak_flops_per_s.{cls} is empty); use one it computes in: {', '.join(have)}")
        if self.num_chips % (self.tp * self.pp):
            raise ParallelismError(
                f"num_chips {self.num_chips} is not a multiple of tp x pp = {self.tp} x {self.pp}; "
                f"use num_chips = dp x tp x pp")
        if (self.tp * self.dp) % self.ep:
            raise ParallelismError(f"ep {self.ep} must divide tp x dp = {self.tp * self.dp} (the chips of one pipeline stage)")
        return self

    def spec_hash(self) -> str:
        """The content hash, from the chip's and the calibration's own (kept) hashes and the
        deployment's other fields: a sweep makes a deployment per design point and batch,
        and dumping the calibration's tables into each hash cost more than pricing."""
        private = self.__pydantic_private__
        h = private.get("_hash")
        if h is None:
            own = self.model_dump(mode="json", exclude={"chip", "calibration"})
            blob = json.dumps({"own": own, "chip": self.chip.spec_hash(), "calibration": self.calibration.spec_hash()},
                              sort_keys=True, separators=(",", ":"))
            h = private["_hash"] = hashlib.sha256(blob.encode()).hexdigest()[:16]
        return h

    @property
    def dp(self) -> int:
        return self.num_chips // (self.tp * self.pp)

    @property
    def moe_tp(self) -> int:
        return self.tp * self.dp // self.ep

    @property
    def act(self) -> str:
        """The GEMMs' activation (compute) format: as given, else quantized like the weights
        in the narrowest class the chip computes in (fp4 weights on a chip without an fp4
        path are widened to fp8 in the kernel: weight-only storage, see :attr:`notes`)."""
        if self.act_format:
            return self.act_format
        cls = QUANTIZED_ACT.get(self.weight_format, "bf16")
        while not self.chip.matrix.peak_flops_per_s.get(cls):
            cls = FALLBACK[cls]
        return cls

    @property
    def notes(self) -> list[str]:
        """What the deployment accepts but a reader should know: formats stored narrower than
        the chip computes in."""
        wcls = get_format(self.weight_format).matrix_class
        act_cls = get_format(self.act).matrix_class
        if self.chip.matrix.peak_flops_per_s.get(wcls) or wcls == act_cls:
            return []
        return [f"weights are stored as {self.weight_format} and widened to {self.act} in each GEMM: {self.chip.id} "
                f"has no {wcls} matrix path (weight-only quantization: memory and bandwidth shrink, compute does not)"]

    def check_model(self, model: ModelArch) -> None:
        """Raise ParallelismError when the plan does not fit the model's shapes."""
        tp = self.tp
        if model.num_heads % tp:
            raise ParallelismError(f"tp {tp} does not divide {model.id}'s {model.num_heads} attention heads; "
                                   f"use a tp that divides {model.num_heads}")
        if model.attention != "mla" and model.num_kv_heads % tp and tp % model.num_kv_heads:
            raise ParallelismError(f"tp {tp} and {model.id}'s {model.num_kv_heads} KV heads: one must divide the other")
        if self.pp > model.num_layers:
            raise ParallelismError(f"pp {self.pp} exceeds {model.id}'s {model.num_layers} layers")
        if self.ep > 1 and not model.is_moe:
            raise ParallelismError(f"ep {self.ep} needs an MoE model; {model.id} is dense (use ep 1)")
        if model.is_moe and model.num_experts % self.ep:
            raise ParallelismError(f"ep {self.ep} does not divide {model.id}'s {model.num_experts} experts")
        inter = model.moe_intermediate_size if model.is_moe else model.intermediate_size
        if model.is_moe and inter % self.moe_tp:
            raise ParallelismError(f"expert width {inter} is not divisible by the expert tensor split "
                                   f"{self.moe_tp} (= tp x dp / ep); raise ep")
        if model.intermediate_size and not all(model.layer_is_moe) and model.intermediate_size % tp:
            raise ParallelismError(f"tp {tp} does not divide the MLP width {model.intermediate_size}")


def make_deployment(chip: str | ChipSpec, *, num_chips: int = 1, tp: int | None = None, pp: int = 1, ep: int = 1,
                    weight_format: str = "bf16", act_format: str | None = None, kv_format: str = "bf16",
                    calibration: str | Calibration | None = None, memory_fraction: float = 0.9,
                    max_batched_tokens: int = 8192, runtime: Runtime | None = None,
                    memory_basis: str = "total", perturbation: Perturbation | None = None) -> Deployment:
    """Build a Deployment from user options; ``tp`` defaults to num_chips / pp (pure TP)
    for a single replica, and must then fit the chips."""
    for label, v in (("num_chips", num_chips), ("pp", pp), ("ep", ep)):
        if not isinstance(v, int) or v <= 0:
            raise SpecError(f"{label} = {v!r} must be a positive integer")
    if tp is None:
        tp = num_chips // pp if ep == 1 else 1
    if tp <= 0:
        raise SpecError(f"tp = {tp!r} must be a positive integer")
    try:
        return Deployment(chip=chip, num_chips=num_chips, tp=tp, pp=pp, ep=ep, weight_format=weight_format,
                          act_format=act_format, kv_format=kv_format, calibration=calibration,
                          memory_fraction=memory_fraction, max_batched_tokens=max_batched_tokens,
                          runtime=runtime, memory_basis=memory_basis, perturbation=perturbation)
    except ValidationError as e:
        raise unwrap(e) from None


def unwrap(e: ValidationError) -> SeedChipError:
    """The project's own error inside a pydantic ValidationError, or a SpecError."""
    inner = inner_error(e)
    if isinstance(inner, SeedChipError):
        return inner
    return SpecError(validation_line(e, default_loc="deployment").split(" (and ")[0])


__all__ = ["Deployment", "make_deployment", "FORMATS"]
