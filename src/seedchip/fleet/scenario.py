"""The planning scenario: a validated YAML file (pydantic v2, frozen, unknown keys are errors).

    name: two-year plan
    start: 2027Q1                 # label of the first quarter
    horizon_quarters: 8
    lifetime_quarters: 16         # straight-line depreciation and retirement
    capacity_derate: 0.85         # share of the simulated SLO capacity a production fleet reaches
    objective: cash               # cash: capex when delivered + energy; depreciation: capex spread over the lifetime
    discount_rate_per_year: 0.08  # present value of costs (0: plain sum; above 0 purchases come just in time)
    datacenter: {power_mw: [..], pue: 1.25, usd_per_kwh: 0.08}     # facility MW (IT x PUE) per quarter
    budget: {capex_usd_per_year: [20e9, 22e9]}                      # per 4-quarter year from start
    hbm: {supply_stacks: [..], carry_over: false}                  # stacks per quarter: one market, our
                                                                   # chips and the GPUs we buy draw on it
    demand:
      chat:
        model: llama-3.1-70b
        workload: chat            # or input_len / output_len
        slo: {ttft_p99: 2s, tpot_p99: 100ms}
        peak_to_average: 1.6
        tokens_per_day: {start: 1.0e12, growth_per_quarter: 10%}   # output tokens; or peak_requests_per_s
    devices:
      seedchip-gen1:
        kind: own                 # own (we build it) or gpu (we buy it)
        chip: seedchip-ref        # catalog id or chip YAML
        available_from: 2027Q1
        production_cap_chips: [5000, 20000, ...]
        unit_cost_usd: 9000       # omit for an own chip: the silicon model's unit cost
        nre_usd: 6.0e8            # programme cost still to spend if built: the plan builds only if it pays
        qualification_quarters: 1 # samples (available_from) -> volume
        respin_probability: 0.25  # with respin_delay_quarters: 2 (expected ramp; --confidence: the respin)
        yield_learning: {first_defect_density_per_cm2: 0.2, halving_quarters: 2}
        purchase_unit_chips: 16
        deployments:
          chat: {num_chips: 8, tp: 8, weight_format: fp8, kv_format: fp8}
          # or a list of candidates: each one's capacity is found (or read from the cache) and the
          # one with the most output tokens/s per chip is used (ties: fewest chips, then listed order)
          # chat:
          #   - {num_chips: 8, tp: 8, weight_format: fp8, kv_format: fp8}
          #   - {num_chips: 4, tp: 4, weight_format: fp8, kv_format: fp8, max_num_seqs: 128}
          #   - {num_chips: 8, disaggregate: "prefill=2xseedchip-ref,decode=6xseedchip-ref"}
    installed_base:
      - {device: h200-sxm, chips: 100000, age_quarters: 4}
    capacity_override:
      - {device: seedchip-gen1, demand: chat, num_chips: 8, requests_per_s: 5.8, tokens_per_s: 985, energy_j_per_token: 1.23}

A per-quarter series is a number (every quarter), a list (one per quarter), ``{start, growth_per_quarter}``
or ``{start, growth_per_year}`` (compound; growth as a fraction or ``"12%"``), or ``{start, end}`` (linear).
Errors name the field and the YAML line (``plan.yaml:12: demand.chat.slo.ttft_p99: ...``).
"""

from __future__ import annotations

import math
import re
from typing import Annotated, Any, Literal, Union

from pydantic import BeforeValidator, Discriminator, Field, Tag, ValidationError, field_validator, model_validator

from ..errors import SeedChipError, UnknownNameError, inner_error, one_line
from ..serve.profiles import ServingDeployment
from ..serve.sim import parse_pools
from ..spec_base import FrozenSpec, Seconds
from ..yamlio import PathError

QUARTER_RE = re.compile(r"^\s*(\d{4})\s*-?\s*Q([1-4])\s*$", re.IGNORECASE)


