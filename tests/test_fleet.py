"""Fleet and procurement planner: the MILP against brute-force enumeration, monotonicity
(Hypothesis), infeasibility explanations on crafted cases, what-ifs, YAML errors with field and
line, the capacity cache (the one simulator call), CLI == API and the example scenario."""

import copy
import itertools
import json
import math
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import typer
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from seedchip.cli.plan_cmds import register
from seedchip.errors import SpecError
from seedchip.fleet import apply_what_if, build_problem, parse_scenario, plan, resolve_capacities, solve_problem

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "plan" / "two_year_plan.yaml"
CONTRACT = {"status", "total_cost_usd", "quarters", "binding_constraints", "unmet_demand"}
QUARTER_KEYS = {"purchases", "installed", "served_tokens_per_s", "power_mw", "spend_usd", "cost_per_million_tokens_usd"}
SECONDS_PER_QUARTER = 7_889_400.0      # by hand: 365.25 days x 86,400 s / 4 (not the planner's constant)
J_PER_KWH = 3.6e6                      # by hand: 1,000 W x 3,600 s


def scenario(*, quarters=3, demand=(300.0, 450.0, 600.0), rates=(100.0, 150.0), costs=(10_000.0, 30_000.0),
             energy=(1.0, 2.0), caps=(None, None), units=(1, 1), stacks=(8, 0), power_w=(1000.0, 1000.0),
             hbm=None, power_mw=None, budget=None, base=(0, 0), available=(0, 0), lead=(0, 0), usd_per_kwh=0.1,
             pue=1.2, discount=0.0, derate=1.0, idle_w=(0.0, 0.0), host_w=(0.0, 0.0)) -> dict:
    """A small scenario: one chat class (peak output tokens/s = demand; peak_to_average 1) served
    by an own chip `a` and a GPU `b`, capacities given as overrides (no simulation)."""
    devs = {}
    for i, name in enumerate(("a", "b")):
        devs[name] = {"kind": "own" if i == 0 else "gpu", "chip": "seedchip-ref" if i == 0 else "h200-sxm",
                      "unit_cost_usd": costs[i], "power_w_per_chip": power_w[i], "hbm_stacks_per_chip": stacks[i],
                      "draws_hbm_supply": stacks[i] > 0, "purchase_unit_chips": units[i],
                      "available_from": available[i], "lead_time_quarters": lead[i],
                      "idle_power_w_per_chip": idle_w[i], "host_power_w_per_chip": host_w[i]}
        if caps[i] is not None:
            devs[name]["production_cap_chips"] = caps[i]
    s = {"name": "tiny", "start": "2027Q1", "horizon_quarters": quarters, "capacity_derate": derate,
         "discount_rate_per_year": discount,
         "datacenter": {"pue": pue, "usd_per_kwh": usd_per_kwh, **({"power_mw": power_mw} if power_mw is not None else {})},
         "budget": {"capex_usd_per_year": budget} if budget is not None else {},
         "hbm": {"supply_stacks": hbm} if hbm is not None else {},
         "solver": {"mip_rel_gap": 0.0},
         "demand": {"chat": {"model": "llama-3.1-8b", "workload": "chat", "slo": {"tpot_p99": "50ms"},
                             "peak_to_average": 1.0, "tokens_per_day": [d * 86400 for d in demand]}},
         "devices": devs,
         "installed_base": [{"device": n, "chips": c} for n, c in zip(("a", "b"), base) if c],
         "capacity_override": [{"device": n, "demand": "chat", "num_chips": 1, "tokens_per_s": r,
                                "energy_j_per_token": e} for n, r, e in zip(("a", "b"), rates, energy)]}
    return s


def solve(s: dict) -> dict:
    return plan(s).to_dict()


