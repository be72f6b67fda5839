"""Fit a calibration from measured kernel tables (microbenchmarks only).

Input: a folder in the aiconfigurator "silicon" layout (``gemm.csv.gz``,
``context_attention.csv.gz``, ``generation_attention.csv.gz``, ``nccl.csv.gz``) measured
on one chip, plus that chip's spec. Each op class is fitted by least squares on
log(predicted / measured) with the oracle's own vectorised equations
(:mod:`seedchip.perf.ops`, :mod:`seedchip.perf.attention`), on 80% of the shapes; the
held-out 20% (split by a hash of the shape, so a shape is never on both sides) gives the
reported error. GEMMs: :mod:`seedchip.calibrate.fit_gemm` (which also fits the vector
kernel overhead, from the activation quantization inside the fp8 rows); attention:
:mod:`seedchip.calibrate.fit_attention`; collectives here. Leave-one-family-out checks:
:mod:`seedchip.calibrate.families`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import SpecError
from ..hardware.spec import ChipSpec
from ..perf import kernels, ops
from ..perf.calibration import COLLECTIVES, AttentionCal, Calibration, CollectiveCal, GemmCal, VectorCal
from .common import error_stats
from .fit_attention import attention_report, fit_attention, load_attention
from .fit_gemm import fit_gemm, gemm_report, load_gemm
from .tables import columns, holdout_mask, read_csv

NCCL_OPS = {"all_reduce": "allreduce", "all_gather": "allgather", "reduce_scatter": "reducescatter",
            "alltoall": "alltoall"}
NCCL_BYTES = {"half": 2, "int8": 1, "float": 4, "bfloat16": 2}
VECTOR_HOW = "fitted with the GEMMs (the fp8 rows run 3 activation-quantization kernels, the fp8-block rows 1)"
VECTOR_FITTED = "vector-kernel overhead " + VECTOR_HOW
VECTOR_HEADER = "# Vector-kernel overhead:"


def load_nccl(folder: Path) -> dict[str, np.ndarray]:
    """The NCCL table as columns: kind, size (bytes), n (chips), latency_s, train."""
    c = columns(read_csv(Path(folder) / "nccl.csv.gz"), {"op_name": str, "nccl_dtype": str, "num_gpus": float,
                                                          "message_size": float, "latency_s": float})
    size = c["message_size"] * np.array([NCCL_BYTES.get(d, 2) for d in c["nccl_dtype"]])
    kinds = np.array([NCCL_OPS.get(o, o) for o in c["op_name"]])
    train = ~holdout_mask(size, c["num_gpus"], kinds == "allreduce", kinds == "allgather")
    return {"kind": kinds, "size": size, "n": c["num_gpus"], "latency_s": c["latency_s"], "train": train}


def collective_report(chip: ChipSpec, cal: Calibration, t: dict) -> dict:
    """Train / held-out error of the calibration's collectives (what ops.collective prices)."""
    bw, hop = ops.link_for(chip, 8)
    c, report = cal.collective, {}
    for kind in sorted(set(t["kind"])):
        xs, ys = c.curve(kind)
        for label, mask in (("train", t["train"]), ("holdout", ~t["train"])):
            sel = mask & (t["kind"] == kind)
            pred, _ = kernels.collective_time(kind, t["size"][sel], t["n"][sel], bw, c.latency_s[kind] + hop,
                                              c.latency_per_hop_s, xs, ys)
            report[f"collective_{kind}_{label}"] = error_stats(pred, t["latency_s"][sel])
    return report


def _efficiency_curve(wire: np.ndarray, eff: np.ndarray) -> list[tuple[float, float]]:
    """(wire bytes, efficiency) points: the geometric mean per measured size, points closer
    than 1% merged (a size is measured at several chip counts), and capped so that more
    bytes never take less time (efficiency may rise at most as fast as bytes)."""
    pts = sorted((float(w), float(np.clip(np.exp(np.mean(np.log(eff[wire == w]))), 1e-4, 2.0)))
                 for w in np.unique(wire))
    merged: list[tuple[float, float]] = []
    for w, e in pts:
        if merged and w <= merged[-1][0] * 1.01:
            merged[-1] = (merged[-1][0], (merged[-1][1] + e) / 2)
        else:
            merged.append((w, e))
    for i in range(1, len(merged)):
        w, e = merged[i]
        merged[i] = (w, min(e, merged[i - 1][1] * w / merged[i - 1][0]))
    return merged