def percent(v, what: str = "value") -> float:
    """'12%', '+12%', '-30%' -> 0.12, 0.12, -0.30; a plain number is taken as a fraction."""
    if isinstance(v, bool):
        raise ValueError(f"{what}: expected a number or a percentage such as '12%', got {v!r}")
    if isinstance(v, (int, float)):
        return float(v)
    if isinstance(v, str):
        s = v.strip()
        try:
            return float(s[:-1]) / 100.0 if s.endswith("%") else float(s)
        except ValueError:
            pass
    raise ValueError(f"{what}: expected a number or a percentage such as '12%', got {v!r}")


MAX_QUARTERS = 400      # 100 years: any quarter count beyond is a typo


class Growth(FrozenSpec):
    """Compound growth from ``start``: per quarter, or per year (spread evenly over its quarters)."""
    start: float = Field(ge=0)
    growth_per_quarter: float | str | None = None
    growth_per_year: float | str | None = None

    @field_validator("growth_per_quarter", "growth_per_year")
    @classmethod
    def _pct(cls, v):
        if v is None:
            return None
        g = percent(v, "growth")
        if not -1 < g <= 100:
            raise ValueError(f"growth {v!r} must be above -100% and at most +10,000%")
        return g

    @model_validator(mode="after")
    def _one(self):
        if (self.growth_per_quarter is None) == (self.growth_per_year is None):
            raise ValueError("give exactly one of growth_per_quarter or growth_per_year")
        return self

    def values(self, n: int) -> list[float]:
        g = self.growth_per_quarter if self.growth_per_quarter is not None else (1 + self.growth_per_year) ** 0.25 - 1
        return [self.start * (1 + g) ** i for i in range(n)]


class Ramp(FrozenSpec):
    """Linear from ``start`` (first quarter) to ``end`` (last quarter)."""
    start: float = Field(ge=0)
    end: float = Field(ge=0)

    def values(self, n: int) -> list[float]:
        if n == 1:
            return [self.start]
        return [self.start + (self.end - self.start) * i / (n - 1) for i in range(n)]


def _number(v, path: tuple = ()) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float, str)):
        raise PathError(f"expected a number, got {v!r}", path)
    try:
        return float(v)        # YAML 1.1 reads 1e9 (no dot) as a string
    except ValueError:
        raise PathError(f"expected a number, got {v!r}", path) from None


def _series(v):
    """A per-quarter series: a number, a list, {start, growth_per_quarter | growth_per_year} or {start, end}."""
    if v is None or isinstance(v, (Growth, Ramp)):
        return v
    if isinstance(v, list):
        return [_number(x, (i,)) for i, x in enumerate(v)]
    if isinstance(v, dict):
        kind = Ramp if "end" in v else Growth
        try:
            return kind.model_validate(v)
        except ValidationError as e:
            first, inner = e.errors()[0], inner_error(e)
            loc = tuple(x for x in first["loc"] if not (isinstance(x, str) and "[" in x))
            msg = str(inner) if inner is not None else first["msg"]
            if first.get("type") == "extra_forbidden" and loc:
                msg = f"unknown field {loc[-1]!r}: use start with growth_per_quarter, growth_per_year or end"
            raise PathError(msg, loc) from None
    if isinstance(v, (int, float, str)) and not isinstance(v, bool):
        try:
            return _number(v)
        except PathError:
            pass
    raise ValueError(f"expected a number, a list with one value per quarter, {{start, growth_per_quarter}} or "
                     f"{{start, end}}; got {v!r}")


Series = Annotated[Any, BeforeValidator(_series)]


def expand(series: Series | None, n: int, path: tuple, *, nonneg: bool = True) -> list[float] | None:
    """A series as n numbers; PathError names the field when a list has the wrong length."""
    if series is None:
        return None
    if isinstance(series, (int, float)):
        vals = [float(series)] * n
    elif isinstance(series, list):
        if len(series) != n:
            raise PathError(f"has {len(series)} values; give one per quarter ({n}), a single number, "
                            "{start, growth_per_quarter} or {start, end}", path)
        vals = [float(v) for v in series]
    else:
        vals = series.values(n)
    for i, v in enumerate(vals):
        if not math.isfinite(v) or (nonneg and v < 0):
            raise PathError(f"value {v!r} must be a finite number >= 0", path + ((i,) if isinstance(series, list) else ()))
    return vals


