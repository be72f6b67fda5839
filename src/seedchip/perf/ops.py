"""Op-level oracle: one op on one chip -> time, energy, and the binding resource.

Ops: GEMM (and grouped GEMM for MoE experts), prefill and decode attention, vector
kernels (norms, activations, rotary, residuals, embedding gathers), and collectives.
All times come from :mod:`seedchip.perf.kernels`; efficiencies from the calibration.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from functools import lru_cache

import numpy as np

from ..errors import SpecError, UnknownNameError
from ..formats import NumericFormat, get_format, wider
from ..hardware.spec import ChipSpec
from . import kernels
from .calibration import COLLECTIVES, Calibration

BOUNDS = ("compute", "memory", "communication", "overhead", "power")


@dataclass(frozen=True)
class OpCost:
    """Cost of one op instance (``count`` identical instances per step)."""
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
        return OpCost(self.name, self.op_class, self.time_s, self.flops, self.hbm_bytes, self.comm_bytes,
                      self.energy_j, self.bound, self.compute_s, self.memory_s, self.comm_s, self.overhead_s,
                      count, self.detail)

    def to_dict(self) -> dict:
        return asdict(self)


def _bound(compute_s: float, memory_s: float, comm_s: float, overhead_s: float) -> str:
    parts = {"compute": compute_s, "memory": memory_s, "communication": comm_s, "overhead": overhead_s}
    return max(parts, key=parts.get)


def _finish(chip: ChipSpec, cal: Calibration, name: str, op_class: str, *, compute_s: float, memory_s: float, comm_s: float,
            overhead_s: float, time_s: float, flops: float, matrix_class: str | None, vector_flops: float,
            hbm_bytes: float, sram_bytes: float, comm_bytes: float, detail: str = "") -> OpCost:
    e = chip.energy
    dynamic = (flops * (e.matrix(matrix_class) if matrix_class else 0.0) + vector_flops * e.vector_j_per_flop
               + hbm_bytes * e.hbm_j_per_byte + sram_bytes * e.sram_j_per_byte + comm_bytes * e.link_j_per_byte)
    bound = _bound(compute_s, memory_s, comm_s, overhead_s)
    headroom_w = chip.tdp_w - e.idle_w
    if cal.id != "ideal" and time_s > 0 and dynamic / time_s > headroom_w:
        time_s = dynamic / headroom_w     # the chip throttles to its TDP
        bound = "power"
    energy = dynamic + e.idle_w * time_s
    return OpCost(name=name, op_class=op_class, time_s=float(time_s), flops=float(flops + vector_flops),
                  hbm_bytes=float(hbm_bytes), comm_bytes=float(comm_bytes), energy_j=float(energy),
                  bound=bound, compute_s=float(compute_s), memory_s=float(memory_s), comm_s=float(comm_s),
                  overhead_s=float(overhead_s), detail=detail)


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
    eff_c = cal.gemm_efficiency(used_class)
    eff_m = cal.gemm_memory_efficiency(used_class)
    overhead = cal.gemm_overhead(used_class)
    ideal = cal.id == "ideal"
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
                "hbm_bytes": hbm, "matrix_class": used_class}
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
            "matrix_class": used_class}


@lru_cache(maxsize=200_000)
def gemm(chip: ChipSpec, cal: Calibration, m: int, n: int, k: int, a_fmt: str = "bf16", b_fmt: str = "bf16",
         c_fmt: str = "bf16", groups: int = 1, name: str = "gemm") -> OpCost:
    """C[m, n] = A[m, k] . B[k, n] (``groups`` independent GEMMs of that shape)."""
    for label, v in (("m", m), ("n", n), ("k", k), ("groups", groups)):
        if v <= 0:
            raise SpecError(f"gemm {label} = {v!r} must be a positive integer")
    fa, fb, fc = get_format(a_fmt), get_format(b_fmt), get_format(c_fmt)
    r = gemm_model(chip, cal, m, n, k, fa, fb, fc, groups)
    compute, memory, time = float(r["compute_s"]), float(r["memory_s"]), float(r["time_s"])
    flops = float(r["flops"])
    sram = flops / 128.0 * (fa.bytes_per_element + fb.bytes_per_element)
    return _finish(chip, cal, name, "gemm", compute_s=compute, memory_s=memory, comm_s=0.0,
                   overhead_s=cal.gemm_overhead(r["matrix_class"]), time_s=time, flops=flops, matrix_class=r["matrix_class"],
                   vector_flops=0.0, hbm_bytes=float(r["hbm_bytes"]), sram_bytes=sram, comm_bytes=0.0,
                   detail=f"{groups}x[{m}x{n}x{k}] {wider(fa, fb).name} on {r['matrix_class']}")


# ------------------------------------------------------------------------ attention

def prefill_attention_model(chip: ChipSpec, cal: Calibration, *, pairs, q_tokens, kv_tokens, max_keys, heads,
                            kv_heads, qk_dim, v_dim, kv_elems_per_token, act_bytes, kv_bytes, matrix_class="bf16"):
    """Vectorised flash-attention prefill. ``pairs`` = (query, key) pairs the kernel
    computes, summed over sequences (causal, windowed and tiled:
    :func:`kernels.tiled_pairs`); ``kv_tokens`` = keys read; ``max_keys`` = keys of the
    largest query tile (:func:`kernels.last_tile_keys`)."""
    peak, used = chip.peak_flops(matrix_class)
    a = cal.attention
    pairs, q_tokens, kv_tokens, max_keys = (kernels.as_float(x) for x in (pairs, q_tokens, kv_tokens, max_keys))
    flops = 2.0 * pairs * heads * (qk_dim + v_dim)
    softmax = pairs * heads * a.softmax_flops_per_pair
    hbm = (q_tokens * heads * (qk_dim + v_dim) * act_bytes + kv_tokens * kv_elems_per_token * kv_bytes
           + q_tokens * kv_elems_per_token * kv_bytes)
    unit_pairs = kernels.ATTN_Q_TILE * max_keys * (0.0 if cal.id == "ideal" else 1.0)   # one head, one query tile
    eff_c = a.prefill_compute_efficiency * (cal.gemm_efficiency(used) / cal.gemm_efficiency("bf16"))
    compute, memory, time = kernels.prefill_attention_time(
        flops, hbm, 2.0 * unit_pairs * (qk_dim + v_dim), peak, chip.matrix.num_cores, eff_c,
        chip.hbm_bw_bytes_per_s, cal.gemm_memory_efficiency("bf16"), a.overlap_p, a.prefill_overhead_s, softmax,
        unit_pairs * a.softmax_flops_per_pair, chip.vector_flops_per_s)
    return {"compute_s": compute, "memory_s": memory, "time_s": time, "flops": flops, "hbm_bytes": hbm,
            "matrix_class": used}


def decode_attention_model(chip: ChipSpec, cal: Calibration, *, num_seqs, context_tokens, heads, kv_heads,
                           flops_per_pair_per_head, kv_elems_per_token, act_bytes, kv_bytes, q_elems_per_head,
                           matrix_class="bf16"):
    """Vectorised decode attention: one new token per sequence, ``context_tokens`` keys
    summed over sequences."""
    peak, used = chip.peak_flops(matrix_class)
    a = cal.attention
    ctx = kernels.as_float(context_tokens)
    seqs = kernels.as_float(num_seqs)
    flops = ctx * heads * flops_per_pair_per_head
    hbm = ctx * kv_elems_per_token * kv_bytes + 2.0 * seqs * heads * q_elems_per_head * act_bytes
    eff_c = cal.gemm_efficiency(used)
    compute, memory, time = kernels.decode_attention_time(
        flops, hbm, peak, eff_c, chip.hbm_bw_bytes_per_s, a.decode_memory_efficiency, a.overlap_p,
        a.decode_overhead_s, seqs * heads, chip.matrix.num_cores, a.decode_block_s)
    return {"compute_s": compute, "memory_s": memory, "time_s": time, "flops": flops, "hbm_bytes": hbm,
            "matrix_class": used}


def _attention_cost(chip: ChipSpec, cal: Calibration, r: dict, name: str, overhead_s: float, detail: str) -> OpCost:
    flops = float(r["flops"])
    return _finish(chip, cal, name, "attention", compute_s=float(r["compute_s"]), memory_s=float(r["memory_s"]),
                   comm_s=0.0, overhead_s=overhead_s, time_s=float(r["time_s"]), flops=flops,
                   matrix_class=r["matrix_class"], vector_flops=0.0, hbm_bytes=float(r["hbm_bytes"]),
                   sram_bytes=flops / 64.0, comm_bytes=0.0, detail=detail)


@lru_cache(maxsize=200_000)
def prefill_attention(chip: ChipSpec, cal: Calibration, pairs: float, q_tokens: float, kv_tokens: float,
                      max_keys: float, heads: int, kv_heads: int, qk_dim: int, v_dim: int,
                      kv_elems_per_token: int, act_fmt: str, kv_fmt: str, name: str = "attention") -> OpCost:
    """Flash prefill of chunks summing ``pairs`` tiled (query, key) pairs, ``q_tokens``
    new tokens and ``kv_tokens`` keys read; ``max_keys``: keys of the largest query tile."""
    fa, fk = get_format(act_fmt), get_format(kv_fmt)
    r = prefill_attention_model(chip, cal, pairs=pairs, q_tokens=q_tokens, kv_tokens=kv_tokens, max_keys=max_keys,
                                heads=heads, kv_heads=kv_heads, qk_dim=qk_dim, v_dim=v_dim,
                                kv_elems_per_token=kv_elems_per_token, act_bytes=fa.bytes_per_element,
                                kv_bytes=fk.bytes_per_element, matrix_class=fa.matrix_class)
    return _attention_cost(chip, cal, r, name, cal.attention.prefill_overhead_s,
                           f"prefill {int(q_tokens)} tok, {heads}/{kv_heads} heads x {qk_dim}")


@lru_cache(maxsize=200_000)
def decode_attention(chip: ChipSpec, cal: Calibration, num_seqs: int, context_tokens: float, heads: int,
                     kv_heads: int, flops_per_pair_per_head: float, kv_elems_per_token: int,
                     q_elems_per_head: int, act_fmt: str, kv_fmt: str, name: str = "attention") -> OpCost:
    fa, fk = get_format(act_fmt), get_format(kv_fmt)
    r = decode_attention_model(chip, cal, num_seqs=num_seqs, context_tokens=context_tokens, heads=heads,
                               kv_heads=kv_heads, flops_per_pair_per_head=flops_per_pair_per_head,
                               kv_elems_per_token=kv_elems_per_token, act_bytes=fa.bytes_per_element,
                               kv_bytes=fk.bytes_per_element, q_elems_per_head=q_elems_per_head)
    return _attention_cost(chip, cal, r, name, cal.attention.decode_overhead_s,
                           f"decode {num_seqs} seq, {int(context_tokens)} ctx tok, {heads}/{kv_heads} heads")


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


@lru_cache(maxsize=200_000)
def collective(chip: ChipSpec, cal: Calibration, kind: str, size_bytes: float, num_chips: int,
               name: str | None = None) -> OpCost:
    """A collective over ``num_chips`` chips; ``size_bytes`` is the full buffer."""
    if kind not in COLLECTIVES:
        raise UnknownNameError("collective", kind, COLLECTIVES)
    if size_bytes < 0 or num_chips <= 0:
        raise SpecError(f"collective needs bytes >= 0 and num_chips >= 1, got {size_bytes!r}, {num_chips!r}")
    bw, hop = link_for(chip, num_chips)
    c = cal.collective
    xs, ys = c.curve(kind)
    t, wire = kernels.collective_time(kind, size_bytes, num_chips, bw, c.latency_s[kind] + hop, c.latency_per_hop_s,
                                      xs, ys)
    t, wire = float(t), float(wire)
    fixed = (c.latency_s[kind] + hop) if num_chips > 1 else 0.0
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
