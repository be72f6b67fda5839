"""Kernel-level cost equations: counts (FLOP, bytes, messages) -> seconds.

Each function is written with NumPy operations that broadcast, so the same code
prices one op inside the oracle and 100,000 measured shapes inside the calibration
fit (one implementation, no drift between the model and what was fitted). Every
estimate is ``count / rate`` (the Scaling-book habit): a compute time, a memory time,
joined by a p-norm (p -> inf is the roofline max, p = 1 the no-overlap sum), plus a
fixed per-kernel overhead.
"""

from __future__ import annotations

import math
from functools import lru_cache
from itertools import repeat

import numpy as np

ATTN_Q_TILE = 128          # query rows per flash-attention work unit
GEMM_K_STEP = 64           # k depth of one pipelined operand load
GEMM_STAGES = 3            # operand buffers in flight per core
SKINNY_M_TILE = 16         # token rows of the narrowest tile (decode-sized GEMMs)


def as_float(x):
    """A Python number becomes a float, anything else a float array: the kernels below
    then run in plain Python for one op and vectorised for many (the same code)."""
    return float(x) if isinstance(x, (int, float)) else np.asarray(x, dtype=float)


def fmax(a, b):
    return max(a, b) if isinstance(a, float) and isinstance(b, float) else np.maximum(a, b)


def fceil(x):
    return float(math.ceil(x)) if isinstance(x, float) else np.ceil(x)


def pnorm(a, b, p):
    """(a^p + b^p)^(1/p), stable for large p; p >= 1e6 is treated as max(a, b)."""
    if isinstance(a, float) and isinstance(b, float):
        return pnorm_scalar(a, b, p)
    a = np.asarray(a, dtype=float)
    b = np.asarray(b, dtype=float)
    hi = np.maximum(a, b)
    lo = np.minimum(a, b)
    if np.all(np.asarray(p) >= 1e6):
        return hi
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.where(hi > 0, lo / np.where(hi > 0, hi, 1.0), 0.0)
    return hi * (1.0 + r**p) ** (1.0 / p)


@lru_cache(maxsize=1024)
def tile_candidates(array_rows: int, array_cols: int, min_tile: int, core_sram_bytes: float,
                    operand_bytes: float) -> tuple[tuple[int, int], ...]:
    """Output tiles (tm, tn) a core can run whose pipelined operand buffers fit in
    core-local SRAM. tn is a multiple of the MAC array's columns (at least
    ``min_tile``); tm, the token dimension, is a multiple of its rows, or a skinny
    SKINNY_M_TILE rows for few tokens (tokens stream through a weight-stationary array;
    a GPU swaps the operands so the few tokens sit on the MMA's narrow side)."""
    base_m = max(array_rows, min_tile)
    base_n = max(array_cols, min_tile)
    out = []
    for tm in (SKINNY_M_TILE, base_m, 2 * base_m, 4 * base_m):
        for fn in (1, 2, 4):
            tn = base_n * fn
            need = GEMM_STAGES * (tm + tn) * GEMM_K_STEP * operand_bytes
            if need <= core_sram_bytes or (tm == base_m and fn == 1):
                out.append((tm, tn))
    return tuple(out)


@lru_cache(maxsize=1024)
def _tile_arrays(tiles: tuple[tuple[int, int], ...]) -> tuple[np.ndarray, np.ndarray]:
    return (np.array([t[0] for t in tiles], dtype=float), np.array([t[1] for t in tiles], dtype=float))