class Slo(FrozenSpec):
    ttft_p99: Seconds | None = Field(None, gt=0, description="time to first token, 99th percentile")
    tpot_p99: Seconds | None = Field(None, gt=0, description="time per output token, 99th percentile")

    @model_validator(mode="after")
    def _any(self):
        if self.ttft_p99 is None and self.tpot_p99 is None:
            raise ValueError("give at least one SLO: ttft_p99 and/or tpot_p99 (e.g. ttft_p99: 2s)")
        return self


class DemandClass(FrozenSpec):
    """One class of traffic: a model served under SLOs with a workload shape."""
    model: str = Field(description="model zoo id or config.json path")
    workload: str | None = Field(None, description="built-in workload shape: chat, code, summarize, reasoning")
    input_len: int | None = Field(None, gt=0)
    output_len: int | None = Field(None, gt=0)
    slo: Slo
    peak_to_average: float = Field(1.0, ge=1.0, le=1000.0, description="peak rate / daily average rate; capacity is sized for the peak")
    tokens_per_day: Series | None = Field(None, description="output (generated) tokens per day, daily average")
    peak_requests_per_s: Series | None = Field(None, description="requests per second at the peak")
    num_requests: int | None = Field(None, ge=100, le=1_000_000, description="first run length of the capacity search (default "
                                                                 "4,000); it doubles until the answer is stable")
    max_requests: int = Field(64000, ge=100, le=1_000_000, description="the longest run the capacity search may use")
    engine: str = Field("vllm", description="serving-engine profile: vllm, trtllm or sglang")
    seed: int = 0

    @model_validator(mode="after")
    def _one_rate(self):
        if (self.tokens_per_day is None) == (self.peak_requests_per_s is None):
            raise ValueError("give exactly one of tokens_per_day or peak_requests_per_s")
        if self.workload is None and self.input_len is None:
            raise ValueError("give a workload shape: workload (chat, code, summarize, reasoning) or input_len/output_len")
        if (self.input_len is None) != (self.output_len is None):
            raise ValueError("give input_len and output_len together")
        return self

    @property
    def basis(self) -> str:
        return "tokens" if self.tokens_per_day is not None else "requests"


class DeploymentSpec(ServingDeployment):
    """How one demand class is laid on the device: the unit whose SLO capacity is simulated
    (parallelism, formats, and engine knobs left unset take the demand's engine's values)."""
    num_chips: int = Field(gt=0)

    @model_validator(mode="after")
    def _pools(self):
        if self.disaggregate is not None:
            try:
                pools = parse_pools(self.disaggregate)
            except SeedChipError as e:
                raise PathError(one_line(e), ("disaggregate",)) from None
            total = sum(n for n, _ in pools.values())
            if total != self.num_chips:
                raise PathError(f"num_chips {self.num_chips} must be the pools' total ({total}) of "
                                f"disaggregate {self.disaggregate!r}", ("num_chips",))
        return self

    def label(self) -> str:
        """A short description: 'tp=8 ep=1 on 8 chips, fp8/fp8, seqs 256, tokens 8192'."""
        if self.disaggregate:
            par = f"disaggregated {self.disaggregate}"
        else:
            knobs = [f"{k}={v}" for k, v in (("tp", self.tp), ("pp", self.pp), ("ep", self.ep))
                     if v is not None and (k == "tp" or v > 1)]
            par = " ".join(knobs + [f"on {self.num_chips} chip{'s' if self.num_chips > 1 else ''}"])
        knobs = [f"{k} {v}" for k, v in (("max_num_seqs", self.max_num_seqs),
                                          ("max_batched_tokens", self.max_batched_tokens)) if v is not None]
        cache = {True: ["prefix caching"], False: ["no prefix caching"], None: []}[self.prefix_caching]
        return ", ".join([par, f"{self.weight_format}/{self.kv_format}", *knobs, *cache])


