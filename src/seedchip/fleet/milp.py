"""The procurement program (SciPy ``milp``, i.e. HiGHS) and its LP relaxation (``linprog``
with HiGHS, for shadow prices).

Variables
    b[d, q]     integer >= 0   purchase units of device d delivered in quarter q (only where it can be bought)
    z[d]        in {0, 1}      build our chip d (own chips with an NRE only): its NRE is paid once
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
    budget[y]      capex delivered in year y <= budget (NRE is programme spend, outside it)
    build[d, q]    unit_chips * b[d,q] <= (cap or the most chips the demand could use) * z[d]
    demand[m, q]   sum_d s[m,d,q] (+ u[m,q]) == 1                              (equality)

Objective (US$, scaled to $M inside): capex (cash: when delivered; depreciation: the
straight-line share inside the horizon) + NRE of the chips built (in the first quarter) + energy
at the planned utilisation (``energy.py``: serving, idle and host power x PUE x $/kWh; the
installed base's idle and host energy is the constant ``c0``), each quarter's cost weighed by
(1 + discount_rate_per_year)^(-q/4).

``build_model`` adds each family of variables and rows with one function (``_add_purchases``,
``_add_shares``, ``_add_unmet``, ``_add_pool_rows``, ``_add_production_cap_rows``,
``_add_hbm_rows``, ``_add_power_rows``, ``_add_budget_rows``, ``_add_violations``,
``_demand_rows``), each documented with what it adds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from scipy import sparse
from scipy.optimize import Bounds, LinearConstraint, linprog, milp

from ..errors import SpecError
from .energy import installed_cost_usd, share_cost_usd
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
    c0: float = 0.0                           # $M: cost no decision changes (the installed base's idle and host energy)


def base_energy_usd(p: Problem) -> float:
    """Present value of the installed base's idle and host energy (no decision changes it)."""
    return float((p.base_chips * installed_cost_usd(p)[:, None] * p.discount[None, :]).sum())


class _Builder:
    """The program being built: its variables (bounds, integrality, cost in $M) and its ``<=``
    rows as COO triplets. Variables are added before the rows that use them."""

    def __init__(self, p: Problem):
        self.p = p
        self.var: list[tuple] = []
        self.index: dict = {}
        self.lb: list[float] = []
        self.ub: list[float] = []
        self.integ: list[int] = []
        self.cost: list[float] = []
        self.rows: list[Row] = []
        self.data: list[float] = []
        self.ri: list[int] = []
        self.ci: list[int] = []

    def add_var(self, v: tuple, lb: float, ub: float, integer: bool, cost: float) -> int:
        j = len(self.var)
        self.var.append(v)
        self.index[v] = j
        self.lb.append(lb)
        self.ub.append(ub)
        self.integ.append(1 if integer else 0)
        self.cost.append(cost)
        return j

    def add_row(self, row: Row, coefs: dict[int, float]) -> None:
        r = len(self.rows)
        self.rows.append(row)
        for j, a in coefs.items():
            if a != 0:
                self.ri.append(r)
                self.ci.append(j)
                self.data.append(a)

    def alive_buys(self, d: int, q: int):
        """Purchase variables of device d still within their lifetime in quarter q."""
        for k in range(q + 1):
            if q - k < self.p.lifetime[d] and ("b", d, k) in self.index:
                yield self.index[("b", d, k)]


# ---- variables ------------------------------------------------------------------------------
def _add_purchases(b: _Builder) -> None:
    """b[d, q]: integer purchase units delivered in q, wherever the device can be bought; cost:
    the units' capex at present value (cash: when delivered; depreciation: the straight-line
    share of the quarters inside the horizon), and the idle and host energy of the units in
    every quarter they are installed."""
    p = b.p
    Q, D = p.num_quarters, len(p.devices)
    can = p.can_buy
    capex = p.capex_dq * p.unit_chips[:, None]                                              # $ per purchase unit
    always = installed_cost_usd(p) * p.unit_chips                                            # $ per unit-quarter
    disc = p.discount
    for d in range(D):
        for q in range(Q):
            if can[d, q]:
                alive = sum(disc[k] for k in range(q, min(Q, q + p.lifetime[d])))
                pv = disc[q] if p.objective == "cash" else alive / p.lifetime[d]
                b.add_var(("b", d, q), 0.0, np.inf, True, (capex[d, q] * pv + always[d] * alive) / SCALE)


