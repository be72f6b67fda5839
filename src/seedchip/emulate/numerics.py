"""Number-format emulation during a real forward pass (fake quantization).

Every quantizer here rounds in float32 and returns dequantized values, so the host
runs the model unchanged while each tensor carries exactly the values the chip's
format can hold:

- **fp8** e4m3 (max 448, subnormals down to 2^-9, saturating) and e5m2 (max 57344,
  subnormals down to 2^-16), with per-tensor, per-channel or per-block (1 x 128) fp32
  scales;
- **int8**, symmetric, per-channel scales;
- **4-bit** e2m1 values in blocks: MXFP4 (one e8m0 power-of-two scale per 32 values,
  OCP MX v1.0) and NVFP4 (one e4m3 scale per 16 values under an fp32 tensor scale);
- **bf16 / fp16** rounding; **fp32**: untouched.

Scales are taken along a tensor's reduction dimension: for a GEMM's weight one scale
per output channel (or per block of the K dimension), for its activation one per
token, for the KV cache one per (token, head) - so quantizing K and V when attention
reads them gives the same values as quantizing them when they are stored.

A :class:`Policy` says which tensors take which format (weights, activations, KV);
MoE routers, embeddings and the LM head keep bf16, as quantized checkpoints do. GEMMs
on quantized operands accumulate in fp32.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from ..errors import SpecError
from ..perf.deployment import QUANTIZED_ACT

E4M3_MAX = 448.0
E5M2_MAX = 57344.0
E2M1_MAX = 6.0
INT8_MAX = 127.0


@dataclass(frozen=True)
class QFormat:
    """How one tensor is quantized."""
    name: str
    elem: str               # e4m3 | e5m2 | e2m1 | int8 | bf16 | fp16 | fp32
    scale: str = "none"     # none | tensor | channel | block
    block: int = 0
    scale_fmt: str = "fp32"  # fp32 | e8m0 | e4m3 (per block) under an fp32 tensor scale
    oracle: str = "bf16"    # the seedchip.formats name the oracle prices it as

    @property
    def is_identity(self) -> bool:
        return self.elem == "fp32"


QFORMATS: dict[str, QFormat] = {f.name: f for f in (
    QFormat("fp32", "fp32", oracle="bf16"),
    QFormat("bf16", "bf16", oracle="bf16"),
    QFormat("fp16", "fp16", oracle="fp16"),
    QFormat("fp8", "e4m3", "channel", oracle="fp8"),
    QFormat("fp8-e4m3", "e4m3", "channel", oracle="fp8"),
    QFormat("fp8-tensor", "e4m3", "tensor", oracle="fp8"),
    QFormat("fp8-e5m2", "e5m2", "channel", oracle="fp8"),
    QFormat("fp8-block", "e4m3", "block", 128, oracle="fp8-block"),
    QFormat("int8", "int8", "channel", oracle="int8"),
    QFormat("mxfp4", "e2m1", "block", 32, "e8m0", oracle="mxfp4"),
    QFormat("nvfp4", "e2m1", "block", 16, "e4m3", oracle="fp4"),
    QFormat("fp4", "e2m1", "block", 16, "e4m3", oracle="fp4"),
)}
_FULL = {None, "", "none", "full", "fp32", "float32"}


def get_qformat(name: str | QFormat | None) -> QFormat:
    if isinstance(name, QFormat):
        return name
    key = "fp32" if name is None or str(name).strip().lower() in _FULL else str(name).strip().lower()
    try:
        return QFORMATS[key]
    except KeyError:
        from ..errors import UnknownNameError
        raise UnknownNameError("number format", str(name), QFORMATS) from None


# ------------------------------------------------------------------ element rounding

def round_minifloat(x: torch.Tensor, exp_bits: int, man_bits: int, max_value: float) -> torch.Tensor:
    """Round to the nearest value of a small float format (ties to even), with
    subnormals and saturation at ``max_value`` (no infinities: the OCP fp8 e4m3 /
    e2m1 convention; e5m2 saturates too, as the scaled kernels do)."""
    x = x.float()
    bias = 2 ** (exp_bits - 1) - 1
    min_exp = 1 - bias                                   # exponent of the smallest normal
    _, e = torch.frexp(x)                                # x = m * 2^e, 0.5 <= |m| < 1
    e = (e - 1).clamp(min=min_exp).float()               # floor(log2|x|), subnormals share min_exp
    step = torch.exp2(e - man_bits)
    q = torch.round(x / step) * step
    return q.clamp(-max_value, max_value)


def round_e4m3(x: torch.Tensor) -> torch.Tensor:
    return round_minifloat(x, 4, 3, E4M3_MAX)


def round_e5m2(x: torch.Tensor) -> torch.Tensor:
    return round_minifloat(x, 5, 2, E5M2_MAX)


def round_e2m1(x: torch.Tensor) -> torch.Tensor:
    return round_minifloat(x, 2, 1, E2M1_MAX)


def _round_elem(x: torch.Tensor, elem: str) -> torch.Tensor:
    if elem == "e4m3":
        return round_e4m3(x)
    if elem == "e5m2":
        return round_e5m2(x)
    if elem == "e2m1":
        return round_e2m1(x)
    if elem == "int8":
        return torch.round(x).clamp(-INT8_MAX, INT8_MAX)
    raise ValueError(elem)


_ELEM_MAX = {"e4m3": E4M3_MAX, "e5m2": E5M2_MAX, "e2m1": E2M1_MAX, "int8": INT8_MAX}


# ------------------------------------------------------------------ scaled quantization

def quantize(x: torch.Tensor, fmt: str | QFormat, dim: int = -1) -> torch.Tensor:
    """Quantize-dequantize ``x`` to ``fmt``; scales run along ``dim`` (the reduction
    dimension): per-channel = one scale per slice along ``dim``, per-block = one per
    ``block`` consecutive values along ``dim``. Returns x's dtype."""
    f = get_qformat(fmt)
    if f.elem == "fp32" or x.numel() == 0:
        return x
    dtype = x.dtype
    if f.elem == "bf16":
        return x.to(torch.bfloat16).to(dtype)
    if f.elem == "fp16":
        return x.float().clamp(-65504.0, 65504.0).to(torch.float16).to(dtype)
    xf = x.float()
    qmax = _ELEM_MAX[f.elem]
    if f.scale == "none":
        return _round_elem(xf, f.elem).to(dtype)
    if f.scale == "tensor":
        amax = xf.abs().amax().clamp(min=1e-30)
        s = amax / qmax
        return (_round_elem(xf / s, f.elem) * s).to(dtype)
    d = dim % xf.dim()
    xt = xf.movedim(d, -1)
    if f.scale == "channel":
        amax = xt.abs().amax(dim=-1, keepdim=True).clamp(min=1e-30)
        s = amax / qmax
        return (_round_elem(xt / s, f.elem) * s).movedim(-1, d).to(dtype)
    # per block along the reduction dimension
    n = xt.shape[-1]
    b = f.block
    pad = (-n) % b
    if pad:
        xt = torch.nn.functional.pad(xt, (0, pad))
    blocks = xt.reshape(*xt.shape[:-1], -1, b)
    amax = blocks.abs().amax(dim=-1, keepdim=True)
    if f.scale_fmt == "e8m0":
        # OCP MX: X = 2^(floor(log2(amax)) - emax_elem), emax(e2m1) = 2, exponent in [-127, 127]
        _, e = torch.frexp(amax.clamp(min=2.0 ** -127))
        s = torch.exp2(((e - 1) - 2).clamp(-127, 127).float())
        q = _round_elem(blocks / s, f.elem) * s
    elif f.scale_fmt == "e4m3":
        # NVFP4: fp32 tensor scale g so block scales fit e4m3; block scale e4m3(amax_b / 6 / g)
        g = (amax.amax() / (E4M3_MAX * qmax)).clamp(min=1e-30)
        sb = round_e4m3(amax / qmax / g)
        s = sb * g
        safe = torch.where(s > 0, s, torch.ones_like(s))
        q = torch.where(s > 0, _round_elem(blocks / safe, f.elem) * s, torch.zeros_like(blocks))
    else:
        s = (amax / qmax).clamp(min=1e-30)
        q = _round_elem(blocks / s, f.elem) * s
    q = q.reshape(*xt.shape)
    if pad:
        q = q[..., :n]
    return q.movedim(-1, d).to(dtype)


