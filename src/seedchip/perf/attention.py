"""Attention kernels as work units spread over a chip's cores (prefill and decode).

Both models are written in the chip's own terms so a calibration fitted on one chip
carries to another through its ChipSpec: work units over ``num_cores`` in waves, matrix
work at the chip's matrix peak, the softmax's exponentials on its special-function
units (``exp_rate_per_s``) and the rest on its vector units, HBM traffic at its
bandwidth, and what one core can stream by Little's law (bytes it keeps in flight, a
share of its SRAM, over memory latency). Every function works on one op (Python floats)
and on arrays of measured shapes (the calibration fit), the same code.

**Prefill** (flash attention, FlashAttention-2/3 and TensorRT-LLM's context FMHA): a unit
is one 128-row query tile of one head against the keys it attends. A unit's time is its
matmuls (2 x pairs x (qk + v) FLOP at the matrix peak x efficiency) joined with its
softmax (one exponential per score on the special-function units plus a few vector FLOP)
by a p-norm (the kernels overlap the two, partly); the chip takes the larger of all the
work at the whole chip's rates and the largest unit at one core's rates, plus a fixed
time per wave of units. On Blackwell-class chips the matrix peak doubled and the
exponential rate did not (FlashAttention-4), which the exponential term carries.

**Decode** (split-KV "flash-decoding": TensorRT-LLM's XQA and masked-MHA kernels): a unit
is one (sequence, KV head) group whose query heads are the rows of one matrix tile
(padded to the array's rows), or one query head where the kernel cannot group. When the
units are too few to fill the cores the context is split into partitions
(:func:`kernels.xqa_splits`), whose partials are combined at the end by the last unit
(part of its fixed time). KV bytes stream at the smaller of the
HBM bandwidth and (busiest core's bytes) / (one core's Little's-law rate); each wave of
units pays a fixed time (load the query, page table, write the partials).
"""

from __future__ import annotations

import math
from functools import lru_cache

from ..hardware.spec import ChipSpec
from . import kernels
from .calibration import Calibration

F = kernels.as_float


def resident_units(chip: ChipSpec, cal: Calibration) -> float:
    """Attention units one core holds at once: its SRAM over what a unit needs (at least one)."""
    return float(max(1, math.floor(chip.sram.per_core_bytes / cal.attention.unit_sram_bytes)))


def core_stream_bytes_per_s(chip: ChipSpec, cal: Calibration) -> float | None:
    """What one core streams from HBM by itself (Little's law), or None (no limit)."""
    k = cal.attention.core_stream_per_sram_byte
    return None if k is None else k * chip.sram.per_core_bytes


def default_q_tiles(q_tokens):
    """Query tiles of prefill chunks when the caller does not count them: one per 128 new
    tokens (exact for one chunk, a lower bound for several)."""
    return kernels.fceil(F(q_tokens) / kernels.ATTN_Q_TILE)


def prefill_attention_model(chip: ChipSpec, cal: Calibration, *, pairs, q_tokens, kv_tokens, max_keys, heads,
                            kv_heads, qk_dim, v_dim, kv_elems_per_token, act_bytes, kv_bytes, matrix_class="bf16",
                            num_q_tiles=None, window_tiles=0.0):
    """Flash-attention prefill (module doc). ``pairs``: (query, key) pairs the kernel
    computes, summed over sequences (causal, windowed, tiled: :func:`kernels.tiled_pairs`);
    ``kv_tokens``: keys read; ``max_keys``: keys of the largest query tile
    (:func:`kernels.last_tile_keys`); ``num_q_tiles``: query tiles summed over the chunks
    (default :func:`default_q_tiles`); ``window_tiles``: query tiles past a sliding window."""
    peak, used = chip.peak_flops(matrix_class)
    a = cal.attention
    cores = chip.matrix.num_cores
    pairs, q_tokens, kv_tokens, max_keys = (F(x) for x in (pairs, q_tokens, kv_tokens, max_keys))
    heads_f, qk, v = F(heads), F(qk_dim), F(v_dim)
    flops = 2.0 * pairs * heads_f * (qk + v)
    softmax_s = a.exp_per_pair / chip.exp_rate_per_s + a.softmax_flops_per_pair / chip.vector_flops_per_s
    matmul_s = 2.0 * (qk + v) / (peak * cal.prefill_efficiency(used))

    def work(pair_heads):   # seconds at the whole chip's rates
        return kernels.pnorm(pair_heads * matmul_s, pair_heads * softmax_s, a.softmax_overlap_p)

    unit_pairs = kernels.ATTN_Q_TILE * max_keys * (0.0 if cal.roofline else 1.0)
    compute = kernels.fmax(work(pairs * heads_f), work(unit_pairs) * cores)
    hbm = (q_tokens * heads_f * (qk + v) * act_bytes + kv_tokens * kv_elems_per_token * kv_bytes
           + q_tokens * kv_elems_per_token * kv_bytes)
    memory = hbm / (chip.hbm_bw_bytes_per_s * a.prefill_memory_efficiency)
    slots = cores * resident_units(chip, cal)
    tiles = default_q_tiles(q_tokens) if num_q_tiles is None else F(num_q_tiles)
    fixed = kernels.waves(tiles * heads_f, slots) * a.prefill_unit_s
    if a.prefill_window_unit_s:
        fixed = fixed + kernels.waves(F(window_tiles) * heads_f, slots) * a.prefill_window_unit_s
    time = kernels.pnorm(compute, memory, a.overlap_p) + fixed + a.prefill_overhead_s
    return {"compute_s": compute, "memory_s": memory, "time_s": time, "flops": flops, "hbm_bytes": hbm,
            "vector_flops": pairs * heads_f * (a.exp_per_pair + a.softmax_flops_per_pair), "matrix_class": used}


