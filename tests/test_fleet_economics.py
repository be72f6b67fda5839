"""Programme economics of the planner: build or not (NRE), the GPU-only baseline, savings and
payback, energy at the planned utilisation, HBM as one market, schedules (qualification, respin,
yield learning), plans at a confidence, and sweeps with their break-evens. Numbers by hand on
tiny scenarios (the helper from test_fleet)."""

import copy
import json
import math
import subprocess
import sys

import numpy as np
import pytest

from seedchip.errors import SpecError
from seedchip.fleet import apply_what_if, build_problem, parse_scenario, plan, resolve_capacities
from seedchip.fleet.sweep import parse_sweep
from test_fleet import EXAMPLE, scenario

HOURS_PER_QUARTER = 365.25 * 24 / 4      # 2,191.5 h, by hand


def _nre(nre: float, quarters: int = 3) -> dict:
    """`a` ($10k per 100 tok/s) against the GPU `b` ($30k per 100 tok/s), no energy cost; demand
    300, 450, 600 tok/s: `a` buys 3, 2, 1 chips ($60k), `b` alone 3, 2, 1 ($180k)."""
    s = scenario(quarters=quarters, demand=(300.0, 450.0, 600.0)[:quarters], rates=(100.0, 100.0),
                 costs=(10_000.0, 30_000.0), usd_per_kwh=0.0)
    s["devices"]["a"]["nre_usd"] = nre
    return s


@pytest.mark.unit
def test_nre_small_builds_and_pays_back_by_hand():
    d = plan(_nre(100_000.0)).to_dict()
    assert d["build_asic"] is True and d["build"] == {"a": True}
    assert d["nre_usd"] == pytest.approx(100_000.0)
    assert d["total_cost_usd"] == pytest.approx(160_000.0)                 # $60k of chips + the NRE
    assert d["baseline"]["total_cost_usd"] == pytest.approx(180_000.0)
    assert d["baseline"]["purchases"] == {"a": 0, "b": 6}
    assert d["asic_savings_usd"] == pytest.approx(20_000.0)
    # cumulative saving: 2027Q1 $90k - $130k = -$40k; 2027Q2 +$60k - $20k -> $0: paid back in 2027Q2
    assert d["payback_quarter"] == "2027Q2"
    assert d["quarters"][0]["nre_usd"] == pytest.approx(100_000.0) and d["quarters"][1]["nre_usd"] == 0.0


@pytest.mark.unit
def test_nre_beyond_any_saving_means_do_not_build_and_equals_baseline():
    d = plan(_nre(130_000.0)).to_dict()                                   # the chip saves $120k at most
    assert d["build_asic"] is False and d["build"] == {"a": False}
    assert d["nre_usd"] == 0.0
    assert d["total_cost_usd"] == pytest.approx(d["baseline"]["total_cost_usd"]) == pytest.approx(180_000.0)
    assert d["asic_savings_usd"] == pytest.approx(0.0, abs=1e-6)
    assert d["payback_quarter"] is None
    assert {k: v["total_purchased_chips"] for k, v in d["devices"].items()} == d["baseline"]["purchases"]


@pytest.mark.unit
def test_without_nre_nothing_changes_and_baseline_is_reported():
    d = plan(_nre(0.0)).to_dict()
    assert d["total_cost_usd"] == pytest.approx(60_000.0) and d["asic_savings_usd"] == pytest.approx(120_000.0)
    assert d["payback_quarter"] == "2027Q1" and d["build"] == {"a": True}
    pd = d["per_device"]
    assert pd["a"]["classes"]["chat"]["tokens_per_s_per_chip"] == pytest.approx(100.0)
    # $10k over 16 quarters of 7,889,400 s at 100 tok/s, no energy: $ per million tokens
    assert pd["a"]["classes"]["chat"]["usd_per_million_tokens"] == pytest.approx(10_000 / (16 * 7_889_400 * 100) * 1e6)


