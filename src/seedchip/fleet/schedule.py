"""When our chips arrive and what they cost quarter by quarter, and how sure the capacities are.

Schedule of an own chip (``Device`` fields):
    available_from          first samples (first silicon brought up)
    qualification_quarters  samples -> volume: deliveries start this many quarters later
    respin_probability,     the chance first silicon needs a respin, which moves availability and
    respin_delay_quarters   the production ramp this many quarters later
    yield_learning          defect density falling from first silicon to the node's mature value,
                            priced by the silicon model (the unit cost of each quarter's deliveries)

A plan takes the *expected* schedule: the production cap of each quarter is the mix
(1 - p) x ramp + p x (ramp a respin later). ``--confidence P`` takes the pessimistic one: with
P above 1 - p the respin happens (a plan that must hold with probability P cannot count on
first silicon working).

Capacity uncertainty: each capacity carries a log-spread ``sigma`` (its 80% interval is
nominal x exp(+-1.2816 sigma)); ``--confidence P`` plans with nominal x exp(-z_P sigma), z_P the
standard normal's P quantile. A capacity with no interval of its own takes the oracle's error
bars (``perf.uncertainty``): the engine profile's step residual and the calibration's held-out
errors of the kernels that decode is made of (GEMMs and decode attention), in quadrature.
"""

from __future__ import annotations

import math
from functools import lru_cache
from statistics import NormalDist

import numpy as np


from ..errors import SeedChipError, SpecError, one_line
from ..perf.uncertainty import Z80


def shift(arr: np.ndarray, n: int, fill: float = 0.0) -> np.ndarray:
    """``arr`` moved ``n`` places later, the first ``n`` filled with ``fill``."""
    out = np.empty_like(arr)
    if n <= 0:
        return arr.copy()
    out[:n] = fill
    out[n:] = arr[:-n] if n < len(arr) else arr[:0]
    return out


def respin_taken(p_respin: float, confidence: float | None) -> bool:
    """Whether the pessimistic schedule at ``confidence`` includes the respin."""
    return confidence is not None and p_respin > 0 and confidence > 1.0 - p_respin


def production(cap: np.ndarray, avail: int, p_respin: float, delay: int, confidence: float | None
               ) -> tuple[np.ndarray, int]:
    """(production cap per quarter, first volume quarter) of an own chip under its respin risk:
    expected (a mix of the two ramps) or, at a confidence that cannot count on first silicon,
    the respin's."""
    if p_respin <= 0 or delay <= 0:
        return cap, avail
    late = shift(cap, delay, 0.0)
    if respin_taken(p_respin, confidence):
        return late, avail + delay
    if confidence is not None:
        return cap, avail
    finite = np.isfinite(cap)
    mixed = np.where(finite, (1.0 - p_respin) * np.where(finite, cap, 0.0) + p_respin * np.where(finite, late, 0.0),
                     cap)
    return mixed, avail


@lru_cache(maxsize=256)
def _unit_cost_at(chip: str, d0: float) -> float:
    from ..silicon import silicon_report
    return float(silicon_report(chip, defect_density_per_cm2=d0).unit_cost_usd)


def mature_defect_density(chip: str) -> float:
    from ..hardware.catalog import load_chip
    from ..silicon import load_silicon_data
    spec = load_chip(chip)
    return float(load_silicon_data().node(spec.process_node).defect_density_per_cm2)


def learning_extra_usd(name: str, chip: str, learning, first_silicon: int, num_quarters: int) -> np.ndarray:
    """(Q,) dollars a unit delivered in each quarter costs above the mature-yield unit cost: the
    silicon model at the quarter's defect density minus at the node's mature one."""
    out = np.zeros(num_quarters)
    if learning is None:
        return out
    try:
        mature = mature_defect_density(chip)
        base = _unit_cost_at(chip, mature)
        for q in range(num_quarters):
            t = max(0, q - first_silicon)
            d0 = mature + (learning.first_defect_density_per_cm2 - mature) * 2.0 ** (-t / learning.halving_quarters)
            out[q] = _unit_cost_at(chip, round(d0, 9)) - base
    except SeedChipError as e:
        raise SpecError(f"devices.{name}.yield_learning: the silicon model cannot cost {chip!r} ({one_line(e)})") from None
    return out


def sigma_from_interval(value: float, interval: list[float] | None) -> float | None:
    """Log-spread of a capacity from its 80% interval (None: no interval)."""
    if not interval or value <= 0:
        return None
    lo, hi = interval
    return math.log(hi / lo) / (2.0 * Z80)


@lru_cache(maxsize=32)
def oracle_sigma(engine: str, chip: str, calibration: str | None) -> float:
    """Log-spread of a capacity from the oracle's error bars (see the module doc)."""
    from ..hardware.catalog import load_chip
    from ..perf.calibration import load_calibration
    from ..perf.uncertainty import class_sigmas
    from ..serve.profiles import resolve_engine
    cls = class_sigmas(load_calibration(calibration))
    kernels = 0.5 * (cls["gemm"] + cls["attention_decode"])
    return math.sqrt(resolve_engine(engine, load_chip(chip)).step_sigma ** 2 + kernels ** 2)


def z(confidence: float) -> float:
    """The standard normal's ``confidence`` quantile."""
    return NormalDist().inv_cdf(confidence)


__all__ = ["shift", "production", "respin_taken", "learning_extra_usd", "sigma_from_interval", "oracle_sigma", "z"]