def decode_kernel(heads, kv_heads, kv_elems_per_token, q_elems_per_head, kv_bytes, max_group: int):
    """(grouped?, query heads per unit, 1.0 for an 8-bit-or-narrower KV cache else 0.0)
    of a decode attention op: the kernel family. A latent cache (MLA: K and V are one
    shared vector per token) is read by all heads at once, so it is always grouped."""
    h, k = F(heads), F(kv_heads)
    ratio = h / k
    latent = F(kv_elems_per_token) < 2.0 * F(q_elems_per_head) * k
    grouped = latent | ((ratio > 1.0) & (ratio <= max_group)) if not isinstance(latent, bool) \
        else latent or (1.0 < ratio <= max_group)
    per_unit = kernels.fwhere(grouped, ratio, 1.0)
    return grouped, per_unit, kernels.fwhere(F(kv_bytes) <= 1.0, 1.0, 0.0)


def _kernel_value(table: dict[str, float], grouped, narrow):
    g16 = table.get("grouped_16bit", 0.0)
    g8 = table.get("grouped_8bit", g16)
    if isinstance(grouped, bool):        # one op: plain Python
        return (g8 if narrow > 0.5 else g16) if grouped else table.get("per_head", g16)
    return kernels.fwhere(grouped, kernels.fwhere(narrow > 0.5, g8, g16), table.get("per_head", g16))


def _splits(grouped, units, context, cores: int, a):
    """Split-KV partitions per unit: XQA's rule for grouped kernels, fill the cores otherwise."""
    def xqa():
        return kernels.xqa_splits(units, context, cores, a.decode_split_min_tokens, a.decode_split_target_waves)

    def fill():
        return kernels.fill_splits(units, context, cores, a.decode_split_min_tokens)

    if isinstance(grouped, bool):        # one op: only the kernel that runs
        return xqa() if grouped else fill()
    return kernels.fwhere(grouped, xqa(), fill())


def _capped(max_context, window):
    """The longest sequence's keys in a layer of this window: what the kernel partitions
    (a windowed layer never reads past its window, however long the sequence)."""
    longest = F(max_context)
    return kernels.fwhere(F(window) > 0.0, kernels.fmin(longest, F(window)), longest)


def _busiest_core_bytes(a, cores: int, grouped, units, per_seq, kv_token_bytes, seqs, ctx, max_context, window):
    """Bytes the busiest core streams. With the longest sequence known (``max_context``,
    before the window cap): every unit gets the partitions the kernel sizes by the longest
    window-capped keys; the busiest core runs its share of waves of the average unit's
    partitions, and never less than one partition of the longest unit. Without
    it: the keys spread over the cores one sequence of all ``ctx`` keys could keep busy
    (a lower bound on the busy cores, so adding a short sequence never speeds the op)."""
    if max_context is None:
        active = kernels.fmin(float(cores), per_seq * _splits(grouped, per_seq, ctx, cores, a))
        return ctx * per_seq * kv_token_bytes / active
    capped = _capped(max_context, window)
    splits = _splits(grouped, units, capped, cores, a)
    mean = kernels.fmin(ctx / seqs, capped)      # keys per sequence, window-capped, on average
    # the partitions run in waves over the cores, the average unit's share per wave; no
    # core finishes before the longest unit's partition (a mixed batch is not all longest)
    waves = kernels.smooth_waves(units * splits, cores) * (mean / splits)
    return kernels.fmax(waves, capped / splits) * kv_token_bytes