def gemm_compute_time(m, n, k, groups, peak_flops_per_s, num_cores, tiles, quantize=True):
    """Matrix-unit time of ``groups`` GEMMs of m x n x k: tile and wave quantization
    over the cores, with split-K when there are fewer tiles than cores. The best of
    the candidate tiles is taken (what a library's heuristic aims for)."""
    m = np.asarray(m, dtype=float)
    n = np.asarray(n, dtype=float)
    k = np.asarray(k, dtype=float)
    groups = np.asarray(groups, dtype=float)
    flops = 2.0 * m * n * k * groups
    if not quantize:
        return flops / peak_flops_per_s
    per_core = peak_flops_per_s / num_cores
    # all candidate tiles at once, along a new leading axis
    shape = (len(tiles),) + (1,) * max(m.ndim, n.ndim, k.ndim, groups.ndim)
    tm_all, tn_all = _tile_arrays(tuple(tiles))
    tm = tm_all.reshape(shape)
    tn = tn_all.reshape(shape)
    num_tiles = groups * np.ceil(m / tm) * np.ceil(n / tn)
    split = np.maximum(1.0, np.minimum(np.floor(num_cores / num_tiles), np.floor(k / 512.0)))
    waves = np.ceil(num_tiles * split / num_cores)
    t = waves * 2.0 * tm * tn * np.ceil(k / split) / per_core
    return t.min(axis=0)


@lru_cache(maxsize=65_536)
def gemm_compute_time_scalar(m: float, n: float, k: float, groups: float, peak_flops_per_s: float,
                             num_cores: int, tiles, quantize: bool = True) -> float:
    """:func:`gemm_compute_time` for one shape in plain Python (the oracle's hot path;
    tested equal to the vectorised form). Cached by its arguments: design points that
    share a matrix peak and tiles share it."""
    flops = 2.0 * m * n * k * groups
    if not quantize:
        return flops / peak_flops_per_s
    per_core = peak_flops_per_s / num_cores
    best = math.inf
    for tm, tn in tiles:
        num_tiles = groups * math.ceil(m / tm) * math.ceil(n / tn)
        split = max(1.0, min(math.floor(num_cores / num_tiles), math.floor(k / 512.0)))
        waves = math.ceil(num_tiles * split / num_cores)
        t = waves * 2.0 * tm * tn * math.ceil(k / split) / per_core
        if t < best:
            best = t
    return best


def gemm_hbm_bytes_scalar(m: float, n: float, k: float, groups: float, a_bytes: float, b_bytes: float,
                          c_bytes: float, shared_sram_bytes: float, concurrent_block: float) -> float:
    """:func:`gemm_hbm_bytes` for one shape in plain Python (tested equal)."""
    budget = 0.5 * shared_sram_bytes
    block = max(budget / (k * (a_bytes + b_bytes)), float(concurrent_block))
    a = m * k * a_bytes
    b = k * n * b_bytes
    if a + b <= budget:
        reads_a = reads_b = 1.0
    else:
        reads_a, reads_b = math.ceil(n / block), math.ceil(m / block)
    return groups * (a * reads_a + b * reads_b + m * n * c_bytes)


def pnorm_scalar(a: float, b: float, p: float) -> float:
    """:func:`pnorm` for two floats."""
    hi, lo = (a, b) if a >= b else (b, a)
    if p >= 1e6 or hi <= 0:
        return hi
    return hi * (1.0 + (lo / hi) ** p) ** (1.0 / p)


def pnorm_exact(a, b, p):
    """:func:`pnorm_scalar` over arrays, equal to it element by element: the same
    expressions, with the two powers taken by Python's float pow (the C library's, which
    NumPy's vectorised power may differ from in the last bit)."""
    a, b = np.broadcast_arrays(as_float(a), as_float(b))
    hi = np.where(a >= b, a, b)
    if p >= 1e6:
        return hi
    lo = np.where(a >= b, b, a)
    pos = hi > 0
    n = hi.size
    ratio = np.where(pos, lo / np.where(pos, hi, 1.0), 0.0).ravel().tolist()
    inner = 1.0 + np.fromiter(map(pow, ratio, repeat(p, n)), dtype=float, count=n)
    grown = np.fromiter(map(pow, inner.tolist(), repeat(1.0 / p, n)), dtype=float, count=n).reshape(hi.shape)
    return np.where(pos, hi * grown, hi)


