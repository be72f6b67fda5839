"""The scenario as numbers: every series expanded per quarter, every device's cost, power and
HBM per chip resolved, the installed base aged, capacities attached. What-ifs change this
object (a copy), never the scenario.

Units: chips, stacks, watts, US dollars, seconds; rates are per second at the peak unless named
``avg``. A demand class's rate is in output tokens/s (``basis = tokens``) or requests/s
(``basis = requests``); capacities are in the same basis.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import numpy as np

from ..errors import SeedChipError, SpecError, one_line
from ..hardware.catalog import load_chip
from .capacity import Capacity
from .costs import unit_cost as device_unit_cost
from .scenario import Scenario, candidates_of, expand
from .schedule import learning_extra_usd, oracle_sigma, production, respin_taken, sigma_from_interval, z

SECONDS_PER_QUARTER = 365.25 * 86400 / 4


@dataclass
class Problem:
    name: str
    quarters: list[str]
    years: list[str]
    year_of: np.ndarray                 # (Q,) year index of each quarter
    devices: list[str]
    kinds: list[str]
    chips: list[str]
    demands: list[str]
    models: list[str]
    basis: list[str]                    # per demand: tokens | requests
    # devices (D,)
    unit_chips: np.ndarray
    unit_cost_usd: np.ndarray           # per chip, the chip itself (mature yield)
    unit_cost_extra_usd: np.ndarray     # (D, Q) above unit_cost_usd for deliveries in q (yield learning)
    unit_cost_source: list[str]
    nre_usd: np.ndarray                 # own chips: programme cost paid once if built
    hbm_usd: np.ndarray                 # HBM content of the unit cost
    hbm_pass: np.ndarray                # share of an HBM price change reaching the unit cost
    system_cost_usd: np.ndarray         # per chip, server/network share
    power_w: np.ndarray                 # per chip incl. host, at nameplate
    idle_w: np.ndarray                  # per chip installed but serving nothing
    host_w: np.ndarray                  # per chip, drawn busy or idle
    hbm_stacks: np.ndarray              # per chip
    draws_hbm: np.ndarray               # bool
    lifetime: np.ndarray                # quarters
    lead_time: np.ndarray               # quarters
    available_from: np.ndarray          # quarter index
    purchasable: np.ndarray             # bool
    cap_chips: np.ndarray               # (D, Q), inf = unlimited
    base_chips: np.ndarray              # (D, Q) installed base (incl. on order) alive in each quarter
    base_depreciation_usd: np.ndarray   # (D, Q) straight-line depreciation of the base
    # demand (M, Q)
    peak_rate: np.ndarray
    peak_to_average: np.ndarray         # (M,)
    # capacity (M, D)
    rate_per_chip: np.ndarray           # in the class's basis, at the SLOs, derated
    tokens_per_rate: np.ndarray         # output tokens per unit of rate (1 for tokens basis)
    energy_j_per_token: np.ndarray
    rate_sigma: np.ndarray              # (M, D) log-spread of each capacity
    capacities: list[Capacity]
    # facility
    hbm_supply: np.ndarray | None       # (Q,)
    hbm_carry_over: bool
    power_mw: np.ndarray | None         # (Q,) facility MW
    pue: float
    usd_per_kwh: float
    budget_usd: np.ndarray | None       # (Y,)
    objective: str
    discount_rate_per_year: float
    capacity_derate: float
    time_limit_s: float
    mip_rel_gap: float
    confidence: float | None = None     # None: expected schedule and nominal capacities
    fixed_build: dict = field(default_factory=dict)   # device index -> 0/1: the build decision held fixed
    notes: list[str] = field(default_factory=list)

    @property
    def num_quarters(self) -> int:
        return len(self.quarters)

    @property
    def capex_per_chip(self) -> np.ndarray:
        """(D,) per chip at mature yield: the chip and its system share."""
        return self.unit_cost_usd + self.system_cost_usd

    @property
    def capex_dq(self) -> np.ndarray:
        """(D, Q) per chip delivered in each quarter (yield learning included)."""
        return self.capex_per_chip[:, None] + self.unit_cost_extra_usd

    @property
    def own(self) -> np.ndarray:
        return np.array([k == "own" for k in self.kinds], dtype=bool)

    @property
    def discount(self) -> np.ndarray:
        """(Q,) present-value factor of a cost in each quarter."""
        return (1.0 + self.discount_rate_per_year) ** (-np.arange(self.num_quarters) / 4.0)

    @property
    def can_buy(self) -> np.ndarray:
        """(D, Q): deliveries possible (purchasable, available, past the lead time, cap above zero)."""
        q = np.arange(self.num_quarters)[None, :]
        first = np.maximum(self.available_from, self.lead_time)[:, None]
        ok = self.purchasable[:, None] & (q >= first) & (self.cap_chips >= self.unit_chips[:, None])
        return ok

    @property
    def avg_tokens_per_s(self) -> np.ndarray:
        """(M, Q) average output tokens/s of the demand (requests converted with the mean tokens
        per request of the devices that can serve the class)."""
        avg = self.peak_rate / self.peak_to_average[:, None]
        out = avg.copy()
        for m, b in enumerate(self.basis):
            if b == "requests":
                tpr = self.tokens_per_rate[m][self.rate_per_chip[m] > 0]
                out[m] = avg[m] * (float(tpr.mean()) if tpr.size else 0.0)
        return out

    def copy(self) -> "Problem":
        return copy.deepcopy(self)


def _dep_num_chips(s: Scenario, dev: str, cls: str, override) -> int:
    if override is not None and override.num_chips is not None:
        return override.num_chips
    return candidates_of(s.devices[dev].deployments[cls])[0].num_chips


@dataclass
class _Devices:
    """Per-device figures (D,) of the scenario, and notes on where they came from."""
    unit_cost: list[float]
    unit_src: list[str]
    sys_cost: list[float]
    power: list[float]
    idle: list[float]
    host: list[float]
    stacks: list[float]
    draws: list[bool]
    life: list[int]
    lead: list[int]
    avail: list[int]
    purch: list[bool]
    nre: list[float]
    hbm_usd: list[float]
    hbm_pass: list[float]
    cap: np.ndarray                     # (D, Q) production cap, inf = unlimited
    extra: np.ndarray                   # (D, Q) unit cost above mature yield
    notes: list[str]


def _hbm_usd(name: str, dev, notes: list[str]) -> float:
    """The HBM content of a device's unit cost: given, or the silicon model's HBM cost of its chip."""
    if dev.hbm_usd_per_chip is not None:
        return dev.hbm_usd_per_chip
    try:
        from ..silicon import silicon_report
        return float(silicon_report(dev.chip).cost_breakdown_usd["hbm"])
    except SeedChipError as e:
        notes.append(f"{name}: no HBM cost (the silicon model cannot cost {dev.chip!r}: {one_line(e)}); "
                     "an hbm_price what-if leaves its price alone (give hbm_usd_per_chip)")
        return 0.0


def _schedule(s: Scenario, name: str, dev, confidence: float | None, notes: list[str]
              ) -> tuple[int, np.ndarray, np.ndarray]:
    """(first volume quarter, production cap (Q,), unit cost above mature yield (Q,)) of a device
    under its qualification lag, respin risk and yield learning (``schedule.py``)."""
    Q = s.horizon_quarters
    samples = s.quarter_index(dev.available_from, ("devices", name, "available_from"), allow_before=True)
    pc = expand(dev.production_cap_chips, Q, ("devices", name, "production_cap_chips"))
    cap = np.array(pc, dtype=float) if pc is not None else np.full(Q, np.inf)
    cap, volume = production(cap, samples + dev.qualification_quarters, dev.respin_probability,
                             dev.respin_delay_quarters, confidence)
    if respin_taken(dev.respin_probability, confidence):
        notes.append(f"{name}: at confidence {confidence:g} the plan cannot count on first silicon (respin "
                     f"probability {dev.respin_probability:g}): availability and ramp {dev.respin_delay_quarters} "
                     "quarters later")
    extra = learning_extra_usd(name, dev.chip, dev.yield_learning, samples, Q)
    return volume, cap, extra


def _devices(s: Scenario, confidence: float | None = None) -> _Devices:
    """Cost (given or from the silicon model), power (nameplate, idle, host), HBM stacks and cost,
    lifetime, lead time, schedule (availability, production cap, yield learning) and NRE of every device."""
    Q = s.horizon_quarters
    notes: list[str] = []
    cols = {k: [] for k in ("unit_cost", "unit_src", "sys_cost", "power", "idle", "host", "stacks", "draws", "life",
                            "lead", "avail", "purch", "nre", "hbm_usd", "hbm_pass")}
    cap = np.full((len(s.devices), Q), np.inf)
    extra = np.zeros((len(s.devices), Q))
    for i, name in enumerate(s.devices):
        dev = s.devices[name]
        chip = load_chip(dev.chip)
        uc, src = device_unit_cost(name, dev.kind, dev.chip, dev.unit_cost_usd)
        if src != "given":
            notes.append(f"{name}: unit cost ${uc:,.0f} per chip from the silicon model ({dev.chip})")
        avail, cap[i], extra[i] = _schedule(s, name, dev, confidence, notes)
        for k, v in (("unit_cost", uc), ("unit_src", src), ("sys_cost", dev.system_cost_usd_per_chip),
                     ("power", (dev.power_w_per_chip or chip.tdp_w) + dev.host_power_w_per_chip),
                     ("idle", dev.idle_power_w_per_chip if dev.idle_power_w_per_chip is not None
                      else chip.energy.idle_w),
                     ("host", dev.host_power_w_per_chip),
                     ("stacks", dev.hbm_stacks_per_chip if dev.hbm_stacks_per_chip is not None
                      else chip.hbm.num_stacks),
                     ("draws", dev.draws_hbm_supply), ("life", dev.lifetime_quarters or s.lifetime_quarters),
                     ("lead", dev.lead_time_quarters), ("avail", avail), ("purch", dev.purchasable),
                     ("nre", dev.nre_usd if dev.kind == "own" else 0.0), ("hbm_usd", _hbm_usd(name, dev, notes)),
                     ("hbm_pass", dev.hbm_price_pass_through)):
            cols[k].append(v)
    return _Devices(**cols, cap=cap, extra=extra, notes=notes)


def _installed_base(s: Scenario, dv: _Devices) -> tuple[np.ndarray, np.ndarray]:
    """(D, Q) chips of the installed base (incl. on order) alive in each quarter, and their
    straight-line depreciation (at the batch's own unit cost, else the device's capex)."""
    Q = s.horizon_quarters
    devs = list(s.devices)
    base = np.zeros((len(devs), Q))
    base_dep = np.zeros((len(devs), Q))
    for b in s.installed_base:
        d = devs.index(b.device)
        arrive = s.quarter_index(b.arrives, ()) if b.arrives is not None else 0
        per_chip = b.unit_cost_usd if b.unit_cost_usd is not None else dv.unit_cost[d] + dv.sys_cost[d]
        for q in range(Q):
            age = b.age_quarters + (q - arrive)
            if q >= arrive and age < dv.life[d]:
                base[d, q] += b.chips
                base_dep[d, q] += b.chips * per_chip / dv.life[d]
    return base, base_dep


def _demand(s: Scenario) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(M, Q) peak rate of each class (output tokens/s from tokens per day x peak_to_average, or
    peak requests/s), (M,) peak_to_average, and each class's basis (tokens | requests)."""
    Q = s.horizon_quarters
    M = len(s.demand)
    peak = np.zeros((M, Q))
    pta = np.ones(M)
    basis = []
    for m, name in enumerate(s.demand):
        dc = s.demand[name]
        basis.append(dc.basis)
        pta[m] = dc.peak_to_average
        if dc.basis == "tokens":
            peak[m] = np.array(expand(dc.tokens_per_day, Q, ())) / 86400.0 * dc.peak_to_average
        else:
            peak[m] = np.array(expand(dc.peak_requests_per_s, Q, ()))
    return peak, pta, basis