# ---- brute force ------------------------------------------------------------------------------
def brute_force(s: dict, max_units: int) -> float | None:
    """The least cost over every purchase vector with 0..max_units units per device and quarter
    (one class: each quarter's shares are filled greedily, lowest energy per token first),
    enumerated as one NumPy array."""
    Q = s["horizon_quarters"]
    names = list(s["devices"])
    devs = [s["devices"][n] for n in names]
    D = len(devs)
    ov = {o["device"]: o for o in s["capacity_override"]}
    rate = np.array([ov[n]["tokens_per_s"] * s["capacity_derate"] for n in names])
    ej = np.array([ov[n]["energy_j_per_token"] for n in names])
    unit = np.array([d["purchase_unit_chips"] for d in devs], dtype=float)
    capex = np.array([d["unit_cost_usd"] for d in devs]) * unit
    base = np.zeros(D)
    for b in s["installed_base"]:
        base[names.index(b["device"])] += b["chips"]
    demand = np.array(s["demand"]["chat"]["tokens_per_day"]) / 86400.0
    dc = s["datacenter"]
    disc = (1 + s["discount_rate_per_year"]) ** (-np.arange(Q) / 4.0)

    b = np.array(list(itertools.product(range(max_units + 1), repeat=D * Q)), dtype=float).reshape(-1, D, Q)
    ok = np.ones(len(b), dtype=bool)
    for d, dev in enumerate(devs):
        first = max(dev["available_from"], dev["lead_time_quarters"])
        ok &= b[:, d, :first].sum(axis=1) == 0
        cap = dev.get("production_cap_chips")
        if cap is not None:
            ok &= (b[:, d, :] * unit[d] <= np.array(cap if isinstance(cap, list) else [cap] * Q)).all(axis=1)
    chips = b * unit[None, :, None]
    if "supply_stacks" in s["hbm"]:
        stacks = np.array([d["hbm_stacks_per_chip"] for d in devs], dtype=float)
        ok &= ((stacks[None, :, None] * chips).sum(axis=1) <= np.array(s["hbm"]["supply_stacks"])).all(axis=1)
    inst = base[None, :, None] + np.cumsum(chips, axis=2)
    if "power_mw" in dc:
        pw = np.array([d["power_w_per_chip"] + d["host_power_w_per_chip"] for d in devs])
        ok &= ((pw[None, :, None] * inst).sum(axis=1) * dc["pue"] / 1e6 <= np.array(dc["power_mw"]) + 1e-9).all(axis=1)
    if s["budget"]:
        bud = s["budget"]["capex_usd_per_year"]
        ok &= (capex[None, :, None] * b).sum(axis=(1, 2)) <= (bud[0] if isinstance(bud, list) else bud) + 1e-6
    served = rate[None, :, None] * inst                                               # (N, D, Q)
    ok &= (served.sum(axis=1) >= demand[None, :] - 1e-9).all(axis=1)
    if not ok.any():
        return None
    b, served, inst = b[ok], served[ok], inst[ok]
    cost = (capex[None, :, None] * b * disc[None, None, :]).sum(axis=(1, 2))
    # energy: every installed chip draws idle + host power; a busy one draws its J/token x tokens/s
    # instead of idle, so a token served on d costs ej - idle / rate more than leaving the chip idle
    idle = np.array([d["idle_power_w_per_chip"] for d in devs])
    host = np.array([d["host_power_w_per_chip"] for d in devs])
    usd_per_j = dc["pue"] * dc["usd_per_kwh"] / J_PER_KWH
    cost += (((idle + host)[None, :, None] * inst).sum(axis=1) * SECONDS_PER_QUARTER * usd_per_j * disc[None, :]).sum(axis=1)
    marginal = ej - idle / rate
    left = np.ones((len(b), Q))
    for d in np.argsort(marginal, kind="stable"):
        share = np.minimum(left, served[:, d, :] / np.where(demand > 0, demand, 1.0)[None, :])
        left -= share
        cost += (share * demand[None, :] * SECONDS_PER_QUARTER * marginal[d] * usd_per_j * disc[None, :]).sum(axis=1)
    return float(cost.min())


CASES = [
    dict(),                                                                 # cheap chip wins everywhere
    dict(rates=(100.0, 400.0), costs=(10_000.0, 30_000.0)),                 # the GPU is cheaper per token/s
    dict(caps=([3, 5, 5], None), hbm=[16, 24, 40]),                         # production cap and HBM bind
    dict(power_mw=[0.02, 0.02, 0.03], energy=(5.0, 0.5), usd_per_kwh=2.0),  # power binds, energy matters
    dict(units=(4, 2), budget=200_000.0, rates=(120.0, 200.0)),             # purchase units and a budget
    dict(base=(0, 6), available=(1, 0), lead=(0, 1), discount=0.3),         # availability, lead time, PV
    dict(idle_w=(300.0, 150.0), host_w=(200.0, 400.0), usd_per_kwh=3.0,     # idle and host energy of every
         base=(2, 0), power_mw=[0.05, 0.05, 0.05]),                         # installed chip
]


@pytest.mark.unit
@pytest.mark.parametrize("case", range(len(CASES)))
def test_milp_matches_brute_force(case):
    s = scenario(**CASES[case])
    d = solve(s)
    expect = brute_force(s, max_units=6)
    assert expect is not None, "the crafted case must be feasible"
    assert d["status"] == "optimal"
    assert d["total_cost_usd"] == pytest.approx(expect, rel=1e-7)


