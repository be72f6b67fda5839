"""Evaluate one design point: build the chip, price its silicon, check the constraints,
run the workload mix through the oracle and compute the objectives.

Per (model, scenario) i with token share w_i (model weight x scenario weight, normalised):
    chip_s_i  = num_chips / tokens_per_s          energy_i = energy_j / output tokens
    usd_i     = chip_s_i x $/chip-s + energy_i x PUE x $/kWh      (silicon.tco)
    tokens_per_usd = 1 / sum w_i usd_i,  tokens_per_joule = 1 / sum w_i energy_i,
    throughput_per_chip = 1 / sum w_i chip_s_i
Time and energy come from ``seedchip.estimate``'s engine (perf.estimate.static_estimate on the
same deployment; the default) or, with
``fidelity.decode_samples: N``, from ``seedchip.step_cost`` on the same prefill steps and
N decode contexts summed by the trapezoid rule (what estimate does past 256 steps).

``slo_goodput_per_chip`` (only when listed: it is ~10 serving simulations per model) comes from
``seedchip.serve.capacity`` on the same chip and the deployment chosen above, with each workload
entry's ``serving`` block (synthetic workload, num_requests, p99 SLOs): g_m = output tokens/s
per chip at the highest rate meeting the SLOs, mixed like the others, 1 / sum w_m / g_m (w_m the
model weights, normalised). A model whose deployment meets the SLO at no rate gives g_m = 0,
so the mix is 0; the reason is kept under metrics["slo_goodput"].
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass


from ..errors import DoesNotFitError, ParallelismError, SeedChipError, one_line
from ..hardware.catalog import load_chip
from ..hardware.spec import ChipSpec
from ..model.zoo import load_model
from ..perf.calibration import Calibration, load_calibration
from ..perf.deployment import make_deployment
from ..perf.estimate import static_figures
from ..silicon.data import ChipSilicon, chip_silicon, load_silicon_data
from ..silicon.report import silicon_report
from ..silicon.tco import TcoInputs, token_cost, tco_inputs
from .space import OBJECTIVES, Space, point_key
from .variant import VariantError, make_variant


@dataclass
class Context:
    """What every evaluation needs, built once per worker."""
    space: Space
    base: ChipSpec
    base_silicon: ChipSilicon
    models: dict
    tco: TcoInputs
    calibration: Calibration

    @classmethod
    def build(cls, space: Space) -> "Context":
        t = space.tco
        tco = tco_inputs(lifetime_years=t.lifetime_years, utilization=t.utilization, pue=t.pue,
                         usd_per_kwh=t.usd_per_kwh, system_share_usd=t.system_share_usd, nre_usd=t.nre_usd,
                         volume_units=t.volume_units)
        base = load_chip(space.base_chip)
        return cls(space=space, base=base, base_silicon=chip_silicon(base.id),
                   models={w.model: load_model(w.model) for w in space.workload}, tco=tco,
                   calibration=load_calibration(space.fidelity.calibration))


def sampled_estimate(model, dep, batch: int, input_len: int, output_len: int, samples: int) -> dict:
    """seedchip.estimate's figures with decode priced at ``samples`` contexts."""
    return static_figures(model, dep, batch, input_len, output_len, decode_samples=samples)


def _deployment(ctx: Context, chip: ChipSpec, w, d):
    """The deployment of a workload entry on ``chip`` (one per entry and chip: every scenario
    and batch runs on it)."""
    return make_deployment(chip, num_chips=d.num_chips, tp=d.tp, pp=d.pp, ep=d.ep, weight_format=w.weight_format,
                           act_format=w.act_format, kv_format=w.kv_format, calibration=ctx.calibration)


def _run(ctx: Context, dep, w, sc, batch: int) -> dict:
    model = ctx.models[w.model]
    n = ctx.space.fidelity.decode_samples
    if n:
        return sampled_estimate(model, dep, batch, sc.input_len, sc.output_len, n)
    return static_figures(model, dep, batch, sc.input_len, sc.output_len)   # seedchip.estimate's figures


def batches(sc) -> list[int]:
    """The batches a scenario may run at, largest first: ``batch`` alone, or ``batch`` doubling up to
    ``max_batch``."""
    if sc.max_batch is None or sc.max_batch <= sc.batch:
        return [sc.batch]
    out, b = [], sc.batch
    while b < sc.max_batch:
        out.append(b)
        b *= 2
    return [sc.max_batch] + out[::-1]


