"""Op-level oracle: one op on one chip -> time, energy, and the binding resource.

Ops: GEMM (and grouped GEMM for MoE experts), activation quantization for narrow-format
GEMMs, prefill and decode attention (:mod:`seedchip.perf.attention`), vector kernels
(norms, activations, rotary, residuals, embedding gathers), and collectives. All times
come from :mod:`seedchip.perf.kernels`; efficiencies from the calibration.
"""

from __future__ import annotations

from functools import lru_cache
from typing import NamedTuple

import numpy as np

from ..errors import SpecError, UnknownNameError
from ..formats import NumericFormat, get_format, wider
from ..hardware.spec import ChipSpec
from . import attention, kernels
from .attention import decode_attention_terms, prefill_attention_model
from .calibration import COLLECTIVES, Calibration

BOUNDS = ("compute", "memory", "communication", "overhead", "power")


class OpCost(NamedTuple):
    """Cost of one op instance (``count`` identical instances per step). A named tuple:
    immutable (ops are cached and shared) and cheap to make (the simulator makes ~10^5)."""
    name: str
    op_class: str                 # gemm | attention | vector | collective
    time_s: float
    flops: float
    hbm_bytes: float
    comm_bytes: float
    energy_j: float
    bound: str
    compute_s: float = 0.0
    memory_s: float = 0.0
    comm_s: float = 0.0
    overhead_s: float = 0.0
    count: int = 1
    detail: str = ""

    def scaled(self, count: int) -> "OpCost":
        return self._replace(count=count)

    def to_dict(self) -> dict:
        return self._asdict()


def _bound(compute_s: float, memory_s: float, comm_s: float, overhead_s: float) -> str:
    """The largest term's name, the first of equals in the order compute, memory,
    communication, overhead."""
    bound, most = "compute", compute_s
    if memory_s > most:
        bound, most = "memory", memory_s
    if comm_s > most:
        bound, most = "communication", comm_s
    if overhead_s > most:
        bound = "overhead"
    return bound


COLLECTIVE_CORES = 32    # ESTIMATE: NCCL drives a collective from one block per channel, up to 32 channels


def busy_share(chip: ChipSpec, op_class: str) -> float:
    """The share of the chip's cores an op keeps busy (what its ``active_w`` scales with):
    all of them for compute and memory kernels, a few for a collective, which mostly
    waits on the links."""
    if op_class == "collective":
        return min(1.0, COLLECTIVE_CORES / chip.matrix.num_cores)
    return 1.0


def _power_terms(chip: ChipSpec, op_class: str, flops, matrix_class: str | None, vector_flops, hbm_bytes, sram_bytes,
                 comm_bytes) -> tuple:
    """(energy of the op's work in J, active power in W, power headroom in W below the TDP):
    what :func:`_finish` turns into an op's energy and throttled time."""
    e = chip.energy
    work = (flops * (e.matrix(matrix_class) if matrix_class else 0.0) + vector_flops * e.vector_j_per_flop
            + hbm_bytes * e.hbm_j_per_byte + sram_bytes * e.sram_j_per_byte + comm_bytes * e.link_j_per_byte)
    active_w = e.active_w * busy_share(chip, op_class)
    return work, active_w, chip.tdp_w - e.idle_w - active_w


def _finish(chip: ChipSpec, cal: Calibration, name: str, op_class: str, *, compute_s: float, memory_s: float, comm_s: float,
            overhead_s: float, time_s: float, flops: float, matrix_class: str | None, vector_flops: float,
            hbm_bytes: float, sram_bytes: float, comm_bytes: float, detail: str = "") -> OpCost:
    return _finished(chip, cal, name, op_class, compute_s, memory_s, comm_s, overhead_s, time_s, flops, matrix_class,
                     vector_flops, hbm_bytes, sram_bytes, comm_bytes, detail)