@pytest.mark.unit
def test_random_tiny_plans_match_brute_force():
    rng = np.random.default_rng(7)
    for _ in range(6):
        kw = dict(quarters=2, demand=tuple(rng.uniform(300, 900, 2)), rates=tuple(rng.uniform(80, 300, 2)),
                  costs=tuple(rng.uniform(5e3, 4e4, 2)), energy=tuple(rng.uniform(0.2, 3.0, 2)),
                  hbm=[float(rng.integers(16, 64))] * 2, usd_per_kwh=float(rng.uniform(0.05, 1.0)))
        s = scenario(**kw)
        d = solve(s)
        expect = brute_force(s, max_units=9)
        if expect is None:
            assert d["status"] == "infeasible"
        else:
            assert d["total_cost_usd"] == pytest.approx(expect, rel=1e-7), kw


@pytest.mark.unit
def test_contract_keys_and_hand_numbers():
    d = solve(scenario(quarters=1, demand=(1000.0,), rates=(100.0, 150.0), costs=(10_000.0, 60_000.0)))
    assert CONTRACT <= set(d)
    q = d["quarters"][0]
    assert QUARTER_KEYS <= set(q)
    # 10 chips of `a` serve 1000 tok/s at $10,000 each. Energy, by hand: 1000 tok/s x 1 J x 7,889,400 s
    # (a quarter) = 7.8894e9 J = 2,191.5 kWh; x 1.2 PUE x $0.1/kWh = $262.98
    assert q["purchases"] == {"a": 10, "b": 0}
    assert q["energy_usd"] == pytest.approx(262.98)
    assert d["total_cost_usd"] == pytest.approx(100_262.98)
    assert q["power_mw"] == pytest.approx(0.012)                      # 10 chips x 1 kW x 1.2 PUE
    assert q["served_tokens_per_s"]["chat"] == pytest.approx(1000)
    assert q["served_tokens"] == pytest.approx(7.8894e9)
    # a quarter of 16-quarter depreciation ($6,250) + energy over 7,889.4 million tokens
    assert q["cost_per_million_tokens_usd"] == pytest.approx((6_250 + 262.98) / 7_889.4)
    assert d["unmet_demand"] == []


@pytest.mark.unit
def test_shadow_price_of_hbm_is_the_saving_per_stack():
    # `a`: $10k per 100 tok/s, 8 stacks; `b`: $30k per 100 tok/s. One more stack lets 1/8 chip of `a`
    # replace 1/8 chip of `b`: the LP shadow price is ($30k - $10k) / 8 = $2,500 per stack (no energy cost).
    d = solve(scenario(quarters=1, demand=(1000.0,), rates=(100.0, 100.0), costs=(10_000.0, 30_000.0),
                       hbm=[40], usd_per_kwh=0.0))
    (b,) = [x for x in d["binding_constraints"] if x["kind"] == "hbm_supply"]
    assert b["name"] == "hbm_supply[2027Q1]" and b["tight_in_plan"]
    assert b["shadow_price_usd"] == pytest.approx(2500.0)
    assert d["quarters"][0]["purchases"] == {"a": 5, "b": 5}


# ---- monotonicity -----------------------------------------------------------------------------
def _base_problem():
    s = scenario(quarters=3, demand=(900.0, 1400.0, 2100.0), rates=(100.0, 140.0), costs=(12_000.0, 30_000.0),
                 caps=([4, 8, 12], 40), units=(2, 1), hbm=[24, 48, 64], power_mw=[0.03, 0.03, 0.04],
                 budget=400_000.0, energy=(1.0, 1.6))
    sc = parse_scenario(s)
    return build_problem(sc, resolve_capacities(sc))


BASE_PROBLEM = None


def _problem():
    global BASE_PROBLEM
    if BASE_PROBLEM is None:
        BASE_PROBLEM = _base_problem()
    return BASE_PROBLEM


def _cost(p) -> float | None:
    r = solve_problem(p)
    return r.total_cost_usd if r.status == "optimal" else None


def _hyp(n):
    return settings(max_examples=n, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow])


@pytest.mark.property
@_hyp(12)
@given(key=st.sampled_from(["budget", "hbm_supply", "power", "a_cap", "b_cap"]),
       scale=st.floats(0.3, 1.5), more=st.floats(0.01, 1.0))
def test_more_resource_never_raises_cost(key, scale, more):
    p, _ = apply_what_if(_problem(), f"{key}=x{scale}")
    lo = _cost(p)
    hi_p, _ = apply_what_if(p, f"{key}=+{more * 100}%")
    hi = _cost(hi_p)
    if lo is not None:
        assert hi is not None, "more of a resource cannot make a feasible plan infeasible"
        assert hi <= lo * (1 + 1e-9) + 1e-6