# one deployment, or a non-empty list of candidates (the best per chip is chosen); the tags carry
# brackets so error locations drop them (yamlio.clean_loc) and name the field as written
Deployments = Annotated[
    Union[Annotated[DeploymentSpec, Tag("DeploymentSpec()")],
          Annotated[Annotated[list[DeploymentSpec], Field(min_length=1)], Tag("list[DeploymentSpec]")]],
    Discriminator(lambda v: "list[DeploymentSpec]" if isinstance(v, list) else "DeploymentSpec()")]


def candidates_of(dep) -> list[DeploymentSpec]:
    """A device's entry for a class as a list of candidates (a single spec: one)."""
    return list(dep) if isinstance(dep, (list, tuple)) else [dep]


class YieldLearning(FrozenSpec):
    """Defect density from first silicon (``available_from``) down to the node's mature one:
    D0(t) = D0_mature + (first - D0_mature) x 2^(-t / halving_quarters), t in quarters."""
    first_defect_density_per_cm2: float = Field(gt=0, le=10, description="at first silicon")
    halving_quarters: float = Field(gt=0, le=MAX_QUARTERS, description="quarters for the excess over mature to halve")


class Device(FrozenSpec):
    """A device option: one of our chip generations (kind own) or a GPU we buy (kind gpu)."""
    kind: Literal["own", "gpu"]
    chip: str = Field(description="catalog id or chip YAML path")
    purchasable: bool = Field(True, description="false: installed base only (no new purchases)")
    available_from: int | str = Field(0, description="first quarter deliveries are possible (index or '2027Q3')")
    lead_time_quarters: int = Field(0, ge=0, le=MAX_QUARTERS, description="orders placed at the start arrive this many quarters later")
    production_cap_chips: Series | None = Field(None, description="chips deliverable per quarter (null: unlimited)")
    unit_cost_usd: float | None = Field(None, gt=0, description="per chip; own chips default to the silicon model")
    system_cost_usd_per_chip: float = Field(0.0, ge=0, description="server, network and rack share per chip")
    hbm_stacks_per_chip: int | None = Field(None, ge=0, le=64, description="default: the chip spec's stacks")
    draws_hbm_supply: bool = Field(True, description="its stacks count against hbm.supply_stacks (one market: "
                                   "default yes for GPUs too, whose vendor buys from the same memory makers)")
    power_w_per_chip: float | None = Field(None, gt=0, description="nameplate (facility sizing); default: the chip spec's TDP")
    idle_power_w_per_chip: float | None = Field(None, ge=0, description="an installed chip serving nothing; default: "
                                                "the chip spec's idle_w")
    host_power_w_per_chip: float = Field(0.0, ge=0, description="host, network and cooling fans per chip (drawn "
                                         "whether the chip is busy or not)")
    nre_usd: float = Field(0.0, ge=0, description="own chips: programme cost still to spend if we build it (design, "
                           "masks, IP, bring-up, software), paid once in the first quarter; the plan builds only if the "
                           "chip saves more than it")
    hbm_usd_per_chip: float | None = Field(None, ge=0, description="HBM content of the unit cost, what an hbm_price "
                                           "what-if scales (default: the silicon model's HBM cost of the chip)")
    hbm_price_pass_through: float = Field(1.0, ge=0, le=10, description="share of an HBM price change that reaches "
                                          "the unit cost (own chips: 1; a GPU: what its vendor passes on)")
    qualification_quarters: int = Field(0, ge=0, le=MAX_QUARTERS, description="quarters from available_from (first "
                                        "samples) to volume deliveries")
    respin_probability: float = Field(0.0, ge=0, le=1, description="chance that first silicon needs a respin")
    respin_delay_quarters: int = Field(0, ge=0, le=MAX_QUARTERS, description="how much later a respin makes "
                                       "availability and the ramp")
    yield_learning: YieldLearning | None = Field(None, description="defect density falling from first silicon: the "
                                                 "silicon model's unit cost per quarter")
    purchase_unit_chips: int = Field(1, gt=0, le=1 << 20, description="chips per purchase (a node, a rack)")
    lifetime_quarters: int | None = Field(None, gt=0, le=MAX_QUARTERS, description="default: the scenario's")
    deployments: dict[str, Deployments] = Field(default_factory=dict, description="per demand class: one "
                                                "deployment or a list of candidates")


