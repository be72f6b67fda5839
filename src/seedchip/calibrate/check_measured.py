"""How well a calibration predicts a gpu_microbench CSV: the oracle's error per op class
and shape region on the held-out rows, with the shipped calibration and a fitted one;
layer and step rows priced whole with ``step_cost`` (``seedchip calibrate validate``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..hardware.catalog import load_chip
from ..hardware.spec import ChipSpec
from ..perf.calibration import DEFAULT_CALIBRATION, Calibration, load_calibration
from .common import error_stats
from .measured import Measured, fit_measured, predict, read_measured, split_summary

def _regions(m: Measured) -> list[tuple[str, str, np.ndarray]]:
    c, cls, op = m.cols, m.op_class, m.op
    mm, fmt = c["m"], c["format"]
    out = []
    for f in ("bf16", "fp8"):
        g = (cls == "gemm") & (fmt == f)
        out += [(f"gemm_{f}", "M<=16", g & (mm <= 16)), (f"gemm_{f}", "M 17-512", g & (mm > 16) & (mm <= 512)),
                (f"gemm_{f}", "M>512", g & (mm > 512))]
    p, d = cls == "attention_prefill", cls == "attention_decode"
    out += [("attention_prefill", "seq<=4096", p & (c["seq_len"] <= 4096)),
            ("attention_prefill", "seq>4096", p & (c["seq_len"] > 4096)),
            ("attention_decode", "batch<=4", d & (c["batch"] <= 4)), ("attention_decode", "batch>4", d & (c["batch"] > 4)),
            ("vector", "copy", op == "copy"), ("vector", "elementwise", np.isin(op, ("elementwise_add", "rmsnorm",
                                                                                   "silu_mul"))),
            ("vector", "launch", op == "launch")]
    for kind in ("layer", "step"):
        out += [(kind, "decode", (cls == kind) & (c["new_tokens"] == 1)),
                (kind, "prefill", (cls == kind) & (c["new_tokens"] > 1))]
    return [(k, r, s & ~m.info) for k, r, s in out]


def _stats(pred: np.ndarray, meas: np.ndarray) -> dict | None:
    if not len(meas):
        return None
    s = error_stats(pred, meas)
    return {"median_abs_pct": s["median_abs_pct"], "worst_abs_pct": s["max_abs_pct"], "n": s["n"]}


@dataclass(frozen=True)
class ValidationReport:
    csv: str
    chip: str
    shipped: str
    fitted: str
    split: dict
    regions: list[dict]
    model_rows: list[dict]
    targets: list[dict]
    info: dict
    provenance: dict

    def to_dict(self) -> dict:
        return {"csv": self.csv, "chip": self.chip, "shipped_calibration": self.shipped,
                "fitted_calibration": self.fitted, "split": self.split, "regions": self.regions,
                "model_rows": self.model_rows, "targets": self.targets, "info": self.info,
                "provenance": self.provenance}


def validate_measured(measured: str | Path | Measured, chip: str | ChipSpec,
                      calibration: str | Calibration | None = None,
                      shipped: str | Calibration | None = None) -> ValidationReport:
    """The oracle's error on a gpu_microbench CSV, per op class and shape region, on the
    held-out rows: with the shipped calibration and with the fitted one (``calibration``;
    None: fit now on the training split). Layer and step rows are priced with step_cost."""
    m = measured if isinstance(measured, Measured) else read_measured(measured)
    chip = load_chip(chip)
    ship = load_calibration(shipped or DEFAULT_CALIBRATION)
    fitted = (load_calibration(calibration) if calibration is not None      # judging any file is fine
              else fit_measured(m, chip, ship, allow_cpu=True).calibration)
    hold = m.holdout()
    t = m.cols["time_s"]
    p_ship, p_fit = predict(chip, ship, m), predict(chip, fitted, m)
    regions = []
    for kind, region, sel in _regions(m):
        if not sel.any():
            continue
        h = sel & hold
        regions.append({"op_class": kind, "region": region, "n_train": int((sel & ~hold).sum()),
                        "n_holdout": int(h.sum()), "shipped": _stats(p_ship[h], t[h]),
                        "fitted": _stats(p_fit[h], t[h])})
    model_rows = []
    c = m.cols
    for i in np.flatnonzero(np.isin(m.op, ("layer", "step"))):
        model_rows.append({
            "op": str(c["op"][i]), "phase": "decode" if c["new_tokens"][i] == 1 else "prefill",
            "model": str(c["model"][i]), "batch": int(c["batch"][i]), "context": int(c["context"][i]),
            "new_tokens": int(c["new_tokens"][i]), "measured_s": float(t[i]), "shipped_s": float(p_ship[i]),
            "fitted_s": float(p_fit[i]), "shipped_error_pct": round(float((p_ship[i] / t[i] - 1) * 100), 2),
            "fitted_error_pct": round(float((p_fit[i] / t[i] - 1) * 100), 2), "line": int(m.line[i])})
    targets = []
    for what, kinds, region, stat in (("held-out GEMM median", ("gemm_bf16", "gemm_fp8"), None, "median"),
                                      ("held-out attention median", ("attention_prefill", "attention_decode"), None,
                                       "median"),
                                      ("decode step worst", ("step",), "decode", "worst"),
                                      ("prefill step worst", ("step",), "prefill", "worst")):
        sel = np.zeros(len(m), bool)
        for k, r, s in _regions(m):
            if k in kinds and (region is None or r == region):
                sel |= s
        sel &= hold
        if not sel.any():
            continue
        err = np.abs(p_fit[sel] / t[sel] - 1.0) * 100.0
        v = float(np.median(err) if stat == "median" else np.max(err))
        targets.append({"target": f"{what} abs error <= 10% (fitted)", "value_pct": round(v, 2), "met": v <= 10.0,
                        "n": int(sel.sum())})
    info = {f"launch_{c['mode'][i]}_s": float(t[i]) for i in np.flatnonzero(m.info)}
    return ValidationReport(csv=m.path, chip=chip.id, shipped=ship.id, fitted=fitted.id,
                            split=split_summary(m, hold), regions=regions, model_rows=model_rows, targets=targets,
                            info=info, provenance=dict(m.provenance))
