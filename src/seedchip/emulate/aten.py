"""What an aten op is and what its arguments say, with no recording state.

- **Op classes**: which aten ops are GEMMs, attention, vector work, layout copies or free
  (``op_kind``), and which are transcendental or move data (for :mod:`seedchip.emulate.lower`).
- **Records**: :class:`TRef` (a tensor as an op saw it), :class:`CapturedOp` and
  :class:`Capture`, which :class:`seedchip.emulate.capture.Recorder` fills.
- **Shapes**: a GEMM's m, n, k and groups (``gemm_attrs``), an attention call's geometry read off
  its mask (``attention_attrs``, ``mask_chunks``), an eager softmax's pattern (``softmax_pattern``).

Nothing here computes a time.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

import torch

# ------------------------------------------------------------------ op classes

GEMM_OPS = {"mm", "addmm", "bmm", "baddbmm", "_grouped_mm", "mv", "dot", "addmv", "linear", "matmul"}
ATTENTION_OPS = {"_scaled_dot_product_flash_attention_for_cpu", "_scaled_dot_product_flash_attention",
                 "_scaled_dot_product_efficient_attention", "_scaled_dot_product_cudnn_attention",
                 "_flash_attention_forward", "_efficient_attention_forward", "scaled_dot_product_attention"}
# no data moved: metadata, aliases, allocation without initialisation, host scalars
FREE_OPS = {"detach", "alias", "lift_fresh", "lift_fresh_copy", "empty", "empty_like", "empty_strided",
            "new_empty", "new_empty_strided", "_unsafe_view", "sym_size", "sym_stride", "sym_numel",
            "sym_storage_offset", "_local_scalar_dense", "resize_", "set_", "is_same_size", "_assert_async",
            "_assert_scalar", "_make_dep_token", "record_stream", "_has_compatible_shallow_copy_type",
            "is_nonzero", "_to_dense", "dim", "size", "stride", "unbind", "split", "split_with_sizes",
            "chunk", "expand", "as_strided", "view", "reshape", "_reshape_alias"}
# copies that only change layout or dtype: a real kernel reads/writes what it needs,
# so a region made only of these folds into its neighbours
LAYOUT_OPS = {"clone", "_to_copy", "copy_", "copy", "contiguous", "_copy_from", "_copy_from_and_resize",
              "expand_copy", "permute_copy", "transpose_copy", "view_copy", "to", "type_as"}
REDUCTION_OPS = {"sum", "mean", "amax", "amin", "max", "min", "argmax", "argmin", "prod", "var", "std",
                 "var_mean", "std_mean", "norm", "linalg_vector_norm", "cumsum", "cumprod", "logsumexp",
                 "_softmax", "_log_softmax", "softmax", "log_softmax", "topk", "sort", "argsort", "histc",
                 "bincount", "any", "all", "count_nonzero", "native_layer_norm", "_fused_rms_norm",
                 "native_group_norm", "native_batch_norm", "_native_batch_norm_legit_no_training",
                 "rms_norm", "layer_norm", "nansum", "aminmax", "cummax", "cummin", "kthvalue", "median",
                 "mode", "unique", "_unique2", "unique_consecutive", "nonzero", "_safe_softmax"}
MOVE_OPS = {"cat", "stack", "index", "index_select", "gather", "scatter", "scatter_add", "scatter_reduce",
            "index_add", "index_add_", "index_put", "index_put_", "index_copy", "index_copy_", "embedding",
            "masked_fill", "masked_fill_", "masked_scatter", "masked_select", "fill", "fill_", "zero_",
            "zeros", "zeros_like", "ones", "ones_like", "full", "full_like", "new_zeros", "new_ones",
            "new_full", "arange", "linspace", "triu", "tril", "repeat", "repeat_interleave", "flip", "roll",
            "constant_pad_nd", "pad", "scalar_tensor", "_unsafe_index", "_unsafe_index_put", "take",
            "diagonal_scatter", "slice_scatter", "select_scatter", "bucketize", "searchsorted", "one_hot",
            "rand", "randn", "randint", "rand_like", "randn_like", "randint_like", "uniform_", "normal_",
            "multinomial", "bernoulli", "bernoulli_", "exponential_", "tensor", "scatter_", "scatter_add_",
            "masked_scatter_", "index_fill", "index_fill_", "diag", "eye", "tril_", "triu_", "_unsafe_masked_index",
            "_unsafe_masked_index_put_accumulate", "split_copy", "unfold", "narrow_copy"}
# element-wise ops some torch versions do not tag as pointwise
EXTRA_POINTWISE = {"floor_divide", "remainder", "fmod", "bitwise_and", "bitwise_or", "bitwise_xor", "bitwise_not",
                   "logical_and", "logical_or", "logical_not", "logical_xor", "clamp", "clamp_min", "clamp_max",
                   "where", "lerp", "sign", "round", "trunc", "floor", "ceil", "abs", "neg", "nan_to_num",
                   "isnan", "isinf", "isfinite", "bitwise_left_shift", "bitwise_right_shift", "dropout",
                   "native_dropout", "hardtanh", "relu", "leaky_relu", "threshold", "masked_fill"}
GATHER_OPS = {"embedding", "index", "index_select", "gather", "_unsafe_index", "take", "masked_select"}
TRANSCENDENTAL = {"exp", "exp2", "expm1", "log", "log2", "log1p", "sigmoid", "silu", "gelu", "tanh", "erf",
                  "erfc", "sin", "cos", "rsqrt", "sqrt", "pow", "softplus", "reciprocal", "div", "mish",
                  "elu", "selu", "hardswish", "logit", "atan", "asin", "acos", "sinh", "cosh"}


def op_kind(func) -> str:
    """gemm | attention | vector | layout | free | unknown for an aten OpOverload."""
    name = func.overloadpacket.__name__
    if func.namespace != "aten":
        return "unknown"
    if name in GEMM_OPS:
        return "gemm"
    if name in ATTENTION_OPS:
        return "attention"
    if getattr(func, "is_view", False) or name in FREE_OPS:
        return "free"
    if name in LAYOUT_OPS:
        return "layout"
    base = name[:-1] if name.endswith("_") and not name.startswith("_") else name
    if torch.Tag.pointwise in func.tags or name in REDUCTION_OPS or name in MOVE_OPS or base in MOVE_OPS \
            or base in EXTRA_POINTWISE:
        return "vector"
    return "unknown"


# ------------------------------------------------------------------ records

@dataclass(frozen=True)
class TRef:
    """One tensor as an op saw it. ``root`` identifies the storage it views (views
    share their base's root); ``key`` identifies this exact view."""
    root: int
    key: tuple
    shape: tuple[int, ...]
    dtype: str
    floating: bool
    itemsize: int
    weight: str | None = None      # parameter name (or "param") when a view of a parameter
    external: bool = False         # existed before the capture (model inputs, a KV cache)

    @property
    def numel(self) -> int:
        return int(math.prod(self.shape))


@dataclass
class CapturedOp:
    index: int
    target: str                    # aten.mm.default, or "sdpa" for a whole attention call
    kind: str                      # gemm | attention | vector | layout | free | unknown
    inputs: list[TRef]
    outputs: list[TRef]
    module: str = ""               # innermost nn.Module (qualified name) running the op
    attrs: dict = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.target


@dataclass
class Capture:
    """The ops of one captured call (a forward pass, or everything inside a ``with``)."""
    ops: list[CapturedOp]
    label: str = ""

    @property
    def num_ops(self) -> int:
        return len(self.ops)

    def by_kind(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for o in self.ops:
            out[o.kind] = out.get(o.kind, 0) + 1
        return out


# ------------------------------------------------------------------ attention geometry

def mask_chunks(allowed: torch.Tensor) -> tuple[list[tuple[int, int]], int, bool, list[int]]:
    """From a boolean ``allowed[b, q, k]`` pattern: per sequence ``(new tokens,
    cached context)``, the sliding window (0: none), whether it is causal, and per
    sequence the keys attended by its last query (decode context)."""
    chunks, windows, ctx_last = [], [], []
    causal = True
    for b in range(allowed.shape[0]):
        a = allowed[b]
        rows = a.any(dim=-1)
        q = int(rows.sum())
        if q == 0:
            continue
        a = a[rows]
        counts = a.sum(dim=-1)
        kv_valid = int(a.any(dim=0).sum())
        c = max(0, kv_valid - q)
        expected = torch.arange(q, device=a.device) + c + 1
        if bool((counts > expected).any()):
            causal = False                      # a query sees keys after itself
        if bool((counts < expected).any()):
            windows.append(int(counts.max()))
        chunks.append((q, c))
        ctx_last.append(int(counts[-1]))
    return chunks, (max(windows) if windows else 0), causal, ctx_last


def attention_attrs(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, attn_mask, is_causal: bool,
                    enable_gqa: bool) -> dict:
    """Shapes of an SDPA call turned into what the oracle's attention ops take."""
    if q.dim() < 3:
        raise ValueError("attention with fewer than 3 dims")
    b = q.shape[0] if q.dim() >= 4 else 1
    heads = int(math.prod(q.shape[1:-2])) if q.dim() >= 4 else int(q.shape[0])
    kv_heads = int(math.prod(k.shape[1:-2])) if k.dim() >= 4 else int(k.shape[0])
    lq, lk = int(q.shape[-2]), int(k.shape[-2])
    qk_dim, v_dim = int(q.shape[-1]), int(v.shape[-1])
    # transformers packs a one-token GQA query as (batch, kv_heads, group, dim) with a mask
    # broadcast over the group (when SDPA's enable_gqa is off): that is decode, with
    # heads = kv_heads x group
    packed = bool(attn_mask is not None and attn_mask.dim() >= 2 and attn_mask.shape[-2] == 1 and lq > 1
                  and heads == kv_heads and not is_causal)
    if packed:
        heads, lq = heads * lq, 1
    with torch.no_grad():
        if attn_mask is None:
            if is_causal:
                allowed = torch.ones(lq, lk, dtype=torch.bool).tril(diagonal=0)
            else:
                allowed = torch.ones(lq, lk, dtype=torch.bool)
            allowed = allowed.expand(b, lq, lk)
        else:
            m = attn_mask
            if m.dtype == torch.bool:
                allowed = m
            else:
                allowed = m > torch.finfo(m.dtype).min / 2 if m.is_floating_point() else m != 0
            while allowed.dim() < 4:
                allowed = allowed.unsqueeze(0)
            allowed = allowed[:, 0]                      # heads share the pattern
            if packed:
                allowed = allowed[:, :1]
            allowed = allowed.expand(b, lq, lk) if allowed.shape[0] == 1 else allowed
            if is_causal:
                allowed = allowed & torch.ones(lq, lk, dtype=torch.bool).tril(diagonal=0)
        chunks, window, causal, ctx_last = mask_chunks(allowed)
    phase = "decode" if lq == 1 else "prefill"
    return {"phase": phase, "batch": b, "heads": heads, "kv_heads": kv_heads, "q_len": lq, "kv_len": lk,
            "qk_dim": qk_dim, "v_dim": v_dim, "chunks": chunks, "window": window, "causal": causal,
            "decode_context": ctx_last, "gqa_packed": packed, "enable_gqa": bool(enable_gqa)}


# ------------------------------------------------------------------ GEMM shapes

def gemm_attrs(target: str, ins: list[TRef], outs: list[TRef], args, rec=None) -> dict:
    """m, n, k, groups of a matmul op; which operand is a weight; for a grouped
    GEMM (MoE experts) the groups that received rows."""
    name = target.split(".")[1]
    t = [a for a in args if isinstance(a, torch.Tensor)]
    try:
        if name in ("mm", "addmm"):
            a, b = (t[0], t[1]) if name == "mm" else (t[1], t[2])
            ra, rb = (ins[0], ins[1]) if name == "mm" else (ins[1], ins[2])
            m, k = a.shape
            n = b.shape[1]
            groups = 1
        elif name in ("bmm", "baddbmm"):
            a, b = (t[0], t[1]) if name == "bmm" else (t[1], t[2])
            ra, rb = (ins[0], ins[1]) if name == "bmm" else (ins[1], ins[2])
            groups, m, k = a.shape
            n = b.shape[2]
        elif name == "_grouped_mm":
            a, b = t[0], t[1]
            ra, rb = ins[0], ins[1]
            offs = t[2] if len(t) > 2 else None
            if a.dim() == 2 and b.dim() == 3 and offs is not None:
                ends = [int(x) for x in offs.tolist()]
                sizes = [e - s for s, e in zip([0] + ends[:-1], ends)]
                used = [s for s in sizes if s > 0]
                groups = max(1, len(used))
                rows = sum(used)
                m = max(1, math.ceil(rows / groups))
                k, n = b.shape[1], b.shape[2]
                return {"m": int(m), "n": int(n), "k": int(k), "groups": int(groups), "rows": int(rows),
                        "weight": rb.weight, "weight_side": "b" if rb.weight else None, "a_key": ra.key,
                        "grouped": True}
            if a.dim() == 3 and b.dim() == 3:
                groups, m, k = a.shape
                n = b.shape[2]
            else:
                return {"error": f"grouped_mm shapes {tuple(a.shape)} x {tuple(b.shape)}"}
        elif name in ("mv", "addmv"):
            a, v = (t[0], t[1]) if name == "mv" else (t[1], t[2])
            ra, rb = (ins[0], ins[1]) if name == "mv" else (ins[1], ins[2])
            m, k = a.shape
            n, groups = 1, 1
            if ra.weight and not rb.weight:     # W @ x: the tokens are the vector
                return {"m": 1, "n": int(m), "k": int(k), "groups": 1, "weight": ra.weight, "weight_side": "b",
                        "a_key": rb.key}
        elif name == "dot":
            ra, rb = ins[0], ins[1]
            m, n, k, groups = 1, 1, int(t[0].shape[0]), 1
        else:
            return {"error": f"{name} not decomposed"}
    except Exception as e:  # noqa: BLE001
        return {"error": f"{type(e).__name__}: {e}"}
    if rb.weight:
        return {"m": int(m), "n": int(n), "k": int(k), "groups": int(groups), "weight": rb.weight,
                "weight_side": "b", "a_key": ra.key}
    if ra.weight:          # weight on the left: C = W X, price with the tokens as m
        return {"m": int(n), "n": int(m), "k": int(k), "groups": int(groups), "weight": ra.weight,
                "weight_side": "a", "a_key": rb.key}
    return {"m": int(m), "n": int(n), "k": int(k), "groups": int(groups), "weight": None, "weight_side": None,
            "a_key": ra.key}


def softmax_pattern(out) -> dict:
    """Which (query, key) entries a softmax over the last dim kept (probability > 0):
    an eager attention's mask, read off its probabilities."""
    if not isinstance(out, torch.Tensor) or out.dim() < 3 or out.shape[-1] < 1:
        return {}
    with torch.no_grad():
        p = out[:, 0] if out.dim() >= 4 else out[:1]
        while p.dim() > 3:
            p = p[:, 0]
        chunks, window, causal, ctx_last = mask_chunks(p > 0)
    return {"batch": int(out.shape[0]) if out.dim() >= 4 else 1, "q_len": int(out.shape[-2]),
            "kv_len": int(out.shape[-1]), "chunks": chunks, "window": window, "causal": causal,
            "decode_context": ctx_last}


def aten_attention_attrs(target: str, args, kwargs) -> dict:
    """An aten-level SDPA kernel seen without its F.scaled_dot_product_attention call."""
    t = [a for a in args if isinstance(a, torch.Tensor)]
    q, k, v = t[:3]
    mask = kwargs.get("attn_mask")
    causal = False
    for a in args[3:]:
        if isinstance(a, bool):
            causal = a
    causal = bool(kwargs.get("is_causal", causal))
    try:
        return attention_attrs(q, k, v, mask, causal, False)
    except Exception as e:  # noqa: BLE001
        return {"error": f"{type(e).__name__}: {e}"}


_LAYER = re.compile(r"\.(\d+)(?=\.|$)")


def generic_name(name: str) -> str:
    """``model.layers.3.self_attn.q_proj`` -> ``layers.*.self_attn.q_proj``."""
    n = _LAYER.sub(".*", name)
    return n.removeprefix("model.")
