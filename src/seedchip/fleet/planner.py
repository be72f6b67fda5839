"""plan(scenario) -> PlanResult: the public function behind ``seedchip plan``.

1. The scenario is validated (``scenario.py``) and every device x demand class gets its SLO
   capacity (``capacity.py``: override, on-disk cache, or a ``seedchip.capacity`` run).
2. The MILP (``milp.py``) buys whole purchase units per quarter and shares each class's demand
   among the device pools, at the least total cost. Shadow prices come from its LP relaxation;
   the solution becomes the plan's per-quarter figures in ``figures.py``.
3. When it is infeasible: an elastic LP (every resource limit may be exceeded, each relative unit
   of violation priced alike) says which limit makes it so and by how much (in fractional
   purchases: within one purchase unit of the integer answer); then the best plan within the
   limits is solved with unmet demand allowed at a penalty of 10x the dearest capacity that could
   serve it (so it is left unmet only when nothing can serve it), and reported with its unmet demand.
   Its shadow prices value unmet demand at that penalty.
4. What-ifs re-solve a changed copy and report the difference to the base plan.
"""

from __future__ import annotations

import copy
import itertools
import math
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

import numpy as np

from ..errors import BackendError, SpecError
from ..parallel import check_options, open_backend
from .capacity import resolve_capacities
from .figures import devices_summary, figures, quarters, unmet_demand, years
from .milp import (RESOURCE_KINDS, SCALE, SHADOW_UNITS, Model, Solution, build_model, lp_duals, solve_lexicographic,
                   solve_milp)
from .problem import SECONDS_PER_QUARTER, Problem, build_problem, unservable
from .report import write_outputs
from .resolve import load_scenario, parse_scenario
from .scenario import Scenario
from .economics import economics, fingerprint, gpu_only, has_asic_choice
from .schedule import respin_taken, z
from .sweep import parse_sweep, run_sweep
from .whatif import apply_what_ifs

TIGHT_REL = 1e-7


@dataclass(frozen=True)
class Infeasibility:
    """Why a plan is infeasible: the limits an elastic LP had to exceed (``violations``) and the
    demand nothing installed or deliverable in time can serve (``not_deliverable``)."""
    explanation: str
    violations: list[dict]
    not_deliverable: list[dict]

    def to_dict(self) -> dict:
        return {"explanation": self.explanation, "violations": copy.deepcopy(self.violations),
                "not_deliverable": copy.deepcopy(self.not_deliverable)}


@dataclass(frozen=True)
class WhatIf:
    """The changes a what-if applied (``{"what_if", "applied"}`` each) and the difference to the base plan."""
    changes: list[dict]
    diff: dict

    def to_dict(self) -> dict:
        return {"changes": copy.deepcopy(self.changes), "diff": copy.deepcopy(self.diff)}