class InstalledUnits(FrozenSpec):
    device: str
    chips: int = Field(ge=0, le=1 << 40)
    age_quarters: int = Field(0, ge=0, le=MAX_QUARTERS, description="age at the start of the horizon (retires at the lifetime)")
    arrives: int | str | None = Field(None, description="already on order: the quarter it arrives")
    unit_cost_usd: float | None = Field(None, gt=0, description="per chip incl. system share, for depreciation")


class CapacityOverride(FrozenSpec):
    """A capacity measured once (with `seedchip capacity`) and recorded, so planning needs no simulation."""
    device: str
    demand: str
    num_chips: int | None = Field(None, gt=0, description="chips of the deployment measured (default: its deployment)")
    requests_per_s: float | None = Field(None, ge=0, description="max request rate meeting the SLOs")
    tokens_per_s: float = Field(ge=0, description="output tokens/s at that rate")
    energy_j_per_token: float = Field(ge=0, description="joules per output token at that rate")
    interval80: list[float] | None = Field(None, min_length=2, max_length=2, description="80% interval [low, high] "
                                           "of tokens_per_s (default: from the oracle's error bars)")
    note: str | None = None

    @field_validator("interval80")
    @classmethod
    def _iv(cls, v):
        if v is not None and not (0 < v[0] <= v[1] < math.inf):
            raise ValueError(f"interval80 {v!r}: give [low, high] with 0 < low <= high")
        return v


class Datacenter(FrozenSpec):
    power_mw: Series | None = Field(None, description="facility power available per quarter (IT x PUE), MW")
    pue: float = Field(1.25, ge=1.0, le=10.0)
    usd_per_kwh: float = Field(0.08, ge=0, le=10.0)


class Budget(FrozenSpec):
    capex_usd_per_year: Series | None = Field(None, description="capital spend per 4-quarter year from start")


class Hbm(FrozenSpec):
    supply_stacks: Series | None = Field(None, description="HBM stacks deliverable per quarter (null: unlimited)")
    carry_over: bool = Field(False, description="unused stacks stay in stock for later quarters")


class Solver(FrozenSpec):
    time_limit_s: float = Field(60.0, gt=0)
    mip_rel_gap: float = Field(1e-4, ge=0)


