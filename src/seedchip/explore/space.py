"""Design spaces in YAML: axes over chip parameters, constraints, a workload mix, objectives.

    name: inference-asic
    base_chip: seedchip-ref              # every point is this chip with the axes applied
    baseline: {chip: h200-sxm, purchase_price_usd: 30000}
    axes:                                # a list of values, or {low, high, num | step, log}
      bf16_flops_per_s: [600 TFLOP/s, 1000 TFLOP/s]
      sram_mb: [64, 128, 256]
      hbm_stacks: [4, 6, 8]
    constraints: {max_tdp_w: 1000, max_hbm_stacks: 8, max_unit_cost_usd: 15000}
    workload:
      - model: llama-3.1-70b
        weight: 0.5
        weight_format: fp8
        kv_format: fp8
        deployments: [{num_chips: 2, tp: 2}, {num_chips: 4, tp: 4}]   # the cheapest per token that fits
        scenarios: [{name: chat, batch: 64, max_batch: 256, input_len: 1024, output_len: 256}]
        serving: {workload: chat, num_requests: 200, slo_ttft_p99: 2 s, slo_tpot_p99: 50 ms}
    objectives: [tokens_per_usd, tokens_per_joule, throughput_per_chip]   # + slo_goodput_per_chip
    search: {method: grid}

``serving`` (optional) is read only for ``slo_goodput_per_chip`` (seedchip.serve.capacity, ~10
simulations of num_requests each per model and point); its SLOs default to the strictest
scenario max_ttft_s / max_tpot_s.

Errors name the field and the YAML line (``space.yaml:12: axes.sram_mb: ...``).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import Field, ValidationError, field_validator, model_validator

from .. import units
from ..errors import SeedChipError, SpecError, UnknownNameError, one_line
from ..perf.calibration import load_calibration
from ..perf.deployment import Parallelism
from ..spec_base import FrozenSpec
from ..version import code_hash
from ..yamlio import PathError, load_marked, validation_error, where

# axis name -> (kind, unit dimension for human strings, what it sets)
AXES: dict[str, tuple[str, str | None, str]] = {
    "bf16_flops_per_s": ("float", "flop/s", "dense bf16 matrix FLOP/s; fp8/int8/fp4 keep their ratio to bf16"),
    "clock_hz": ("float", "hz", "matrix clock (with the FLOP/s fixed, a lower clock needs more MACs)"),
    "vector_flops_per_s": ("float", "flop/s", "vector (non-matrix) FLOP/s"),
    "sram_mb": ("float", None, "shared on-chip SRAM in MB (10^6 bytes)"),
    "hbm_stacks": ("int", None, "HBM stacks"),
    "hbm_generation": ("str", None, "hbm2e, hbm3, hbm3e or hbm4 (per-stack bandwidth and pJ/bit from nodes.yaml)"),
    "hbm_height": ("int", None, "DRAM dies per stack (capacity per stack = height x die capacity)"),
    "link_bw_per_direction": ("float", "bytes/s", "scale-up link bandwidth per chip, one direction"),
    "process_node": ("str", None, "process node (nodes.yaml): area, wafer price, defect density, energy"),
    "spare_cores": ("int", None, "matrix cores on the die beyond the enabled ones (raise yield)"),
    "fp4": ("bool", None, "native fp4 at 4x the bf16 rate (true) or none (false)"),
    "tdp_w": ("float", "w", "power cap (default: the power the design needs)"),
}

OBJECTIVES: dict[str, tuple[str, str]] = {
    "tokens_per_usd": ("max", "output tokens per $ of TCO (the workload mix)"),
    "tokens_per_joule": ("max", "output tokens per joule (idle power included)"),
    "throughput_per_chip": ("max", "output tokens/s per chip (the workload mix)"),
    "slo_goodput_per_chip": ("max", "output tokens/s per chip at the highest rate meeting the serving p99 SLOs "
                                    "(seedchip.serve.capacity; the workload mix; 0 where no rate meets them)"),
    "unit_cost_usd": ("min", "manufacturing cost of one accelerator module"),
    "die_area_mm2": ("min", "total logic die area"),
    "tdp_w": ("min", "power the design needs"),
    "time_to_market_year": ("min", "first quarter both the process node and the HBM generation are in volume, plus "
                              "tco.design_quarters, as a decimal year (2026.0 = 2026Q1)"),
}


class Range(FrozenSpec):
    low: float | str
    high: float | str
    num: int | None = Field(None, ge=2, description="grid: this many evenly spaced values")
    step: float | str | None = Field(None, description="grid and Optuna: values low, low + step, ...")
    log: bool = False


class Scenario(FrozenSpec):
    name: str
    batch: int = Field(gt=0)
    input_len: int = Field(gt=0)
    output_len: int = Field(gt=0)
    weight: float = Field(1.0, gt=0, description="share of this model's output tokens")
    max_ttft_s: float | str | None = Field(None, description="SLO: static-batch TTFT at most this")
    max_tpot_s: float | str | None = Field(None, description="SLO: static-batch TPOT at most this")
    max_batch: int | None = Field(None, gt=0, le=1 << 20, description="run at the largest of batch, 2 x batch, ... up "
                                  "to this that fits the chip's memory and meets the SLOs (default: batch only)")

    @field_validator("max_ttft_s", "max_tpot_s")
    @classmethod
    def _seconds(cls, v):
        return None if v is None else units.parse(v, "s", what="SLO")


class DeploymentOption(Parallelism):
    """One parallel plan to try (formats come from the workload entry)."""
    num_chips: int = Field(gt=0)


class Serving(FrozenSpec):
    """The serving simulation behind ``slo_goodput_per_chip`` (run only when that objective is listed)."""
    workload: str = Field("chat", description="seedchip.serve synthetic workload (chat, code, summarize, reasoning, ...)")
    num_requests: int = Field(1000, ge=100, description="first run length of each capacity search")
    max_requests: int = Field(4000, ge=100, description="the longest run a capacity search may use (a screening "
                                                       "fidelity; seedchip capacity itself goes to 64,000)")
    slo_ttft_p99: float | str | None = Field(None, description="default: the smallest scenario max_ttft_s")
    slo_tpot_p99: float | str | None = Field(None, description="default: the smallest scenario max_tpot_s")
    seed: int = 0

    @field_validator("slo_ttft_p99", "slo_tpot_p99")
    @classmethod
    def _seconds(cls, v):
        if v is None:
            return None
        s = units.parse(v, "s", what="SLO")
        if not s > 0:
            raise ValueError(f"SLO {v!r} must be positive")
        return s


class WorkloadModel(FrozenSpec):
    model: str
    weight: float = Field(1.0, gt=0, description="share of the mix's output tokens")
    weight_format: str = "fp8"
    kv_format: str = "fp8"
    act_format: str | None = None
    deployments: list[DeploymentOption] = Field(min_length=1, description="the parallel plans to try")
    choose: Literal["best", "first"] = Field("best", description="best: the deployment with the lowest $ per token "
                                             "of those that fit and meet the SLOs; first: the first that fits")
    scenarios: list[Scenario] = Field(min_length=1)
    serving: Serving = Serving()

    def serving_slo(self) -> tuple[float | None, float | None]:
        """(TTFT p99, TPOT p99) for the serving simulation: the serving block's, else the
        strictest of the scenarios' static-batch limits."""
        def pick(own, attr):
            if own is not None:
                return own
            vals = [getattr(sc, attr) for sc in self.scenarios if getattr(sc, attr) is not None]
            return min(vals) if vals else None
        return pick(self.serving.slo_ttft_p99, "max_ttft_s"), pick(self.serving.slo_tpot_p99, "max_tpot_s")