@dataclass(frozen=True)
class PlanResult:
    """A solved plan. The fields up to ``what_if`` are the plan's JSON (``to_dict()``, in that
    order); ``problem``, ``solve_s``, ``base`` (the plan before the what-ifs) and ``outputs`` (files
    written by out=DIR) are not in it. Frozen: a what-if or written outputs make a new result
    (``dataclasses.replace``)."""
    scenario: str
    status: str                         # optimal | time_limit | infeasible
    objective: str
    discount_rate_per_year: float
    total_cost_usd: float | None
    total_capex_usd: float
    total_energy_usd: float
    usd_per_kwh: float
    lp_relaxation_cost_usd: float | None
    mip_gap: float | None
    quarters: list[dict]
    years: list[dict]
    binding_constraints: list[dict]
    unmet_demand: list[dict]
    infeasibility: Infeasibility | None
    devices: dict
    capacity: list[dict]
    inputs: dict
    notes: list[str]
    economics: dict = field(default_factory=dict)     # build_asic ... per_device (economics.py), after mip_gap
    confidence: dict | None = None
    what_if: WhatIf | None = None
    sweep: dict | None = None
    problem: Problem | None = field(default=None, repr=False, compare=False)
    solve_s: float = field(default=0.0, compare=False)
    base: "PlanResult | None" = field(default=None, repr=False, compare=False)
    outputs: dict = field(default_factory=dict, compare=False)

    def to_dict(self) -> dict:
        """The plan's JSON (what ``seedchip plan --json`` prints)."""
        d = {"scenario": self.scenario, "status": self.status, "objective": self.objective,
             "discount_rate_per_year": self.discount_rate_per_year, "total_cost_usd": self.total_cost_usd,
             "total_capex_usd": self.total_capex_usd, "total_energy_usd": self.total_energy_usd,
             "usd_per_kwh": self.usd_per_kwh,
             "lp_relaxation_cost_usd": self.lp_relaxation_cost_usd, "mip_gap": self.mip_gap}
        d.update(copy.deepcopy(self.economics))
        d["confidence"] = copy.deepcopy(self.confidence)
        d.update(copy.deepcopy({"quarters": self.quarters, "years": self.years,
                                "binding_constraints": self.binding_constraints, "unmet_demand": self.unmet_demand}))
        d["infeasibility"] = self.infeasibility.to_dict() if self.infeasibility is not None else None
        d.update(copy.deepcopy({"devices": self.devices, "capacity": self.capacity, "inputs": self.inputs,
                                "notes": self.notes}))
        d["what_if"] = self.what_if.to_dict() if self.what_if is not None else None
        d["sweep"] = copy.deepcopy(self.sweep)
        return d


# ---------------------------------------------------------------------------------------------
def _row_name(p: Problem, row) -> str:
    if row.kind == "budget":
        return f"budget[{p.years[row.year]}]"
    if row.kind in ("prod_cap", "pool"):
        return f"{row.kind}[{p.devices[row.device]}, {p.quarters[row.quarter]}]"
    return f"{row.kind}[{p.quarters[row.quarter]}]"


def _row_used(model: Model, r: int, x: np.ndarray, row) -> tuple[float, float]:
    """(used, limit) of a resource row in the row's natural units, base fleet included for power."""
    ax = float((model.A_ub[r] @ x)[0])
    j = model.index.get(("e", r))
    if j is not None:          # the elastic variable enters with -1: add it back
        ax += float(x[j])
    limit = row.rhs
    if row.kind == "power":
        p = model.p
        base = float((p.power_w * p.pue / 1e6 * p.base_chips[:, row.quarter]).sum())
        return ax + base, limit + base
    if row.kind == "budget":
        return ax * SCALE, limit * SCALE
    return ax, limit


def _granularity(model: Model, r: int) -> float:
    """The largest step one purchase unit makes in the row (a row within it is binding)."""
    row = model.A_ub[r]
    ints = model.integrality[row.indices] == 1
    return float(np.abs(row.data[ints]).max()) if ints.any() else 0.0


def _binding(model: Model, x: np.ndarray, marg: np.ndarray | None) -> list[dict]:
    p = model.p
    out = []
    for r, row in enumerate(model.rows):
        if row.kind not in RESOURCE_KINDS:
            continue
        used, limit = _row_used(model, r, x, row)
        scale_used = used / SCALE if row.kind == "budget" else used
        scale_limit = limit / SCALE if row.kind == "budget" else limit
        slack = scale_limit - scale_used
        tight = slack <= _granularity(model, r) * (1 - 1e-9) + TIGHT_REL * max(1.0, abs(scale_limit))
        shadow = None
        if marg is not None:
            m = -float(marg[r])
            shadow = m if row.kind == "budget" else m * SCALE
            if abs(shadow) < 1e-9:
                shadow = 0.0
        if not tight and not shadow:
            continue
        out.append({"name": _row_name(p, row), "kind": row.kind,
                    "quarter": p.quarters[row.quarter] if row.quarter is not None else None,
                    "year": p.years[row.year] if row.year is not None else None,
                    "device": p.devices[row.device] if row.device is not None else None,
                    "limit": limit, "used": used, "slack": limit - used,
                    "tight_in_plan": bool(tight), "shadow_price_usd": shadow,
                    "shadow_price_unit": SHADOW_UNITS[row.kind]})
    return out


