"""Fit a calibration from measured kernel tables (microbenchmarks only).

Input: a folder in the aiconfigurator "silicon" layout (``gemm.csv.gz``,
``context_attention.csv.gz``, ``generation_attention.csv.gz``, ``nccl.csv.gz``) measured
on one chip, plus that chip's spec. Each op class is fitted by least squares on
log(predicted / measured) with the oracle's own vectorised equations
(:mod:`seedchip.perf.ops`), on 80% of the shapes; the held-out 20% (split by a hash of
the shape, so a shape is never on both sides) gives the reported error.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.optimize import least_squares

from ..errors import SpecError
from ..formats import get_format
from ..hardware.spec import ChipSpec
from ..perf import kernels, ops
from ..perf.calibration import (COLLECTIVES, AttentionCal, Calibration, CollectiveCal, GemmCal, VectorCal)
from .tables import columns, holdout_mask, read_csv

GEMM_DTYPES = {"bfloat16": "bf16", "fp8": "fp8", "fp8_block": "fp8-block"}
NCCL_OPS = {"all_reduce": "allreduce", "all_gather": "allgather", "reduce_scatter": "reducescatter",
            "alltoall": "alltoall"}
NCCL_BYTES = {"half": 2, "int8": 1, "float": 4, "bfloat16": 2}


def error_stats(pred: np.ndarray, meas: np.ndarray) -> dict[str, float]:
    """Median, p90 and worst absolute % error, and the count."""
    err = np.abs(pred / meas - 1.0) * 100.0
    return {"median_abs_pct": round(float(np.median(err)), 2), "p90_abs_pct": round(float(np.percentile(err, 90)), 2),
            "max_abs_pct": round(float(np.max(err)), 2), "n": int(len(err))}


@dataclass
class GemmData:
    m: np.ndarray
    n: np.ndarray
    k: np.ndarray
    fmt: np.ndarray
    t: np.ndarray


def load_gemm(folder: Path) -> GemmData:
    rows = read_csv(folder / "gemm.csv.gz")
    c = columns(rows, {"gemm_dtype": str, "m": float, "n": float, "k": float, "latency_s": float})
    return GemmData(c["m"], c["n"], c["k"], np.array([GEMM_DTYPES.get(d, d) for d in c["gemm_dtype"]]),
                    c["latency_s"])


def _with_gemm(base: Calibration, x: np.ndarray) -> Calibration:
    g = GemmCal(compute_efficiency={"bf16": float(x[0]), "fp8": float(x[1])},
                memory_efficiency={"bf16": float(x[2]), "fp8": float(x[3])}, overlap_p=float(x[4]),
                overhead_s={"bf16": float(x[5]), "fp8": float(x[6])}, min_tile=base.gemm.min_tile)
    return base.model_copy(update={"gemm": g})


def gemm_predict(chip: ChipSpec, cal: Calibration, d: GemmData, sel: np.ndarray) -> np.ndarray:
    out = np.empty(int(sel.sum()))
    idx = np.flatnonzero(sel)
    for f in np.unique(d.fmt[idx]):
        fm = get_format(f)
        j = d.fmt[idx] == f
        out_fmt = get_format("bf16")
        r = ops.gemm_model(chip, cal, d.m[idx][j], d.n[idx][j], d.k[idx][j], fm, fm, out_fmt)
        out[j] = r["time_s"]
    return out


def fit_gemm(chip: ChipSpec, base: Calibration, d: GemmData, train: np.ndarray) -> tuple[Calibration, dict]:
    fit_sel = train & np.isin(d.fmt, ["bf16", "fp8"])
    rng = np.random.default_rng(0)
    idx = np.flatnonzero(fit_sel)
    if len(idx) > 30000:
        idx = np.sort(rng.choice(idx, 30000, replace=False))
    sub = np.zeros_like(fit_sel)
    sub[idx] = True

    def resid(x):
        return np.log(gemm_predict(chip, _with_gemm(base, x), d, sub) / d.t[sub])

    x0 = np.array([0.8, 0.65, 0.8, 0.6, 3.0, 5e-6, 5e-6])
    lo = np.array([0.05, 0.05, 0.05, 0.05, 1.0, 0.0, 0.0])
    hi = np.array([1.0, 1.0, 1.0, 1.0, 20.0, 50e-6, 50e-6])
    res = least_squares(resid, x0, bounds=(lo, hi), loss="soft_l1", f_scale=0.1,
                        x_scale=[0.1, 0.1, 0.1, 0.1, 1, 1e-6, 1e-6])
    cal = _with_gemm(base, res.x)
    report = {}
    for f in ("bf16", "fp8", "fp8-block"):
        for label, mask in (("train", train), ("holdout", ~train)):
            sel = mask & (d.fmt == f)
            if sel.any():
                report[f"gemm_{f}_{label}"] = error_stats(gemm_predict(chip, cal, d, sel), d.t[sel])
    return cal, report


def _attn_cols(rows):
    return columns(rows, {"batch_size": float, "isl": float, "num_heads": float, "num_key_value_heads": float,
                          "head_dim": float, "window_size": float, "attn_dtype": str, "kv_cache_dtype": str,
                          "step": float, "latency_s": float})


def _fmt(dtype: str) -> str:
    return {"bfloat16": "bf16", "fp8": "fp8", "float16": "fp16"}.get(dtype, dtype)


def prefill_predict(chip, cal, c, sel):
    out = np.empty(int(sel.sum()))
    idx = np.flatnonzero(sel)
    for (ad, kd, hd) in {(a, b, h) for a, b, h in zip(c["attn_dtype"][idx], c["kv_cache_dtype"][idx], c["head_dim"][idx])}:
        j = (c["attn_dtype"][idx] == ad) & (c["kv_cache_dtype"][idx] == kd) & (c["head_dim"][idx] == hd)
        ii = idx[j]
        b, s, h, kv, w = (c[x][ii] for x in ("batch_size", "isl", "num_heads", "num_key_value_heads", "window_size"))
        pairs = b * kernels.tiled_pairs(s, 0.0, w)
        max_keys = kernels.last_tile_keys(s, 0.0, w)
        fa = get_format(_fmt(ad))
        fk = get_format(_fmt(kd))
        r = ops.prefill_attention_model(chip, cal, pairs=pairs, q_tokens=b * s, kv_tokens=b * s, max_keys=max_keys,
                                        heads=h, kv_heads=kv, qk_dim=hd, v_dim=hd, kv_elems_per_token=2 * kv * hd,
                                        act_bytes=2.0, kv_bytes=fk.bytes_per_element, matrix_class=fa.matrix_class)
        out[j] = r["time_s"]
    return out


def decode_predict(chip, cal, c, sel):
    idx = np.flatnonzero(sel)
    b, ctx, h, kv, hd, w = (c[x][idx] for x in ("batch_size", "step", "num_heads", "num_key_value_heads", "head_dim",
                                              "window_size"))
    kvb = np.where(c["kv_cache_dtype"][idx] == "fp8", 1.0, 2.0)
    ctx = ctx + 1.0
    ctx_eff = np.where(w > 0, np.minimum(w, ctx), ctx)
    r = ops.decode_attention_model(chip, cal, num_seqs=b, context_tokens=b * ctx_eff, heads=h, kv_heads=kv,
                                   flops_per_pair_per_head=4.0 * hd, kv_elems_per_token=2 * kv * hd, act_bytes=2.0,
                                   kv_bytes=kvb, q_elems_per_head=hd)
    return r["time_s"]


def fit_attention(chip, base: Calibration, folder: Path) -> tuple[Calibration, dict]:
    pc = _attn_cols(read_csv(folder / "context_attention.csv.gz"))
    dc = _attn_cols(read_csv(folder / "generation_attention.csv.gz"))
    p_train = ~holdout_mask(pc["batch_size"], pc["isl"], pc["num_heads"], pc["num_key_value_heads"], pc["head_dim"])
    d_train = ~holdout_mask(dc["batch_size"], dc["step"], dc["num_heads"], dc["num_key_value_heads"], dc["head_dim"])
    rng = np.random.default_rng(1)

    def subsample(mask, n=20000):
        idx = np.flatnonzero(mask)
        if len(idx) > n:
            idx = np.sort(rng.choice(idx, n, replace=False))
        out = np.zeros_like(mask)
        out[idx] = True
        return out

    ps, ds = subsample(p_train), subsample(d_train)

    def make(x):
        a = AttentionCal(prefill_compute_efficiency=float(x[0]), prefill_overhead_s=float(x[1]),
                         decode_memory_efficiency=float(x[2]), decode_overhead_s=float(x[3]),
                         overlap_p=float(x[4]), softmax_flops_per_pair=float(x[5]), decode_block_s=float(x[6]))
        return base.model_copy(update={"attention": a})

    def resid(x):
        cal = make(x)
        return np.concatenate([np.log(prefill_predict(chip, cal, pc, ps) / pc["latency_s"][ps]),
                               np.log(decode_predict(chip, cal, dc, ds) / dc["latency_s"][ds])])

    x0 = np.array([0.6, 5e-6, 0.8, 5e-6, 3.0, 10.0, 0.2e-6])
    lo = np.array([0.05, 0.0, 0.05, 0.0, 1.0, 0.0, 0.0])
    hi = np.array([1.0, 50e-6, 1.0, 50e-6, 20.0, 200.0, 20e-6])
    res = least_squares(resid, x0, bounds=(lo, hi), loss="soft_l1", f_scale=0.1,
                        x_scale=[0.1, 1e-6, 0.1, 1e-6, 1.0, 1.0, 1e-7])
    cal = make(res.x)
    report = {
        "attention_prefill_train": error_stats(prefill_predict(chip, cal, pc, p_train), pc["latency_s"][p_train]),
        "attention_prefill_holdout": error_stats(prefill_predict(chip, cal, pc, ~p_train), pc["latency_s"][~p_train]),
        "attention_decode_train": error_stats(decode_predict(chip, cal, dc, d_train), dc["latency_s"][d_train]),
        "attention_decode_holdout": error_stats(decode_predict(chip, cal, dc, ~d_train), dc["latency_s"][~d_train]),
    }
    return cal, report


def fit_collectives(chip: ChipSpec, base: Calibration, folder: Path) -> tuple[Calibration, dict]:
    """Per collective kind: the start-up latency (least measured time, less one link
    hop) and a per-hop latency (least squares over the chip counts), then the bandwidth
    efficiency at each measured wire size, eff = wire / (bw x (t - latency - hops)),
    averaged over the training rows of that size (all dtypes and chip counts). Sizes
    held out (20%, by hash) test the interpolation."""
    c = columns(read_csv(folder / "nccl.csv.gz"), {"op_name": str, "nccl_dtype": str, "num_gpus": float,
                                                    "message_size": float, "latency_s": float})
    size = c["message_size"] * np.array([NCCL_BYTES.get(d, 2) for d in c["nccl_dtype"]])
    kinds = np.array([NCCL_OPS.get(o, o) for o in c["op_name"]])
    n = c["num_gpus"]
    train = ~holdout_mask(size, n, kinds == "allreduce", kinds == "allgather")
    bw, hop = ops.link_for(chip, 8)
    lat, curves, hops = {}, {}, []
    report = {}
    for kind in sorted(set(kinds)):
        sel = kinds == kind
        factor = {"allreduce": 2.0 * (n - 1) / n}.get(kind, (n - 1) / n)
        steps = {"allreduce": 2.0 * (n - 1)}.get(kind, n - 1)
        wire = factor * size
        # latency: the smallest messages are pure latency; fit t_small = a + b (steps - 1)
        small = sel & train & (size <= 4096)
        A = np.vstack([np.ones(small.sum()), np.maximum(steps[small] - 1, 0)]).T
        (a, b), *_ = np.linalg.lstsq(A, c["latency_s"][small], rcond=None)
        a, b = max(float(a) - hop, 0.0), max(float(b), 0.0)
        lat[kind] = a
        hops.append(b)
        move = c["latency_s"] - a - hop - np.maximum(steps - 1, 0) * b
        eff = wire / (bw * np.maximum(move, 1e-9))
        pts = []
        for w in np.unique(wire[sel & train]):
            j = sel & train & (wire == w)
            pts.append((float(w), float(np.clip(np.exp(np.mean(np.log(eff[j]))), 1e-4, 2.0))))
        # a wire size is measured at several chip counts: merge points closer than 1%
        pts.sort()
        merged: list[tuple[float, float]] = []
        for w, e in pts:
            if merged and w <= merged[-1][0] * 1.01:
                merged[-1] = (merged[-1][0], (merged[-1][1] + e) / 2)
            else:
                merged.append((w, e))
        # more bytes must never take less time: efficiency may rise at most as fast as bytes
        for i in range(1, len(merged)):
            w, e = merged[i]
            cap = merged[i - 1][1] * w / merged[i - 1][0]
            merged[i] = (w, min(e, cap))
        curves[kind] = merged

        def pred(mask, kind=kind):
            xs, ys = [p[0] for p in curves[kind]], [p[1] for p in curves[kind]]
            t, _ = kernels.collective_time(kind, size[mask], n[mask], bw, lat[kind] + hop, b, xs, ys)
            return t

        report[f"collective_{kind}_train"] = error_stats(pred(sel & train), c["latency_s"][sel & train])
        report[f"collective_{kind}_holdout"] = error_stats(pred(sel & ~train), c["latency_s"][sel & ~train])
    # p2p has no table: take all-gather's figures (one sender, one receiver, full wire)
    lat.setdefault("p2p", lat.get("allgather", next(iter(lat.values()))))
    curves.setdefault("p2p", curves.get("allgather", next(iter(curves.values()))))
    coll = CollectiveCal(latency_s={k: lat.get(k, lat["allreduce"]) for k in COLLECTIVES},
                         latency_per_hop_s=float(np.median(hops)),
                         efficiency_curve={k: curves.get(k, curves["allreduce"]) for k in COLLECTIVES})
    return base.model_copy(update={"collective": coll}), report


def fit_tables(folder: str | Path, chip: ChipSpec, cal_id: str, vector_memory_efficiency: float,
               vector_overhead_s: float) -> Calibration:
    """Fit GEMM, attention and collective calibration from a measured-table folder."""
    folder = Path(folder)
    if not folder.is_dir():
        raise SpecError(f"measurement folder {str(folder)!r} does not exist")
    base = Calibration(
        id=cal_id, description=f"achievable efficiency fitted on measured {chip.name} kernels",
        fitted_on=str(folder),
        gemm=GemmCal(compute_efficiency={"bf16": 0.8, "fp8": 0.65}, memory_efficiency={"bf16": 0.8},
                     overlap_p=3.0, overhead_s={"bf16": 5e-6}),
        attention=AttentionCal(prefill_compute_efficiency=0.5, prefill_overhead_s=5e-6, decode_memory_efficiency=0.8,
                               decode_overhead_s=5e-6, overlap_p=3.0),
        vector=VectorCal(memory_efficiency=vector_memory_efficiency, overhead_s=vector_overhead_s),
        collective=CollectiveCal(latency_s={k: 10e-6 for k in COLLECTIVES}, latency_per_hop_s=0.0,
                                 efficiency_curve={k: [(1.0, 0.8)] for k in COLLECTIVES}),
    )
    d = load_gemm(folder)
    train = ~holdout_mask(d.m, d.n, d.k)
    cal, report = fit_gemm(chip, base, d, train)
    cal, r2 = fit_attention(chip, cal, folder)
    report.update(r2)
    cal, r3 = fit_collectives(chip, cal, folder)
    report.update(r3)
    return cal.model_copy(update={"holdout_error": report})


def stream_efficiency(microbench_csv: str | Path, hardware_contains: str, chip: ChipSpec) -> tuple[float, dict]:
    """HBM efficiency of streaming kernels (STREAM copy/mul/add/triad) on one chip, from
    the public microbenchmark CSV: median measured bandwidth / spec bandwidth."""
    rows = [r for r in read_csv(microbench_csv)
            if r["metric"].startswith("HBM bandwidth (STREAM") and hardware_contains in r["hardware"]
            and r["setting"].split("=")[-1] in ("Copy", "Mul", "Add", "Triad")]
    if not rows:
        raise SpecError(f"no STREAM rows for {hardware_contains!r} in {str(microbench_csv)!r}")
    unit = {"TB/s": 1e12, "GB/s": 1e9}
    bw = np.array([float(r["value"]) * unit[r["units"]] for r in rows])
    eff = float(np.median(bw) / chip.hbm_bw_bytes_per_s)
    return eff, {"source": rows[0]["source"], "n": len(rows), "median_bw_bytes_per_s": float(np.median(bw))}


def write_calibration(cal: Calibration, path: str | Path, header: str = "") -> None:
    import yaml

    def rounded(x):
        if isinstance(x, float):
            return float(f"{x:.4g}")
        if isinstance(x, dict):
            return {k: rounded(v) for k, v in x.items()}
        return x

    data = rounded(cal.model_dump(mode="json"))
    text = yaml.safe_dump(data, sort_keys=False, width=110)
    Path(path).write_text((header.rstrip() + "\n" if header else "") + text)