@pytest.mark.property
@_hyp(12)
@given(scale=st.floats(0.2, 1.2), more=st.floats(0.01, 0.6))
def test_more_demand_never_lowers_cost(scale, more):
    p, _ = apply_what_if(_problem(), f"demand=x{scale}")
    lo = _cost(p)
    hi_p, _ = apply_what_if(p, f"demand=+{more * 100}%")
    hi = _cost(hi_p)
    if hi is not None:
        assert lo is not None, "less demand cannot make a feasible plan infeasible"
        assert hi >= lo * (1 - 1e-9) - 1e-6


# ---- infeasibility explanations ---------------------------------------------------------------
def _only_a(**kw):
    """Only device `a` (the GPU is unavailable): 100 tok/s per chip, 8 stacks, 1 kW, $10k."""
    s = scenario(quarters=1, demand=(10_000.0,), rates=(100.0, 100.0), **kw)
    s["devices"]["b"]["purchasable"] = False
    return s


@pytest.mark.unit
def test_infeasible_hbm_names_hbm_and_amount():
    d = solve(_only_a(hbm=[500]))        # 100 chips x 8 stacks = 800 needed
    assert d["status"] == "infeasible"
    (v,) = d["infeasibility"]["violations"]
    assert v["kind"] == "hbm_supply" and v["quarter"] == "2027Q1"
    assert v["shortfall"] == pytest.approx(300) and v["shortfall_pct"] == pytest.approx(60)
    assert "HBM supply in 2027Q1 is short by 300 HBM stacks (+60%)" in d["infeasibility"]["explanation"]
    # the best plan within the limits: 62 chips (496 stacks), the rest unmet
    assert d["quarters"][0]["purchases"]["a"] == 62
    (u,) = d["unmet_demand"]
    assert u["unmet_tokens_per_s"] == pytest.approx(10_000 - 6_200, rel=1e-6)


@pytest.mark.unit
def test_infeasible_budget_names_the_year():
    d = solve(_only_a(budget=600_000.0))     # 100 chips x $10k = $1M
    (v,) = d["infeasibility"]["violations"]
    assert v["kind"] == "budget" and v["year"] == "2027"
    assert v["shortfall"] == pytest.approx(400_000)
    assert "budget in 2027 is short by $400k (+67%)" in d["infeasibility"]["explanation"]


@pytest.mark.unit
def test_infeasible_power_and_cap():
    d = solve(_only_a(power_mw=[0.06], pue=1.0))     # 100 chips x 1 kW = 0.1 MW
    (v,) = d["infeasibility"]["violations"]
    assert v["kind"] == "power" and v["shortfall"] == pytest.approx(0.04)
    d = solve(_only_a(caps=([70], None)))
    (v,) = d["infeasibility"]["violations"]
    assert v["kind"] == "prod_cap" and v["device"] == "a" and v["shortfall"] == pytest.approx(30)


@pytest.mark.unit
def test_infeasible_when_nothing_can_arrive_in_time():
    s = scenario(quarters=2, demand=(1000.0, 1000.0), available=(1, 0), lead=(0, 2))
    d = solve(s)
    assert d["status"] == "infeasible"
    (late,) = d["infeasibility"]["not_deliverable"]
    assert late["quarter"] == "2027Q1" and late["share"] == pytest.approx(1.0)
    assert "a is available from 2027Q2" in late["reason"] and "b has a lead time of 2 quarters" in late["reason"]
    assert d["infeasibility"]["violations"] == []
    assert d["quarters"][1]["purchases"]["a"] == 10          # from 2027Q2 the chip serves it all


@pytest.mark.unit
def test_what_if_diff_and_keys():
    s = scenario(quarters=2, demand=(1000.0, 1000.0), hbm=[80, 80], rates=(100.0, 100.0), usd_per_kwh=0.0)
    base = plan(s)
    r = plan(s, what_if=["hbm_supply=-50%", "b_price=+10%"])
    d = r.to_dict()
    assert [c["what_if"] for c in d["what_if"]["changes"]] == ["hbm_supply=-50%", "b_price=+10%"]
    diff = d["what_if"]["diff"]
    # 10 chips of `a` ($100k) fit 80 stacks; at 40 stacks 5 of `a` and 5 of `b` at $33k ($215k); no energy cost
    assert base.total_cost_usd == pytest.approx(100_000)
    assert diff["base_total_cost_usd"] == pytest.approx(100_000)
    assert d["total_cost_usd"] == diff["total_cost_usd"] == pytest.approx(215_000)
    assert diff["purchases_delta_chips"] == {"a": -5, "b": 5}
    assert diff["total_cost_delta_usd"] == pytest.approx(115_000)
    p = r.problem
    q, msg = apply_what_if(p, "chip_slip=1")
    assert q.available_from[0] == 1 and q.cap_chips[0][0] == 0 and "1 quarter later" in msg
    for bad in ("nonsense=1", "hbm_supply", "h200_price=cheap", "zz_price=+5%", "chip_slip=-1"):
        with pytest.raises(SpecError):
            apply_what_if(p, bad)