def _finished(chip: ChipSpec, cal: Calibration, name: str, op_class: str, compute_s: float, memory_s: float,
              comm_s: float, overhead_s: float, time_s: float, flops: float, matrix_class: str | None,
              vector_flops: float, hbm_bytes: float, sram_bytes: float, comm_bytes: float, detail: str) -> OpCost:
    """:func:`_finish` from positional arguments (the hot paths')."""
    work, active_w, headroom_w = _power_terms(chip, op_class, flops, matrix_class, vector_flops, hbm_bytes,
                                              sram_bytes, comm_bytes)
    bound = _bound(compute_s, memory_s, comm_s, overhead_s)
    if not cal.roofline and time_s > 0 and work / time_s > headroom_w:
        time_s = work / headroom_w        # the chip throttles to its TDP
        bound = "power"
    energy = work + (chip.energy.idle_w + active_w) * time_s
    return _new_op(OpCost, (name, op_class, float(time_s), float(flops + vector_flops), float(hbm_bytes),
                            float(comm_bytes), float(energy), bound, float(compute_s), float(memory_s), float(comm_s),
                            float(overhead_s), 1, detail))


_new_op = tuple.__new__      # an OpCost from its fields in order, without the keyword call (the hot paths' ~10^5)


# ----------------------------------------------------------------------------- GEMM

def concurrent_block(chip: ChipSpec, min_tile: int) -> float:
    """Edge of the output block in flight on all cores at once (square tiles of
    128 or the array size, whichever is larger)."""
    tile = max(chip.matrix.array_rows, chip.matrix.array_cols, min_tile, 128)
    return float(np.sqrt(chip.matrix.num_cores) * tile)


def gemm_model(chip: ChipSpec, cal: Calibration, m, n, k, a_fmt: NumericFormat, b_fmt: NumericFormat,
               c_fmt: NumericFormat, groups=1):
    """Vectorised GEMM model (also used by the calibration fit). Returns a dict of
    arrays: compute_s, memory_s, time_s, flops, hbm_bytes, and the matrix class used."""
    compute_fmt = wider(a_fmt, b_fmt)
    peak, used_class = chip.peak_flops(compute_fmt.matrix_class)
    g = cal.gemm
    key = gemm_key(compute_fmt, used_class)
    eff_c = cal.gemm_efficiency(key)
    eff_m = cal.gemm_memory_efficiency(key)
    overhead = cal.gemm_overhead(key)
    ideal = cal.roofline
    tiles = kernels.tile_candidates(chip.matrix.array_rows, chip.matrix.array_cols, g.min_tile,
                                    chip.sram.per_core_bytes, max(a_fmt.bytes_per_element, b_fmt.bytes_per_element))
    scalar = all(isinstance(x, (int, float)) for x in (m, n, k, groups))
    ab, bb, cb = a_fmt.bytes_per_element, b_fmt.bytes_per_element, c_fmt.bytes_per_element
    if scalar:   # plain-Python twins of the vectorised kernels (tested equal)
        m, n, k, groups = float(m), float(n), float(k), float(groups)
        compute = kernels.gemm_compute_time_scalar(m, n, k, groups, peak * eff_c, chip.matrix.num_cores, tiles,
                                                   quantize=not ideal)
        hbm = kernels.gemm_hbm_bytes_scalar(m, n, k, groups, ab, bb, cb, chip.sram.capacity_bytes,
                                            concurrent_block(chip, g.min_tile))
        if ideal:  # pure roofline: every operand crosses HBM once
            hbm = groups * (m * k * ab + k * n * bb + m * n * cb)
        memory = hbm / (chip.hbm_bw_bytes_per_s * eff_m)
        time = kernels.pnorm_scalar(compute, memory, g.overlap_p) + overhead
        return {"compute_s": compute, "memory_s": memory, "time_s": time, "flops": 2.0 * m * n * k * groups,
                "hbm_bytes": hbm, "matrix_class": used_class, "overhead_s": overhead}
    compute = kernels.gemm_compute_time(m, n, k, groups, peak * eff_c, chip.matrix.num_cores, tiles,
                                        quantize=not ideal)
    hbm = kernels.gemm_hbm_bytes(m, n, k, groups, ab, bb, cb, chip.sram.capacity_bytes,
                                 concurrent_block(chip, g.min_tile))
    if ideal:  # pure roofline: every operand crosses HBM once
        m_, n_, k_ = (np.asarray(x, dtype=float) for x in (m, n, k))
        hbm = groups * (m_ * k_ * ab + k_ * n_ * bb + m_ * n_ * cb)
    memory = hbm / (chip.hbm_bw_bytes_per_s * eff_m)
    time = kernels.pnorm(compute, memory, g.overlap_p) + overhead
    flops = 2.0 * np.asarray(m, float) * np.asarray(n, float) * np.asarray(k, float) * groups
    return {"compute_s": compute, "memory_s": memory, "time_s": time, "flops": flops, "hbm_bytes": hbm,
            "matrix_class": used_class, "overhead_s": overhead}


