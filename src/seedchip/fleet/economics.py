"""Is our chip worth building? The plan against the GPU-only baseline.

Every plan is solved twice: as scenario'd, and with none of our own chips purchasable (the
GPU-only baseline; an installed base of our chips still serves). Our chip's NRE is a build
decision inside the MILP (``milp._add_build``), so a chip that cannot save its NRE is not built
and the plan equals the baseline.

    asic_savings_usd   baseline total cost - plan total cost (the objective's terms: present
                       value, NRE included)
    payback_quarter    the first quarter from which the plan's cumulative cash spend (capex, NRE
                       and energy, at present value) stays at or below the baseline's to the end
                       of the horizon; null when it never does or nothing is built
    per_device         unit cost, capacity per class and $ per million output tokens within SLO
                       (capex over the lifetime + energy of a chip serving at its derated SLO rate)
"""

from __future__ import annotations

import numpy as np

from .energy import usd_per_watt_quarter
from .problem import SECONDS_PER_QUARTER, Problem


def gpu_only(p: Problem) -> Problem:
    """The baseline: the same problem with none of our own chips purchasable (their NRE and unit
    cost then change nothing, and are zeroed so that equal baselines compare equal)."""
    q = p.copy()
    q.purchasable = p.purchasable & ~p.own
    q.nre_usd = np.where(p.own, 0.0, p.nre_usd)
    q.unit_cost_usd = np.where(p.own, 0.0, p.unit_cost_usd)
    q.unit_cost_extra_usd = np.where(p.own[:, None], 0.0, p.unit_cost_extra_usd)
    q.hbm_usd = np.where(p.own, 0.0, p.hbm_usd)
    q.notes = []
    return q


def fingerprint(p: Problem) -> str:
    """A digest of a problem's numbers: equal problems (a sweep's baselines) are solved once."""
    import hashlib
    import pickle
    return hashlib.sha256(pickle.dumps(p, protocol=4)).hexdigest()


def has_asic_choice(p: Problem) -> bool:
    """Whether any of our own chips can be bought (else the plan is its own baseline)."""
    return bool((p.can_buy & p.own[:, None]).any())


def payback_quarter(p: Problem, plan_q: list[dict], base_q: list[dict]) -> str | None:
    """The first quarter from which cumulative discounted spend stays at or below the baseline's."""
    diff = np.cumsum([(b["spend_usd"] - a["spend_usd"]) * f for a, b, f in zip(plan_q, base_q, p.discount)])
    tol = 1e-9 * max(1.0, float(np.abs(diff).max()) if diff.size else 1.0)
    if not diff.size or diff[-1] < -tol:
        return None
    q = len(diff)
    while q > 0 and diff[q - 1] >= -tol:
        q -= 1
    return p.quarters[q]


def per_device(p: Problem) -> dict:
    """Unit cost, capacity per class and $ per million output tokens within SLO of every device."""
    usd_per_ws = usd_per_watt_quarter(p) / SECONDS_PER_QUARTER
    out = {}
    for d, name in enumerate(p.devices):
        classes = {}
        for m, cls in enumerate(p.demands):
            r = p.rate_per_chip[m, d]
            if r <= 0:
                continue
            tok = r * p.tokens_per_rate[m, d]                     # output tokens/s per chip, derated
            capex_s = p.capex_per_chip[d] / (p.lifetime[d] * SECONDS_PER_QUARTER)
            energy_s = (tok * p.energy_j_per_token[m, d] + p.host_w[d]) * usd_per_ws
            classes[cls] = {"tokens_per_s_per_chip": float(tok),
                            "usd_per_million_tokens": float((capex_s + energy_s) / tok * 1e6),
                            "capacity_sigma": float(p.rate_sigma[m, d])}
        out[name] = {"kind": p.kinds[d], "unit_cost_usd": float(p.unit_cost_usd[d]),
                     "capex_per_chip_usd": float(p.capex_per_chip[d]),
                     "unit_cost_first_quarter_usd": float(p.capex_dq[d, 0] - p.system_cost_usd[d]),
                     "nre_usd": float(p.nre_usd[d]), "hbm_usd_per_chip": float(p.hbm_usd[d]), "classes": classes}
    return out


def economics(p: Problem, plan: dict, base: dict | None, built: dict[str, bool]) -> dict:
    """The plan's economics against its baseline (``base``: the baseline plan's JSON, None when
    no chip of ours can be bought)."""
    nre = float(sum(q["nre_usd"] for q in plan["quarters"]))
    build_asic = any(built.values()) or any(plan["devices"][d]["total_purchased_chips"] > 0
                                             for d, k in zip(p.devices, p.kinds) if k == "own")
    out = {"build_asic": bool(build_asic), "build": dict(built), "nre_usd": nre, "baseline": None,
           "asic_savings_usd": None, "asic_savings_pct": None, "payback_quarter": None, "per_device": per_device(p)}
    if base is None:
        return out
    out["baseline"] = {"status": base["status"], "total_cost_usd": base["total_cost_usd"],
                       "total_capex_usd": base["total_capex_usd"], "total_energy_usd": base["total_energy_usd"],
                       "purchases": {d: v["total_purchased_chips"] for d, v in base["devices"].items()},
                       "quarters": [{"quarter": q["quarter"], "purchases": q["purchases"], "spend_usd": q["spend_usd"]}
                                    for q in base["quarters"]],
                       "unmet_demand": base["unmet_demand"]}
    if "infeasible" not in (plan["status"], base["status"]):
        sav = base["total_cost_usd"] - plan["total_cost_usd"]
        out["asic_savings_usd"] = sav
        out["asic_savings_pct"] = sav / base["total_cost_usd"] * 100 if base["total_cost_usd"] else None
    if build_asic and out["asic_savings_usd"] is not None:
        out["payback_quarter"] = payback_quarter(p, plan["quarters"], base["quarters"])
    return out


__all__ = ["gpu_only", "fingerprint", "has_asic_choice", "payback_quarter", "per_device", "economics"]