# ---- YAML errors ------------------------------------------------------------------------------
GOOD = textwrap.dedent("""\
    name: t
    horizon_quarters: 2
    demand:
      chat:
        model: llama-3.1-8b
        workload: chat
        slo: {ttft_p99: 1s}
        peak_to_average: 1.5
        tokens_per_day: [1.0e9, 2.0e9]
    devices:
      ours:
        kind: own
        chip: seedchip-ref
        unit_cost_usd: 9000
    capacity_override:
      - {device: ours, demand: chat, num_chips: 1, tokens_per_s: 100, energy_j_per_token: 1}
    """)


@pytest.mark.unit
@pytest.mark.parametrize("old,new,line,field,words", [
    ("peak_to_average: 1.5", "peak_to_average: 0.5", 8, "demand.chat.peak_to_average", "greater than or equal to 1"),
    ("tokens_per_day: [1.0e9, 2.0e9]", "tokens_per_day: [1.0e9]", 9, "demand.chat.tokens_per_day", "one per quarter"),
    ("    unit_cost_usd: 9000", "    unit_cost_usd: 9000\n    colour: red", 15, "devices.ours.colour",
     "unknown field"),
    ("chip: seedchip-ref", "chip: seedchip-rf", 13, "devices.ours.chip", "did you mean"),
    ("model: llama-3.1-8b", "model: llama-9", 5, "demand.chat.model", "unknown model"),
    ("{device: ours, demand: chat,", "{device: theirs, demand: chat,", 16, "capacity_override[0].device",
     "unknown device"),
    ("slo: {ttft_p99: 1s}", "slo: {ttft_p99: fast}", 7, "demand.chat.slo.ttft_p99", "fast"),
    ("kind: own", "kind: rented", 12, "devices.ours.kind", "'own' or 'gpu'"),
])
def test_bad_yaml_names_field_and_line(tmp_path, old, new, line, field, words):
    assert old in GOOD
    p = tmp_path / "bad.yaml"
    p.write_text(GOOD.replace(old, new))
    with pytest.raises(SpecError) as e:
        plan(p)
    msg = str(e.value)
    assert f"{p}:{line}: {field}" in msg, msg
    assert words in msg, msg


@pytest.mark.unit
def test_good_yaml_and_not_yaml(tmp_path):
    p = tmp_path / "good.yaml"
    p.write_text(GOOD)
    assert plan(p).status == "optimal"
    p.write_text("horizon_quarters: [1,\n")
    with pytest.raises(SpecError, match="not valid YAML"):
        plan(p)


# ---- capacity cache: the one simulator call ---------------------------------------------------
@pytest.mark.unit
def test_capacity_cache_round_trip(tmp_path, monkeypatch):
    monkeypatch.setenv("SEEDCHIP_CACHE_DIR", str(tmp_path / "cache"))
    s = yaml.safe_load(GOOD)
    s["capacity_override"] = []
    s["demand"]["chat"].update({"workload": None, "input_len": 64, "output_len": 16, "num_requests": 100, "max_requests": 200,
                                "slo": {"ttft_p99": "2s", "tpot_p99": "200ms"}})
    s["devices"]["ours"]["deployments"] = {"chat": {"num_chips": 1, "weight_format": "fp8", "kv_format": "fp8"}}
    sc = parse_scenario(s)
    (c1,) = resolve_capacities(sc).values()
    assert c1.source == "computed" and c1.tokens_per_s > 0 and c1.requests_per_s > 0
    assert list((tmp_path / "cache" / "capacity").glob("*.json"))
    (c2,) = resolve_capacities(sc).values()
    assert c2.source == "cache" and (c2.tokens_per_s, c2.energy_j_per_token, c2.key) == (c1.tokens_per_s, c1.energy_j_per_token, c1.key)
    s2 = copy.deepcopy(s)
    s2["demand"]["chat"]["slo"]["tpot_p99"] = "150ms"
    from seedchip.fleet import capacity as cap_mod
    assert cap_mod.capacity_key(cap_mod.capacity_kwargs(parse_scenario(s2), "ours", "chat")) != c1.key
    # any edit to the package's code or data (formats.py, a catalog, an engine profile) is a new key
    monkeypatch.setattr(cap_mod, "code_hash", lambda: "edited")
    assert cap_mod.capacity_key(cap_mod.capacity_kwargs(sc, "ours", "chat")) != c1.key
    monkeypatch.undo()
    monkeypatch.setenv("SEEDCHIP_CACHE_DIR", str(tmp_path / "cache"))
    # an override wins unless the capacity is recomputed
    s3 = copy.deepcopy(s)
    s3["capacity_override"] = [{"device": "ours", "demand": "chat", "tokens_per_s": 1.0, "energy_j_per_token": 1.0}]
    (c3,) = resolve_capacities(parse_scenario(s3)).values()
    assert c3.source == "override" and c3.tokens_per_s == 1.0
    (c4,) = resolve_capacities(parse_scenario(s3), recompute=True).values()
    assert c4.source == "computed" and c4.tokens_per_s == c1.tokens_per_s