def _violations(model: Model, x: np.ndarray) -> list[dict]:
    p = model.p
    out = []
    for r, row in enumerate(model.rows):
        j = model.index.get(("e", r))
        if j is None or x[j] <= 1e-6 * max(1.0, row.scale):
            continue
        used, limit = _row_used(model, r, x, row)
        over = float(x[j]) * (SCALE if row.kind == "budget" else 1.0)
        unit = {"prod_cap": "chips", "hbm_supply": "HBM stacks", "power": "MW", "budget": "$"}[row.kind]
        out.append({"name": _row_name(p, row), "kind": row.kind,
                    "quarter": p.quarters[row.quarter] if row.quarter is not None else None,
                    "year": p.years[row.year] if row.year is not None else None,
                    "device": p.devices[row.device] if row.device is not None else None,
                    "limit": limit, "needed": limit + over, "shortfall": over, "unit": unit,
                    "shortfall_pct": over / limit * 100 if limit > 0 else None})
    return out


def _money(v: float) -> str:
    for f, p in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if abs(v) >= f:
            return f"${v / f:,.3g}{p}"
    return f"${v:,.0f}"


def _explain(v: dict) -> str:
    p = v["shortfall_pct"]
    pct = "" if p is None else (f" (+{p:.0f}%)" if p >= 1 else f" (+{p:.1g}%)")
    x = v["shortfall"]
    if v["unit"] == "$":
        amount = _money(x)
    elif v["unit"] == "MW":
        amount = f"{x:,.1f} MW" if x >= 0.1 else f"{x:.3g} MW"
    else:                       # whole chips and stacks (the LP may ask for a fraction)
        amount = f"{math.ceil(x - 1e-6):,} {v['unit']}"
    what = {"prod_cap": f"production cap of {v['device']} in {v['quarter']}",
            "hbm_supply": f"HBM supply in {v['quarter']}", "power": f"facility power in {v['quarter']}",
            "budget": f"budget in {v['year']}"}[v["kind"]]
    return f"{what} is short by {amount}{pct}"


def _late(p: Problem, m: int, q: int, share: float) -> dict:
    """Demand of class m in quarter q that nothing installed or deliverable by then can serve, and why."""
    why = []
    can = p.can_buy
    for d in range(len(p.devices)):
        if p.rate_per_chip[m, d] <= 0:
            continue
        if any(can[d, k] for k in range(q + 1)):
            continue
        name = p.devices[d]
        if not p.purchasable[d]:
            why.append(f"{name} is not purchasable")
        elif p.available_from[d] > q:
            why.append(f"{name} is available from "
                       f"{p.quarters[p.available_from[d]] if p.available_from[d] < p.num_quarters else 'after the horizon'}")
        elif p.lead_time[d] > q:
            why.append(f"{name} has a lead time of {p.lead_time[d]} quarter{'s' if p.lead_time[d] != 1 else ''}")
        else:
            why.append(f"{name} has no production by then")
    if not p.rate_per_chip[m].any():
        why = [f"no device has a capacity for {p.demands[m]!r} (give a deployment or a capacity_override)"]
    detail = "; ".join(why) if why else "the installed base is too small"
    return {"demand": p.demands[m], "quarter": p.quarters[q], "share": share,
            "reason": f"{share:.0%} of {p.demands[m]} in {p.quarters[q]} cannot be served by anything installed or "
                      f"deliverable by then ({detail})"}


# ---------------------------------------------------------------------------------------------
def _explain_infeasible(p: Problem) -> Infeasibility:
    """Why: the LP relaxation with every limit elastic, minimising first the demand no limit can
    fix (nothing installed or deliverable in time), then the relative violation of the limits."""
    el = build_model(p, elastic_demand=True, elastic_resources=True)
    vs = solve_lexicographic(el, [el.c_unmet, el.c_viol], integral=False)
    violations, late = [], []
    if vs.x is not None:
        violations = _violations(el, vs.x)
        for j, v in enumerate(el.var):
            if v[0] == "u" and vs.x[j] > 1e-6:
                late.append(_late(p, v[1], v[2], float(vs.x[j])))
    reasons = [x["reason"] for x in late] + [_explain(v) for v in violations]
    return Infeasibility(explanation="; ".join(reasons) if reasons else "no single limit explains it",
                         violations=violations, not_deliverable=late)