def _add_build(b: _Builder) -> None:
    """z[d] in {0, 1} for each own chip with an NRE that can be bought (held at ``p.fixed_build[d]``
    when given); cost: the NRE in the first quarter. Rows build[d, q]: no purchase of d unless it is built (the bound is the production
    cap, or the most chips the whole demand could keep busy on d)."""
    p = b.p
    for d in range(len(p.devices)):
        buys = [(q, b.index[("b", d, q)]) for q in range(p.num_quarters) if ("b", d, q) in b.index]
        if not (p.own[d] and p.nre_usd[d] > 0 and buys):
            continue
        lo, hi = (float(p.fixed_build[d]),) * 2 if d in p.fixed_build else (0.0, 1.0)
        j = b.add_var(("z", d), lo, hi, True, p.nre_usd[d] * p.discount[0] / SCALE)
        rate = p.rate_per_chip[:, d]
        need = (p.peak_rate[rate > 0] / rate[rate > 0][:, None]).sum(axis=0).max() if (rate > 0).any() else 0.0
        for q, jb in buys:
            cap = p.cap_chips[d, q] if np.isfinite(p.cap_chips[d, q]) else need + p.unit_chips[d]
            b.add_row(Row("build", q, d, rhs=0.0), {jb: p.unit_chips[d], j: -float(cap)})


def _add_shares(b: _Builder) -> None:
    """s[m, d, q] in [0, 1]: share of class m's quarter-q demand served by device d (where d has a
    capacity for m and there is demand); cost: the energy of serving it, at present value."""
    p = b.p
    Q, D, M = p.num_quarters, len(p.devices), len(p.demands)
    energy = share_cost_usd(p)
    disc = p.discount
    for m in range(M):
        for d in range(D):
            if p.rate_per_chip[m, d] <= 0:
                continue
            for q in range(Q):
                if p.peak_rate[m, q] > 0:
                    b.add_var(("s", m, d, q), 0.0, 1.0, False, energy[m, d, q] * disc[q] / SCALE)


def _add_unmet(b: _Builder) -> None:
    """u[m, q] in [0, 1]: unmet share of class m in quarter q (elastic demand only); no cost here,
    priced in ``c_unmet`` and ``c_penalty``."""
    p = b.p
    for m in range(len(p.demands)):
        for q in range(p.num_quarters):
            if p.peak_rate[m, q] > 0:
                b.add_var(("u", m, q), 0.0, 1.0, False, 0.0)


# ---- <= rows --------------------------------------------------------------------------------
def _add_pool_rows(b: _Builder) -> None:
    """pool[d, q]: sum_m peak[m,q] / rate[m,d] * s[m,d,q] - unit_chips * (purchases alive in q)
    <= installed base of d alive in q (a device serving nothing in q has no row)."""
    p = b.p
    for d in range(len(p.devices)):
        for q in range(p.num_quarters):
            coefs = {}
            for m in range(len(p.demands)):
                j = b.index.get(("s", m, d, q))
                if j is not None:
                    coefs[j] = p.peak_rate[m, q] / p.rate_per_chip[m, d]
            if not coefs:
                continue
            for j in b.alive_buys(d, q):
                coefs[j] = coefs.get(j, 0.0) - p.unit_chips[d]
            b.add_row(Row("pool", q, d, rhs=float(p.base_chips[d, q])), coefs)