# ---- CLI == API and the example ----------------------------------------------------------------
def _app():
    app = typer.Typer()

    @app.callback()
    def main() -> None:
        """test app"""

    register(app)
    return app


@pytest.mark.e2e
def test_cli_equals_api_and_outputs(tmp_path):
    """`seedchip plan` in a subprocess, as a user runs it: its JSON is the API's."""
    def cli(*args):
        return subprocess.run([sys.executable, "-m", "seedchip.cli.main", "plan", str(EXAMPLE), *args],
                              capture_output=True, text=True, timeout=300)
    out = cli("--json")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == json.loads(json.dumps(plan(EXAMPLE).to_dict()))
    out = cli("--what-if", "hbm_supply=-10%", "--what-if", "chip_slip=1", "--json")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data == json.loads(json.dumps(plan(EXAMPLE, what_if=["hbm_supply=-10%", "chip_slip=1"]).to_dict()))
    assert data["what_if"]["diff"]["total_cost_delta_usd"] > 0
    human = cli("--what-if", "h200_price=+10%", "--out", str(tmp_path / "r"))
    assert human.returncode == 0, human.stderr
    assert "What-if" in human.stdout and "Binding constraints" in human.stdout
    for f in ("plan.json", "base_plan.json", "plan.html", "capacity.yaml"):
        assert (tmp_path / "r" / f).is_file(), f
    assert json.loads((tmp_path / "r" / "plan.json").read_text())["what_if"]["changes"][0]["what_if"] == "h200_price=+10%"
    caps = yaml.safe_load((tmp_path / "r" / "capacity.yaml").read_text())["capacity_override"]
    assert len(caps) == 9


@pytest.mark.e2e
def test_example_scenario_plan():
    d = plan(EXAMPLE).to_dict()
    assert d["status"] == "optimal" and CONTRACT <= set(d)
    assert len(d["quarters"]) == 8 and all(QUARTER_KEYS <= set(q) for q in d["quarters"])
    assert {c["source"] for c in d["capacity"]} == {"override"}
    kinds = {b["kind"] for b in d["binding_constraints"] if b["shadow_price_usd"]}
    assert "hbm_supply" in kinds                                 # HBM is the tightest input
    own = sum(q["purchases"]["seedchip-gen1"] for q in d["quarters"])
    assert 300_000 <= own <= 430_000                              # the 100k -> 350k/yr ramp, capped by HBM
    for y in d["years"]:
        assert y["capex_usd"] <= y["budget_usd"] + 1.0
    for q in d["quarters"]:
        assert q["power_mw"] <= q["power_limit_mw"] + 1e-6
        assert math.isfinite(q["cost_per_million_tokens_usd"])


@pytest.mark.unit
def test_own_chip_cost_from_silicon_or_required(tmp_path, monkeypatch):
    p = tmp_path / "s.yaml"
    p.write_text(GOOD.replace("    unit_cost_usd: 9000\n", ""))
    import seedchip.fleet.costs as costs
    d = plan(p).to_dict()
    assert d["devices"]["ours"]["unit_cost_source"] == "silicon model" and d["notes"]
    monkeypatch.setattr(costs, "silicon_unit_cost", lambda chip: (None, "the silicon model cannot cost it (x)"))
    with pytest.raises(SpecError, match=rf"{p}:11: devices.ours.unit_cost_usd: required \(the silicon model cannot"):
        plan(p)
    p.write_text(GOOD.replace("kind: own", "kind: gpu").replace("    unit_cost_usd: 9000\n", ""))
    with pytest.raises(SpecError, match="unit_cost_usd: required for a GPU"):
        plan(p)


