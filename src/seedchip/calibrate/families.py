"""Leave-one-shape-family-out checks of the table calibration.

The hash split (:func:`seedchip.calibrate.tables.holdout_mask`) holds out shapes at random,
so every held-out shape has close neighbours in the fit. A chip we have not measured
differs from the measured one the way a whole family of shapes does (a head size, a GQA
ratio, long contexts, big batches), so here each family in turn is removed from the
training rows, the op class is fitted on the rest, and the error is measured on the
whole family: an extrapolation, not an interpolation.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np

from ..hardware.spec import ChipSpec
from ..perf.calibration import Calibration
from . import fit_attention as fa
from .common import error_stats
from .fit_gemm import GEMM_X0, fit_gemm, gemm_predict, load_gemm
from .tables import holdout_mask

Rows = Callable[[dict], np.ndarray]


def _ratio(c: dict) -> np.ndarray:
    return c["num_heads"] / c["num_key_value_heads"]


def _attention_families(length: str, long_from: float, big_batch: float) -> dict[str, Rows]:
    fams: dict[str, Rows] = {f"head_dim={d}": (lambda c, d=d: c["head_dim"] == d) for d in (64, 128, 192, 256)}
    fams.update({
        "gqa=1 (MHA)": lambda c: _ratio(c) == 1,
        "gqa=2-8": lambda c: (_ratio(c) > 1) & (_ratio(c) <= 8),
        "gqa=10-32": lambda c: (_ratio(c) > 8) & (_ratio(c) <= 32),
        "gqa>32": lambda c: _ratio(c) > 32,
        f"batch>={big_batch:.0f}": lambda c: c["batch_size"] >= big_batch,
        f"{length}>={long_from:.0f}": (lambda c: (c["isl"] if length == "isl" else c["step"] + 1) >= long_from),
        "windowed": lambda c: c["window_size"] > 0,
        "kv=fp8": lambda c: c["kv_cache_dtype"] == "fp8",
    })
    return fams


PREFILL_FAMILIES = _attention_families("isl", 8192, 64)
DECODE_FAMILIES = _attention_families("context", 16384, 256)
GEMM_FAMILIES: dict[str, Callable] = {
    "m<=16": lambda d: d.m <= 16,
    "m>=8192": lambda d: d.m >= 8192,
    "n>=32768": lambda d: d.n >= 32768,
    "k>=32768": lambda d: d.k >= 32768,
    "k<=256": lambda d: d.k <= 256,
}


def _row(op: str, family: str, n_fit: int, out: np.ndarray, pred: np.ndarray, meas: np.ndarray,
         pred_all: np.ndarray) -> dict:
    return {"op": op, "family": family, "n_fit": n_fit, "left_out": error_stats(pred[out], meas[out]),
            "in_fit": error_stats(pred_all[out], meas[out])}


def attention_families(chip: ChipSpec, start: Calibration, folder: str | Path, phase: str,
                       only: tuple[str, ...] | None = None) -> list[dict]:
    """Per family of ``phase`` ("prefill" or "decode"): fit that phase's parameters on the
    hash-split training rows outside the family (from the fit's own start values, so
    nothing fitted on the family leaks in; ``start`` gives the fixed rest) and report
    the error on all the family's rows ("left_out"), next to ``start``'s error on them
    ("in_fit": ``start`` as fitted with the family in)."""
    pc, dc = fa.load_attention(folder)
    c, spec, predict, split, fams = ((pc, fa.PREFILL_PARAMS, fa.prefill_predict, fa.prefill_split, PREFILL_FAMILIES)
                                     if phase == "prefill" else
                                     (dc, fa.DECODE_PARAMS, fa.decode_predict, fa.decode_split, DECODE_FAMILIES))
    everything = np.ones(len(c["latency_s"]), bool)
    pred_all = predict(chip, start, c, everything)
    neutral = fa.set_params(start, spec, [p[1] for p in spec])   # the fit's own start, not start's fitted values
    out = []
    for name, rows in fams.items():
        if only and name not in only:
            continue
        fam = rows(c)
        train = split(c) & ~fam
        cal = fa.fit_part(chip, neutral, spec, predict, c, train, 3)
        out.append(_row(phase, name, int(train.sum()), fam, predict(chip, cal, c, everything), c["latency_s"],
                        pred_all))
    return out


def gemm_families(chip: ChipSpec, start: Calibration, folder: str | Path,
                  only: tuple[str, ...] | None = None) -> list[dict]:
    """Per GEMM family: refit the GEMM parameters (and the vector overhead) without it and
    report the error on its rows, per format."""
    d = load_gemm(folder)
    split = ~holdout_mask(d.m, d.n, d.k)
    everything = np.ones(len(d.t), bool)
    pred_all = gemm_predict(chip, start, d, everything)
    neutral = start.model_copy(update={"vector": start.vector.model_copy(update={"overhead_s": float(GEMM_X0[8])})})
    out = []
    for name, rows in GEMM_FAMILIES.items():
        if only and name not in only:
            continue
        fam = rows(d)
        cal, _ = fit_gemm(chip, neutral, d, split & ~fam)
        pred = gemm_predict(chip, cal, d, everything)
        for f in ("bf16", "fp8", "fp8-block"):
            sel = fam & (d.fmt == f)
            if sel.any():
                out.append(_row(f"gemm {f}", name, int((split & ~fam).sum()), sel, pred, d.t, pred_all))
    return out


def leave_one_family_out(folder: str | Path, chip: ChipSpec, start: Calibration,
                         ops: tuple[str, ...] = ("gemm", "prefill", "decode")) -> list[dict]:
    """All families of the chosen op classes (see the module doc)."""
    out: list[dict] = []
    if "gemm" in ops:
        out += gemm_families(chip, start, folder)
    for phase in ("prefill", "decode"):
        if phase in ops:
            out += attention_families(chip, start, folder, phase)
    return out


def format_table(rows: list[dict]) -> str:
    lines = [f"{'op':16s} {'family':16s} {'left-out median':>16s} {'p90':>7s} {'in-fit median':>14s} {'p90':>7s} "
             f"{'n':>6s}"]
    for r in rows:
        lo, fi = r["left_out"], r["in_fit"]
        lines.append(f"{r['op']:16s} {r['family']:16s} {lo['median_abs_pct']:15.1f}% {lo['p90_abs_pct']:6.1f}% "
                     f"{fi['median_abs_pct']:13.1f}% {fi['p90_abs_pct']:6.1f}% {lo['n']:6d}")
    return "\n".join(lines)