class Constraints(FrozenSpec):
    max_die_area_mm2: float | None = Field(None, gt=0, description="per die; the reticle always applies")
    max_tdp_w: float | None = Field(None, gt=0)
    max_hbm_stacks: int | None = Field(None, gt=0)
    max_unit_cost_usd: float | None = Field(None, gt=0)


class Baseline(FrozenSpec):
    chip: str = "h200-sxm"
    purchase_price_usd: float | None = Field(None, gt=0, description="default: chips.yaml")
    usd_per_hour: float | None = Field(None, gt=0)


class Tco(FrozenSpec):
    lifetime_years: float | None = Field(None, gt=0)
    utilization: float | None = Field(None, gt=0, le=1)
    pue: float | None = Field(None, ge=1)
    usd_per_kwh: float | None = Field(None, ge=0)
    system_share_usd: float | None = Field(None, ge=0)
    nre_usd: float | None = Field(None, ge=0, description="our chip: design + masks spread over volume_units")
    nre_usd_by_node: dict[str, float] = Field(default_factory=dict, description="NRE per process node (a node not "
                                              "listed takes nre_usd): masks and design cost more on newer nodes")
    volume_units: float | None = Field(None, gt=0)
    design_quarters: int = Field(0, ge=0, le=40, description="from the later of node and HBM availability to our "
                                 "first shipments (time_to_market_year)")

    @field_validator("nre_usd_by_node")
    @classmethod
    def _nre(cls, v: dict) -> dict:
        for node, usd in v.items():
            if not (isinstance(usd, (int, float)) and 0 <= usd < math.inf):
                raise ValueError(f"nre_usd_by_node.{node}: {usd!r} must be a number of dollars >= 0")
        return v