def _solve(p: Problem, model: Model) -> tuple[str, Model, np.ndarray, Solution, Infeasibility | None]:
    """(status, the model solved, its objective, its solution, why it is infeasible): the program
    itself or, when it is infeasible, the best plan within the limits (unmet demand allowed at a
    penalty no purchase can beat)."""
    sol = None if unservable(p) else solve_milp(model, model.c_cost)
    if sol is not None and sol.status in ("optimal", "time_limit"):
        return sol.status, model, model.c_cost, sol, None
    if sol is not None and sol.status == "error":
        raise SpecError(f"the planner's solver failed: {sol.message}")
    infeasibility = _explain_infeasible(p)
    final_model = build_model(p, elastic_demand=True, clamp_power=True)
    final_c = final_model.c_cost + final_model.c_penalty
    sol = solve_milp(final_model, final_c)
    if sol.x is None:
        raise SpecError(f"the planner's solver failed on the relaxed plan: {sol.message}")
    return "infeasible", final_model, final_c, sol, infeasibility


def solve_problem(p: Problem) -> PlanResult:
    """Solve (and, if infeasible, explain) a resolved problem: the plan, with its solve time."""
    t0 = time.perf_counter()
    model = build_model(p)
    status, final_model, final_c, sol, infeasibility = _solve(p, model)
    x = sol.x
    marg, lp_obj = lp_duals(final_model, final_c)
    f = figures(final_model, x)
    r = PlanResult(
        scenario=p.name, status=status, objective=p.objective, discount_rate_per_year=p.discount_rate_per_year,
        total_cost_usd=(float(final_model.c_cost @ x) + final_model.c0) * SCALE, total_capex_usd=float(f.capex.sum()),
        total_energy_usd=float(f.energy_usd.sum()), usd_per_kwh=p.usd_per_kwh,
        lp_relaxation_cost_usd=lp_obj * SCALE if lp_obj is not None and status != "infeasible" else None,
        mip_gap=sol.mip_gap, quarters=quarters(p, f), years=years(p, f),
        binding_constraints=_binding(final_model, x, marg), unmet_demand=unmet_demand(p, f),
        infeasibility=infeasibility, devices=devices_summary(p, f.buys), capacity=[c.to_dict() for c in p.capacities],
        inputs={"quarters": p.quarters, "years": p.years, "pue": p.pue, "usd_per_kwh": p.usd_per_kwh,
                "capacity_derate": p.capacity_derate,
                "num_variables": len(model.var), "num_integer": int(model.integrality.sum()),
                "num_constraints": int(model.A_ub.shape[0] + model.A_eq.shape[0])},
        notes=list(p.notes), problem=p, solve_s=time.perf_counter() - t0)
    built = {p.devices[d]: bool(f.built[d] or f.buys[d].sum() > 0) for d in range(len(p.devices)) if p.own[d]}
    return replace(r, economics=economics(p, r.to_dict(), None, built))


MAX_ENUMERATED_BUILDS = 3


def _feasible_first(r: PlanResult) -> tuple:
    return (r.status == "infeasible", r.total_cost_usd if r.total_cost_usd is not None else math.inf)


def solve_builds(p: Problem) -> PlanResult:
    """The least-cost plan over the build decisions of our chips with an NRE. With up to
    ``MAX_ENUMERATED_BUILDS`` such chips each combination is solved with its decision held fixed
    (exact, and fast: near a break-even the free binary makes the solver prove two nearly equal
    plans apart); beyond that the MILP decides them itself. Ties go to building less."""
    nre = [d for d in range(len(p.devices)) if p.own[d] and p.nre_usd[d] > 0 and p.can_buy[d].any()
           and d not in p.fixed_build]
    if not nre or len(nre) > MAX_ENUMERATED_BUILDS:
        return solve_problem(p)
    best = None
    for bits in itertools.product((0, 1), repeat=len(nre)):
        q = p.copy()
        q.fixed_build = {**p.fixed_build, **dict(zip(nre, bits))}
        r = solve_problem(q)
        if best is None or _feasible_first(r) < _feasible_first(best):
            best = r
    return replace(best, problem=p)