def decode_attention_model(chip: ChipSpec, cal: Calibration, *, num_seqs, context_tokens, heads, kv_heads,
                           flops_per_pair_per_head, kv_elems_per_token, act_bytes, kv_bytes, q_elems_per_head,
                           matrix_class="bf16", max_context_tokens=None, window=0.0, exact=False):
    """Split-KV decode attention (module doc): one new token per sequence,
    ``context_tokens`` keys summed over the sequences (window-capped).
    ``max_context_tokens``: the longest sequence's keys before the window cap (the
    kernel sizes its partitions by it); ``window``: the layer's sliding window (0: none).
    Without them, the busiest core is bounded from the totals (:func:`_busiest_core_bytes`).
    ``exact``: join memory and compute element by element as one op does
    (:func:`kernels.pnorm_exact`), so that each element equals
    :func:`decode_attention_scalar` to the last bit (a run of steps priced at once)."""
    peak, used = chip.peak_flops(matrix_class)
    a = cal.attention
    cores = chip.matrix.num_cores
    seqs, ctx = F(num_seqs), F(context_tokens)
    h, k = F(heads), F(kv_heads)
    grouped, per_unit, narrow = decode_kernel(heads, kv_heads, kv_elems_per_token, q_elems_per_head, kv_bytes,
                                              a.decode_max_group_heads)
    per_seq = kernels.fwhere(grouped, k, h)
    units = seqs * per_seq
    ctas = units * _splits(grouped, units, ctx / seqs if max_context_tokens is None
                           else _capped(max_context_tokens, window), cores, a)
    inv = k / h      # a one-query-head unit re-reads its KV head; the first read of each comes from HBM
    reread = kernels.fwhere(grouped, 1.0, inv + (1.0 - inv) / a.l2_reread_speedup)
    kv_token_bytes = F(kv_elems_per_token) / k * kv_bytes * reread          # per token of one unit
    hbm = ctx * F(kv_elems_per_token) * kv_bytes + 2.0 * seqs * h * q_elems_per_head * act_bytes
    core_bytes = _busiest_core_bytes(a, cores, grouped, units, per_seq, kv_token_bytes, seqs, ctx,
                                     max_context_tokens, window)
    memory = kernels.stream_time(hbm, core_bytes, chip.hbm_bw_bytes_per_s * cal.vector.memory_efficiency,
                                 core_stream_bytes_per_s(chip, cal))
    rows = float(chip.matrix.array_rows) if not cal.roofline else 1.0
    padded = kernels.fceil(per_unit / rows) * rows / per_unit      # query heads fill whole matrix-tile rows
    flops = ctx * h * flops_per_pair_per_head
    compute = flops * padded / (peak * a.decode_compute_efficiency)
    per_wave = _kernel_value(a.decode_unit_s, grouped, narrow) + a.decode_unit_s_per_head_dim * per_unit * \
        q_elems_per_head / 128.0
    fixed = kernels.smooth_waves(ctas, cores * resident_units(chip, cal)) * per_wave
    overhead = _kernel_value(a.decode_overhead_s, grouped, narrow)
    join = kernels.pnorm_exact if exact else kernels.pnorm
    time = join(memory, compute, a.decode_overlap_p) + fixed + overhead
    return {"compute_s": compute, "memory_s": memory, "time_s": time, "flops": flops, "hbm_bytes": hbm,
            "overhead_s": overhead, "matrix_class": used}


@lru_cache(maxsize=1024)
def _decode_constants(chip: ChipSpec, cal: Calibration, heads, kv_heads, flops_per_pair_per_head, kv_elems_per_token,
                      act_bytes, kv_bytes, q_elems_per_head, matrix_class) -> tuple:
    """What :func:`decode_attention_model` computes from the kernel's shape alone (neither
    the batch nor the keys), in its own expressions."""
    peak, used = chip.peak_flops(matrix_class)
    a = cal.attention
    cores = chip.matrix.num_cores
    h, k = F(heads), F(kv_heads)
    grouped, per_unit, narrow = decode_kernel(heads, kv_heads, kv_elems_per_token, q_elems_per_head, kv_bytes,
                                              a.decode_max_group_heads)
    per_seq = k if grouped else h
    inv = k / h
    reread = 1.0 if grouped else inv + (1.0 - inv) / a.l2_reread_speedup
    kv_token_bytes = F(kv_elems_per_token) / k * kv_bytes * reread
    rows = float(chip.matrix.array_rows) if not cal.roofline else 1.0
    padded = float(math.ceil(per_unit / rows)) * rows / per_unit
    per_wave = _kernel_value(a.decode_unit_s, grouped, narrow) + a.decode_unit_s_per_head_dim * per_unit * \
        q_elems_per_head / 128.0
    return (grouped, per_seq, h, kv_token_bytes, F(kv_elems_per_token), padded, peak * a.decode_compute_efficiency,
            per_wave, cores * resident_units(chip, cal), _kernel_value(a.decode_overhead_s, grouped, narrow),
            chip.hbm_bw_bytes_per_s * cal.vector.memory_efficiency, core_stream_bytes_per_s(chip, cal), cores,
            a.decode_split_min_tokens, a.decode_split_target_waves, a.decode_overlap_p, used)