def gemm_key(compute_fmt: NumericFormat, used_class: str) -> str:
    """The calibration key of a GEMM: a block-scaled format (fp8-block, fp4, mxfp4) on its
    own matrix path is its own kernel (per-block scales promoted inside the k loop) and
    may carry its own figures; anything else is keyed by the matrix class it runs on."""
    if compute_fmt.block_size and compute_fmt.matrix_class == used_class:
        return compute_fmt.name
    return used_class


@lru_cache(maxsize=1024)
def _gemm_constants(chip: ChipSpec, cal: Calibration, a_fmt: str, b_fmt: str, c_fmt: str) -> tuple:
    """What :func:`gemm_model` computes from the chip, the calibration and the formats alone
    (not the shape), in its own expressions, for :func:`gemm`'s scalar path."""
    fa, fb, fc = get_format(a_fmt), get_format(b_fmt), get_format(c_fmt)
    compute_fmt = wider(fa, fb)
    peak, used_class = chip.peak_flops(compute_fmt.matrix_class)
    g = cal.gemm
    key = gemm_key(compute_fmt, used_class)
    tiles = kernels.tile_candidates(chip.matrix.array_rows, chip.matrix.array_cols, g.min_tile,
                                    chip.sram.per_core_bytes, max(fa.bytes_per_element, fb.bytes_per_element))
    return (peak * cal.gemm_efficiency(key), chip.matrix.num_cores, tiles, cal.roofline, fa.bytes_per_element,
            fb.bytes_per_element, fc.bytes_per_element, chip.sram.capacity_bytes, concurrent_block(chip, g.min_tile),
            chip.hbm_bw_bytes_per_s * cal.gemm_memory_efficiency(key), g.overlap_p, cal.gemm_overhead(key),
            used_class, compute_fmt.name)


@lru_cache(maxsize=200_000)
def gemm(chip: ChipSpec, cal: Calibration, m: int, n: int, k: int, a_fmt: str = "bf16", b_fmt: str = "bf16",
         c_fmt: str = "bf16", groups: int = 1, name: str = "gemm") -> OpCost:
    """C[m, n] = A[m, k] . B[k, n] (``groups`` independent GEMMs of that shape): :func:`gemm_model`'s
    scalar path (tested equal), with what the shape does not change computed once."""
    if m <= 0 or n <= 0 or k <= 0 or groups <= 0:
        label, v = next((lab, v) for lab, v in (("m", m), ("n", n), ("k", k), ("groups", groups)) if v <= 0)
        raise SpecError(f"gemm {label} = {v!r} must be a positive integer")
    (rate, cores, tiles, ideal, ab, bb, cb, sram_bytes, block, bw, overlap_p, overhead, used,
     wide) = _gemm_constants(chip, cal, a_fmt, b_fmt, c_fmt)
    mf, nf, kf, gf = float(m), float(n), float(k), float(groups)
    compute = kernels.gemm_compute_time_scalar(mf, nf, kf, gf, rate, cores, tiles, quantize=not ideal)
    if ideal:  # pure roofline: every operand crosses HBM once
        hbm = gf * (mf * kf * ab + kf * nf * bb + mf * nf * cb)
    else:
        hbm = kernels.gemm_hbm_bytes_scalar(mf, nf, kf, gf, ab, bb, cb, sram_bytes, block)
    memory = hbm / bw
    flops = 2.0 * mf * nf * kf * gf
    return _finished(chip, cal, name, "gemm", float(compute), float(memory), 0.0, float(overhead),
                     float(kernels.pnorm_scalar(compute, memory, overlap_p) + overhead), flops, used, 0.0, float(hbm),
                     flops / 128.0 * (ab + bb), 0.0, f"{groups}x[{m}x{n}x{k}] {wide} on {used}")