# ------------------------------------------------------------------ policy

@dataclass(frozen=True)
class Policy:
    """Which tensors take which number format on the chip.

    ``activations=None`` follows the chip convention the oracle uses: GEMM inputs are
    quantized like the weights when those are fp8/int8/4-bit (W8A8, W4A4), else bf16.
    ``keep`` names weights that stay in high precision (bf16)."""
    weights: str = "fp32"
    activations: str | None = None
    kv: str = "fp32"
    accumulate: str = "fp32"
    keep: tuple[str, ...] = ("lm_head", "embed", "wte", "router", "gate")

    def __post_init__(self):
        for v in (self.weights, self.activations, self.kv):
            if v is not None:
                get_qformat(v)
        if self.accumulate not in ("fp32",):
            raise SpecError(f"accumulate = {self.accumulate!r}: only fp32 accumulation is emulated")

    @staticmethod
    def from_formats(formats: "Policy | dict | str | None") -> "Policy":
        """``None`` (full precision), one format for weights (``"fp8"``), or a dict with
        keys weights / activations / kv / accumulate / keep."""
        if isinstance(formats, Policy):
            return formats
        if formats is None:
            return Policy()
        if isinstance(formats, str):
            return Policy(weights=formats)
        if not isinstance(formats, dict):
            raise SpecError(f"formats = {formats!r}: give a format name or a dict with weights/activations/kv")
        unknown = set(formats) - {"weights", "activations", "kv", "accumulate", "keep"}
        if unknown:
            raise SpecError(f"formats has unknown keys {sorted(unknown)}; use weights, activations, kv, accumulate, keep")
        kw = dict(formats)
        if "keep" in kw:
            kw["keep"] = tuple(kw["keep"])
        return Policy(**kw)

    @property
    def weight_format(self) -> QFormat:
        return get_qformat(self.weights)

    @property
    def activation_format(self) -> QFormat:
        if self.activations is not None:
            return get_qformat(self.activations)
        w = self.weight_format
        if w.elem in ("e4m3", "e5m2", "int8", "e2m1"):
            return w
        return get_qformat("fp32")

    @property
    def kv_format(self) -> QFormat:
        return get_qformat(self.kv)

    @property
    def is_identity(self) -> bool:
        return self.weight_format.is_identity and self.activation_format.is_identity and self.kv_format.is_identity

    def pricing(self):
        """The oracle format names (seedchip.formats) the chip computes in."""
        from .price import PricingFormats
        w = self.weight_format.oracle
        if self.activations is not None:
            a = get_qformat(self.activations).oracle
        else:
            a = QUANTIZED_ACT.get(w, "bf16")
        return PricingFormats(weights=w, activations=a, kv=self.kv_format.oracle, keep_bf16=self.keep)

    def to_dict(self) -> dict:
        return {"weights": self.weight_format.name, "activations": self.activation_format.name,
                "kv": self.kv_format.name, "accumulate": self.accumulate, "keep": list(self.keep)}

    def label(self) -> str:
        if self.is_identity:
            return "fp32"
        parts = [f"W {self.weight_format.name}", f"A {self.activation_format.name}", f"KV {self.kv_format.name}"]
        return ", ".join(parts)


