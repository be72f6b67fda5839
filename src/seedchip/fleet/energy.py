"""Energy of a fleet at its planned utilisation: what the planner charges and reports.

Average IT power in quarter q (watts):
    serving   sum_{m,d} share[m,d,q] x avg_rate[m,q] x tokens per unit of rate x J per token
              (the chips busy with the average load: the simulated J/token at the SLO rate)
  + idle      sum_d idle_w[d] x (installed[d,q] - busy[d,q]),
              busy[d,q] = sum_m share[m,d,q] x avg_rate[m,q] / rate_per_chip[m,d]
  + host      sum_d host_w[d] x installed[d,q]              (CPUs, NICs, switches, fans: always on)
The facility draws PUE times that; energy $ = facility W x seconds in the quarter x $/kWh / 3.6e6
(``silicon.tco.energy_usd``). Every term is linear in the planner's variables, so the MILP
minimises exactly what the plan reports; ``avg_power_mw`` x hours x $/kWh = ``energy_usd``.
"""

from __future__ import annotations

import numpy as np

from ..silicon.tco import energy_usd
from .problem import SECONDS_PER_QUARTER, Problem


def usd_per_watt_quarter(p: Problem) -> float:
    """Dollars one watt of average IT load costs over a quarter (PUE and $/kWh included)."""
    return float(energy_usd(SECONDS_PER_QUARTER, p.pue, p.usd_per_kwh))


def _avg_rate(p: Problem) -> np.ndarray:
    return p.peak_rate / p.peak_to_average[:, None]                                      # (M, Q)


def serving_w(p: Problem) -> np.ndarray:
    """(M, D, Q) average IT watts of serving all of class m's quarter-q demand on device d."""
    avg = _avg_rate(p)
    return avg[:, None, :] * p.tokens_per_rate[:, :, None] * p.energy_j_per_token[:, :, None]


def busy_chips(p: Problem) -> np.ndarray:
    """(M, D, Q) chips of device d busy with all of class m's average quarter-q load."""
    rate = np.where(p.rate_per_chip > 0, p.rate_per_chip, np.inf)
    return _avg_rate(p)[:, None, :] / rate[:, :, None]


def share_cost_usd(p: Problem) -> np.ndarray:
    """(M, D, Q) energy $ of serving all of class m's quarter-q demand on d: its serving power,
    less the idle power its busy chips no longer draw."""
    return (serving_w(p) - p.idle_w[None, :, None] * busy_chips(p)) * usd_per_watt_quarter(p)


def installed_cost_usd(p: Problem) -> np.ndarray:
    """(D,) energy $ per quarter of one installed chip whatever it does (idle and host power)."""
    return (p.idle_w + p.host_w) * usd_per_watt_quarter(p)


def avg_power_w(p: Problem, share: np.ndarray, alive: np.ndarray) -> np.ndarray:
    """(Q,) average IT watts of a plan (``share`` (M, D, Q), ``alive`` (D, Q) installed chips)."""
    serving = (share * serving_w(p)).sum(axis=(0, 1))
    busy = (share * busy_chips(p)).sum(axis=0)                                           # (D, Q)
    idle = (p.idle_w[:, None] * np.maximum(alive - busy, 0.0)).sum(axis=0)
    host = (p.host_w[:, None] * alive).sum(axis=0)
    return serving + idle + host


__all__ = ["usd_per_watt_quarter", "serving_w", "busy_chips", "share_cost_usd", "installed_cost_usd", "avg_power_w"]
