"""The op graph of one step: which ops one chip runs for a batch of sequences.

A step is vLLM's token-counter model: per sequence, the number of new tokens it
computes this step and the context already cached. One description covers prefill,
decode, chunked prefill and mixed batches. Ops are built per layer *kind* (dense or
MoE feed-forward x full or windowed attention) and repeated by count, as
aiconfigurator does, so a 126-layer model prices in a handful of op evaluations.
"""

from __future__ import annotations

import math
from collections import Counter
from typing import NamedTuple

import numpy as np

from ..formats import get_format
from ..model.arch import ModelArch
from . import kernels, ops, routing
from .deployment import Deployment
from .ops import OpCost

# The pricer caches every part it builds from the graph's ops (:mod:`seedchip.perf.pricer`), so
# the graph calls the ops past their own caches, which would only hold second copies (none of
# a simulation's ~10^5 op evaluations hit them).
_op_gemm, _op_act_quant, _op_vector, _op_collective, _op_prefill_attention, _op_decode_attention = (
    f.__wrapped__ for f in (ops.gemm, ops.act_quant, ops.vector, ops.collective, ops.prefill_attention,
                            ops.decode_attention))


class ReplicaBatch(NamedTuple):
    """One DP replica's share of a step, aggregated for pricing. ``decode_keys[i]``:
    keys the decode sequences attend in a layer of window ``windows[i]`` (the sum over
    sequences of min(context + 1, window), 0 = no window); ``prefill``: (new tokens,
    cached context) chunks. A named tuple: two are made every simulated step."""
    num_tokens: int
    num_seqs: int
    num_logits: int                     # sequences sampled this step
    num_decode: int
    decode_keys: tuple[float, ...]
    prefill: tuple[tuple[int, int], ...] = ()
    decode_max: float = 0.0             # the longest decode sequence's keys (before any window)

    @staticmethod
    def from_seqs(seqs, windows: tuple[int, ...] = (0,), advance: int = 0) -> "ReplicaBatch":
        """Aggregate (new tokens, cached context, sampled) per sequence. ``advance``:
        price the decode sequences that many steps later (their contexts grown by it)."""
        step = 1 + advance
        ctx = [c + step for n, c, _ in seqs if n == 1]
        logits = [s for _, _, s in seqs].count(True)
        if len(ctx) == len(seqs):          # all decode
            tokens, prefill = len(seqs), ()
        else:
            tokens = sum(n for n, _, _ in seqs)
            prefill = tuple((n, c) for n, c, _ in seqs if n != 1)
        keys = (float(sum(ctx)),) if windows == (0,) else window_keys(ctx, windows)
        return ReplicaBatch(tokens, len(seqs), logits, len(ctx), keys, prefill, float(max(ctx)) if ctx else 0.0)


def window_keys(contexts: list[int], windows: tuple[int, ...]) -> tuple[float, ...]:
    """Keys attended per window (0: full attention) by decode sequences that attend
    ``contexts`` keys each without a window."""
    total = float(sum(contexts))
    return tuple(total if not w else float(sum(c if c < w else w for c in contexts)) for w in windows)


def split_replicas(seqs: tuple, dp: int) -> list[tuple]:
    """Deal sequences to the dp replicas by position (sequence i to replica i mod dp),
    as a router pins each request to one replica; the step waits for the slowest."""
    if dp == 1:
        return [seqs]
    return [seqs[i::dp] for i in range(dp) if seqs[i::dp]]


def aggregate(seqs: tuple, windows: tuple[int, ...], dp: int, advance: int = 0) -> list[ReplicaBatch]:
    """A step's sequences as per-replica aggregates (the only place that does it)."""
    return [ReplicaBatch.from_seqs(r, windows, advance) for r in split_replicas(seqs, dp)]