# ------------------------------------------------------------------------ attention

def _attention_cost(chip: ChipSpec, cal: Calibration, r: dict, name: str, overhead_s: float, detail: str) -> OpCost:
    flops = float(r["flops"])
    return _finish(chip, cal, name, "attention", compute_s=float(r["compute_s"]), memory_s=float(r["memory_s"]),
                   comm_s=0.0, overhead_s=overhead_s, time_s=float(r["time_s"]), flops=flops,
                   matrix_class=r["matrix_class"], vector_flops=float(r.get("vector_flops", 0.0)),
                   hbm_bytes=float(r["hbm_bytes"]), sram_bytes=flops / 64.0, comm_bytes=0.0, detail=detail)


def prefill_matrix_class(act: NumericFormat, kv: NumericFormat) -> str:
    """The matrix path of a flash prefill: the activations' format, or fp8 when the KV
    cache is 8-bit or narrower (an fp8 KV cache runs the context kernel in fp8, as
    TensorRT-LLM's FP8 context FMHA and FlashAttention-3's fp8 path do, Q quantized too;
    a 4-bit cache is dequantized to fp8 for it). A chip without fp8 falls back to bf16."""
    return "fp8" if kv.bits <= 8 < act.bits else act.matrix_class


@lru_cache(maxsize=200_000)
def prefill_attention(chip: ChipSpec, cal: Calibration, pairs: float, q_tokens: float, kv_tokens: float,
                      max_keys: float, heads: int, kv_heads: int, qk_dim: int, v_dim: int,
                      kv_elems_per_token: int, act_fmt: str, kv_fmt: str, name: str = "attention", *,
                      num_q_tiles: float | None = None, window_tiles: float = 0.0) -> OpCost:
    """Flash prefill of chunks summing ``pairs`` tiled (query, key) pairs, ``q_tokens``
    new tokens and ``kv_tokens`` keys read; ``max_keys``: keys of the largest query tile;
    ``num_q_tiles``: query tiles summed over chunks (:func:`kernels.q_tiles_scalar`;
    default one per 128 new tokens, exact for one chunk); ``window_tiles``: query tiles
    past a sliding window (:func:`kernels.window_tiles_scalar`), which cost the windowed
    kernel more (default 0)."""
    fa, fk = get_format(act_fmt), get_format(kv_fmt)
    r = prefill_attention_model(chip, cal, pairs=pairs, q_tokens=q_tokens, kv_tokens=kv_tokens, max_keys=max_keys,
                                heads=heads, kv_heads=kv_heads, qk_dim=qk_dim, v_dim=v_dim,
                                kv_elems_per_token=kv_elems_per_token, act_bytes=fa.bytes_per_element,
                                kv_bytes=fk.bytes_per_element, matrix_class=prefill_matrix_class(fa, fk),
                                num_q_tiles=num_q_tiles, window_tiles=window_tiles)
    return _attention_cost(chip, cal, r, name, cal.attention.prefill_overhead_s,
                           f"prefill {int(q_tokens)} tok, {heads}/{kv_heads} heads x {qk_dim}")


