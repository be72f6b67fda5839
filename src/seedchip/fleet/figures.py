"""A solved program as the plan's figures: per-quarter purchases, installed fleet, service,
energy at the planned utilisation (``energy.py``), capex, NRE, depreciation, power and HBM; the
unmet demand, the years and the devices. Pure functions of the problem and a solution vector."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .energy import avg_power_w, usd_per_watt_quarter
from .milp import Model
from .problem import SECONDS_PER_QUARTER, Problem


@dataclass(frozen=True)
class Figures:
    """A solution as per-quarter arrays. D devices, M classes, Q quarters."""
    buys: np.ndarray            # (D, Q) chips delivered
    share: np.ndarray           # (M, D, Q) share of each class's demand served by each pool
    unmet: np.ndarray           # (M, Q) unmet share (incl. what the solver left unassigned)
    alive: np.ndarray           # (D, Q) installed chips
    served_tok: np.ndarray      # (M, Q) average output tokens/s served
    needed: np.ndarray          # (D, Q) chips busy at the peak
    energy_usd: np.ndarray      # (Q,)
    avg_power: np.ndarray       # (Q,) average facility MW at the planned utilisation (x PUE)
    capex: np.ndarray           # (Q,) capex of the chips delivered
    nre: np.ndarray             # (Q,) NRE of the chips built (first quarter)
    built: np.ndarray           # (D,) bool: own chips with an NRE that the plan builds
    dep: np.ndarray             # (Q,) straight-line depreciation of the whole fleet
    power: np.ndarray           # (Q,) facility MW at nameplate x PUE
    hbm_used: np.ndarray        # (Q,) HBM stacks drawn from the supply


def _solution(model: Model, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(buys, share, unmet, built) from a solution vector; a share the solver left unassigned
    (tolerance) counts as unmet."""
    p = model.p
    built = np.zeros(len(p.devices), dtype=bool)
    units = np.zeros((len(p.devices), p.num_quarters))
    share = np.zeros((len(p.demands), len(p.devices), p.num_quarters))
    unmet = np.zeros((len(p.demands), p.num_quarters))
    for j, v in enumerate(model.var):
        if v[0] == "b":
            units[v[1], v[2]] = round(float(x[j]))
        elif v[0] == "s":
            share[v[1], v[2], v[3]] = max(0.0, float(x[j]))
        elif v[0] == "u":
            unmet[v[1], v[2]] = max(0.0, float(x[j]))
        elif v[0] == "z":
            built[v[1]] = round(float(x[j])) == 1
    served_share = share.sum(axis=1)
    demand_mask = p.peak_rate > 0
    unmet = np.where(demand_mask, np.maximum(unmet, 1.0 - served_share), 0.0)
    unmet[unmet < 1e-6] = 0.0
    return units * p.unit_chips[:, None], share, unmet, built


def figures(model: Model, x: np.ndarray) -> Figures:
    """Fleet, service, energy, capex, depreciation, power and HBM per quarter of a solution."""
    p = model.p
    Q, D = p.num_quarters, len(p.devices)
    buys, share, unmet, built = _solution(model, x)
    alive = np.zeros((D, Q))
    for d in range(D):
        for q in range(Q):
            alive[d, q] = p.base_chips[d, q] + sum(buys[d, k] for k in range(q + 1) if q - k < p.lifetime[d])
    avg_rate = p.peak_rate / p.peak_to_average[:, None]
    served_tok = (share * avg_rate[:, None, :] * p.tokens_per_rate[:, :, None]).sum(axis=1)       # (M, Q)
    needed = (share * (p.peak_rate[:, None, :] / np.where(p.rate_per_chip > 0, p.rate_per_chip, np.inf)[:, :, None])).sum(axis=0)
    it_w = avg_power_w(p, share, alive)
    capex = (buys * p.capex_dq).sum(axis=0)
    nre = np.zeros(Q)
    nre[0] = float((p.nre_usd * built).sum())
    dep = p.base_depreciation_usd.sum(axis=0).copy()
    for d in range(D):
        for q in range(Q):
            dep[q] += sum(buys[d, k] * p.capex_dq[d, k] for k in range(q + 1) if q - k < p.lifetime[d]) / p.lifetime[d]
    return Figures(buys=buys, share=share, unmet=unmet, alive=alive, served_tok=served_tok, needed=needed,
                   energy_usd=it_w * usd_per_watt_quarter(p), avg_power=it_w * p.pue / 1e6, capex=capex, nre=nre,
                   built=built, dep=dep,
                    power=(alive * p.power_w[:, None]).sum(axis=0) * p.pue / 1e6,
                    hbm_used=(buys * (p.hbm_stacks * p.draws_hbm)[:, None]).sum(axis=0))