@pytest.mark.unit
def test_energy_is_power_times_hours_times_price():
    s = scenario(quarters=1, demand=(1000.0,), rates=(100.0, 150.0), costs=(10_000.0, 60_000.0),
                 idle_w=(200.0, 100.0), host_w=(300.0, 300.0), base=(0, 4))
    d = plan(s).to_dict()
    q = d["quarters"][0]
    # 4 installed `b` serve 600 tok/s (all 4 busy at 2 J/token: 1,200 W), `a` buys 4 chips for the other 400
    # (busy at 1 J/token: 400 W); no idle chips; host 8 x 300 W -> IT 1,200 + 400 + 2,400 = 4,000 W x PUE 1.2
    assert q["installed"] == {"a": 4, "b": 4}
    assert q["avg_power_mw"] == pytest.approx(4_000 * 1.2 / 1e6)
    assert q["energy_usd"] == pytest.approx(q["avg_power_mw"] * 1e3 * HOURS_PER_QUARTER * 0.1)
    assert d["usd_per_kwh"] == 0.1
    assert d["total_energy_usd"] == pytest.approx(q["energy_usd"])


@pytest.mark.e2e
def test_example_energy_identity_and_economics_fields():
    d = plan(EXAMPLE).to_dict()
    for q in d["quarters"]:
        assert q["energy_usd"] == pytest.approx(q["avg_power_mw"] * 1e3 * HOURS_PER_QUARTER * d["usd_per_kwh"])
        assert 0 < q["avg_power_mw"] <= q["power_mw"]                    # average draw under the nameplate
    assert d["total_energy_usd"] == pytest.approx(sum(q["energy_usd"] for q in d["quarters"]))
    for k in ("baseline", "asic_savings_usd", "payback_quarter", "nre_usd", "build_asic", "per_device"):
        assert k in d
    assert d["baseline"]["status"] == "optimal" and d["baseline"]["purchases"]["seedchip-gen1"] == 0


@pytest.mark.unit
def test_hbm_is_one_market_and_hbm_price_moves_both():
    s = scenario(quarters=1, demand=(1000.0,), rates=(100.0, 100.0), costs=(10_000.0, 30_000.0), usd_per_kwh=0.0,
                 stacks=(8, 6), hbm=[60])
    for name, hbm_usd in (("a", 3_000.0), ("b", 1_500.0)):
        s["devices"][name]["hbm_usd_per_chip"] = hbm_usd
        del s["devices"][name]["draws_hbm_supply"]                        # the default: both draw
    s["devices"]["b"]["hbm_price_pass_through"] = 0.5
    d = plan(s).to_dict()
    # 60 stacks: 6 of `a` (48 stacks) + 2 of `b` (12 stacks) serve 800 tok/s; the other 200 cannot be served
    assert d["quarters"][0]["hbm_stacks_used"] <= 60
    assert d["devices"]["b"]["draws_hbm_supply"] is True
    p = plan(s).problem
    q, msg = apply_what_if(p, "hbm_price=+50%")
    assert q.unit_cost_usd[0] == pytest.approx(10_000 + 1_500) and q.unit_cost_usd[1] == pytest.approx(30_000 + 375)
    assert "HBM price x1.5" in msg
    with pytest.raises(SpecError):
        apply_what_if(p, "hbm_price=2")


@pytest.mark.unit
def test_qualification_respin_and_yield_learning():
    s = scenario(quarters=4, demand=(100.0, 100.0, 100.0, 100.0), caps=([10, 10, 10, 10], None), base=(0, 10))
    a = s["devices"]["a"]
    a.update(qualification_quarters=1, respin_probability=0.3, respin_delay_quarters=2,
             yield_learning={"first_defect_density_per_cm2": 0.3, "halving_quarters": 1})
    sc = parse_scenario(s)
    caps = resolve_capacities(sc)
    p = build_problem(sc, caps)
    assert p.available_from[0] == 1                                  # samples in 2027Q1, volume from 2027Q2
    assert list(p.cap_chips[0]) == pytest.approx([7, 7, 10, 10])      # expected: 70% on time, 30% two quarters late
    extra = p.unit_cost_extra_usd[0]
    assert extra[0] > extra[1] > extra[2] > extra[3] > 0              # yield learning: dearer early
    pess = build_problem(sc, caps, confidence=0.9)                    # 0.9 > 1 - 0.3: the respin is assumed
    assert pess.available_from[0] == 3 and list(pess.cap_chips[0]) == pytest.approx([0, 0, 10, 10])
    mild = build_problem(sc, caps, confidence=0.6)                    # 0.6 < 0.7: first silicon counted on
    assert mild.available_from[0] == 1 and list(mild.cap_chips[0]) == pytest.approx([10, 10, 10, 10])