@lru_cache(maxsize=200_000)
def decode_attention(chip: ChipSpec, cal: Calibration, num_seqs: int, context_tokens: float, heads: int,
                     kv_heads: int, flops_per_pair_per_head: float, kv_elems_per_token: int,
                     q_elems_per_head: int, act_fmt: str, kv_fmt: str, name: str = "attention", *,
                     max_context_tokens: float | None = None, window: int = 0) -> OpCost:
    """Split-KV decode of ``num_seqs`` one-token sequences attending ``context_tokens``
    keys in all (window-capped). ``max_context_tokens``: the longest sequence's keys
    before the window cap, ``window``: the layer's sliding window (0: none); the kernel
    sizes its partitions by the longest sequence and the busiest core streams its share
    (without them the op bounds it from the totals, which is exact for one sequence)."""
    fa, fk = get_format(act_fmt), get_format(kv_fmt)
    compute, memory, time, flops, hbm, overhead, used = decode_attention_terms(
        chip, cal, num_seqs, context_tokens, heads, kv_heads, flops_per_pair_per_head, kv_elems_per_token,
        fa.bytes_per_element, fk.bytes_per_element, q_elems_per_head, "bf16", max_context_tokens, window)
    flops = float(flops)      # as _attention_cost reads a model's figures, without its dictionary
    return _finished(chip, cal, name, "attention", float(compute), float(memory), 0.0, float(overhead), float(time),
                     flops, used, 0.0, float(hbm), flops / 64.0, 0.0,
                     f"decode {num_seqs} seq, {int(context_tokens)} ctx tok, {heads}/{kv_heads} heads")


def decode_attention_run(chip: ChipSpec, cal: Calibration, num_seqs: int, context_tokens: np.ndarray, heads: int,
                         kv_heads: int, flops_per_pair_per_head: float, kv_elems_per_token: int,
                         q_elems_per_head: int, act_fmt: str, kv_fmt: str, name: str = "attention", *,
                         max_context_tokens: np.ndarray, window: int = 0) -> OpCost:
    """:func:`decode_attention` at many contexts at once (a static batch's decode steps):
    one OpCost whose time, energy and work are arrays, each element equal to the one-op
    call's to the last bit (tested); ``bound`` is not resolved per element ("run")."""
    fa, fk = get_format(act_fmt), get_format(kv_fmt)
    r = attention.decode_attention_model(
        chip, cal, num_seqs=num_seqs, context_tokens=np.asarray(context_tokens, dtype=float), heads=heads,
        kv_heads=kv_heads, flops_per_pair_per_head=flops_per_pair_per_head, kv_elems_per_token=kv_elems_per_token,
        act_bytes=fa.bytes_per_element, kv_bytes=fk.bytes_per_element, q_elems_per_head=q_elems_per_head,
        max_context_tokens=np.asarray(max_context_tokens, dtype=float), window=window, exact=True)
    shape = np.shape(r["time_s"])
    time, flops, hbm = (np.broadcast_to(r[k], shape).astype(float) for k in ("time_s", "flops", "hbm_bytes"))
    work, active_w, headroom_w = _power_terms(chip, "attention", flops, r["matrix_class"], 0.0, hbm, flops / 64.0, 0.0)
    if not cal.roofline:
        with np.errstate(divide="ignore", invalid="ignore"):
            throttled = (time > 0) & (work / time > headroom_w)
        time = np.where(throttled, work / headroom_w, time)     # the chip throttles to its TDP
    energy = work + (chip.energy.idle_w + active_w) * time
    return OpCost(name=name, op_class="attention", time_s=time, flops=flops + 0.0, hbm_bytes=hbm, comm_bytes=0.0,
                  energy_j=energy, bound="run", compute_s=r["compute_s"], memory_s=r["memory_s"],
                  overhead_s=float(r["overhead_s"]), detail=f"decode {num_seqs} seq at {len(time)} contexts")


# ---------------------------------------------------------------- activation quantization