def _capacities(s: Scenario, capacities: dict[tuple[str, str], Capacity], basis: list[str],
                confidence: float | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, list[Capacity]]:
    """(M, D) served rate per chip (in the class's basis, derated; at ``confidence``, its pessimistic
    quantile), output tokens per unit of rate, joules per output token and the log-spread of every
    device x class with a capacity; the capacities, sorted."""
    devs, dems = list(s.devices), list(s.demand)
    M, D = len(dems), len(devs)
    rate = np.zeros((M, D))
    tpr = np.ones((M, D))
    energy = np.zeros((M, D))
    sigma = np.zeros((M, D))
    caps = []
    for (dev, cls), c in sorted(capacities.items()):
        caps.append(c)
        d, m = devs.index(dev), dems.index(cls)
        if c.tokens_per_s <= 0 or c.num_chips <= 0:
            continue
        if basis[m] == "tokens":
            rate[m, d] = c.tokens_per_s / c.num_chips * s.capacity_derate
        else:
            if not c.requests_per_s:
                continue
            rate[m, d] = c.requests_per_s / c.num_chips * s.capacity_derate
            tpr[m, d] = c.tokens_per_s / c.requests_per_s
        energy[m, d] = c.energy_j_per_token
        own = sigma_from_interval(c.tokens_per_s, c.interval80)
        sigma[m, d] = own if own is not None else oracle_sigma(s.demand[cls].engine, s.devices[dev].chip,
                                                               s.calibration)
    if confidence is not None:
        rate = rate * np.exp(-z(confidence) * sigma)
    return rate, tpr, energy, sigma, caps