def gemm_hbm_bytes(m, n, k, groups, a_bytes, b_bytes, c_bytes, shared_sram_bytes, concurrent_block):
    """HBM traffic of ``groups`` GEMMs with on-chip blocking. The output is worked in
    blocks of T x T: at least the tiles in flight on all cores at once
    (``concurrent_block``, they share A rows and B columns through the shared SRAM as
    k advances), larger when whole A and B panels (T x k, k x T) fit in half the shared
    SRAM. A is read once per block column, B once per block row; everything is read
    once when both operands fit on chip."""
    m = np.asarray(m, dtype=float)
    n = np.asarray(n, dtype=float)
    k = np.asarray(k, dtype=float)
    budget = 0.5 * shared_sram_bytes
    block = np.maximum(budget / (k * (a_bytes + b_bytes)), float(concurrent_block))
    a = m * k * a_bytes
    b = k * n * b_bytes
    fits = (a + b) <= budget
    reads_a = np.where(fits, 1.0, np.ceil(n / block))
    reads_b = np.where(fits, 1.0, np.ceil(m / block))
    return groups * (a * reads_a + b * reads_b + m * n * c_bytes)


def tiled_pairs(q, context, window, tile=ATTN_Q_TILE):
    """(query, key) pairs a flash kernel computes for one sequence chunk of ``q`` new
    tokens after ``context`` cached ones, causal, optionally windowed (window <= 0:
    none). Work is done in tile x tile blocks, so the diagonal block and the window's
    ragged edge count whole: pairs = tile x sum over query tiles of keys touched."""
    q = np.asarray(q, dtype=float)
    c = np.asarray(context, dtype=float)
    w = np.asarray(window, dtype=float)
    nt = np.ceil(q / tile)
    full = nt * c + tile * nt * (nt + 1) / 2.0            # keys touched, no window
    n1 = np.clip(np.floor((w - c) / tile) + 1.0, 0.0, nt)  # tiles still inside the window
    windowed = n1 * c + tile * n1 * (n1 + 1) / 2.0 + (nt - n1) * (w + tile)
    keys = np.where(w > 0, np.minimum(full, windowed), full)
    return tile * keys


