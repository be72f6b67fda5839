"""The procurement program (SciPy ``milp``, i.e. HiGHS) and its LP relaxation (``linprog``
with HiGHS, for shadow prices).

Variables
    b[d, q]     integer >= 0   purchase units of device d delivered in quarter q (only where it can be bought)
    s[m, d, q]  in [0, 1]      share of class m's demand in quarter q served by device d's pool
    u[m, q]     in [0, 1]      unmet share (only in the solves of an infeasible plan)
    e[k]        >= 0           violation of resource row k (only in the explanation of an infeasible plan)

Rows (each ``<=`` unless said)
    pool[d, q]     sum_m peak[m,q] / rate[m,d] * s[m,d,q]  <=  installed chips of d in q
                   (base alive in q + unit_chips * purchases still within their lifetime)
    prod_cap[d, q] unit_chips * b[d,q] <= production cap (chips)
    hbm[q]         sum_d stacks_per_chip * unit_chips * b[d,q] <= HBM stacks supplied in q
                   (with carry_over: cumulative purchases <= cumulative supply)
    power[q]       facility MW of the installed fleet at nameplate x PUE <= MW available
    budget[y]      capex delivered in year y <= budget
    demand[m, q]   sum_d s[m,d,q] (+ u[m,q]) == 1                              (equality)

Objective (US$, scaled to $M inside): capex (cash: when delivered; depreciation: the
straight-line share inside the horizon) + energy (served tokens x J/token x PUE x $/kWh),
each quarter's cost weighed by (1 + discount_rate_per_year)^(-q/4).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from scipy import sparse
from scipy.optimize import Bounds, LinearConstraint, linprog, milp

from .problem import SECONDS_PER_QUARTER, Problem

SCALE = 1e6               # objective in $M
PENALTY = 10.0            # unmet demand costs 10x buying the dearest capacity for it
RESOURCE_KINDS = ("prod_cap", "hbm_supply", "power", "budget")
SHADOW_UNITS = {"prod_cap": "$ per chip of production", "hbm_supply": "$ per HBM stack", "power": "$ per MW",
                "budget": "$ per $ of budget", "pool": "$ per installed chip"}


@dataclass
class Row:
    kind: str
    quarter: int | None = None
    device: int | None = None
    year: int | None = None
    demand: int | None = None
    rhs: float = 0.0
    scale: float = 1.0      # a typical size of the limit (relative violations in the elastic solve)


@dataclass
class Model:
    p: Problem
    var: list[tuple]                          # ("b", d, q) | ("s", m, d, q) | ("u", m, q) | ("e", row)
    index: dict
    lb: np.ndarray
    ub: np.ndarray
    integrality: np.ndarray
    c_cost: np.ndarray                        # $M
    c_unmet: np.ndarray                       # billion output tokens not served
    c_viol: np.ndarray                        # relative violation of resource rows
    c_penalty: np.ndarray                     # $M: unmet demand at PENALTY x the dearest capacity
    A_ub: sparse.csr_matrix
    b_ub: np.ndarray
    rows: list[Row]
    A_eq: sparse.csr_matrix
    b_eq: np.ndarray
    eq_rows: list[Row]
    extra: list[tuple[np.ndarray, float]] = field(default_factory=list)   # lexicographic caps


def _energy_usd_per_share(p: Problem) -> np.ndarray:
    """(M, D, Q): energy $ of serving all of class m's quarter-q demand on device d."""
    avg = p.peak_rate / p.peak_to_average[:, None]                                        # (M, Q)
    tokens = avg[:, None, :] * p.tokens_per_rate[:, :, None] * SECONDS_PER_QUARTER       # (M, D, Q)
    return tokens * p.energy_j_per_token[:, :, None] * p.pue * p.usd_per_kwh / 3.6e6