def solve_plan(p: Problem, baselines: dict | None = None) -> PlanResult:
    """Solve a problem and its GPU-only baseline: the plan with its economics (``economics.py``).
    ``baselines``: solved baselines by problem fingerprint (a sweep solves each one once)."""
    r = solve_builds(p)
    if not has_asic_choice(p):
        return r
    g = gpu_only(p)
    key = fingerprint(g) if baselines is not None else None
    base = baselines.get(key) if key is not None else None
    if base is None:
        base = solve_problem(g)
        if key is not None:
            baselines[key] = base
    return replace(r, economics=economics(p, r.to_dict(), base.to_dict(), r.economics["build"]),
                   solve_s=r.solve_s + base.solve_s)


# ---------------------------------------------------------------------------------------------
def diff_plans(base: dict, new: dict) -> dict:
    """What changed from the base plan: cost, purchases per device and quarter, unmet demand,
    cost per million tokens, and which constraints bind."""
    def tot(d):
        return d["total_cost_usd"] or 0.0
    devs = list(new["devices"])
    per_q = []
    for qb, qn in zip(base["quarters"], new["quarters"]):
        per_q.append({"quarter": qn["quarter"],
                      "purchases": {d: qn["purchases"].get(d, 0) - qb["purchases"].get(d, 0) for d in devs},
                      "spend_usd": qn["spend_usd"] - qb["spend_usd"],
                      "power_mw": qn["power_mw"] - qb["power_mw"],
                      "cost_per_million_tokens_usd": (qn["cost_per_million_tokens_usd"] - qb["cost_per_million_tokens_usd"]
                                                      if qn["cost_per_million_tokens_usd"] is not None
                                                      and qb["cost_per_million_tokens_usd"] is not None else None)})
    unmet = lambda d: sum(u["unmet_tokens_per_s"] * SECONDS_PER_QUARTER for u in d["unmet_demand"])  # noqa: E731
    bnames = {b["name"] for b in base["binding_constraints"]}
    nnames = {b["name"] for b in new["binding_constraints"]}
    return {"base_status": base["status"], "status": new["status"],
            "base_total_cost_usd": base["total_cost_usd"], "total_cost_usd": new["total_cost_usd"],
            "total_cost_delta_usd": tot(new) - tot(base),
            "total_cost_delta_pct": (tot(new) - tot(base)) / tot(base) * 100 if tot(base) else None,
            "purchases_delta_chips": {d: new["devices"][d]["total_purchased_chips"]
                                      - base["devices"][d]["total_purchased_chips"] for d in devs},
            "unmet_tokens_delta": unmet(new) - unmet(base),
            "binding_added": sorted(nnames - bnames), "binding_removed": sorted(bnames - nnames),
            "quarters": per_q}


def _confidence(s: Scenario, caps: dict, confidence: float, planned: PlanResult) -> dict:
    """What planning at ``confidence`` assumed and cost: the expected plan's total, the hedge, the
    capacity factors and the schedules taken pessimistically."""
    expected = solve_plan(build_problem(s, caps))
    p = planned.problem
    factors = {dev: {cls: float(np.exp(-z(confidence) * p.rate_sigma[m, d])) for m, cls in enumerate(p.demands)
                     if p.rate_per_chip[m, d] > 0} for d, dev in enumerate(p.devices)}
    e, c = expected.total_cost_usd, planned.total_cost_usd
    return {"probability": confidence, "z": z(confidence), "expected_status": expected.status,
            "expected_total_cost_usd": e,
            "hedge_cost_usd": (c - e) if "infeasible" not in (planned.status, expected.status) else None,
            "capacity_factors": factors,
            "respin_assumed": [dev for dev, x in s.devices.items() if respin_taken(x.respin_probability, confidence)]}