def _splits_scalar(grouped: bool, units: float, context: float, cores: int, min_tokens: float,
                   target_waves: float) -> float:
    """:func:`_splits` for one op (:func:`kernels.xqa_splits`, :func:`kernels.fill_splits`)."""
    if grouped:
        n = max(context / min_tokens, 1.0)
        n = min(n, math.sqrt(n * 8.0))
        excess = units * n / (cores * target_waves)
        return max(n / max(excess, 1.0), 1.0)
    return min(max(cores / units, 1.0), max(context / min_tokens, 1.0))


def decode_attention_scalar(chip: ChipSpec, cal: Calibration, *, num_seqs, context_tokens, heads, kv_heads,
                            flops_per_pair_per_head, kv_elems_per_token, act_bytes, kv_bytes, q_elems_per_head,
                            matrix_class="bf16", max_context_tokens=None, window=0.0) -> dict:
    """:func:`decode_attention_model` for one op in plain Python, the same expressions in
    the same order (tested equal), with what depends on the kernel's shape alone
    computed once (:func:`_decode_constants`)."""
    compute, memory, time, flops, hbm, overhead, used = decode_attention_terms(
        chip, cal, num_seqs, context_tokens, heads, kv_heads, flops_per_pair_per_head, kv_elems_per_token, act_bytes,
        kv_bytes, q_elems_per_head, matrix_class, max_context_tokens, window)
    return {"compute_s": compute, "memory_s": memory, "time_s": time, "flops": flops, "hbm_bytes": hbm,
            "overhead_s": overhead, "matrix_class": used}


def decode_attention_terms(chip: ChipSpec, cal: Calibration, num_seqs, context_tokens, heads, kv_heads,
                           flops_per_pair_per_head, kv_elems_per_token, act_bytes, kv_bytes, q_elems_per_head,
                           matrix_class, max_context_tokens, window) -> tuple:
    """:func:`decode_attention_scalar`'s figures as a tuple (compute, memory and total seconds,
    flops, HBM bytes, overhead seconds, matrix class), from positional arguments: the
    oracle's hot path (a simulation prices ~10^5 of them)."""
    (grouped, per_seq, h, kv_token_bytes, kv_elems, padded, compute_rate, per_wave, slots, overhead, bw, core_rate,
     cores, min_tokens, target_waves, overlap_p, used) = _decode_constants(
        chip, cal, heads, kv_heads, flops_per_pair_per_head, kv_elems_per_token, act_bytes, kv_bytes,
        q_elems_per_head, matrix_class)
    seqs, ctx = float(num_seqs), float(context_tokens)
    units = seqs * per_seq
    if max_context_tokens is None:
        splits = _splits_scalar(grouped, units, ctx / seqs, cores, min_tokens, target_waves)
        active = min(float(cores), per_seq * _splits_scalar(grouped, per_seq, ctx, cores, min_tokens, target_waves))
        core_bytes = ctx * per_seq * kv_token_bytes / active
    else:
        capped = float(max_context_tokens)
        if float(window) > 0.0:
            capped = min(capped, float(window))
        splits = _splits_scalar(grouped, units, capped, cores, min_tokens, target_waves)
        mean = min(ctx / seqs, capped)
        u = units * splits
        waves = (max(u / cores, 1.0) if u > 0.0 else 0.0) * (mean / splits)
        core_bytes = max(waves, capped / splits) * kv_token_bytes
    ctas = units * splits
    hbm = ctx * kv_elems * kv_bytes + 2.0 * seqs * h * q_elems_per_head * act_bytes
    memory = hbm / bw
    if core_rate is not None:
        memory = max(memory, core_bytes / core_rate)
    flops = ctx * h * flops_per_pair_per_head
    compute = flops * padded / compute_rate
    fixed = (max(ctas / slots, 1.0) if ctas > 0.0 else 0.0) * per_wave
    time = kernels.pnorm_scalar(memory, compute, overlap_p) + fixed + overhead
    return compute, memory, time, flops, hbm, overhead, used