class Scenario(FrozenSpec):
    name: str = "plan"
    start: str = Field("2027Q1", description="label of the first quarter, YYYYQn")
    horizon_quarters: int = Field(gt=0, le=80)
    lifetime_quarters: int = Field(16, gt=0, le=MAX_QUARTERS)
    capacity_derate: float = Field(1.0, gt=0, le=1.0)
    objective: Literal["cash", "depreciation"] = "cash"
    discount_rate_per_year: float = Field(0.0, ge=0, le=1, description="cost of capital: costs in quarter q are "
                                          "weighed by (1 + r)^(-q/4); above 0 the plan buys just in time")
    calibration: str | None = None
    datacenter: Datacenter = Datacenter()
    budget: Budget = Budget()
    hbm: Hbm = Hbm()
    demand: dict[str, DemandClass] = Field(min_length=1)
    devices: dict[str, Device] = Field(min_length=1)
    installed_base: list[InstalledUnits] = Field(default_factory=list)
    capacity_override: list[CapacityOverride] = Field(default_factory=list)
    solver: Solver = Solver()

    @field_validator("start")
    @classmethod
    def _start(cls, v):
        if not QUARTER_RE.match(str(v)):
            raise ValueError(f"start {v!r}: write a quarter label such as 2027Q1")
        y, q = QUARTER_RE.match(str(v)).groups()
        return f"{y}Q{q}"

    # ---- quarters ----
    @property
    def quarter_labels(self) -> list[str]:
        y, q = QUARTER_RE.match(self.start).groups()
        y, q = int(y), int(q) - 1
        return [f"{y + (q + i) // 4}Q{(q + i) % 4 + 1}" for i in range(self.horizon_quarters)]

    @property
    def num_years(self) -> int:
        return -(-self.horizon_quarters // 4)

    @property
    def year_labels(self) -> list[str]:
        qs = self.quarter_labels
        out = []
        for y in range(self.num_years):
            a, b = qs[4 * y], qs[min(4 * y + 3, len(qs) - 1)]
            out.append(a[:4] if a.endswith("Q1") else (a if a == b else f"{a}-{b}"))
        return out

    def quarter_index(self, ref, path: tuple, *, allow_before: bool = False) -> int:
        """A quarter reference (index or label) as an index; PathError when out of the horizon."""
        if isinstance(ref, bool):
            raise PathError(f"quarter {ref!r}: give an index (0 = {self.start}) or a label such as {self.start}", path)
        if isinstance(ref, int):
            i = ref
        else:
            m = QUARTER_RE.match(str(ref))
            if not m:
                raise PathError(f"quarter {ref!r}: give an index (0 = {self.start}) or a label such as {self.start}", path)
            y0, q0 = QUARTER_RE.match(self.start).groups()
            i = (int(m.group(1)) - int(y0)) * 4 + int(m.group(2)) - int(q0)
        if i < 0 and not allow_before:
            raise PathError(f"quarter {ref!r} is before the start of the horizon ({self.start})", path)
        if abs(i) > MAX_QUARTERS:
            raise PathError(f"quarter {ref!r} is more than {MAX_QUARTERS} quarters from the start ({self.start})", path)
        return i

    @model_validator(mode="after")
    def _cross(self):
        n = self.horizon_quarters
        for name, d in self.demand.items():
            series = d.tokens_per_day if d.tokens_per_day is not None else d.peak_requests_per_s
            key = "tokens_per_day" if d.tokens_per_day is not None else "peak_requests_per_s"
            expand(series, n, ("demand", name, key))
        for name, dev in self.devices.items():
            expand(dev.production_cap_chips, n, ("devices", name, "production_cap_chips"))
            self.quarter_index(dev.available_from, ("devices", name, "available_from"), allow_before=True)
            for cls in dev.deployments:
                if cls not in self.demand:
                    raise PathError(f"no demand class {cls!r}; classes: {', '.join(self.demand)}",
                                    ("devices", name, "deployments", cls))
        expand(self.hbm.supply_stacks, n, ("hbm", "supply_stacks"))
        expand(self.datacenter.power_mw, n, ("datacenter", "power_mw"))
        expand(self.budget.capex_usd_per_year, self.num_years, ("budget", "capex_usd_per_year"))
        for i, b in enumerate(self.installed_base):
            if b.device not in self.devices:
                raise PathError(str(UnknownNameError("device", b.device, self.devices)), ("installed_base", i, "device"))
            if b.arrives is not None:
                self.quarter_index(b.arrives, ("installed_base", i, "arrives"))
        seen = set()
        for i, o in enumerate(self.capacity_override):
            if o.device not in self.devices:
                raise PathError(str(UnknownNameError("device", o.device, self.devices)), ("capacity_override", i, "device"))
            if o.demand not in self.demand:
                raise PathError(str(UnknownNameError("demand class", o.demand, self.demand)),
                                ("capacity_override", i, "demand"))
            if (o.device, o.demand) in seen:
                raise PathError(f"a second override for {o.device} x {o.demand}", ("capacity_override", i))
            seen.add((o.device, o.demand))
            deps = self.devices[o.device].deployments
            if o.num_chips is None and o.demand not in deps:
                raise PathError("give num_chips (the device has no deployment for this class)",
                                ("capacity_override", i, "num_chips"))
            if o.num_chips is None and len({c.num_chips for c in candidates_of(deps[o.demand])}) > 1:
                raise PathError("give num_chips (the class has candidate deployments of different sizes)",
                                ("capacity_override", i, "num_chips"))
            if self.demand[o.demand].basis == "requests" and o.requests_per_s is None:
                raise PathError(f"demand {o.demand!r} is in requests/s: give requests_per_s",
                                ("capacity_override", i, "requests_per_s"))
        return self


__all__ = ["Scenario", "DemandClass", "Device", "DeploymentSpec", "candidates_of", "InstalledUnits", "CapacityOverride",
           "expand", "percent"]