def fit_collectives(chip: ChipSpec, base: Calibration, folder: Path) -> tuple[Calibration, dict]:
    """Per collective kind: the start-up latency (least measured time, less one link
    hop) and a per-hop latency (least squares over the chip counts), then the bandwidth
    efficiency at each measured wire size, eff = wire / (bw x (t - latency - hops)),
    averaged over the training rows of that size (all dtypes and chip counts). Sizes
    held out (20%, by hash) test the interpolation. The report prices the rows with the
    calibration as stored (one per-hop latency for all kinds, their median)."""
    t = load_nccl(folder)
    kinds, size, n, train = t["kind"], t["size"], t["n"], t["train"]
    bw, hop = ops.link_for(chip, 8)
    lat, curves, hops = {}, {}, []
    for kind in sorted(set(kinds)):
        sel = kinds == kind
        factor = {"allreduce": 2.0 * (n - 1) / n}.get(kind, (n - 1) / n)
        steps = {"allreduce": 2.0 * (n - 1)}.get(kind, n - 1)
        # latency: the smallest messages are pure latency; fit t_small = a + b (steps - 1)
        small = sel & train & (size <= 4096)
        A = np.vstack([np.ones(small.sum()), np.maximum(steps[small] - 1, 0)]).T
        (a, b), *_ = np.linalg.lstsq(A, t["latency_s"][small], rcond=None)
        a, b = max(float(a) - hop, 0.0), max(float(b), 0.0)
        lat[kind] = a
        hops.append(b)
        move = t["latency_s"] - a - hop - np.maximum(steps - 1, 0) * b
        eff = factor * size / (bw * np.maximum(move, 1e-9))
        curves[kind] = _efficiency_curve((factor * size)[sel & train], eff[sel & train])
    # p2p has no table: take all-gather's figures (one sender, one receiver, full wire)
    lat.setdefault("p2p", lat.get("allgather", next(iter(lat.values()))))
    curves.setdefault("p2p", curves.get("allgather", next(iter(curves.values()))))
    coll = CollectiveCal(latency_s={k: lat.get(k, lat["allreduce"]) for k in COLLECTIVES},
                         latency_per_hop_s=float(np.median(hops)),
                         efficiency_curve={k: curves.get(k, curves["allreduce"]) for k in COLLECTIVES})
    cal = base.model_copy(update={"collective": coll})
    return cal, collective_report(chip, cal, t)


def evaluate_tables(folder: str | Path, chip: ChipSpec, cal: Calibration) -> dict[str, dict]:
    """Recompute, without fitting, the train / held-out errors a table fit reports
    (``Calibration.holdout_error``) for calibration ``cal`` on the tables in ``folder``:
    the same split, the same predictors. A stored report can then be checked."""
    folder = Path(folder)
    d = load_gemm(folder)
    report = gemm_report(chip, cal, d, ~holdout_mask(d.m, d.n, d.k))
    report.update(attention_report(chip, cal, *load_attention(folder)))
    report.update(collective_report(chip, cal, load_nccl(folder)))
    return report


def start_calibration(chip: ChipSpec, cal_id: str, folder: Path, vector_memory_efficiency: float,
                      vector_overhead_s: float) -> Calibration:
    """The calibration a table fit starts from (every fitted field is overwritten)."""
    return Calibration(
        id=cal_id, description=f"achievable efficiency fitted on measured {chip.name} kernels",
        fitted_on=str(folder),
        gemm=GemmCal(compute_efficiency={"bf16": 0.8, "fp8": 0.65}, memory_efficiency={"bf16": 0.8},
                     overlap_p=3.0, overhead_s={"bf16": 5e-6}),
        attention=AttentionCal(prefill_compute_efficiency={"bf16": 0.6, "fp8": 0.5}, prefill_overhead_s=10e-6,
                               overlap_p=2.0),
        vector=VectorCal(memory_efficiency=vector_memory_efficiency, overhead_s=vector_overhead_s),
        collective=CollectiveCal(latency_s={k: 10e-6 for k in COLLECTIVES}, latency_per_hop_s=0.0,
                                 efficiency_curve={k: [(1.0, 0.8)] for k in COLLECTIVES}),
    )


def fit_tables(folder: str | Path, chip: ChipSpec, cal_id: str, vector_memory_efficiency: float,
               vector_overhead_s: float, *, fit_vector_overhead: bool = True) -> Calibration:
    """Fit GEMM, attention and collective calibration from a measured-table folder.
    ``vector_memory_efficiency``: from STREAM (:func:`stream_efficiency`). The vector
    kernel overhead is fitted with the GEMMs (the fp8 rows hold activation-quantization
    kernels) starting from ``vector_overhead_s``; ``fit_vector_overhead`` False keeps it."""
    folder = Path(folder)
    if not folder.is_dir():
        raise SpecError(f"measurement folder {str(folder)!r} does not exist")
    base = start_calibration(chip, cal_id, folder, vector_memory_efficiency, vector_overhead_s)
    d = load_gemm(folder)
    train = ~holdout_mask(d.m, d.n, d.k)
    cal, report = fit_gemm(chip, base, d, train, fit_vector_overhead)
    cal, r2 = fit_attention(chip, cal, folder)
    report.update(r2)
    cal, r3 = fit_collectives(chip, cal, folder)
    report.update(r3)
    if fit_vector_overhead:
        cal = cal.model_copy(update={"description": cal.description + "; " + VECTOR_FITTED})
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
    if VECTOR_FITTED in cal.description:   # a caller's header may still call it hand-set: say what it is
        header = "\n".join(f"{VECTOR_HEADER} {cal.vector.overhead_s * 1e6:.2f} us, {VECTOR_HOW}."
                           if line.startswith(VECTOR_HEADER) else line for line in header.splitlines())
    from ..outputs import write_text
    write_text(path, (header.rstrip() + "\n" if header else "") + text)