# GEMM operand positions: (activation index, weight index) for the common layouts
_OPERANDS = {"mm": (0, 1), "addmm": (1, 2), "bmm": (0, 1), "baddbmm": (1, 2), "_grouped_mm": (0, 1)}


@dataclass
class Quantizer:
    """Applies a :class:`Policy` inside the capture's dispatch mode."""
    policy: Policy
    _cache: dict = field(default_factory=dict)
    num_quantized_gemms: int = 0

    def _excluded(self, name: str) -> bool:
        from .price import is_high_precision
        return is_high_precision(name, self.policy.keep) if name != "param" else False

    def gemm(self, rec, func, args, kwargs):
        name = func.overloadpacket.__name__
        pos = _OPERANDS.get(name)
        if pos is None:
            return func(*args, **kwargs)
        ia, ib = pos
        args = list(args)
        a, b = args[ia], args[ib]
        wa, wb = rec.is_weight(a), rec.is_weight(b)
        if wb and not wa:
            w_i, x_i, w_dim, x_dim, wname = ib, ia, -2, -1, wb
        elif wa and not wb:
            w_i, x_i, w_dim, x_dim, wname = ia, ib, -1, -2, wa
        else:
            return func(*args, **kwargs)          # activation x activation (attention math)
        if self._excluded(wname):
            return func(*args, **kwargs)
        pol = self.policy
        wf, af = pol.weight_format, pol.activation_format
        if wf.is_identity and af.is_identity:
            return func(*args, **kwargs)
        w = args[w_i]
        # the parameter's own storage identifies it across captures (recorder ids do not)
        key = (w.untyped_storage().data_ptr(), w.storage_offset(), tuple(w.shape), tuple(w.stride()), w.dtype,
               wf.name, w_dim)
        wq = self._cache.get(key)
        if wq is None:
            wq = quantize(w, wf, dim=w_dim).float()
            self._cache[key] = wq
        x = quantize(args[x_i], af, dim=x_dim).float()
        out_dtype = args[x_i].dtype
        args[w_i], args[x_i] = wq, x
        for i, v in enumerate(args):              # bias and the like join the fp32 accumulation
            if isinstance(v, torch.Tensor) and i not in (w_i, x_i) and v.is_floating_point():
                args[i] = v.float()
        self.num_quantized_gemms += 1
        return func(*args, **kwargs).to(out_dtype)

    def kv(self, k: torch.Tensor, v: torch.Tensor):
        f = self.policy.kv_format
        if f.is_identity:
            return k, v
        return quantize(k, f, dim=-1), quantize(v, f, dim=-1)