def quant_passes(fmt: NumericFormat, dynamic: bool = True,
                 in_bytes: float = 2.0) -> tuple[tuple[str, float, float], ...]:
    """The kernels that quantize activations of ``in_bytes`` per element to ``fmt``, as
    (name, HBM bytes per element, vector FLOP per element); none for a 16-bit or wider
    format. Block-scaled formats (fp8-block, fp4, mxfp4): one per-token-group pass that
    finds each group's scale and writes values and scales. Per-tensor with a dynamic
    scale (TensorRT-LLM's ``quantize_e4m3_per_tensor``, vLLM's dynamic fp8): zero the scale
    (a memset, no traffic to speak of), an amax pass that reads the input, a quantize pass
    that reads it again and writes ``fmt``; with a static scale only the quantize pass."""
    if fmt.bits >= 16:
        return ()
    out = fmt.bytes_per_element
    if fmt.block_size:
        return (("group_quantize", in_bytes + out, 3.0),)
    quantize = ("quantize", in_bytes + out, 2.0)
    return (("zero_scale", 0.0, 0.0), ("amax", in_bytes, 1.0), quantize) if dynamic else (quantize,)


def act_quant_model(chip: ChipSpec, cal: Calibration, elems, fmt: NumericFormat, dynamic: bool = True,
                    in_fmt: NumericFormat | None = None) -> dict:
    """Vectorised :func:`act_quant` (also used by the calibration fit): each pass is a
    vector kernel, max(FLOP / vector rate, bytes / (HBM bandwidth x efficiency)) plus the
    vector kernel overhead."""
    v = cal.vector
    in_bytes = (in_fmt or get_format("bf16")).bytes_per_element
    e = kernels.as_float(elems)
    time = compute = memory = hbm = flops = 0.0 * e
    passes = quant_passes(fmt, dynamic, in_bytes)
    for _, bytes_per, flops_per in passes:
        c = e * flops_per / chip.vector_flops_per_s
        m = e * bytes_per / (chip.hbm_bw_bytes_per_s * v.memory_efficiency)
        time = time + kernels.fmax(c, m) + v.overhead_s
        compute, memory, hbm, flops = compute + c, memory + m, hbm + e * bytes_per, flops + e * flops_per
    return {"time_s": time, "compute_s": compute, "memory_s": memory, "hbm_bytes": hbm, "flops": flops,
            "overhead_s": len(passes) * v.overhead_s, "kernels": len(passes)}


@lru_cache(maxsize=200_000)
def act_quant(chip: ChipSpec, cal: Calibration, elems: float, fmt: str = "fp8", dynamic: bool = True,
              name: str = "act_quant", in_fmt: str = "bf16") -> OpCost:
    """Quantize ``elems`` activations (``in_fmt``, bf16) to ``fmt`` before a narrow-format
    GEMM, in kernels of their own (:func:`quant_passes`): what an engine pays where it
    does not fuse the quantization into the norm or activation kernel before the GEMM.
    A 16-bit or wider ``fmt`` costs nothing (time 0, no kernel)."""
    if elems < 0:
        raise SpecError(f"act_quant elems = {elems!r} must be >= 0")
    f = get_format(fmt)
    r = act_quant_model(chip, cal, float(elems), f, dynamic, get_format(in_fmt))
    kind = "block-scaled" if f.block_size else ("dynamic per-tensor" if dynamic else "static per-tensor")
    return _finish(chip, cal, name, "vector", compute_s=float(r["compute_s"]), memory_s=float(r["memory_s"]),
                   comm_s=0.0, overhead_s=float(r["overhead_s"]), time_s=float(r["time_s"]), flops=0.0,
                   matrix_class=None, vector_flops=float(r["flops"]), hbm_bytes=float(r["hbm_bytes"]),
                   sram_bytes=0.0, comm_bytes=0.0,
                   detail=f"{elems:.0f} x {in_fmt} -> {f.name} ({kind}, {r['kernels']} kernels)")


# --------------------------------------------------------------------------- vector

@lru_cache(maxsize=200_000)
def vector(chip: ChipSpec, cal: Calibration, flops: float, hbm_bytes: float, name: str = "vector") -> OpCost:
    """A memory-streaming kernel (norm, activation, rotary, residual, gather)."""
    v = cal.vector
    compute = flops / chip.vector_flops_per_s
    memory = hbm_bytes / (chip.hbm_bw_bytes_per_s * v.memory_efficiency)
    time = max(compute, memory) + v.overhead_s
    return _finish(chip, cal, name, "vector", compute_s=compute, memory_s=memory, comm_s=0.0, overhead_s=v.overhead_s,
                   time_s=time, flops=0.0, matrix_class=None, vector_flops=flops, hbm_bytes=hbm_bytes,
                   sram_bytes=0.0, comm_bytes=0.0)