class Search(FrozenSpec):
    method: Literal["grid", "random", "tpe", "nsga2"] = "grid"
    trials: int | None = Field(None, gt=0, description="random / tpe / nsga2: points to evaluate")
    seed: int = Field(0, ge=0)


class Fidelity(FrozenSpec):
    decode_samples: int | None = Field(
        None, ge=3, description="null: seedchip.estimate (every decode step up to 256); N: step_cost at N decode contexts")
    calibration: str | None = None
    yield_model: Literal["murphy", "negative-binomial", "poisson"] = "murphy"


class Space(FrozenSpec):
    name: str
    base_chip: str
    baseline: Baseline | None = Baseline()
    axes: dict[str, list[Any] | Range] = Field(min_length=1)
    constraints: Constraints = Constraints()
    workload: list[WorkloadModel] = Field(min_length=1)
    objectives: list[str] = Field(["tokens_per_usd", "tokens_per_joule", "throughput_per_chip"], min_length=1)
    tco: Tco = Tco()
    search: Search = Search()
    fidelity: Fidelity = Fidelity()

    @field_validator("axes")
    @classmethod
    def _axes(cls, v: dict) -> dict:
        out = {}
        for name, spec in v.items():
            if name not in AXES:
                raise PathError(f"unknown axis {name!r}; use one of {', '.join(AXES)}", (name,))
            kind, dim, _ = AXES[name]
            if isinstance(spec, Range):
                if kind in ("str", "bool"):
                    raise PathError(f"axis {name} takes a list of values, not a range", (name,))
                lo, hi = _value(name, spec.low, (name, "low")), _value(name, spec.high, (name, "high"))
                if not lo < hi:
                    raise PathError(f"low {spec.low!r} must be below high {spec.high!r}", (name,))
                step = None if spec.step is None else _value(name, spec.step, (name, "step"))
                out[name] = spec.model_copy(update={"low": lo, "high": hi, "step": step})
            else:
                if not spec:
                    raise PathError(f"axis {name} has no values", (name,))
                vals = [_value(name, x, (name, i)) for i, x in enumerate(spec)]
                if len(set(map(repr, vals))) != len(vals):
                    raise PathError(f"axis {name} repeats a value", (name,))
                out[name] = vals
        return out

    @field_validator("objectives")
    @classmethod
    def _objectives(cls, v: list[str]) -> list[str]:
        for o in v:
            if o not in OBJECTIVES:
                raise ValueError(f"unknown objective {o!r}; use {', '.join(OBJECTIVES)}")
        if len(set(v)) != len(v):
            raise ValueError("an objective is listed twice")
        return v

    @model_validator(mode="after")
    def _search(self) -> "Space":
        if self.search.method == "grid":
            for name, spec in self.axes.items():
                if isinstance(spec, Range) and spec.num is None and spec.step is None:
                    raise ValueError(f"grid search needs axis {name} as a list of values or a range with num or step")
        return self

    # ---- derived ---------------------------------------------------------------------------
    def eval_hash(self) -> str:
        """What a stored point's objectives depend on beyond its parameters."""
        # the serving block matters only to slo_goodput_per_chip (runs from before it existed resume)
        skip = None if "slo_goodput_per_chip" in self.objectives else {"workload": {"__all__": {"serving"}}}
        d = self.model_dump(mode="json", include={"base_chip", "constraints", "workload", "objectives", "tco",
                                                  "fidelity", "baseline"}, exclude=skip)
        # and the oracle itself: its code and data, and the calibration's content (a user's file)
        d["code"] = code_hash()
        d["calibration"] = load_calibration(self.fidelity.calibration).spec_hash()
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]

    def grid(self) -> list[dict]:
        names = list(self.axes)
        values = [axis_values(self.axes[n]) for n in names]
        return [dict(zip(names, combo)) for combo in itertools.product(*values)]

    def grid_size(self) -> int:
        return math.prod(len(axis_values(a)) for a in self.axes.values())

    def distinct_points(self) -> int | None:
        """How many different points a sample can draw (None: a continuous axis, unbounded)."""
        n = 1
        for name, spec in self.axes.items():
            if not isinstance(spec, Range) or spec.step is not None:
                n *= len(axis_values(spec))
            elif AXES[name][0] == "int":
                n *= int(spec.high) - int(spec.low) + 1
            else:
                return None
        return n

    def random_points(self, n: int, seed: int) -> list[dict]:
        rng = np.random.default_rng(seed)
        out = []
        for _ in range(n):
            p = {}
            for name, spec in self.axes.items():
                if isinstance(spec, Range):
                    p[name] = _sample_range(name, spec, rng)
                else:
                    p[name] = spec[int(rng.integers(len(spec)))]
            out.append(p)
        return out


