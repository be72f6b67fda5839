"""Small helpers shared by the calibration fits: error statistics, subsampling, and a
bounded robust least-squares over a subset of free parameters."""

from __future__ import annotations

import numpy as np
from scipy.optimize import least_squares


def error_stats(pred: np.ndarray, meas: np.ndarray) -> dict[str, float]:
    """Median, p90 and worst absolute % error, and the count."""
    err = np.abs(np.asarray(pred, float) / np.asarray(meas, float) - 1.0) * 100.0
    return {"median_abs_pct": round(float(np.median(err)), 2), "p90_abs_pct": round(float(np.percentile(err, 90)), 2),
            "max_abs_pct": round(float(np.max(err)), 2), "n": int(len(err))}


def subsample(mask: np.ndarray, n: int, seed: int) -> np.ndarray:
    """At most ``n`` of the selected rows, chosen by a seeded generator (deterministic)."""
    idx = np.flatnonzero(mask)
    if len(idx) > n:
        idx = np.sort(np.random.default_rng(seed).choice(idx, n, replace=False))
    out = np.zeros_like(mask)
    out[idx] = True
    return out


def lsq(resid, x0, lo, hi, x_scale, free=None) -> np.ndarray:
    """Soft-L1 least squares on ``resid(x)`` (log errors) within bounds; parameters not
    ``free`` stay at ``x0``."""
    lo, hi = np.asarray(lo, float), np.asarray(hi, float)
    x0 = np.clip(np.asarray(x0, float), lo, hi)
    free = np.ones(len(x0), bool) if free is None else np.asarray(free, bool)
    if not free.any():
        return x0

    def r(xf):
        x = x0.copy()
        x[free] = xf
        return resid(x)

    res = least_squares(r, x0[free], bounds=(lo[free], hi[free]), loss="soft_l1", f_scale=0.1,
                        x_scale=np.asarray(x_scale, float)[free])
    x = x0.copy()
    x[free] = res.x
    return x