def uniform_decode(batch: int, context: int, windows: tuple[int, ...], dp: int) -> list[ReplicaBatch]:
    """:func:`aggregate` of a decode step of ``batch`` sequences that each hold ``context``
    cached tokens (a static batch's decode), without building the sequences: the sums are
    whole numbers, so they equal the aggregate's exactly."""
    c = context + 1
    out = []
    for i in range(min(dp, batch)):
        n = len(range(i, batch, dp))
        keys = tuple(float(n * (c if not w or c < w else w)) for w in windows)
        out.append(ReplicaBatch(n, n, n, n, keys, (), float(c)))
    return out


def advance_batches(replicas: list[ReplicaBatch], seqs: tuple, windows: tuple[int, ...], dp: int,
                    advance: int) -> list[ReplicaBatch]:
    """:func:`aggregate` of ``seqs`` with ``advance`` (its decode sequences that many steps
    on), from their aggregates ``replicas`` when no layer has a window: the keys grow by
    ``advance`` per decode sequence (whole numbers, exact in floating point)."""
    if windows != (0,):
        return aggregate(seqs, windows, dp, advance)
    return [r._replace(decode_keys=(r.decode_keys[0] + r.num_decode * advance,), decode_max=r.decode_max + advance)
            if r.num_decode else r for r in replicas]


def model_windows(model: ModelArch) -> tuple[int, ...]:
    """The distinct attention windows of a model's layers (0: full attention), sorted."""
    return tuple(sorted({w or 0 for w in model.layer_windows}))