# ------------------------------------------------------------------ divergence

def divergence(ref_logits: torch.Tensor, test_logits: torch.Tensor) -> dict:
    """Next-token distributions of two runs over the same positions: top-1 agreement,
    mean KL(ref || test) in nats, max |logit difference|."""
    r = ref_logits.detach().float().reshape(-1, ref_logits.shape[-1])
    t = test_logits.detach().float().reshape(-1, test_logits.shape[-1])
    if r.shape != t.shape:
        raise SpecError(f"logit shapes differ: {tuple(r.shape)} vs {tuple(t.shape)}")
    lp, lq = torch.log_softmax(r, dim=-1), torch.log_softmax(t, dim=-1)
    kl = (lp.exp() * (lp - lq)).sum(dim=-1).clamp(min=0.0)
    agree = (r.argmax(dim=-1) == t.argmax(dim=-1)).float()
    return {"top1_agreement": float(agree.mean()), "kl_divergence": float(kl.mean()),
            "kl_divergence_max": float(kl.max()), "max_abs_logit_diff": float((r - t).abs().max()),
            "num_positions": int(r.shape[0])}


def layer_deltas(ref_hidden, test_hidden) -> list[dict]:
    """Per layer, how far the chip's run drifted from the full-precision one: the relative L2
    error ||test - ref|| / ||ref|| and the largest absolute difference of each layer's output
    hidden states (layer 0: the embeddings)."""
    out = []
    for i, (r, t) in enumerate(zip(ref_hidden, test_hidden)):
        r, t = r.detach().float(), t.detach().float()
        norm = float(r.norm())
        out.append({"layer": i, "rel_l2": float((t - r).norm()) / norm if norm > 0 else 0.0,
                    "max_abs": float((t - r).abs().max())})
    return out


def negative_log_likelihood(logits: torch.Tensor, ids: torch.Tensor) -> tuple[float, int]:
    """Sum of -log p(next token) over a sequence and the number of predictions."""
    lg = logits[:, :-1].float()
    tgt = ids[:, 1:]
    nll = torch.nn.functional.cross_entropy(lg.reshape(-1, lg.shape[-1]), tgt.reshape(-1), reduction="sum")
    return float(nll), int(tgt.numel())


def perplexity_from(nll: float, count: int) -> float:
    return math.exp(nll / max(count, 1))