MAX_AXIS_INT = 1 << 16        # stacks, dies per stack, spare cores: far beyond any package
MAX_AXIS_VALUE = 1e21         # FLOP/s, bytes/s, W, MB: a zetta-anything chip is a typo


def _value(axis: str, x: Any, path: tuple = ()) -> Any:
    kind, dim, _ = AXES[axis]
    if kind == "bool":
        if not isinstance(x, bool):
            raise PathError(f"{x!r} must be true or false", path)
        return x
    if kind == "str":
        if not isinstance(x, str):
            raise PathError(f"{x!r} must be a name", path)
        return x.lower()
    if isinstance(x, bool):
        raise PathError(f"{x!r} must be a number", path)
    if kind == "int":
        if isinstance(x, float) and x.is_integer():
            x = int(x)
        if not isinstance(x, int) or not 0 <= x <= MAX_AXIS_INT:
            raise PathError(f"{x!r} must be a whole number in 0..{MAX_AXIS_INT}", path)
        if axis != "spare_cores" and x == 0:
            raise PathError(f"{x!r} must be > 0", path)
        return x
    try:
        v = units.parse(x, dim, what=repr(x)) if dim else float(x)
    except (SeedChipError, TypeError, ValueError) as e:
        raise PathError(one_line(e), path) from None
    if not 0 < v <= MAX_AXIS_VALUE:
        raise PathError(f"{x!r} must be > 0 and finite, at most {MAX_AXIS_VALUE:g} (no chip comes near)", path)
    return float(v)


def axis_values(spec: list | Range) -> list:
    if not isinstance(spec, Range):
        return list(spec)
    lo, hi = float(spec.low), float(spec.high)
    if spec.step is not None:
        n = int(math.floor((hi - lo) / float(spec.step) + 1e-9)) + 1
        return [lo + i * float(spec.step) for i in range(n)]
    if spec.log:
        return [float(x) for x in np.geomspace(lo, hi, spec.num)]
    return [float(x) for x in np.linspace(lo, hi, spec.num)]


def _sample_range(name: str, spec: Range, rng: np.random.Generator) -> Any:
    lo, hi = float(spec.low), float(spec.high)
    if AXES[name][0] == "int":
        return int(rng.integers(int(lo), int(hi) + 1))
    if spec.step is not None:
        vals = axis_values(spec)
        return vals[int(rng.integers(len(vals)))]
    if spec.log:
        return float(math.exp(rng.uniform(math.log(lo), math.log(hi))))
    return float(rng.uniform(lo, hi))