def _slo_miss(w, sc, r: dict) -> str | None:
    if sc.max_ttft_s is not None and r["ttft_s"] > sc.max_ttft_s:
        return f"{w.model} {sc.name}: TTFT {r['ttft_s']:.3g} s over the SLO {sc.max_ttft_s:.3g} s"
    if sc.max_tpot_s is not None and r["tpot_s"] > sc.max_tpot_s:
        return f"{w.model} {sc.name}: TPOT {r['tpot_s']:.3g} s over the SLO {sc.max_tpot_s:.3g} s"
    return None


def _scenario(ctx: Context, dep, w, sc) -> tuple[int | None, dict | None, str | None]:
    """(batch, figures, why none): the largest batch of the scenario that fits the deployment's
    memory and meets its SLOs. DoesNotFitError when not even the smallest fits."""
    miss = None
    for b in batches(sc):
        try:
            r = _run(ctx, dep, w, sc, b)
        except DoesNotFitError:
            if b == sc.batch:
                raise
            continue
        miss = _slo_miss(w, sc, r)
        if miss is None:
            return b, r, None
    return None, None, miss


def _deployment_cost(ctx: Context, chip: ChipSpec, w, d, unit_cost_usd: float, tco: TcoInputs, total_w: float):
    """(usd, joule, chip_s per token of the model's share of the mix, per-scenario detail) of one
    deployment, or (None, why) when a scenario meets its SLO at no batch."""
    usd = joule = chip_s = 0.0
    detail = {}
    dep = _deployment(ctx, chip, w, d)
    for sc in w.scenarios:
        b, r, miss = _scenario(ctx, dep, w, sc)
        if b is None:
            return None, miss
        share = w.weight * sc.weight / total_w
        c = token_cost(num_chips=d.num_chips, tokens_per_s=r["throughput_tokens_per_s"],
                       energy_j_per_token=r["energy_j"] / (b * sc.output_len), unit_cost_usd=unit_cost_usd, inputs=tco)
        usd += share * c.usd_per_token
        joule += share * c.energy_j_per_token
        chip_s += share * c.chip_s_per_token
        detail[f"{w.model}/{sc.name}"] = {"num_chips": d.num_chips, "tp": d.tp, "ep": d.ep, "batch": b, **r,
                                          "usd_per_million_tokens": c.usd_per_token * 1e6}
    return (usd, joule, chip_s, detail), None


def _choose(ctx: Context, chip: ChipSpec, w, unit_cost_usd: float, tco: TcoInputs, total_w: float):
    """The model's deployment: the first that fits (``choose: first``) or the one with the lowest $
    per token of those that fit and meet the SLOs (``choose: best``; ties: listed order).
    (deployment, its figures) or (None, why none works)."""
    best, why, last_fit = None, None, None
    for d in w.deployments:
        try:
            figs, miss = _deployment_cost(ctx, chip, w, d, unit_cost_usd, tco, total_w)
        except DoesNotFitError as e:
            last_fit = e
            continue
        if figs is None:
            why = why or miss
            if w.choose == "first":
                return None, miss
            continue
        if best is None or figs[0] < best[1][0]:
            best = (d, figs)
        if w.choose == "first":
            break
    if best is not None:
        return best
    if why is not None:
        return None, why
    biggest = max(w.deployments, key=lambda x: x.num_chips)
    return None, (f"{w.model} fits none of its deployments (largest {biggest.num_chips} chips): "
                  f"{one_line(last_fit) if last_fit else ''}")


def workload_metrics(ctx: Context, chip: ChipSpec, unit_cost_usd: float, tco: TcoInputs,
                     chosen_out: dict | None = None) -> tuple[dict | None, str | None, dict]:
    """(objective values, infeasible reason, per-scenario detail) of the workload mix on ``chip``:
    each model on its chosen deployment (``_choose``), each scenario at its largest batch within
    memory and SLO (``batches``); ``chosen_out`` (when given) gets model -> the deployment used."""
    total_w = sum(w.weight * sc.weight for w in ctx.space.workload for sc in w.scenarios)
    usd = joule = chip_s = 0.0
    detail: dict = {}
    for w in ctx.space.workload:
        d, figs = _choose(ctx, chip, w, unit_cost_usd, tco, total_w)
        if d is None:
            return None, figs, detail
        if chosen_out is not None:
            chosen_out[w.model] = d
        u, j, c, det = figs
        usd, joule, chip_s = usd + u, joule + j, chip_s + c
        detail.update(det)
    return {"tokens_per_usd": 1.0 / usd, "tokens_per_joule": 1.0 / joule, "throughput_per_chip": 1.0 / chip_s}, None, detail