# ----------------------------------------------------------------------- collectives

def link_for(chip: ChipSpec, num_chips: int) -> tuple[float, float]:
    """(bandwidth per direction per chip, one-hop latency) for a group of chips: the
    scale-up links inside one domain, the scale-out NICs beyond it."""
    if num_chips <= chip.node.scale_up_size:
        return chip.links.bw_per_direction_bytes_per_s, chip.links.latency_s
    return (min(chip.links.bw_per_direction_bytes_per_s, chip.node.scale_out_bw_per_direction_bytes_per_s),
            chip.node.scale_out_latency_s)


@lru_cache(maxsize=65_536)
def _collective_time(cal: Calibration, kind: str, size_bytes: float, num_chips: int, bw: float,
                     hop: float) -> tuple[float, float]:
    """(time, wire bytes) of a collective on links of ``bw`` and one-hop latency ``hop``:
    what its cost depends on of the chip (a sweep's design points share their links)."""
    c = cal.collective
    xs, ys = c.curve(kind)
    t, wire = kernels.collective_time(kind, size_bytes, num_chips, bw, c.latency_s[kind] + hop, c.latency_per_hop_s,
                                      xs, ys)
    return float(t), float(wire)


@lru_cache(maxsize=200_000)
def collective(chip: ChipSpec, cal: Calibration, kind: str, size_bytes: float, num_chips: int,
               name: str | None = None) -> OpCost:
    """A collective over ``num_chips`` chips; ``size_bytes`` is the full buffer."""
    if kind not in COLLECTIVES:
        raise UnknownNameError("collective", kind, COLLECTIVES)
    if size_bytes < 0 or num_chips <= 0:
        raise SpecError(f"collective needs bytes >= 0 and num_chips >= 1, got {size_bytes!r}, {num_chips!r}")
    bw, hop = link_for(chip, num_chips)
    t, wire = _collective_time(cal, kind, size_bytes, num_chips, bw, hop)
    fixed = (cal.collective.latency_s[kind] + hop) if num_chips > 1 else 0.0
    return _finish(chip, cal, name or kind, "collective", compute_s=0.0, memory_s=0.0, comm_s=t - fixed,
                   overhead_s=fixed, time_s=t, flops=0.0, matrix_class=None, vector_flops=0.0,
                   hbm_bytes=2.0 * wire, sram_bytes=0.0, comm_bytes=wire,
                   detail=f"{kind} {size_bytes:.0f} B over {num_chips}")


def kv_transfer(src: ChipSpec, src_chips: int, dst: ChipSpec, dst_chips: int, cal: Calibration,
                size_bytes: float) -> OpCost:
    """Move a request's KV cache from one pool to another over the scale-out network:
    the narrower side's aggregate NIC bandwidth, the slower side's latency, and the
    calibrated point-to-point efficiency for the message size."""
    bw = min(src.node.scale_out_bw_per_direction_bytes_per_s * src_chips,
             dst.node.scale_out_bw_per_direction_bytes_per_s * dst_chips)
    lat = max(src.node.scale_out_latency_s, dst.node.scale_out_latency_s)
    c = cal.collective
    xs, ys = c.curve("p2p")
    t, wire = kernels.collective_time("p2p", size_bytes, 2, bw, c.latency_s["p2p"] + lat, 0.0, xs, ys)
    t, wire = float(t), float(wire)
    return _finish(src, cal, "kv_transfer", "collective", compute_s=0.0, memory_s=0.0, comm_s=t - lat,
                   overhead_s=lat, time_s=t, flops=0.0, matrix_class=None, vector_flops=0.0,
                   hbm_bytes=2.0 * wire, sram_bytes=0.0, comm_bytes=wire, detail=f"kv transfer {size_bytes:.0f} B")
