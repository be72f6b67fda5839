"""The public Python API. The CLI is a thin layer over these functions: each takes the
CLI's options as keyword arguments (dashes become underscores) and returns a result
whose ``to_dict()`` is exactly the CLI's ``--json`` output."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from .errors import SpecError, UnknownNameError
from .formats import get_format
from .hardware.catalog import list_chips, load_chip
from .hardware.spec import ChipSpec
from .model.arch import ModelArch
from .model.params import count_params
from .model.zoo import load_model, zoo_ids
from .perf import kernels, ops
from .perf.calibration import COLLECTIVES, load_calibration
from .perf.deployment import Deployment, Parallelism, make_deployment
from .perf.estimate import EstimateResult, static_estimate, with_interval
from .perf.memory import memory_plan
from .perf.step import StepCost, step_cost
from .perf.uncertainty import Perturbation, draws
from .explore import ExploreResult, explore
from .serve import capacity, simulate
from .serve.profiles import DEFAULT_ENGINE, engine_deployment, engine_ids, engine_model, resolve_engine
from .validate.replay import validate_e2e
from .silicon import SiliconReport, silicon_report

OPS = ("gemm", "attention", *[c for c in COLLECTIVES if c != "p2p"])


def _positive(**values) -> None:
    for k, v in values.items():
        if v is None:
            continue
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v <= 0:
            raise SpecError(f"--{k.replace('_', '-')} {v!r} must be a positive number")
        if v > MAX_DIM:
            raise SpecError(f"--{k.replace('_', '-')} {v!r} is beyond {MAX_DIM:.3g}, where counts stop being exact "
                            "numbers; no real op is this large")


MAX_DIM = float(2**53)      # integers above this are not exact as floats


@dataclass(frozen=True)
class OpResult:
    op: str
    cost: ops.OpCost
    chip: ChipSpec
    calibration: str
    inputs: dict = field(default_factory=dict)

    @property
    def time_s(self) -> float:
        return self.cost.time_s

    def to_dict(self) -> dict:
        c = self.cost
        return {
            "op": self.op, "chip": self.chip.id, "calibration": self.calibration, "inputs": self.inputs,
            "time_s": c.time_s, "flops": c.flops, "bytes": c.hbm_bytes, "comm_bytes": c.comm_bytes,
            "bound": c.bound, "energy_j": c.energy_j,
            "compute_s": c.compute_s, "memory_s": c.memory_s, "comm_s": c.comm_s, "overhead_s": c.overhead_s,
            "achieved_flops_per_s": c.flops / c.time_s if c.time_s else 0.0,
            "achieved_bytes_per_s": c.hbm_bytes / c.time_s if c.time_s else 0.0,
            "detail": c.detail,
        }


def op(op: str, *, chip: str | ChipSpec, calibration: str | None = None, **kw) -> OpResult:
    """Price one op on one chip (or a collective over ``num_chips``).

    gemm: m, n, k, format="bf16" (both operands; ``weight_format`` may differ), out_format="bf16".
    attention: phase="prefill"|"decode", batch, seq_len (decode: cached context; the new token
    attends it and itself), num_heads,
    num_kv_heads, head_dim, format="bf16", kv_format="bf16", window=0.
    allreduce|allgather|reducescatter|alltoall: bytes (full buffer), num_chips.
    """
    spec = load_chip(chip)
    cal = load_calibration(calibration)
    name = op.lower()
    if name == "gemm":
        m, n, k = kw.pop("m"), kw.pop("n"), kw.pop("k")
        _positive(m=m, n=n, k=k)
        a_fmt = kw.pop("format", "bf16")
        b_fmt = kw.pop("weight_format", None)
        b_fmt = a_fmt if b_fmt is None else b_fmt
        c_fmt = kw.pop("out_format", "bf16")
        for f in (a_fmt, b_fmt, c_fmt):
            get_format(f)
        cost = ops.gemm(spec, cal, int(m), int(n), int(k), a_fmt, b_fmt, c_fmt)
        inputs = {"m": m, "n": n, "k": k, "format": a_fmt, "weight_format": b_fmt, "out_format": c_fmt}
    elif name == "attention":
        phase = kw.pop("phase", "prefill")
        b, s = kw.pop("batch"), kw.pop("seq_len")
        h, kvh, d = kw.pop("num_heads"), kw.pop("num_kv_heads", None), kw.pop("head_dim")
        kvh = h if kvh is None else kvh
        _positive(batch=b, seq_len=s, num_heads=h, num_kv_heads=kvh, head_dim=d)
        if h % kvh:
            raise SpecError(f"num-heads {h} must be a multiple of num-kv-heads {kvh}")
        fmt_, kv_fmt = kw.pop("format", "bf16"), kw.pop("kv_format", None)
        kv_fmt = "bf16" if kv_fmt is None else kv_fmt
        window = kw.pop("window", 0) or 0
        if isinstance(window, bool) or not isinstance(window, int) or not 0 <= window <= MAX_DIM:
            raise SpecError(f"--window {window!r} must be a whole number >= 0 (0: no sliding window)")
        get_format(fmt_), get_format(kv_fmt)
        if phase == "prefill":
            pairs = float(b * kernels.tiled_pairs(s, 0, window))
            cost = ops.prefill_attention(spec, cal, pairs, float(b * s), float(b * s),
                                         kernels.last_tile_keys(s, 0, window), h, kvh, d, d, kvh * 2 * d,
                                         fmt_, kv_fmt, "attention_prefill", num_q_tiles=b * kernels.q_tiles_scalar(s),
                                         window_tiles=b * kernels.window_tiles_scalar(s, 0, window))
        elif phase == "decode":
            ctx = min(s + 1, window) if window else s + 1     # s cached tokens plus the new one
            cost = ops.decode_attention(spec, cal, int(b), float(b * ctx), h, kvh, 4.0 * d, kvh * 2 * d, d, fmt_,
                                        kv_fmt, "attention_decode", max_context_tokens=float(s + 1), window=window)
        else:
            raise SpecError(f"phase {phase!r}: use prefill or decode")
        inputs = {"phase": phase, "batch": b, "seq_len": s, "num_heads": h, "num_kv_heads": kvh, "head_dim": d,
                  "format": fmt_, "kv_format": kv_fmt, "window": window}
    elif name in COLLECTIVES and name != "p2p":
        size, n = kw.pop("bytes"), kw.pop("num_chips")
        _positive(bytes=size, num_chips=n)
        Parallelism.checked(num_chips=n)
        cost = ops.collective(spec, cal, name, float(size), int(n))
        inputs = {"bytes": size, "num_chips": n}
    else:
        raise UnknownNameError("op", op, OPS)
    if kw:
        raise SpecError(f"op {name}: unexpected option(s) {', '.join(sorted(kw))}")
    return OpResult(op=name, cost=cost, chip=spec, calibration=cal.id, inputs=inputs)


def estimate(*, chip: str | ChipSpec, model: str | ModelArch, num_chips: int = 1, tp: int | None = None, pp: int = 1,
             ep: int = 1, weight_format: str = "bf16", act_format: str | None = None, kv_format: str = "bf16",
             batch: int = 1, input_len: int = 1024, output_len: int = 128, calibration: str | None = None,
             engine: str = DEFAULT_ENGINE, max_batched_tokens: int | None = None,
             memory_fraction: float | None = None, interval: bool = True,
             perturbation: Perturbation | None = None) -> EstimateResult:
    """Static-batch estimate (TTFT, TPOT, e2e, throughput, memory, per-phase breakdown), with
    the engine's runtime costs (launches, host work, fusions), token budget and memory
    share unless given. ``interval``: add 80% intervals from perturbed estimates.
    ``perturbation``: the estimate under one draw of the model's error (no interval)."""
    Parallelism.checked(num_chips=num_chips, tp=tp, pp=pp, ep=ep)
    arch = load_model(model) if not isinstance(model, ModelArch) else model
    spec = load_chip(chip)
    probe_tp = tp if tp is not None else max(1, num_chips // pp)
    profile = resolve_engine(engine, spec, probe_tp, offline=True, pp=pp)
    arch = engine_model(profile, arch)
    dep = engine_deployment(profile, spec, num_chips=num_chips, tp=tp, pp=pp, ep=ep, weight_format=weight_format,
                            act_format=act_format, kv_format=kv_format, calibration=calibration,
                            max_batched_tokens=max_batched_tokens, memory_fraction=memory_fraction,
                            perturbation=perturbation)
    r = static_estimate(arch, dep, batch, input_len, output_len, engine=profile.summary())
    if interval and perturbation is None:
        r = with_interval(r, arch, dep, draws(dep.calibration, profile.step_sigma))
    return r


def chip_summary(c: ChipSpec) -> dict:
    pk = c.matrix.peak_flops_per_s
    return {
        "id": c.id, "name": c.name, "vendor": c.vendor, "year": c.year, "kind": c.kind,
        "process_node": c.process_node,
        "peak_flops_per_s": dict(pk),
        "bf16_flops_per_s": pk.get("bf16"), "fp8_flops_per_s": pk.get("fp8"),
        "int8_flops_per_s": pk.get("int8"), "fp4_flops_per_s": pk.get("fp4"),
        "vector_flops_per_s": c.vector_flops_per_s,
        "sram_bytes": c.sram.capacity_bytes,
        "hbm_generation": c.hbm.generation, "hbm_stacks": c.hbm.num_stacks,
        "hbm_capacity_bytes": c.hbm_capacity_bytes, "hbm_bw_bytes_per_s": c.hbm_bw_bytes_per_s,
        "link_bw_per_direction_bytes_per_s": c.links.bw_per_direction_bytes_per_s,
        "scale_up_size": c.node.scale_up_size,
        "tdp_w": c.tdp_w,
        "has_estimates": any(s.estimate for s in c.sources),
        "sources": [s.model_dump() for s in c.sources],
        "spec_hash": c.spec_hash(),
    }


def chips() -> list[dict]:
    """The chip catalog with key figures and sources."""
    return [chip_summary(c) for c in list_chips()]


def model_summary(m: ModelArch) -> dict:
    p = count_params(m)
    return {"id": m.id, "name": m.name, "architecture": m.architecture, "family": m.family,
            "attention": m.attention, "num_layers": m.num_layers, "hidden_size": m.hidden_size,
            "num_heads": m.num_heads, "num_kv_heads": m.num_kv_heads, "head_dim": m.head_dim,
            "num_experts": m.num_experts, "num_experts_per_tok": m.num_experts_per_tok,
            "sliding_window_layers": sum(1 for w in m.layer_windows if w),
            "total_params": p.total, "active_params": p.active,
            "kv_elements_per_token": m.kv_elements_per_token_per_layer() * m.num_layers,
            "source": m.source}


def engines(chip: str | ChipSpec = "h200-sxm", tp: int = 1) -> list[dict]:
    """The serving-engine profiles, resolved for a chip and tensor-parallel size (server
    usage; offline values where an engine has them are in ``offline``)."""
    Parallelism.checked(tp=tp)
    spec = load_chip(chip)
    out = []
    for e in engine_ids():
        d = resolve_engine(e, spec, tp).summary()
        off = resolve_engine(e, spec, tp, offline=True).summary()
        d["offline"] = {k: off[k] for k in ("max_num_seqs", "max_batched_tokens") if off[k] != d[k]}
        out.append(d)
    return out


def models() -> list[dict]:
    """The model zoo with parameter counts."""
    return [model_summary(load_model(i)) for i in zoo_ids()]


def __getattr__(name: str):
    """``plan`` is imported on first use: the planner brings SciPy's optimiser, which every
    other command would pay for at start-up (~0.6 s)."""
    if name == "plan":
        from .fleet import plan
        return plan
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["OpResult", "op", "estimate", "simulate", "capacity", "silicon_report", "SiliconReport", "explore",
           "ExploreResult", "plan", "emulate", "chips", "models", "engines", "validate_e2e", "step_cost", "memory_plan", "make_deployment",
           "Deployment", "StepCost", "EstimateResult", "load_chip", "load_model", "load_calibration"]


def emulate(model, *, chip: str = "seedchip-ref", **kw):
    """Run a real PyTorch model on the chip (needs the torch extra: pip install 'seedchip[torch]')."""
    from . import emulate as _emulate
    return _emulate.emulate(model, chip=chip, **kw)