def check_confidence(confidence: float | None) -> None:
    if confidence is not None and not (isinstance(confidence, (int, float)) and 0.5 <= confidence < 1.0):
        raise SpecError(f"--confidence {confidence!r}: give a probability from 0.5 (the expected plan) to below 1, "
                        "e.g. 0.9")


def plan(scenario: str | Path | dict | Scenario, *, what_if: list[str] | tuple[str, ...] | None = None,
         recompute_capacity: bool = False, cache_dir: str | Path | None = None, out: str | Path | None = None,
         progress: Callable[[str], None] | None = None, confidence: float | None = None,
         sweep: str | None = None, workers: int = 1, use_ray: bool = False,
         address: str | None = None, resume: bool = False) -> PlanResult:
    """Plan purchases quarter by quarter for a scenario (a YAML path, YAML text parsed to a dict,
    or a Scenario), with its GPU-only baseline; see `seedchip plan --help`.

    what_if: ``key=value`` changes (``hbm_supply=-30%``, ``chip_slip=2``, ...): the result is the
    changed plan, with ``what_if`` holding the changes and the difference to the base plan.
    confidence: plan so that demand is met with this probability (pessimistic capacities and
    schedules, ``schedule.py``); ``confidence`` in the result says what the hedge costs.
    sweep: ``KEY=FROM..TO:STEPS``: re-solve over a range of one what-if (``sweep.py``).
    recompute_capacity: run ``seedchip.capacity`` for every deployment instead of the scenario's
    ``capacity_override`` and the cache; with ``resume``, keep the searches the cache already
    holds from this code (an interrupted recompute continues). out: a folder for plan.json,
    plan.html, plan.png and capacity.yaml (and sweep.png). workers > 1 (a local process pool) or use_ray (a Ray cluster:
    ``address``, or a local one): the capacity searches and the sweep's points run in parallel,
    with the same result."""
    check_confidence(confidence)
    check_options(workers, use_ray, address)
    if resume and not recompute_capacity:
        raise SpecError("--resume continues an interrupted --recompute-capacity: add --recompute-capacity (without "
                        "it the scenario's overrides and the cache are read anyway)")
    if sweep is not None:
        parse_sweep(sweep)                   # a bad sweep is refused before any work
    if out is not None:
        from ..outputs import check_dir
        check_dir(out)                       # before the work: an unwritable place loses nothing
    if isinstance(scenario, Scenario):
        s = scenario
    elif isinstance(scenario, dict):
        s = parse_scenario(scenario)
    else:
        s = load_scenario(scenario)
    backend = open_backend(workers, use_ray, address)
    try:
        return _plan(s, backend, what_if, recompute_capacity, resume, cache_dir, out, progress, confidence, sweep)
    except BackendError as e:
        if not recompute_capacity:
            raise
        raise BackendError(f"{e}: the capacities computed before it are in the cache; continue with the same command "
                           "and --resume") from None
    finally:
        backend.close()


def _plan(s: Scenario, backend, what_if, recompute: bool, resume: bool, cache_dir, out, progress, confidence,
          sweep) -> PlanResult:
    caps = resolve_capacities(s, recompute=recompute, resume=resume, cache=cache_dir, progress=progress,
                              backend=backend)
    p = build_problem(s, caps, confidence)
    result = solve_plan(p)
    if confidence is not None:
        result = replace(result, confidence=_confidence(s, caps, confidence, result))
    if what_if:
        q, changes = apply_what_ifs(p, list(what_if))
        changed = replace(solve_plan(q), confidence=result.confidence)
        result = replace(changed, base=result,
                         what_if=WhatIf(changes=changes, diff=diff_plans(result.to_dict(), changed.to_dict())))
        p = q
    if sweep is not None:
        result = replace(result, sweep=run_sweep(p, sweep, solve_plan, backend))
    if out is not None:
        result = replace(result, outputs=write_outputs(result, Path(out)))
    return result


__all__ = ["plan", "PlanResult", "Infeasibility", "WhatIf", "solve_problem", "diff_plans"]