def build_model(p: Problem, *, elastic_demand: bool = False, elastic_resources: bool = False,
                clamp_power: bool = False) -> Model:
    """The program. elastic_demand: unmet-share variables (priced in ``c_unmet`` and ``c_penalty``);
    elastic_resources: a violation variable per resource row (priced in ``c_viol``); clamp_power: a
    power row the installed base alone breaks allows no new chips instead of being infeasible."""
    Q, D, M = p.num_quarters, len(p.devices), len(p.demands)
    can = p.can_buy
    var: list[tuple] = []
    lb, ub, integ, cost = [], [], [], []
    capex = p.capex_per_chip * p.unit_chips                                                 # $ per purchase unit
    disc = p.discount
    for d in range(D):
        for q in range(Q):
            if can[d, q]:
                var.append(("b", d, q))
                lb.append(0.0)
                ub.append(np.inf)
                integ.append(1)
                if p.objective == "cash":
                    pv = disc[q]
                else:      # straight-line depreciation of the quarters inside the horizon
                    pv = sum(disc[k] for k in range(q, min(Q, q + p.lifetime[d]))) / p.lifetime[d]
                cost.append(capex[d] * pv / SCALE)
    energy = _energy_usd_per_share(p)
    for m in range(M):
        for d in range(D):
            if p.rate_per_chip[m, d] <= 0:
                continue
            for q in range(Q):
                if p.peak_rate[m, q] > 0:
                    var.append(("s", m, d, q))
                    lb.append(0.0)
                    ub.append(1.0)
                    integ.append(0)
                    cost.append(energy[m, d, q] * disc[q] / SCALE)
    avg_tokens = p.avg_tokens_per_s
    if elastic_demand:
        for m in range(M):
            for q in range(Q):
                if p.peak_rate[m, q] > 0:
                    var.append(("u", m, q))
                    lb.append(0.0)
                    ub.append(1.0)
                    integ.append(0)
                    cost.append(0.0)
    index = {v: i for i, v in enumerate(var)}

    rows: list[Row] = []
    data, ri, ci = [], [], []

    def add_row(row: Row, coefs: dict[int, float]) -> None:
        r = len(rows)
        rows.append(row)
        for j, a in coefs.items():
            if a != 0:
                ri.append(r)
                ci.append(j)
                data.append(a)

    def alive_buys(d: int, q: int):
        for k in range(q + 1):
            if q - k < p.lifetime[d] and ("b", d, k) in index:
                yield index[("b", d, k)]

    for d in range(D):
        for q in range(Q):
            coefs = {}
            for m in range(M):
                j = index.get(("s", m, d, q))
                if j is not None:
                    coefs[j] = p.peak_rate[m, q] / p.rate_per_chip[m, d]
            if not coefs:
                continue
            for j in alive_buys(d, q):
                coefs[j] = coefs.get(j, 0.0) - p.unit_chips[d]
            add_row(Row("pool", q, d, rhs=float(p.base_chips[d, q])), coefs)
    for d in range(D):
        finite = p.cap_chips[d][np.isfinite(p.cap_chips[d]) & (p.cap_chips[d] > 0)]
        typical = float(finite.mean()) if finite.size else 1.0
        for q in range(Q):
            j = index.get(("b", d, q))
            if j is not None and math.isfinite(p.cap_chips[d, q]):
                add_row(Row("prod_cap", q, d, rhs=float(p.cap_chips[d, q]),
                            scale=max(float(p.cap_chips[d, q]), typical, 1.0)), {j: p.unit_chips[d]})
    if p.hbm_supply is not None:
        per_unit = p.hbm_stacks * p.unit_chips * p.draws_hbm
        typical = max(float(p.hbm_supply.mean()), 1.0)
        for q in range(Q):
            ks = range(q + 1) if p.hbm_carry_over else (q,)
            coefs = {index[("b", d, k)]: per_unit[d] for d in range(D) for k in ks
                     if per_unit[d] > 0 and ("b", d, k) in index}
            rhs = float(p.hbm_supply[: q + 1].sum() if p.hbm_carry_over else p.hbm_supply[q])
            if coefs:
                add_row(Row("hbm_supply", q, rhs=rhs, scale=max(rhs, typical)), coefs)
    if p.power_mw is not None:
        mw_per_chip = p.power_w * p.pue / 1e6
        typical = max(float(p.power_mw.mean()), 1e-3)
        for q in range(Q):
            coefs = {}
            for d in range(D):
                for j in alive_buys(d, q):
                    coefs[j] = mw_per_chip[d] * p.unit_chips[d]
            rhs = float(p.power_mw[q] - (mw_per_chip * p.base_chips[:, q]).sum())
            if clamp_power:
                rhs = max(rhs, 0.0)
            add_row(Row("power", q, rhs=rhs, scale=max(float(p.power_mw[q]), typical)), coefs)
    if p.budget_usd is not None:
        typical = max(float(p.budget_usd.mean()) / SCALE, 1e-6)
        for y in range(len(p.years)):
            coefs = {index[("b", d, q)]: capex[d] / SCALE for d in range(D) for q in range(Q)
                     if p.year_of[q] == y and ("b", d, q) in index}
            if coefs:
                rhs = float(p.budget_usd[y]) / SCALE
                add_row(Row("budget", year=y, rhs=rhs, scale=max(rhs, typical)), coefs)

    if elastic_resources:
        for r, row in enumerate(rows):
            if row.kind in RESOURCE_KINDS:
                j = len(var)
                var.append(("e", r))
                index[("e", r)] = j
                lb.append(0.0)
                ub.append(np.inf)
                integ.append(0)
                cost.append(0.0)
                ri.append(r)
                ci.append(j)
                data.append(-1.0)
    n = len(var)
    c_viol = np.zeros(n)
    c_unmet = np.zeros(n)
    c_penalty = np.zeros(n)
    # unmet demand is priced at PENALTY x the dearest capacity that could serve it: any plan that
    # can serve a token does so before leaving it unmet
    dear = np.zeros(M)
    for m in range(M):
        ok = p.rate_per_chip[m] > 0
        dear[m] = float((p.capex_per_chip[ok] / p.rate_per_chip[m, ok]).max()) if ok.any() else 1.0
    for j, v in enumerate(var):
        if v[0] == "e":
            c_viol[j] = 1.0 / rows[v[1]].scale
        elif v[0] == "u":
            c_unmet[j] = avg_tokens[v[1], v[2]] * SECONDS_PER_QUARTER / 1e9
            c_penalty[j] = PENALTY * dear[v[1]] * p.peak_rate[v[1], v[2]] / SCALE
    A_ub = sparse.csr_matrix((data, (ri, ci)), shape=(len(rows), n))
    b_ub = np.array([r.rhs for r in rows])

    eq_rows: list[Row] = []
    data, ri, ci = [], [], []
    for m in range(M):
        for q in range(Q):
            if p.peak_rate[m, q] <= 0:
                continue
            js = [index[("s", m, d, q)] for d in range(D) if ("s", m, d, q) in index]
            if ("u", m, q) in index:
                js.append(index[("u", m, q)])
            r = len(eq_rows)
            eq_rows.append(Row("demand", q, demand=m, rhs=1.0))
            for j in js:
                ri.append(r)
                ci.append(j)
                data.append(1.0)
    A_eq = sparse.csr_matrix((data, (ri, ci)), shape=(len(eq_rows), n))
    b_eq = np.ones(len(eq_rows))
    return Model(p, var, index, np.array(lb), np.array(ub), np.array(integ), np.array(cost), c_unmet, c_viol,
                 c_penalty, A_ub, b_ub, rows, A_eq, b_eq, eq_rows)