MAX_MAGNITUDE = 1e18    # no per-chip cost, power, rate or energy in a plan comes near this


def check_magnitudes(p: Problem) -> None:
    """Every number the program is built from is finite and of a sane size: a value such
    as 1e308 in the scenario would otherwise overflow inside the solver."""
    for name in ("unit_cost_usd", "unit_cost_extra_usd", "nre_usd", "hbm_usd", "system_cost_usd", "power_w", "idle_w",
                 "host_w", "base_depreciation_usd", "peak_rate",
                 "rate_per_chip", "tokens_per_rate", "energy_j_per_token", "budget_usd", "power_mw", "hbm_supply"):
        a = getattr(p, name)
        if a is None:
            continue
        a = np.asarray(a, dtype=float)
        if not np.all(np.isfinite(a)) or np.any(np.abs(a) > MAX_MAGNITUDE):
            raise SpecError(f"the scenario's {name.replace('_', ' ')} reaches {np.nanmax(np.abs(a)):.3g}: beyond any "
                            "real plan (and the solver's arithmetic); check the scenario for a value off by many "
                            "orders of magnitude")


def build_problem(s: Scenario, capacities: dict[tuple[str, str], Capacity], confidence: float | None = None
                  ) -> Problem:
    """Resolve the scenario into numbers. ``capacities`` maps (device, demand class) to its capacity.
    ``confidence``: plan for the pessimistic schedule and capacities at that probability
    (``schedule.py``); None: the expected schedule and nominal capacities."""
    Q = s.horizon_quarters
    devs, dems = list(s.devices), list(s.demand)
    dv = _devices(s, confidence)
    base, base_dep = _installed_base(s, dv)
    peak, pta, basis = _demand(s)
    rate, tpr, energy, sigma, caps = _capacities(s, capacities, basis, confidence)
    years = s.year_labels
    bud = expand(s.budget.capex_usd_per_year, len(years), ())
    hbm = expand(s.hbm.supply_stacks, Q, ())
    pmw = expand(s.datacenter.power_mw, Q, ())
    p = Problem(
        name=s.name, quarters=s.quarter_labels, years=years, year_of=np.arange(Q) // 4, devices=devs,
        kinds=[s.devices[d].kind for d in devs], chips=[s.devices[d].chip for d in devs], demands=dems,
        models=[s.demand[m].model for m in dems], basis=basis,
        unit_chips=np.array([s.devices[d].purchase_unit_chips for d in devs], dtype=float),
        unit_cost_usd=np.array(dv.unit_cost, dtype=float), unit_cost_extra_usd=dv.extra, unit_cost_source=dv.unit_src,
        nre_usd=np.array(dv.nre, dtype=float), hbm_usd=np.array(dv.hbm_usd, dtype=float),
        hbm_pass=np.array(dv.hbm_pass, dtype=float),
        system_cost_usd=np.array(dv.sys_cost, dtype=float), power_w=np.array(dv.power, dtype=float),
        idle_w=np.array(dv.idle, dtype=float), host_w=np.array(dv.host, dtype=float),
        hbm_stacks=np.array(dv.stacks, dtype=float), draws_hbm=np.array(dv.draws, dtype=bool),
        lifetime=np.array(dv.life, dtype=int), lead_time=np.array(dv.lead, dtype=int),
        available_from=np.array(dv.avail, dtype=int), purchasable=np.array(dv.purch, dtype=bool), cap_chips=dv.cap,
        base_chips=base, base_depreciation_usd=base_dep, peak_rate=peak, peak_to_average=pta,
        rate_per_chip=rate, tokens_per_rate=tpr, energy_j_per_token=energy, rate_sigma=sigma, capacities=caps,
        hbm_supply=None if hbm is None else np.array(hbm), hbm_carry_over=s.hbm.carry_over,
        power_mw=None if pmw is None else np.array(pmw), pue=s.datacenter.pue,
        usd_per_kwh=s.datacenter.usd_per_kwh, budget_usd=None if bud is None else np.array(bud),
        objective=s.objective, discount_rate_per_year=s.discount_rate_per_year, capacity_derate=s.capacity_derate,
        time_limit_s=s.solver.time_limit_s, mip_rel_gap=s.solver.mip_rel_gap, confidence=confidence, notes=dv.notes)
    check_magnitudes(p)
    return p


def unservable(p: Problem) -> list[dict]:
    """(class, quarter) pairs with demand that no device could ever serve there: no device has a
    capacity for the class, or none is installed or deliverable by then."""
    out = []
    can = p.can_buy
    for m, name in enumerate(p.demands):
        for q in range(p.num_quarters):
            if p.peak_rate[m, q] <= 0:
                continue
            ok = False
            for d in range(len(p.devices)):
                if p.rate_per_chip[m, d] <= 0:
                    continue
                alive_buy = any(can[d, k] and q - k < p.lifetime[d] for k in range(q + 1))
                if p.base_chips[d, q] > 0 or alive_buy:
                    ok = True
                    break
            if not ok:
                served_by = [p.devices[d] for d in range(len(p.devices)) if p.rate_per_chip[m, d] > 0]
                why = (f"no device has a capacity for {name!r} (give a deployment or capacity_override)" if not served_by
                       else f"none of {', '.join(served_by)} is installed or deliverable by {p.quarters[q]} "
                            "(availability, lead time, production cap)")
                out.append({"demand": name, "quarter": p.quarters[q], "reason": why})
    return out