def point_key(params: dict) -> str:
    """A stable key of a point: the hash of its canonical parameters."""
    blob = json.dumps({k: params[k] for k in sorted(params)}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def parse_space(text: str, origin: str = "<space>") -> Space:
    """A Space from YAML text; errors name the field and the line."""
    data, marks = load_marked(text, origin)
    if not isinstance(data, dict):
        raise SpecError(f"{origin}: a design space must be a YAML mapping (name, base_chip, axes, workload, ...)")
    try:
        space = Space.model_validate(data)
    except ValidationError as e:
        raise validation_error(e, origin, marks, drop=("Range",)) from None
    _check_names(space, marks, origin)
    return space


def _check_names(space: Space, marks: dict, origin: str) -> None:
    """Names that need the catalog (chips, models, nodes, HBM generations) and the workload's
    parallel plans, each reported with its YAML line."""
    from ..hardware.catalog import load_chip
    from ..model.zoo import load_model
    from ..perf.deployment import make_deployment
    from ..silicon.data import load_silicon_data

    def fail(loc: tuple, msg: str):
        raise SpecError(f"{where(origin, marks, loc)}: {msg}")

    try:
        base = load_chip(space.base_chip)
    except SeedChipError as e:
        fail(("base_chip",), one_line(e))
    if space.baseline is not None:
        try:
            load_chip(space.baseline.chip)
        except SeedChipError as e:
            fail(("baseline", "chip"), one_line(e))
    data = load_silicon_data()
    for i, v in enumerate(space.axes.get("process_node", [])):
        if v not in data.nodes:
            fail(("axes", "process_node", i), str(UnknownNameError("process node", v, data.nodes)))
    for i, v in enumerate(space.axes.get("hbm_generation", [])):
        if v not in data.hbm.generations:
            fail(("axes", "hbm_generation", i), str(UnknownNameError("HBM generation", v, data.hbm.generations)))
    for node in space.tco.nre_usd_by_node:
        if node not in data.nodes:
            fail(("tco", "nre_usd_by_node", node), str(UnknownNameError("process node", node, data.nodes)))
    goodput = "slo_goodput_per_chip" in space.objectives
    for i, w in enumerate(space.workload):
        if goodput:
            from ..serve.workload import synthetic_specs
            if w.serving.workload not in synthetic_specs():
                fail(("workload", i, "serving", "workload"),
                     str(UnknownNameError("workload", w.serving.workload, synthetic_specs())))
            if w.serving_slo() == (None, None):
                fail(("workload", i, "serving"), "slo_goodput_per_chip needs slo_ttft_p99 and/or slo_tpot_p99 "
                     "(or a scenario max_ttft_s / max_tpot_s)")
        try:
            model = load_model(w.model)
        except SeedChipError as e:
            fail(("workload", i, "model"), one_line(e))
        for j, d in enumerate(w.deployments):
            try:
                dep = make_deployment(base, num_chips=d.num_chips, tp=d.tp, pp=d.pp, ep=d.ep,
                                      weight_format=w.weight_format, act_format=w.act_format, kv_format=w.kv_format,
                                      calibration=space.fidelity.calibration)
                dep.check_model(model)
            except SeedChipError as e:
                fail(("workload", i, "deployments", j), one_line(e))


def load_space(path: str | Path) -> tuple[Space, str]:
    """(Space, its YAML text) from a file."""
    from ..outputs import read_text
    text = read_text(path, "design space")
    return parse_space(text, origin=str(path)), text


MAX_POINTS = 100_000     # one sweep evaluates at most this many points (~1 day at ~1 point/s per worker)


def trial_count(sp: Space, method: str, trials: int | None) -> int:
    """How many points the sweep evaluates: the whole grid, or the sample size; refused
    when it is not a count, has no effect, exceeds what the space holds or what one sweep
    can finish."""
    if trials is not None and (isinstance(trials, bool) or not isinstance(trials, int) or trials < 1):
        raise SpecError(f"--trials {trials!r} must be a whole number >= 1")
    if method == "grid":
        if trials is not None:
            raise SpecError(f"--search grid evaluates every point of the space ({sp.grid_size()}): drop --trials, "
                            "or sample with --search random, tpe or nsga2")
        n = sp.grid_size()
        if n > MAX_POINTS:
            raise SpecError(f"the grid has {n:,} points, more than one sweep's {MAX_POINTS:,}: sample it with "
                            "--search random, tpe or nsga2 and --trials")
        return n
    n = trials or sp.search.trials or 100
    distinct = sp.distinct_points()
    if distinct is not None and n > distinct:
        raise SpecError(f"--trials {n:,} is more than the {distinct:,} different points the space holds: use "
                        f"--search grid to evaluate them all, or at most {distinct:,} trials")
    if n > MAX_POINTS:
        raise SpecError(f"--trials {n:,} is more than one sweep's {MAX_POINTS:,} points: sample fewer")
    return n


def run_options(sp: Space, search: str | None, trials: int | None, seed: int | None,
                 workers: int) -> tuple[str, int, int]:
    """(search method, points to evaluate, seed) for sweeping ``sp``, or the option to fix."""
    method = search or sp.search.method
    if method not in ("grid", "random", "tpe", "nsga2"):
        raise SpecError(f"search {method!r}: use grid, random, tpe or nsga2")
    n = trial_count(sp, method, trials)
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or seed < 0):
        raise SpecError(f"--seed {seed!r} must be a whole number >= 0")
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise SpecError(f"--workers {workers!r} must be a whole number >= 1")
    return method, n, sp.search.seed if seed is None else seed


__all__ = ["Space", "Range", "AXES", "OBJECTIVES", "parse_space", "load_space", "point_key", "axis_values",
           "run_options", "trial_count", "MAX_POINTS"]