def slo_goodput(ctx: Context, chip: ChipSpec, chosen: dict) -> tuple[float, dict]:
    """(slo_goodput_per_chip, per-model detail) from seedchip.serve.capacity; never raises for a
    deployment that meets no SLO (its goodput is 0 and the reason is in the detail)."""
    from ..serve.capacity import capacity
    total_w = sum(w.weight for w in ctx.space.workload)
    inv = 0.0
    detail: dict = {}
    for w in ctx.space.workload:
        d, sv = chosen[w.model], w.serving
        ttft, tpot = w.serving_slo()
        try:
            r = capacity(chip=chip, model=ctx.models[w.model], num_chips=d.num_chips, tp=d.tp, pp=d.pp, ep=d.ep,
                         weight_format=w.weight_format, act_format=w.act_format, kv_format=w.kv_format,
                         calibration=ctx.space.fidelity.calibration, workload=sv.workload,
                         num_requests=sv.num_requests, max_requests=sv.max_requests, seed=sv.seed,
                         slo_ttft_p99=ttft, slo_tpot_p99=tpot, interval=False).to_dict()
        except SeedChipError as e:
            detail[w.model] = {"goodput_tokens_per_s_per_chip": 0.0, "reason": one_line(e), "num_chips": d.num_chips}
            inv = math.inf
            continue
        g = r["throughput_tokens_per_s"] / d.num_chips
        detail[w.model] = {"goodput_tokens_per_s_per_chip": g, "max_qps": r["max_qps"],
                           "max_qps_per_chip": r["max_qps_per_chip"], "num_chips": d.num_chips,
                           "ttft_p99_s": r["metrics"]["ttft_s"]["p99"], "tpot_p99_s": r["metrics"]["tpot_s"]["p99"],
                           "reason": None}
        inv += (w.weight / total_w) / g if g > 0 else math.inf
    return (0.0 if not math.isfinite(inv) else 1.0 / inv), detail


def _objectives(ctx: Context, chip: ChipSpec, objs: dict, chosen: dict, m: dict) -> tuple[dict, dict]:
    """(the space's objectives, the metrics ``m`` plus the SLO goodput detail when it is one of them);
    ``m`` itself is not changed."""
    if "slo_goodput_per_chip" in ctx.space.objectives:
        objs = dict(objs)
        objs["slo_goodput_per_chip"], goodput = slo_goodput(ctx, chip, chosen)
        m = {**m, "slo_goodput": goodput}
    return {o: (objs[o] if o in objs else m[o]) for o in ctx.space.objectives}, m


def _row(key, params, feasible, reason, objectives, metrics, t0, baseline=False) -> dict:
    return {"key": key, "params": params, "feasible": feasible, "reason": reason, "objectives": objectives,
            "metrics": metrics, "eval_s": time.perf_counter() - t0, "is_baseline": baseline}


def _decimal_year(quarter: str) -> float:
    return int(quarter[:4]) + (int(quarter[-1]) - 1) / 4.0


def programme(sp, chip: ChipSpec, data, bought: bool = False) -> dict:
    """What building the design commits to beyond its unit cost: its NRE (the node's, else the
    space's), the quarter its node and HBM generation are both in volume, and time_to_market_year
    (that quarter plus the design time, as a decimal year). A chip we buy (``bought``) has no NRE
    and no design time: it is on the market once its technology is."""
    node = data.node(chip.process_node)
    hbm = data.hbm_generation(chip.hbm.generation)
    first = max(node.available_from, hbm.available_from)
    design = 0 if bought else sp.tco.design_quarters
    return {"nre_usd": 0.0 if bought else sp.tco.nre_usd_by_node.get(chip.process_node, sp.tco.nre_usd),
            "technology_available_quarter": first, "time_to_market_year": _decimal_year(first) + design / 4.0}


