"""How wrong might a prediction be: the calibration's and the engine model's residuals,
propagated through the model as a few perturbed runs.

A ``Perturbation`` is one draw of the model's systematic error: a factor on the time of
every kernel of a class (GEMMs, prefill attention, decode attention, vector kernels,
collectives), one on the engine's host time and one on the whole step (what the engine
model misses). Each factor is lognormal around 1 with the spread its evidence gives:

- kernel classes: the calibration's held-out error (``holdout_error``, median absolute %
  per class; the larger of the shape hash split and the leave-one-family-out split, since
  a new chip is an extrapolation): a median absolute error m is a log-spread of
  ln(1 + m) / 0.6745 (the median of |x| for a normal x is 0.6745 sigma);
- host time: the engine profile's host costs are estimates (``HOST_SIGMA``);
- the step: the engine profile's residual on measured end-to-end results
  (``step_sigma`` in ``serve/engines.yaml``).

A result's 80% interval comes from ``DRAWS`` runs, each with one draw (the same factors
for every step of the run: the errors are systematic, they do not average out): the
log-spread s of their results around the unperturbed one gives nominal x exp(+-1.2816 s).
"""

from __future__ import annotations

import math

import numpy as np
from pydantic import Field

from ..spec_base import FrozenSpec
from .calibration import Calibration

DRAWS = 8
Z80 = 1.2816                 # the 90th percentile of a standard normal
HOST_SIGMA = math.log(1.5) / 0.6745    # ESTIMATE (seedchip, 2026): host times within 1.5x half the time
VECTOR_SIGMA_PCT = 8.0       # ESTIMATE: vector kernels are STREAM-bound; H100 STREAM kinds spread ~+-8%
CLASSES = ("gemm", "attention_prefill", "attention_decode", "vector", "collective")


class Perturbation(FrozenSpec):
    """Factors on op times per class, on host time and on the step (1 = as modelled)."""
    gemm: float = Field(1.0, gt=0)
    attention_prefill: float = Field(1.0, gt=0)
    attention_decode: float = Field(1.0, gt=0)
    vector: float = Field(1.0, gt=0)
    collective: float = Field(1.0, gt=0)
    host: float = Field(1.0, gt=0)
    step: float = Field(1.0, gt=0)

    def factor(self, op_class: str, name: str) -> float:
        if op_class == "attention":
            return self.attention_decode if "decode" in name else self.attention_prefill
        return getattr(self, op_class, 1.0)


def class_sigmas(cal: Calibration) -> dict[str, float]:
    """Log-spread per kernel class from the calibration's held-out errors (0 when it has
    none, as the ideal roofline)."""
    out = {}
    for cls in CLASSES:
        keys = [k for k in cal.holdout_error if k.startswith(cls if cls != "vector" else "vector")
                and ("holdout" in k or "family" in k)]
        pct = max((cal.holdout_error[k]["median_abs_pct"] for k in keys), default=None)
        if pct is None and cls == "vector" and cal.holdout_error:
            pct = VECTOR_SIGMA_PCT
        out[cls] = math.log1p((pct or 0.0) / 100.0) / 0.6745
    return out


def draws(cal: Calibration, step_sigma: float, k: int = DRAWS, seed: int = 0) -> list[Perturbation]:
    """``k`` perturbations drawn from the residuals (deterministic for a seed)."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, 2026]))
    sig = class_sigmas(cal)
    out = []
    for _ in range(k):
        f = {c: float(math.exp(rng.normal(0.0, sig[c]))) for c in CLASSES}
        f["host"] = float(math.exp(rng.normal(0.0, HOST_SIGMA)))
        f["step"] = float(math.exp(rng.normal(0.0, step_sigma)))
        out.append(Perturbation(**f))
    return out


def interval80(nominal: float | None, perturbed: list[float | None]) -> list[float] | None:
    """[low, high] around ``nominal`` from the perturbed results' log-spread."""
    vals = [p for p in perturbed if p]
    if not nominal or not vals:
        return None
    s = math.sqrt(sum(math.log(p / nominal) ** 2 for p in vals) / len(vals))
    return [nominal * math.exp(-Z80 * s), nominal * math.exp(Z80 * s)]


__all__ = ["Perturbation", "draws", "interval80", "class_sigmas", "DRAWS"]