def _add_production_cap_rows(b: _Builder) -> None:
    """prod_cap[d, q]: unit_chips * b[d,q] <= production cap of d in q (chips), where finite."""
    p = b.p
    for d in range(len(p.devices)):
        finite = p.cap_chips[d][np.isfinite(p.cap_chips[d]) & (p.cap_chips[d] > 0)]
        typical = float(finite.mean()) if finite.size else 1.0
        for q in range(p.num_quarters):
            j = b.index.get(("b", d, q))
            if j is not None and math.isfinite(p.cap_chips[d, q]):
                b.add_row(Row("prod_cap", q, d, rhs=float(p.cap_chips[d, q]),
                              scale=max(float(p.cap_chips[d, q]), typical, 1.0)), {j: p.unit_chips[d]})


def _add_hbm_rows(b: _Builder) -> None:
    """hbm_supply[q]: sum_d stacks_per_chip * unit_chips * b[d,q] <= HBM stacks supplied in q
    (with carry_over: cumulative purchases <= cumulative supply); devices that draw on the supply only."""
    p = b.p
    if p.hbm_supply is None:
        return
    D = len(p.devices)
    per_unit = p.hbm_stacks * p.unit_chips * p.draws_hbm
    typical = max(float(p.hbm_supply.mean()), 1.0)
    for q in range(p.num_quarters):
        ks = range(q + 1) if p.hbm_carry_over else (q,)
        coefs = {b.index[("b", d, k)]: per_unit[d] for d in range(D) for k in ks
                 if per_unit[d] > 0 and ("b", d, k) in b.index}
        rhs = float(p.hbm_supply[: q + 1].sum() if p.hbm_carry_over else p.hbm_supply[q])
        if coefs:
            b.add_row(Row("hbm_supply", q, rhs=rhs, scale=max(rhs, typical)), coefs)


def _add_power_rows(b: _Builder, clamp_power: bool) -> None:
    """power[q]: MW (nameplate x PUE) of the purchases alive in q <= MW available minus what the
    installed base draws; with clamp_power a negative right-hand side (the base alone breaks the
    limit) becomes 0: no new chips instead of an infeasible program."""
    p = b.p
    if p.power_mw is None:
        return
    mw_per_chip = p.power_w * p.pue / 1e6
    typical = max(float(p.power_mw.mean()), 1e-3)
    for q in range(p.num_quarters):
        coefs = {}
        for d in range(len(p.devices)):
            for j in b.alive_buys(d, q):
                coefs[j] = mw_per_chip[d] * p.unit_chips[d]
        rhs = float(p.power_mw[q] - (mw_per_chip * p.base_chips[:, q]).sum())
        if clamp_power:
            rhs = max(rhs, 0.0)
        b.add_row(Row("power", q, rhs=rhs, scale=max(float(p.power_mw[q]), typical)), coefs)


def _add_budget_rows(b: _Builder) -> None:
    """budget[y]: capex ($M) of the purchases delivered in year y <= the year's budget ($M)."""
    p = b.p
    if p.budget_usd is None:
        return
    Q, D = p.num_quarters, len(p.devices)
    capex = p.capex_dq * p.unit_chips[:, None]                                              # $ per purchase unit
    typical = max(float(p.budget_usd.mean()) / SCALE, 1e-6)
    for y in range(len(p.years)):
        coefs = {b.index[("b", d, q)]: capex[d, q] / SCALE for d in range(D) for q in range(Q)
                 if p.year_of[q] == y and ("b", d, q) in b.index}
        if coefs:
            rhs = float(p.budget_usd[y]) / SCALE
            b.add_row(Row("budget", year=y, rhs=rhs, scale=max(rhs, typical)), coefs)


def _add_violations(b: _Builder) -> None:
    """e[k] >= 0 per resource row k, entering the row with -1: the row may be exceeded by e[k]
    (the explanation of an infeasible plan); priced in ``c_viol``."""
    for r, row in enumerate(b.rows):
        if row.kind in RESOURCE_KINDS:
            j = b.add_var(("e", r), 0.0, np.inf, False, 0.0)
            b.ri.append(r)
            b.ci.append(j)
            b.data.append(-1.0)