def evaluate_point(ctx: Context, params: dict) -> dict:
    """One stored row: key, params, feasible, reason, objectives (None when infeasible), metrics."""
    t0 = time.perf_counter()
    key = point_key(params)
    sp = ctx.space
    data = load_silicon_data()
    try:
        chip, sil = make_variant(ctx.base, params, data, ctx.base_silicon)
        rep = silicon_report(chip, silicon=sil, yield_model=sp.fidelity.yield_model, data=data)
    except (VariantError, SeedChipError) as e:
        return _row(key, params, False, one_line(e), None, {}, t0)
    m = {"die_area_mm2": rep.die_area_mm2, "yield": rep.die_yield, "unit_cost_usd": rep.unit_cost_usd,
         "tdp_w": rep.tdp_w, "hbm_capacity_gb": chip.hbm_capacity_bytes / 1e9,
         "hbm_bw_tb_per_s": chip.hbm_bw_bytes_per_s / 1e12, "bf16_tflop_per_s": chip.matrix.peak_flops_per_s["bf16"] / 1e12,
         "num_cores": chip.matrix.num_cores, "chip_hash": chip.spec_hash(), **programme(sp, chip, data)}
    reasons = list(rep.reasons)
    c = sp.constraints
    if c.max_die_area_mm2 is not None and rep.area.die_mm2 > c.max_die_area_mm2:
        reasons.append(f"die {rep.area.die_mm2:.0f} mm2 over the limit {c.max_die_area_mm2:.0f} mm2")
    if c.max_tdp_w is not None and rep.tdp_w > c.max_tdp_w:
        reasons.append(f"TDP {rep.tdp_w:.0f} W over the limit {c.max_tdp_w:.0f} W")
    if c.max_hbm_stacks is not None and chip.hbm.num_stacks > c.max_hbm_stacks:
        reasons.append(f"{chip.hbm.num_stacks} HBM stacks over the limit {c.max_hbm_stacks}")
    if c.max_unit_cost_usd is not None and rep.unit_cost_usd > c.max_unit_cost_usd:
        reasons.append(f"unit cost ${rep.unit_cost_usd:,.0f} over the limit ${c.max_unit_cost_usd:,.0f}")
    if reasons:
        return _row(key, params, False, "; ".join(reasons), None, m, t0)
    chosen: dict = {}
    tco = ctx.tco.model_copy(update={"nre_usd": m["nre_usd"]}) if m["nre_usd"] is not None else ctx.tco
    try:
        objs, reason, detail = workload_metrics(ctx, chip, rep.unit_cost_usd, tco, chosen)
    except (ParallelismError, SeedChipError) as e:
        return _row(key, params, False, one_line(e), None, m, t0)
    m["workload"] = detail
    if objs is None:
        return _row(key, params, False, reason, None, m, t0)
    objectives, m = _objectives(ctx, chip, objs, chosen, m)
    return _row(key, params, True, None, objectives, m, t0)


def evaluate_baseline(ctx: Context) -> dict | None:
    """The baseline chip (bought, not built) on the same workload: its row is marked."""
    b = ctx.space.baseline
    if b is None:
        return None
    t0 = time.perf_counter()
    chip = load_chip(b.chip)
    rep = silicon_report(chip)
    price = b.purchase_price_usd or chip_silicon(chip.id).purchase_price_usd
    tco = ctx.tco.model_copy(update={"purchase_price_usd": None if b.usd_per_hour else price,
                                     "usd_per_hour": b.usd_per_hour, "nre_usd": 0.0})
    m = {"die_area_mm2": rep.die_area_mm2, "yield": rep.die_yield, "unit_cost_usd": price or rep.unit_cost_usd,
         "tdp_w": chip.tdp_w, "hbm_capacity_gb": chip.hbm_capacity_bytes / 1e9,
         "hbm_bw_tb_per_s": chip.hbm_bw_bytes_per_s / 1e12, "bf16_tflop_per_s": chip.matrix.peak_flops_per_s["bf16"] / 1e12,
         "num_cores": chip.matrix.num_cores, "chip_hash": chip.spec_hash(), "purchase_price_usd": price,
         "usd_per_hour": b.usd_per_hour, **programme(ctx.space, chip, load_silicon_data(), bought=True)}
    params = {"baseline": chip.id}
    chosen: dict = {}
    try:
        objs, reason, detail = workload_metrics(ctx, chip, rep.unit_cost_usd, tco, chosen)
    except SeedChipError as e:
        return _row("baseline", params, False, one_line(e), None, m, t0, True)
    m["workload"] = detail
    if objs is None:
        return _row("baseline", params, False, reason, None, m, t0, True)
    objectives, m = _objectives(ctx, chip, objs, chosen, m)
    return _row("baseline", params, True, None, objectives, m, t0, True)


def direction(objective: str) -> str:
    return OBJECTIVES[objective][0]


__all__ = ["Context", "evaluate_point", "evaluate_baseline", "sampled_estimate", "workload_metrics", "slo_goodput", "direction"]