# ---- deployment search: a list of candidates per device x class ---------------------------------
SEARCH = GOOD.replace("capacity_override:\n  - {device: ours, demand: chat, num_chips: 1, tokens_per_s: 100, energy_j_per_token: 1}\n",
                      "capacity_override: []\n")


def _search_yaml(cands: list[str]) -> str:
    assert "capacity_override: []" in SEARCH
    lines = "".join(f"      - {c}\n" for c in cands)
    return SEARCH.replace("    unit_cost_usd: 9000\n", "    unit_cost_usd: 9000\n    deployments:\n      chat:\n" + lines)


@pytest.fixture
def fake_capacity(tmp_path, monkeypatch):
    """No simulation: output tokens/s = per_chip(kw) x num_chips, a record of each call."""
    import seedchip.fleet.capacity as capmod
    monkeypatch.setenv("SEEDCHIP_CACHE_DIR", str(tmp_path / "cache"))
    calls = []
    table = {"per_chip": lambda kw: 100.0}

    def fake(kw):
        calls.append(kw)
        tps = table["per_chip"](kw) * kw["num_chips"]
        return {"requests_per_s": tps / 100, "tokens_per_s": tps, "energy_j_per_token": 1.0,
                "note": None if tps > 0 else "meets no SLO (ttft_p99 2s) at any rate"}
    monkeypatch.setattr(capmod, "compute_capacity", fake)
    return table, calls


@pytest.mark.unit
def test_search_best_tokens_per_chip_wins_and_is_reported(tmp_path, fake_capacity):
    table, calls = fake_capacity
    table["per_chip"] = lambda kw: {64: 100.0, 128: 150.0, 32: 0.0}[kw["max_num_seqs"]]
    p = tmp_path / "s.yaml"
    p.write_text(_search_yaml(["{num_chips: 1, max_num_seqs: 64}", "{num_chips: 2, tp: 2, max_num_seqs: 128}",
                               "{num_chips: 1, max_num_seqs: 32}", "{num_chips: 3, tp: 3, max_num_seqs: 64}"]))
    d = plan(p).to_dict()
    (c,) = d["capacity"]
    assert c["num_chips"] == 2 and c["tokens_per_s"] == 300.0 and c["source"] == "computed"
    assert c["deployment"]["tp"] == 2 and c["deployment"]["max_num_seqs"] == 128
    assert [x["chosen"] for x in c["candidates"]] == [False, True, False, False]
    assert [x["works"] for x in c["candidates"]] == [True, True, False, False]
    assert "meets no SLO" in c["candidates"][2]["reason"]
    assert "tp 3 does not divide" in c["candidates"][3]["reason"] and c["candidates"][3]["source"] == "fit-check"
    assert c["choice"].startswith("#1: 150 output tokens/s per chip") and "2 do not work" in c["choice"]
    assert len(calls) == 3                                   # the misfit is never simulated
    assert d["status"] == "optimal"
    # cached: re-planning runs nothing and chooses the same
    d2 = plan(p).to_dict()
    assert len(calls) == 3 and d2["capacity"][0]["source"] == "cache" and d2["capacity"][0]["deployment"] == c["deployment"]
    # the Rich output has one line per device x class with the chosen plan
    human = CliRunner().invoke(_app(), ["plan", str(p)])
    assert human.exit_code == 0, human.output
    assert "deployment ours x chat: tp=2 on 2 chips" in human.stdout and "#1: 150" in human.stdout
    assert "capacity.yaml" not in human.stdout


@pytest.mark.unit
def test_search_ties_break_by_fewest_chips_then_order(tmp_path, fake_capacity):
    p = tmp_path / "s.yaml"
    p.write_text(_search_yaml(["{num_chips: 2, tp: 2}", "{num_chips: 1, max_num_seqs: 64}",
                               "{num_chips: 1, max_num_seqs: 65}"]))
    (c,) = resolve_capacities(parse_scenario(p.read_text(), str(p))).values()
    assert c.num_chips == 1 and c.deployment["max_num_seqs"] == 64
    assert [x["chosen"] for x in c.candidates] == [False, True, False]
    assert "tied with #2 (chosen for being listed first)" in c.choice
    p.write_text(_search_yaml(["{num_chips: 2, tp: 2}", "{num_chips: 1}"]))
    (c,) = resolve_capacities(parse_scenario(p.read_text(), str(p))).values()
    assert c.num_chips == 1 and "tied with #0 (chosen for fewer chips)" in c.choice