def _heads(model: ModelArch, dep: Deployment) -> tuple[int, int]:
    """(query heads, KV heads) on one chip; KV heads are replicated when tp > num_kv_heads."""
    tp = dep.tp
    kv = model.num_kv_heads if model.attention == "mla" else max(1, model.num_kv_heads // tp)
    return model.num_heads // tp, kv


def layer_kinds(model: ModelArch) -> Counter:
    """(is_moe, window or 0) -> number of layers."""
    return Counter((moe, w or 0) for moe, w in zip(model.layer_is_moe, model.layer_windows))


def _gemm(dep: Deployment, name: str, m: int, n: int, k: int, *, weight: bool = True, groups: int = 1,
          a_fmt: str | None = None, b_fmt: str | None = None, out_fmt: str = "bf16") -> OpCost:
    act = dep.act
    wf = dep.weight_format if weight else (b_fmt or act)
    return _op_gemm(dep.chip, dep.calibration, max(1, int(m)), max(1, int(n)), max(1, int(k)),
                    a_fmt or act, wf, out_fmt, groups, name)


def _gated_up(dep: Deployment, model: ModelArch, name: str, t: int, up: int, h: int, act_name: str,
              act_elems: float, groups: int = 1, fused: bool | None = None) -> list[OpCost]:
    """The up (gate + up) projection and its activation. With the runtime's gated-
    activation fusion (``fused``; default: the runtime's dense-MLP setting) the
    activation runs in the GEMM's epilogue: no activation kernel, and the epilogue writes
    one value per pair of columns (priced as the 2w-column GEMM writing one byte per
    column, the bytes of w bf16 values)."""
    if model.mlp_gated and (dep.runtime.fuse_gated_act if fused is None else fused):
        return [_gemm(dep, name, t, up, h, groups=groups, out_fmt="fp8")]
    return [_gemm(dep, name, t, up, h, groups=groups),
            _vector(dep, act_name, act_elems, 6, (2 if model.mlp_gated else 1) * 2 + 2)]


def _quant(dep: Deployment, source: str, elems: float, name: str = "act_quant") -> list[OpCost]:
    """The quantization of a narrow-format GEMM's input (``source``: which kernel made it,
    norm / act / attn) when the engine runs it as a kernel of its own; none when fused or
    when activations stay 16-bit."""
    if source not in dep.runtime.quant_kernels or get_format(dep.act).bits >= 16 or elems <= 0:
        return []
    dynamic = dep.runtime.quant_scale == "per-tensor"
    return [_op_act_quant(dep.chip, dep.calibration, float(elems), dep.act, dynamic, name)]


def _vector(dep: Deployment, name: str, elems: float, flops_per_elem: float, bytes_per_elem: float) -> OpCost:
    return _op_vector(dep.chip, dep.calibration, float(elems * flops_per_elem), float(elems * bytes_per_elem), name)


def prefill_aggregates(chunks: tuple[tuple[int, int], ...], window: int) -> tuple[float, float, float, float]:
    """(query tokens, tiled (query, key) pairs, keys read, keys of the largest query
    tile) of prefill chunks (new tokens, cached context) in a layer with the given
    window (0: full)."""
    q_total = pairs = kv_tokens = max_keys = 0.0
    for q, c in chunks:
        q_total += q
        pairs += kernels.tiled_pairs_scalar(q, c, window)
        kv_tokens += min(c + q, window + q) if window else c + q
        max_keys = max(max_keys, kernels.last_tile_keys(q, c, window))
    return q_total, pairs, kv_tokens, max_keys


def prefill_tiles(chunks: tuple[tuple[int, int], ...], window: int) -> tuple[float, float]:
    """(query tiles, query tiles past the sliding window) of prefill chunks: the flash
    kernel's work units per head, and those the windowed kernel pays extra for."""
    return (sum(kernels.q_tiles_scalar(q) for q, _ in chunks),
            sum(kernels.window_tiles_scalar(q, c, window) for q, c in chunks) if window else 0.0)


def prefill_attention_ops(model: ModelArch, dep: Deployment, q_total: float, pairs: float, kv_tokens: float,
                          max_keys: float, q_tiles: float | None = None, window_tiles: float = 0.0) -> list[OpCost]:
    """Attention core of prefill chunks in one layer (see :func:`prefill_aggregates` and
    :func:`prefill_tiles`)."""
    chip, cal = dep.chip, dep.calibration
    heads, kv_heads = _heads(model, dep)
    act = "bf16"  # attention math runs on bf16 activations
    tiles = {"num_q_tiles": q_tiles, "window_tiles": window_tiles}
    if model.attention == "mla":
        nope, rope, v = model.qk_nope_head_dim, model.qk_rope_head_dim, model.v_head_dim
        # decompress the latent KV of every key into per-head K (nope) and V
        return [_gemm(dep, "kv_up_proj", kv_tokens, heads * (nope + v), model.kv_lora_rank),
                _op_prefill_attention(chip, cal, pairs, q_total, kv_tokens, max_keys, heads, heads, nope + rope, v,
                                      heads * (nope + rope + v), act, "bf16", "attention_prefill", **tiles)]
    d = model.head_dim
    return [_op_prefill_attention(chip, cal, pairs, q_total, kv_tokens, max_keys, heads, kv_heads, d,
                                  model.v_head_dim, kv_heads * (d + model.v_head_dim), act, dep.kv_format,
                                  "attention_prefill", **tiles)]


def decode_attention_ops(model: ModelArch, dep: Deployment, num_decode: int, context_tokens: float,
                         max_context: float | None = None, window: int = 0) -> list[OpCost]:
    """Attention core of ``num_decode`` one-token sequences attending ``context_tokens``
    keys in all (already capped by the layer's window); ``max_context``: the longest
    sequence's keys before the cap (the kernel sizes its split-KV partitions by it).
    Arrays of keys and longest sequences price a run of steps at once
    (:func:`ops.decode_attention_run`: the attention op's figures are arrays)."""
    before, after = decode_absorb_ops(model, dep, num_decode)
    return before + [decode_attention_core(model, dep, num_decode, context_tokens, max_context, window)] + after


def decode_absorb_ops(model: ModelArch, dep: Deployment, num_decode: int) -> tuple[list[OpCost], list[OpCost]]:
    """The GEMMs around the attention core of a decode (MLA: the query absorbed into the
    latent space before, the values out of it after; none otherwise): they depend on the
    sequences alone, not on the keys attended."""
    if model.attention != "mla":
        return [], []
    heads, _ = _heads(model, dep)
    r, nope, v = model.kv_lora_rank, model.qk_nope_head_dim, model.v_head_dim
    return ([_gemm(dep, "q_absorb", num_decode, r, nope, groups=heads)],
            [_gemm(dep, "v_absorb", num_decode, v, r, groups=heads)])


def decode_attention_core(model: ModelArch, dep: Deployment, num_decode: int, context_tokens: float,
                          max_context: float | None = None, window: int = 0) -> OpCost:
    """The attention kernel of :func:`decode_attention_ops`."""
    chip, cal = dep.chip, dep.calibration
    heads, kv_heads = _heads(model, dep)
    act, kv_fmt = "bf16", dep.kv_format
    longest = {"max_context_tokens": max_context, "window": window}
    attend = ops.decode_attention_run if isinstance(context_tokens, np.ndarray) else _op_decode_attention
    if model.attention == "mla":
        r, lat = model.kv_lora_rank, model.kv_latent_dim
        return attend(chip, cal, num_decode, context_tokens, heads, 1, 2.0 * (lat + r), lat, lat, act, kv_fmt,
                      "attention_decode", **longest)
    d = model.head_dim
    return attend(chip, cal, num_decode, context_tokens, heads, kv_heads, 2.0 * (d + model.v_head_dim),
                  kv_heads * (d + model.v_head_dim), d, act, kv_fmt, "attention_decode", **longest)


def qkv_ops(model: ModelArch, dep: Deployment, t: int) -> list[OpCost]:
    heads, kv_heads = _heads(model, dep)
    h = model.hidden_size
    out = [_vector(dep, "input_norm", t * h, 4, 2 * 2 + 2)]  # read x, add residual, write
    out += _quant(dep, "norm", t * h, "qkv_quant")
    if model.attention == "mla":
        nope, rope = model.qk_nope_head_dim, model.qk_rope_head_dim
        if model.q_lora_rank:
            out.append(_gemm(dep, "q_down_proj", t, model.q_lora_rank, h))
            out.append(_gemm(dep, "q_up_proj", t, heads * (nope + rope), model.q_lora_rank))
        else:
            out.append(_gemm(dep, "q_proj", t, heads * (nope + rope), h))
        out.append(_gemm(dep, "kv_down_proj", t, model.kv_latent_dim, h))
        out.append(_vector(dep, "rotary_norm", t * (heads * rope + model.kv_latent_dim), 6, 4))
    else:
        n = (heads + 2 * kv_heads) * model.head_dim
        out.append(_gemm(dep, "qkv_proj", t, n, h))
        if not dep.runtime.fuse_rotary:
            out.append(_vector(dep, "rotary", t * (heads + kv_heads) * model.head_dim, 6, 4))
    return out


def out_proj_ops(model: ModelArch, dep: Deployment, t: int) -> list[OpCost]:
    heads, _ = _heads(model, dep)
    h = model.hidden_size
    out = _quant(dep, "attn", t * heads * model.v_head_dim, "o_proj_quant")
    out.append(_gemm(dep, "o_proj", t, h, heads * model.v_head_dim))
    if dep.tp > 1:
        out.append(_op_collective(dep.chip, dep.calibration, "allreduce", t * h * 2.0, dep.tp, "tp_allreduce"))
    return out


def dense_mlp_ops(model: ModelArch, dep: Deployment, t: int, width: int, tp: int, prefix: str = "mlp",
                  reduce: bool = True, norm: bool = True) -> list[OpCost]:
    h = model.hidden_size
    w = width // tp
    up = 2 * w if model.mlp_gated else w
    out = [_vector(dep, "mlp_norm", t * h, 4, 6)] + _quant(dep, "norm", t * h, "mlp_quant") if norm else []
    out += _gated_up(dep, model, f"{prefix}_up_proj", t, up, h, f"{prefix}_act", t * w)
    out += _quant(dep, "act", t * w, f"{prefix}_down_quant")
    out.append(_gemm(dep, f"{prefix}_down_proj", t, h, w))
    if reduce and tp > 1:
        out.append(_op_collective(dep.chip, dep.calibration, "allreduce", t * h * 2.0, tp, f"{prefix}_allreduce"))
    return out


def moe_ops(model: ModelArch, dep: Deployment, t_replica: int, t_all: int) -> list[OpCost]:
    """Routed experts, shared experts, router, and the all-to-all dispatch/combine when
    experts are spread: the kernels an MoE layer runs (:func:`routed_expert_ops`). Only
    the routed experts depend on the tokens of all replicas (``t_all``): the ops before
    and after them (:func:`moe_pre_ops`, :func:`moe_post_ops`) on the replica's alone."""
    return moe_pre_ops(model, dep, t_replica) + routed_expert_ops(model, dep, t_replica, t_all) + \
        moe_post_ops(model, dep, t_replica)


def _tokens_per_chip(dep: Deployment, t_replica: int) -> int:
    """A replica's tokens on each of its tp chips when experts are spread (all of them
    otherwise)."""
    chips_per_token = dep.tp * dep.dp // max(1, dep.dp)  # tokens of a replica are split over its tp chips
    return math.ceil(t_replica / chips_per_token) if dep.ep > 1 else t_replica


def moe_pre_ops(model: ModelArch, dep: Deployment, t_replica: int) -> list[OpCost]:
    """An MoE layer before its routed experts: norm, router, top-k, quantization, dispatch."""
    h = model.hidden_size
    e, k = model.num_experts, model.num_experts_per_tok
    ep = dep.ep
    out = [_vector(dep, "mlp_norm", t_replica * h, 4, 6),
           _gemm(dep, "router", t_replica, e, h, weight=False, a_fmt="bf16", b_fmt="bf16"),
           _vector(dep, "topk", t_replica * e, 4, 4)]
    out += _quant(dep, "norm", t_replica * h, "experts_quant")
    if ep > 1:
        size = _tokens_per_chip(dep, t_replica) * min(k, ep) * h * get_format(dep.act).bytes_per_element * ep / \
            max(ep - 1, 1)
        out.append(_op_collective(dep.chip, dep.calibration, "alltoall", size, ep, "moe_dispatch"))
    return out


def moe_post_ops(model: ModelArch, dep: Deployment, t_replica: int) -> list[OpCost]:
    """An MoE layer after its routed experts: combine, shared experts, the tensor-parallel
    reduction."""
    h = model.hidden_size
    k = model.num_experts_per_tok
    ep = dep.ep
    out: list[OpCost] = []
    if ep > 1:
        size = _tokens_per_chip(dep, t_replica) * min(k, ep) * h * 2.0 * ep / max(ep - 1, 1)
        out.append(_op_collective(dep.chip, dep.calibration, "alltoall", size, ep, "moe_combine"))
    if model.shared_expert_intermediate_size:
        out += dense_mlp_ops(model, dep, t_replica, model.shared_expert_intermediate_size, dep.tp, "shared_expert",
                             reduce=False, norm=False)
    reduce_over = dep.tp if ep == 1 else dep.moe_tp
    if reduce_over > 1:
        out.append(_op_collective(dep.chip, dep.calibration, "allreduce", t_replica * h * 2.0, reduce_over,
                                  "moe_allreduce"))
    return out


def moe_sort_bytes(rows: float, num_experts: int) -> float:
    """HBM bytes of sorting ``rows`` (token, expert) rows by expert: a radix sort of 32-bit keys
    and 32-bit row ids, one 8-bit digit pass per 256 experts, each pass reading and writing both."""
    return rows * 16.0 * max(1, math.ceil(math.log2(num_experts + 1) / 8))


def routed_expert_ops(model: ModelArch, dep: Deployment, t_replica: int, t_all: int) -> list[OpCost]:
    """The routed experts on the busiest chip, as MoE runtimes run them:

    1. ``moe_sort``: the (token, expert) rows are sorted by expert (a radix sort of
       32-bit keys and 32-bit row ids, 8-bit digits, each pass reading and writing both)
       and each expert's first row is found, so every expert's rows are contiguous.
    2. ``moe_permute`` (runtime ``moe_permute: copy``, TensorRT-LLM's CUTLASS MoE): an
       expand kernel copies each token's activation once per chosen expert into that
       order; with ``gather`` (vLLM's and SGLang's fused_moe) the grouped GEMM reads rows
       through the sorted index and there is no copy.
    3. The grouped up projection over the experts the batch touches; its gated
       activation runs as a kernel of its own unless the runtime fuses it into the
       grouped GEMM (``moe_fuse_gated_act``), then the grouped down projection.
    4. ``moe_finalize``: each token's k expert outputs (16-bit) are un-permuted, scaled
       by their router weights and summed.

    Rows per chip: under expert parallelism the experts sit on ``ep`` chips and the step
    waits for the busiest, so a chip's rows are the expected maximum of the multinomial
    load of ``t_all x k`` rows over ``ep`` chips (:func:`routing.expected_max_load`); with
    ``ep = 1`` every chip holds a tensor slice of every expert and gets all of them."""
    h = model.hidden_size
    e, k = model.num_experts, model.num_experts_per_tok
    ep, rt = dep.ep, dep.runtime
    rows = routing.expected_max_load(int(t_all * k), ep)
    touched = routing.expected_distinct(t_all, k, e, e // ep)
    groups = max(1, math.ceil(touched - 1e-9))
    # rows per expert GEMM of the group (a whole number of experts); the tiny epsilon keeps
    # an exact quotient from rounding up through floating-point noise
    per_expert = max(1, math.ceil(rows / groups - 1e-9))
    w = model.moe_intermediate_size // dep.moe_tp
    up = 2 * w if model.mlp_gated else w
    act_bytes = get_format(dep.act).bytes_per_element
    out = [_op_vector(dep.chip, dep.calibration, 0.0, moe_sort_bytes(t_replica * k, e), "moe_sort")]
    if rt.moe_permute == "copy":
        out.append(_op_vector(dep.chip, dep.calibration, 0.0, (t_replica + rows) * h * act_bytes, "moe_permute"))
    out += _gated_up(dep, model, "experts_up_proj", per_expert, up, h, "experts_act", rows * w, groups,
                     fused=rt.moe_fuse_gated_act)
    out += _quant(dep, "act", rows * w, "experts_down_quant")
    out.append(_gemm(dep, "experts_down_proj", per_expert, h, w, groups=groups))
    out.append(_op_vector(dep.chip, dep.calibration, 2.0 * rows * h, (rows + t_replica) * h * 2.0, "moe_finalize"))
    return out


def embedding_ops(model: ModelArch, dep: Deployment, num_tokens: int) -> list[OpCost]:
    return [_vector(dep, "embedding", num_tokens * model.hidden_size, 0, 2 * 2)]


def logits_ops(model: ModelArch, dep: Deployment, num_logits: int) -> list[OpCost]:
    """Final norm, LM head, logits gather and sampling for the sampled sequences."""
    if not num_logits:
        return []
    h, v = model.hidden_size, model.vocab_size
    out = [_vector(dep, "final_norm", num_logits * h, 4, 6),
           _gemm(dep, "lm_head", num_logits, math.ceil(v / dep.tp), h, weight=False, a_fmt="bf16", b_fmt="bf16")]
    if dep.tp > 1:
        out.append(_op_collective(dep.chip, dep.calibration, "allgather", num_logits * v * 4.0, dep.tp,
                                  "logits_allgather"))
    out.append(_vector(dep, "sampling", num_logits * v, 5, 4 * 2))
    return out


def head_ops(model: ModelArch, dep: Deployment, b: ReplicaBatch) -> list[OpCost]:
    return embedding_ops(model, dep, b.num_tokens) + logits_ops(model, dep, b.num_logits)