@dataclass
class Solution:
    status: str                 # optimal | time_limit | infeasible | error
    x: np.ndarray | None
    objective: float | None
    message: str
    mip_gap: float | None = None


def _stacked_ub(model: Model):
    A, b = model.A_ub, model.b_ub
    if model.extra:
        A = sparse.vstack([A] + [sparse.csr_matrix(c[None, :]) for c, _ in model.extra]).tocsr()
        b = np.concatenate([b, [v for _, v in model.extra]])
    return A, b


def solve_milp(model: Model, c: np.ndarray, *, integral: bool = True) -> Solution:
    p = model.p
    A, b = _stacked_ub(model)
    cons = []
    if A.shape[0]:
        cons.append(LinearConstraint(A, -np.inf, b))
    if model.A_eq.shape[0]:
        cons.append(LinearConstraint(model.A_eq, model.b_eq, model.b_eq))
    if not len(c):
        return Solution("optimal", np.zeros(0), 0.0, "empty program")
    res = milp(c, constraints=cons, integrality=model.integrality if integral else None,
               bounds=Bounds(model.lb, model.ub),
               options={"time_limit": p.time_limit_s, "mip_rel_gap": p.mip_rel_gap, "presolve": True})
    gap = getattr(res, "mip_gap", None)
    if res.status == 0:
        return Solution("optimal", res.x, float(res.fun), res.message, gap)
    if res.status == 1 and res.x is not None:
        return Solution("time_limit", res.x, float(res.fun), res.message, gap)
    if res.status == 2:
        return Solution("infeasible", None, None, res.message)
    return Solution("error", None, None, f"HiGHS: {res.message}")


def solve_lexicographic(model: Model, objectives: list[np.ndarray], *, integral: bool = True) -> Solution:
    """Minimise each objective in turn, holding the earlier ones at their optimum."""
    sol = None
    for k, c in enumerate(objectives):
        sol = solve_milp(model, c, integral=integral)
        if sol.x is None:
            return sol
        if k < len(objectives) - 1:
            val = float(c @ sol.x)
            model.extra.append((c.copy(), val * (1 + 1e-7) + 1e-7))
    return sol


def lp_duals(model: Model, c: np.ndarray) -> tuple[np.ndarray | None, float | None]:
    """Marginals of the ``<=`` rows in the LP relaxation ($M per unit of the row's limit), and its optimum."""
    A, b = _stacked_ub(model)
    res = linprog(c, A_ub=A if A.shape[0] else None, b_ub=b if A.shape[0] else None,
                  A_eq=model.A_eq if model.A_eq.shape[0] else None, b_eq=model.b_eq if model.A_eq.shape[0] else None,
                  bounds=list(zip(model.lb, [None if not np.isfinite(u) else u for u in model.ub])), method="highs")
    if res.status != 0:
        return None, None
    return np.asarray(res.ineqlin.marginals)[: model.A_ub.shape[0]], float(res.fun)
