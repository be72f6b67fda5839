"""Price lowered kernels on a chip with the oracle (:mod:`seedchip.perf.ops`).

Only :mod:`seedchip.perf` turns counts into seconds and joules: this module hands it
GEMM shapes, attention geometry and vector-kernel bytes, in the chip's number formats
(the policy's, not the host's: a model run in fp32 on a laptop is priced as the chip
would run it).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..perf import graph, ops
from ..perf.deployment import Deployment
from ..units import fmt
from .lower import Kernel, Lowered


@dataclass(frozen=True)
class PricingFormats:
    """Oracle format names for pricing: weights, activations (GEMM inputs), KV cache.
    ``keep_bf16`` weight names (lm_head, embeddings, MoE routers) stay bf16."""
    weights: str = "bf16"
    activations: str = "bf16"
    kv: str = "bf16"
    keep_bf16: tuple[str, ...] = ("lm_head", "embed", "wte", "router", "gate")

    def excluded(self, weight_name: str | None) -> bool:
        return bool(weight_name) and is_high_precision(weight_name, self.keep_bf16)


def is_high_precision(weight_name: str, patterns: tuple[str, ...]) -> bool:
    """lm_head / embeddings / MoE routers: kept in bf16 by quantizers (and the config
    path). ``gate`` matches only a module named exactly ``gate`` (the router), not
    ``gate_proj``."""
    mod = weight_name.rsplit(".", 1)[0] if weight_name.endswith((".weight", ".bias")) else weight_name
    leaf = mod.rsplit(".", 1)[-1]
    for p in patterns:
        if p in ("gate", "router"):
            if leaf == p:
                return True
        elif p in mod:
            return True
    return False


@dataclass(frozen=True)
class PricedKernel:
    name: str
    kind: str
    time_s: float
    energy_j: float
    bound: str
    flops: float
    hbm_bytes: float
    detail: str
    num_aten_ops: int
    targets: tuple[str, ...] = ()

    def to_dict(self) -> dict:
        return {"name": self.name, "kind": self.kind, "time_s": self.time_s, "energy_j": self.energy_j,
                "bound": self.bound, "flops": self.flops, "hbm_bytes": self.hbm_bytes, "detail": self.detail,
                "num_aten_ops": self.num_aten_ops}


def price_kernel(k: Kernel, dep: Deployment, fmts: PricingFormats) -> PricedKernel | None:
    chip, cal = dep.chip, dep.calibration
    p = k.params
    if k.kind == "gemm":
        weights = [w for w in p.get("weight_names", []) if w]
        quantized = bool(weights) and not any(fmts.excluded(w) for w in weights)
        a_fmt = fmts.activations if quantized else "bf16"
        b_fmt = fmts.weights if quantized else "bf16"
        c = ops.gemm(chip, cal, max(1, int(p["m"])), max(1, int(p["n"])), max(1, int(p["k"])), a_fmt, b_fmt, "bf16",
                     max(1, int(p["groups"])), k.name)
    elif k.kind == "attention":
        heads, kv_heads, qk, v = p["heads"], p["kv_heads"], p["qk_dim"], p["v_dim"]
        kv_elems = kv_heads * (qk + v)
        if p["phase"] == "prefill":
            chunks = tuple(tuple(c) for c in p["chunks"])
            window = int(p["window"])
            if p.get("causal", True):
                q_total, pairs, kv_tokens, max_keys = graph.prefill_aggregates(chunks, window)
            else:   # bidirectional: every query sees every key, in whole query tiles
                q_total = float(sum(q for q, _ in chunks))
                kv_tokens = float(sum(q + c for q, c in chunks))
                max_keys = float(max(q + c for q, c in chunks))
                pairs = float(sum(-(-q // 128) * 128 * (q + c) for q, c in chunks))
            tiles, past = graph.prefill_tiles(chunks, window if p.get("causal", True) else 0)
            c = ops.prefill_attention(chip, cal, pairs, q_total, kv_tokens, max_keys, heads, kv_heads, qk, v,
                                      kv_elems, "bf16", fmts.kv, k.name, num_q_tiles=tiles, window_tiles=past)
        else:
            ctx = float(sum(p["decode_context"]))
            c = ops.decode_attention(chip, cal, len(p["decode_context"]), ctx, heads, kv_heads, 2.0 * (qk + v),
                                     kv_elems, qk, "bf16", fmts.kv, k.name,
                                     max_context_tokens=float(max(p["decode_context"])))
    elif k.kind == "vector":
        c = ops.vector(chip, cal, float(p["flops"]), float(p["hbm_bytes"]), k.name)
    else:
        return None
    return PricedKernel(name=k.name, kind=k.kind, time_s=c.time_s, energy_j=c.energy_j, bound=c.bound,
                        flops=c.flops, hbm_bytes=c.hbm_bytes, detail=c.detail, num_aten_ops=len(k.ops),
                        targets=tuple(k.targets))


class TopOps:
    """The most expensive ops (kernel names aggregated over layers)."""

    def __init__(self, rows: list[dict], total_s: float):
        self.rows = rows
        self.total_s = total_s

    def __iter__(self):
        return iter(self.rows)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i):
        return self.rows[i]

    def __str__(self) -> str:
        lines = [f"{'op':48s} {'kind':9s} {'count':>5s} {'time':>11s} {'share':>6s}  bound"]
        for r in self.rows:
            share = r["time_s"] / self.total_s if self.total_s else 0.0
            lines.append(f"{r['name'][:48]:48s} {r['kind']:9s} {r['count']:5d} {_fmt_s(r['time_s']):>11s} "
                         f"{share:6.1%}  {r['bound']}")
        lines.append(f"{'total':48s} {'':9s} {'':5s} {_fmt_s(self.total_s):>11s}")
        return "\n".join(lines)

    __repr__ = __str__


def _fmt_s(t: float) -> str:
    return fmt(t, "s", 4)


@dataclass
class Profile:
    """A priced capture: per-kernel time and energy on one chip."""
    chip: str
    calibration: str
    kernels: list[PricedKernel]
    num_ops_captured: int
    unpriced_ops: list[str]
    folded: int = 0
    formats: dict = field(default_factory=dict)

    @property
    def time_s(self) -> float:
        return float(sum(k.time_s for k in self.kernels))

    @property
    def energy_j(self) -> float:
        return float(sum(k.energy_j for k in self.kernels))

    def _group(self, key, head) -> dict[str, dict]:
        """Time, energy and count per group of kernels; the bound that holds most of the time."""
        out: dict[str, dict] = {}
        for k in self.kernels:
            d = out.setdefault(key(k), {**head(k), "time_s": 0.0, "energy_j": 0.0, "count": 0, "_b": {}})
            d["time_s"] += k.time_s
            d["energy_j"] += k.energy_j
            d["count"] += 1
            d["_b"][k.bound] = d["_b"].get(k.bound, 0.0) + k.time_s
        for d in out.values():
            b = d.pop("_b")
            d["bound"] = max(b, key=b.get)
        return out

    def by_kind(self) -> dict[str, dict]:
        return self._group(lambda k: k.kind, lambda k: {})

    def by_name(self) -> dict[str, dict]:
        return self._group(lambda k: k.name, lambda k: {"name": k.name, "kind": k.kind})

    def top(self, n: int = 10) -> TopOps:
        rows = sorted(self.by_name().values(), key=lambda d: -d["time_s"])[:n]
        return TopOps(rows, self.time_s)

    def bound(self) -> str:
        b: dict[str, float] = {}
        for k in self.kernels:
            b[k.bound] = b.get(k.bound, 0.0) + k.time_s
        return max(b, key=b.get) if b else "none"

    def to_dict(self, top: int = 10) -> dict:
        return {"chip": self.chip, "calibration": self.calibration, "time_s": self.time_s, "energy_j": self.energy_j,
                "bound": self.bound(), "num_ops_captured": self.num_ops_captured, "num_kernels": len(self.kernels),
                "num_layout_regions_folded": self.folded, "unpriced_ops": list(self.unpriced_ops),
                "formats": dict(self.formats), "by_kind": self.by_kind(),
                "top_ops": [{"name": r["name"], "kind": r["kind"], "count": r["count"], "time_s": r["time_s"],
                             "energy_j": r["energy_j"], "bound": r["bound"]} for r in self.top(top)]}

    def __str__(self) -> str:
        s = (f"{self.chip} ({self.calibration}): {_fmt_s(self.time_s)}, {self.energy_j:.4g} J, "
             f"{self.num_ops_captured} aten ops -> {len(self.kernels)} kernels, bound: {self.bound()}")
        if self.unpriced_ops:
            s += f"\nunpriced: {', '.join(sorted(set(self.unpriced_ops)))}"
        return s + "\n" + str(self.top(10))


def price(lowered: Lowered, dep: Deployment, fmts: PricingFormats) -> Profile:
    priced = [p for p in (price_kernel(k, dep, fmts) for k in lowered.kernels) if p is not None]
    return Profile(chip=dep.chip.id, calibration=dep.calibration.id, kernels=priced,
                   num_ops_captured=lowered.num_ops, unpriced_ops=list(lowered.unpriced_ops),
                   folded=len(lowered.folded),
                   formats={"weights": fmts.weights, "activations": fmts.activations, "kv": fmts.kv})


def merge_profiles(profiles: list[Profile]) -> Profile:
    if not profiles:
        raise ValueError("no captured calls to profile")
    p0 = profiles[0]
    return Profile(chip=p0.chip, calibration=p0.calibration, kernels=[k for p in profiles for k in p.kernels],
                   num_ops_captured=sum(p.num_ops_captured for p in profiles),
                   unpriced_ops=[u for p in profiles for u in p.unpriced_ops],
                   folded=sum(p.folded for p in profiles), formats=p0.formats)