@pytest.mark.unit
def test_confidence_uses_capacity_intervals_and_reports_the_hedge():
    s = scenario(quarters=1, demand=(1000.0,), rates=(100.0, 100.0), costs=(10_000.0, 30_000.0), usd_per_kwh=0.0)
    s["capacity_override"][0]["interval80"] = [80.0, 125.0]          # log-spread ln(125/80) / 2.563
    r = plan(s, confidence=0.9)
    d = r.to_dict()
    sigma = math.log(125 / 80) / (2 * 1.2816)
    factor = math.exp(-1.2815516 * sigma)
    assert d["confidence"]["capacity_factors"]["a"]["chat"] == pytest.approx(factor, rel=1e-4)
    assert r.problem.rate_per_chip[0, 0] == pytest.approx(100.0 * factor, rel=1e-4)
    assert d["confidence"]["expected_total_cost_usd"] == pytest.approx(100_000.0)
    assert d["confidence"]["hedge_cost_usd"] == pytest.approx(d["total_cost_usd"] - 100_000.0)
    assert d["confidence"]["hedge_cost_usd"] > 0
    for bad in (0.3, 1.0, 1.5, float("nan")):
        with pytest.raises(SpecError):
            plan(s, confidence=bad)


@pytest.mark.unit
def test_sweep_finds_the_break_even_nre():
    r = plan(_nre(0.0), sweep="a_nre=0..200000:5")
    sw = r.to_dict()["sweep"]
    assert [p["value"] for p in sw["points"]] == [0, 50_000, 100_000, 150_000, 200_000]
    assert [p["build_asic"] for p in sw["points"]] == [True, True, True, False, False]
    (be,) = sw["break_even"]
    assert be["flips"] == "build_asic" and be["between"] == [100_000, 150_000]
    assert be["value"] == pytest.approx(120_000, abs=50_000 / 2**6)   # the chip saves $120k: break-even NRE
    assert sw["points"][0]["asic_savings_usd"] == pytest.approx(120_000)


@pytest.mark.unit
def test_sweep_syntax_is_checked():
    assert parse_sweep("hbm_supply=-90%..0%:10")[2][0] == pytest.approx(-0.9)
    for bad in ("hbm_supply=-90%..0%", "hbm_supply=-90%..x2:3", "x=1..2:1", "x=1..2:999", "x=a..b:3", "=1..2:3"):
        with pytest.raises(SpecError):
            parse_sweep(bad)


@pytest.mark.e2e
def test_cli_sweep_confidence_and_refusals(tmp_path):
    def cli(*args):
        return subprocess.run([sys.executable, "-m", "seedchip.cli.main", "plan", str(EXAMPLE), *args],
                              capture_output=True, text=True)
    out = cli("--sweep", "seedchip_nre=0..2e10:3", "--out", str(tmp_path / "s"), "--json")
    assert out.returncode == 0, out.stderr
    d = json.loads(out.stdout)
    assert len(d["sweep"]["points"]) == 3 and (tmp_path / "s" / "sweep.png").stat().st_size > 5000
    assert d["sweep"]["points"][-1]["build_asic"] is False             # $20B of NRE: never worth it
    for args in (("--sweep", "nre=1..2"), ("--confidence", "1.5"), ("--what-if", "hbm_price=oops")):
        bad = cli(*args)
        assert bad.returncode == 2 and "Traceback" not in bad.stderr, (args, bad.stderr)