# ---- objectives and the equality rows -------------------------------------------------------
def _elastic_costs(b: _Builder) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(c_unmet, c_viol, c_penalty): billion output tokens left unmet; relative violation of each
    resource row (1 / its typical size); unmet demand in $M at PENALTY x the dearest capacity that
    could serve it, so any plan that can serve a token does so before leaving it unmet."""
    p = b.p
    n = len(b.var)
    c_viol = np.zeros(n)
    c_unmet = np.zeros(n)
    c_penalty = np.zeros(n)
    dear = np.zeros(len(p.demands))
    for m in range(len(p.demands)):
        ok = p.rate_per_chip[m] > 0
        dear[m] = float((p.capex_per_chip[ok] / p.rate_per_chip[m, ok]).max()) if ok.any() else 1.0
    avg_tokens = p.avg_tokens_per_s
    for j, v in enumerate(b.var):
        if v[0] == "e":
            c_viol[j] = 1.0 / b.rows[v[1]].scale
        elif v[0] == "u":
            c_unmet[j] = avg_tokens[v[1], v[2]] * SECONDS_PER_QUARTER / 1e9
            c_penalty[j] = PENALTY * dear[v[1]] * p.peak_rate[v[1], v[2]] / SCALE
    return c_unmet, c_viol, c_penalty


def _demand_rows(b: _Builder) -> tuple[sparse.csr_matrix, np.ndarray, list[Row]]:
    """demand[m, q] (equality): sum_d s[m,d,q] (+ u[m,q]) == 1 for every class and quarter with demand."""
    p = b.p
    index, n = b.index, len(b.var)
    eq_rows: list[Row] = []
    data, ri, ci = [], [], []
    for m in range(len(p.demands)):
        for q in range(p.num_quarters):
            if p.peak_rate[m, q] <= 0:
                continue
            js = [index[("s", m, d, q)] for d in range(len(p.devices)) if ("s", m, d, q) in index]
            if ("u", m, q) in index:
                js.append(index[("u", m, q)])
            r = len(eq_rows)
            eq_rows.append(Row("demand", q, demand=m, rhs=1.0))
            for j in js:
                ri.append(r)
                ci.append(j)
                data.append(1.0)
    A_eq = sparse.csr_matrix((data, (ri, ci)), shape=(len(eq_rows), n))
    return A_eq, np.ones(len(eq_rows)), eq_rows


def build_model(p: Problem, *, elastic_demand: bool = False, elastic_resources: bool = False,
                clamp_power: bool = False) -> Model:
    """The program. elastic_demand: unmet-share variables (priced in ``c_unmet`` and ``c_penalty``);
    elastic_resources: a violation variable per resource row (priced in ``c_viol``); clamp_power: a
    power row the installed base alone breaks allows no new chips instead of being infeasible."""
    b = _Builder(p)
    _add_purchases(b)
    _add_build(b)
    _add_shares(b)
    if elastic_demand:
        _add_unmet(b)
    _add_pool_rows(b)
    _add_production_cap_rows(b)
    _add_hbm_rows(b)
    _add_power_rows(b, clamp_power)
    _add_budget_rows(b)
    if elastic_resources:
        _add_violations(b)
    c_unmet, c_viol, c_penalty = _elastic_costs(b)
    n = len(b.var)
    A_ub = sparse.csr_matrix((b.data, (b.ri, b.ci)), shape=(len(b.rows), n))
    b_ub = np.array([r.rhs for r in b.rows])
    A_eq, b_eq, eq_rows = _demand_rows(b)
    return Model(p, b.var, b.index, np.array(b.lb), np.array(b.ub), np.array(b.integ), np.array(b.cost), c_unmet,
                 c_viol, c_penalty, A_ub, b_ub, b.rows, A_eq, b_eq, eq_rows, c0=base_energy_usd(p) / SCALE)


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
    if not (np.all(np.isfinite(c)) and np.all(np.isfinite(b))):
        raise SpecError("the scenario's costs or limits overflow the solver's arithmetic: check it for a value off "
                        "by many orders of magnitude (a price, an energy price, a demand)")
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