def _quarter(p: Problem, f: Figures, q: int) -> dict:
    """The plan's figures of quarter q (one entry of ``quarters``)."""
    D, M, Q = len(p.devices), len(p.demands), p.num_quarters
    tokens = float(f.served_tok[:, q].sum()) * SECONDS_PER_QUARTER
    alive, buys, share, en = f.alive, f.buys, f.share, f.energy_usd
    avg_tok = p.avg_tokens_per_s
    return {
        "quarter": p.quarters[q],
        "purchases": {p.devices[d]: int(buys[d, q]) for d in range(D)},
        "orders": {p.devices[d]: int(buys[d, q + p.lead_time[d]]) if q + p.lead_time[d] < Q else None
                   for d in range(D)},
        "installed": {p.devices[d]: int(round(alive[d, q])) for d in range(D)},
        "utilization": {p.devices[d]: float(f.needed[d, q] / alive[d, q]) if alive[d, q] > 0 else None
                        for d in range(D)},
        "served_tokens_per_s": {p.demands[m]: float(f.served_tok[m, q]) for m in range(M)},
        "demand_tokens_per_s": {p.demands[m]: float(avg_tok[m, q]) for m in range(M)},
        "share": {p.demands[m]: {p.devices[d]: float(share[m, d, q]) for d in range(D) if share[m, d, q] > 1e-9}
                  for m in range(M)},
        "power_mw": float(f.power[q]),
        "power_limit_mw": float(p.power_mw[q]) if p.power_mw is not None else None,
        "hbm_stacks_used": float(f.hbm_used[q]),
        "hbm_stacks_supply": float(p.hbm_supply[q]) if p.hbm_supply is not None else None,
        "avg_power_mw": float(f.avg_power[q]),
        "capex_usd": float(f.capex[q]),
        "nre_usd": float(f.nre[q]),
        "energy_usd": float(en[q]),
        "spend_usd": float(f.capex[q] + f.nre[q] + en[q]),
        "depreciation_usd": float(f.dep[q]),
        "served_tokens": tokens,
        "cost_per_million_tokens_usd": float((f.dep[q] + en[q]) / tokens * 1e6) if tokens > 0 else None,
    }


def unmet_demand(p: Problem, f: Figures) -> list[dict]:
    avg_tok = p.avg_tokens_per_s
    return [{"demand": p.demands[m], "quarter": p.quarters[q], "unmet_share": float(f.unmet[m, q]),
             "unmet_tokens_per_s": float(f.unmet[m, q] * avg_tok[m, q])}
            for m in range(len(p.demands)) for q in range(p.num_quarters) if f.unmet[m, q] > 0]


def years(p: Problem, f: Figures) -> list[dict]:
    out = []
    for y, label in enumerate(p.years):
        qs = [q for q in range(p.num_quarters) if p.year_of[q] == y]
        out.append({"year": label, "capex_usd": float(f.capex[qs].sum()), "energy_usd": float(f.energy_usd[qs].sum()),
                    "budget_usd": float(p.budget_usd[y]) if p.budget_usd is not None else None})
    return out


def devices_summary(p: Problem, buys: np.ndarray) -> dict:
    out = {}
    for d, name in enumerate(p.devices):
        out[name] = {"kind": p.kinds[d], "chip": p.chips[d], "unit_cost_usd": float(p.unit_cost_usd[d]),
                     "unit_cost_source": p.unit_cost_source[d], "capex_per_chip_usd": float(p.capex_per_chip[d]),
                     "power_w_per_chip": float(p.power_w[d]), "hbm_stacks_per_chip": float(p.hbm_stacks[d]),
                     "draws_hbm_supply": bool(p.draws_hbm[d]), "purchase_unit_chips": int(p.unit_chips[d]),
                     "lifetime_quarters": int(p.lifetime[d]), "lead_time_quarters": int(p.lead_time[d]),
                     "first_delivery": (p.quarters[int(np.argmax(p.can_buy[d]))] if p.can_buy[d].any() else None),
                     "total_purchased_chips": int(buys[d].sum())}
    return out


def quarters(p: Problem, f: Figures) -> list[dict]:
    """The plan's ``quarters``: one entry per quarter."""
    return [_quarter(p, f, q) for q in range(p.num_quarters)]


__all__ = ["Figures", "figures", "quarters", "unmet_demand", "years", "devices_summary"]