def tiled_pairs_scalar(q: int, context: int, window: int, tile: int = ATTN_Q_TILE) -> float:
    """:func:`tiled_pairs` for one chunk in plain Python (the simulator's hot path;
    tested equal to the vectorised form)."""
    nt = -(-q // tile)
    full = nt * context + tile * nt * (nt + 1) / 2.0
    if window <= 0:
        return float(tile * full)
    n1 = min(max(math.floor((window - context) / tile) + 1.0, 0.0), float(nt))
    windowed = n1 * context + tile * n1 * (n1 + 1) / 2.0 + (nt - n1) * (window + tile)
    return float(tile * min(full, windowed))


def exact_pairs(q, context, window):
    """Useful causal (query, key) pairs of a chunk: sum over new tokens of the keys
    each attends to (min(position + 1, window))."""
    q = np.asarray(q, dtype=float)
    c = np.asarray(context, dtype=float)
    w = np.asarray(window, dtype=float)
    full = q * c + q * (q + 1) / 2.0
    # positions p = c .. c+q-1 attend to min(p + 1, w) keys
    n_in = np.clip(w - c, 0.0, q)                            # positions with p + 1 <= w
    windowed = n_in * c + n_in * (n_in + 1) / 2.0 + (q - n_in) * w
    return np.where(w > 0, np.minimum(full, windowed), full)


def prefill_attention_time(flops, hbm_bytes, unit_flops, peak_flops_per_s, num_cores, eff_c,
                           bw_bytes_per_s, eff_m, p, overhead_s, softmax_flops=0.0, unit_softmax_flops=0.0,
                           vector_flops_per_s=1.0):
    """Flash-style prefill: matmul work plus the softmax's exponentials (on the vector
    units). Work units (a query tile of one head against its keys) are spread over the
    cores, so the time is the larger of all the work at the whole chip's rate and the
    largest unit at one core's rate (few units leave cores idle); KV streamed once per
    sequence. Adding work never makes it faster."""
    total = as_float(flops) / (peak_flops_per_s * eff_c) + as_float(softmax_flops) / vector_flops_per_s
    unit = (as_float(unit_flops) / (peak_flops_per_s * eff_c)
            + as_float(unit_softmax_flops) / vector_flops_per_s) * num_cores
    compute = fmax(total, unit)
    memory = as_float(hbm_bytes) / (bw_bytes_per_s * eff_m)
    return compute, memory, pnorm(compute, memory, p) + overhead_s


def last_tile_keys(q, context, window, tile=ATTN_Q_TILE):
    """Keys the last (largest) query tile of a chunk attends: causal, tile-padded,
    window-capped (window <= 0: none)."""
    if isinstance(q, (int, float)) and isinstance(context, (int, float)) and isinstance(window, (int, float)):
        keys = float(context + math.ceil(q / tile) * tile)
        return min(keys, float(window + tile)) if window > 0 else keys
    q, c, w = as_float(q), as_float(context), as_float(window)
    keys = c + np.ceil(q / tile) * tile
    return np.where(w > 0, np.minimum(keys, w + tile), keys)


def decode_attention_time(flops, hbm_bytes, peak_flops_per_s, eff_c, bw_bytes_per_s, eff_m, p, overhead_s,
                          head_units=0.0, num_cores=1, unit_s=0.0):
    """Decode: the KV cache is read once per step. Each (sequence, query head) block
    also pays a fixed ``unit_s`` (load q, reduce the split-KV partials, write o), in
    waves over the cores. Adding work never makes it faster."""
    compute = as_float(flops) / (peak_flops_per_s * eff_c)
    memory = as_float(hbm_bytes) / (bw_bytes_per_s * eff_m)
    blocks = fceil(as_float(head_units) / num_cores) * unit_s
    return compute, memory, pnorm(compute, memory, p) + blocks + overhead_s


def collective_time(kind: str, size_bytes, num_chips, bw_bytes_per_s, latency_s, hop_s, curve_wire_bytes=None,
                    curve_efficiency=None, efficiency=1.0):
    """NCCL-style collective over a ring (or the switch), ``size_bytes`` the full
    buffer (nccl-tests convention). all-reduce moves 2(n-1)/n of it per chip,
    all-gather / reduce-scatter / all-to-all (n-1)/n, p2p all of it. Time = start-up
    latency + per-hop latency + wire bytes / (link bandwidth x efficiency), where the
    efficiency depends on the wire bytes (protocols and pipelining need big messages
    to fill the links): a measured curve interpolated in log-log, flat beyond its ends,
    or the constant ``efficiency``. Time never falls as bytes grow as long as no
    segment's efficiency rises faster than its bytes (the fit enforces it)."""
    n = np.asarray(num_chips, dtype=float)
    size = np.asarray(size_bytes, dtype=float)
    if kind == "allreduce":
        factor, steps = 2.0 * (n - 1) / n, 2.0 * (n - 1)
    elif kind in ("allgather", "reducescatter", "alltoall"):
        factor, steps = (n - 1) / n, (n - 1)
    elif kind == "p2p":
        factor, steps = np.ones_like(n), np.ones_like(n)
    else:  # pragma: no cover - guarded by callers
        raise ValueError(kind)
    wire = factor * size
    if curve_wire_bytes is not None and len(curve_wire_bytes):
        eff = np.exp(np.interp(np.log(np.maximum(wire, 1.0)), np.log(np.asarray(curve_wire_bytes, float)),
                               np.log(np.asarray(curve_efficiency, float))))
    else:
        eff = efficiency
    t = wire / (bw_bytes_per_s * eff) + latency_s + np.maximum(steps - 1, 0) * hop_s
    return np.where(n > 1, t, 0.0), np.where(n > 1, wire, 0.0)


# ------------------------------------------------------------------ attention helpers

def ffloor(x):
    return float(math.floor(x)) if isinstance(x, float) else np.floor(x)


def fmin(a, b):
    return min(a, b) if isinstance(a, float) and isinstance(b, float) else np.minimum(a, b)


def fsqrt(x):
    return math.sqrt(x) if isinstance(x, float) else np.sqrt(x)


def fwhere(cond, a, b):
    """``a if cond else b`` for one op, elementwise for arrays."""
    if isinstance(cond, (bool, np.bool_)) and isinstance(a, float) and isinstance(b, float):
        return a if cond else b
    return np.where(cond, a, b)


def fclip(x, lo, hi):
    if all(isinstance(v, float) for v in (x, lo, hi)):
        return min(max(x, lo), hi)
    return np.clip(x, lo, hi)


def waves(units, slots: float):
    """Rounds of ``slots`` units at a time (a partial round costs a whole one)."""
    return fceil(units / slots)


def smooth_waves(units, slots: float):
    """Rounds of ``slots`` units, at least one (none without units), without rounding up
    the last: a step's time then moves continuously with its work (the serving
    simulator buckets the keys attended)."""
    u = as_float(units)
    return fwhere(u > 0.0, fmax(u / slots, 1.0), 0.0)


def xqa_splits(groups, context, num_cores: int, min_tokens: float, target_waves: float):
    """Split-KV ("multi-block", flash-decoding) partitions per (sequence, KV head) group,
    after TensorRT-LLM's XQA decode kernels (``computeMultiBlockCount`` in
    cpp/tensorrt_llm/kernels/decoderMaskedMultiheadAttention/decoderXQAImplCommon.h):
    one partition per ``min_tokens`` of context, at most sqrt(8 x that) (the reduction
    of many partials would dominate), cut back when the units exceed ``target_waves``
    waves over the cores; few groups on many cores get many partitions. The kernel
    rounds down to whole partitions; this is its continuous relaxation, so that the
    keys per partition (and the time) never fall as the context or the batch grows."""
    g, c = as_float(groups), as_float(context)
    n = fmax(c / min_tokens, 1.0)
    n = fmin(n, fsqrt(n * 8.0))
    excess = g * n / (num_cores * target_waves)
    return fmax(n / fmax(excess, 1.0), 1.0)


def fill_splits(units, context, num_cores: int, min_tokens: float):
    """Split-KV partitions of a one-query-head-per-unit kernel (masked MHA): enough to
    give every core a unit, at most one per ``min_tokens`` of context (continuous, as
    :func:`xqa_splits`)."""
    u, c = as_float(units), as_float(context)
    return fclip(num_cores / u, 1.0, fmax(c / min_tokens, 1.0))


def stream_time(total_bytes, core_bytes, bw_bytes_per_s, core_bytes_per_s):
    """Time to stream ``total_bytes`` from HBM when the busiest core must move
    ``core_bytes`` itself: the chip is bound by its bandwidth, each core by Little's law
    (bytes it keeps in flight / memory latency = ``core_bytes_per_s``), so few busy
    cores cannot reach the HBM bandwidth. ``core_bytes_per_s`` None: no core limit."""
    chip = as_float(total_bytes) / bw_bytes_per_s
    if core_bytes_per_s is None:
        return chip
    return fmax(chip, as_float(core_bytes) / core_bytes_per_s)


def window_tiles(q, context, window, tile=ATTN_Q_TILE):
    """Query tiles of a chunk (``q`` new tokens after ``context`` cached) that lie past a
    sliding window (window <= 0: none): the tiles :func:`tiled_pairs` counts at w + tile keys."""
    q, c, w = (np.asarray(x, dtype=float) for x in (q, context, window))
    nt = np.ceil(q / tile)
    n1 = np.clip(np.floor((w - c) / tile) + 1.0, 0.0, nt)
    return np.where(w > 0, nt - n1, 0.0)


def window_tiles_scalar(q: int, context: int, window: int, tile: int = ATTN_Q_TILE) -> float:
    """:func:`window_tiles` for one chunk in plain Python (tested equal)."""
    if window <= 0:
        return 0.0
    nt = -(-q // tile)
    n1 = min(max(math.floor((window - context) / tile) + 1.0, 0.0), float(nt))
    return float(nt - n1)


def q_tiles_scalar(q: int, tile: int = ATTN_Q_TILE) -> float:
    """Query tiles of one prefill chunk: the work units per head of a flash kernel."""
    return float(-(-q // tile))