@pytest.mark.unit
def test_search_misfit_reported_and_none_works_is_zero(tmp_path, fake_capacity):
    table, calls = fake_capacity
    p = tmp_path / "s.yaml"
    big = _search_yaml(["{num_chips: 1}", "{num_chips: 4, tp: 4}"]).replace("model: llama-3.1-8b", "model: llama-3.1-405b")
    p.write_text(big)
    (c,) = resolve_capacities(parse_scenario(p.read_text(), str(p))).values()
    assert c.num_chips == 4 and c.candidates[1]["chosen"]
    assert not c.candidates[0]["works"] and "does not fit on 1 x seedchip-ref" in c.candidates[0]["reason"]
    assert "the only candidate that works; 1 does not work" in c.choice
    # nothing works: zero capacity, every reason kept, the plan says the class cannot be served
    table["per_chip"] = lambda kw: 0.0
    d = plan(p, recompute_capacity=True).to_dict()
    (c,) = d["capacity"]
    assert c["tokens_per_s"] == 0.0 and c["deployment"] is None and not any(x["chosen"] for x in c["candidates"])
    assert c["choice"].startswith("no candidate works: #0: does not fit") and "#1: meets no SLO" in c["choice"]
    assert d["unmet_demand"]
    human = CliRunner().invoke(_app(), ["plan", str(p)])
    assert human.exit_code == 0, human.output
    assert "deployment ours x chat: no capacity" in human.stdout


@pytest.mark.unit
def test_search_yaml_errors_name_candidate_and_line(tmp_path):
    p = tmp_path / "s.yaml"
    p.write_text(_search_yaml(["{num_chips: 1}", "{num_chips: 0}"]))
    with pytest.raises(SpecError, match=rf"{p}:18: devices.ours.deployments.chat\[1\].num_chips: .*greater than 0"):
        plan(p)
    p.write_text(_search_yaml(["{num_chips: 4, disaggregate: 'prefill=1xh200-sxm,decode=2xh200-sxm'}"]))
    with pytest.raises(SpecError, match=rf"{p}:17: devices.ours.deployments.chat\[0\].num_chips: num_chips 4 must be"):
        plan(p)
    p.write_text(SEARCH.replace("    unit_cost_usd: 9000\n", "    unit_cost_usd: 9000\n    deployments:\n"
                                "      chat: {num_chips: 1, colour: red}\n"))
    with pytest.raises(SpecError, match=rf"{p}:16: devices.ours.deployments.chat.colour: unknown field"):
        plan(p)
    p.write_text(SEARCH.replace("    unit_cost_usd: 9000\n", "    unit_cost_usd: 9000\n    deployments:\n"
                                "      chat: []\n"))
    with pytest.raises(SpecError, match=rf"{p}:16: devices.ours.deployments.chat: "):
        plan(p)


@pytest.mark.unit
def test_an_interrupted_recompute_resumes_with_what_it_computed(tmp_path, fake_capacity, monkeypatch):
    """A recompute whose backend is lost midway says how to continue; --resume keeps the records
    written before the loss and searches only the rest, with the plan of an uninterrupted run."""
    import shutil

    import seedchip.fleet.capacity as capmod
    from seedchip.errors import BackendError
    _, calls = fake_capacity
    p = tmp_path / "s.yaml"
    p.write_text(_search_yaml(["{num_chips: 1, max_num_seqs: 64}", "{num_chips: 2, tp: 2, max_num_seqs: 128}",
                               "{num_chips: 1, max_num_seqs: 32}"]))
    full = plan(p, recompute_capacity=True).to_dict()
    assert len(calls) == 3
    shutil.rmtree(tmp_path / "cache")
    calls.clear()
    fake = capmod.compute_capacity

    def lost_on_the_second(kw):
        if calls:
            raise BackendError("a Ray task was lost: its worker or node died")
        return fake(kw)
    monkeypatch.setattr(capmod, "compute_capacity", lost_on_the_second)
    with pytest.raises(BackendError, match="in the cache; continue with the same command and --resume"):
        plan(p, recompute_capacity=True)
    monkeypatch.setattr(capmod, "compute_capacity", fake)
    assert len(calls) == 1
    resumed = plan(p, recompute_capacity=True, resume=True).to_dict()
    assert len(calls) == 3                                   # only the two searches the loss left undone
    (c,), (f,) = resumed["capacity"], full["capacity"]
    assert [x["source"] for x in c["candidates"]] == ["cache", "computed", "computed"]
    assert (c["tokens_per_s"], c["deployment"], resumed["total_cost_usd"]) == \
        (f["tokens_per_s"], f["deployment"], full["total_cost_usd"])
    with pytest.raises(SpecError, match="--resume continues an interrupted --recompute-capacity"):
        plan(p, resume=True)
