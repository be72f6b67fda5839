"""Silicon model: hand-computed area, yield and cost; monotone yield; the reticle limit;
the H100 calibration, held-out checks against published figures; CLI == API."""

import json
import re
import math

import pytest
import typer
import yaml
from hypothesis import given
from hypothesis import strategies as st
from typer.testing import CliRunner

from seedchip.cli.explore_cmds import register
from seedchip.errors import SpecError, UnknownNameError
from seedchip.hardware.catalog import catalog_ids, load_chip
from seedchip.silicon import (ChipSilicon, die_area, die_yield, gross_dies_per_wafer, load_silicon_data,
                              silicon_report, spare_yield, tco_inputs, token_cost)
from seedchip.silicon.calibrate import fit_mac_area

DATA = load_silicon_data()


def round_data():
    """Coefficients with round numbers, so the expected values below are hand arithmetic."""
    b = DATA.blocks.model_copy(update={
        "format_overhead": {"fp8": 0.1, "int8": 0.05, "fp4": 0.1}, "vector_lane_um2": 1000.0,
        "core_control_mm2": {"gpu": 1.0, "tpu": 0.5, "asic": 0.5}, "sram_array_overhead": 2.0,
        "memory_phy_mm2": {**DATA.blocks.memory_phy_mm2, "hbm3e": 10.0}, "memory_controller_mm2": 5.0,
        "serdes_gbps_per_lane": 100.0, "serdes_lane_mm2": 0.5, "io_control_mm2": {"gpu": 20.0, "tpu": 20.0, "asic": 20.0},
        "noc_fraction": {"gpu": 0.1, "tpu": 0.1, "asic": 0.1}})
    nodes = dict(DATA.nodes)
    nodes["tsmc-n4"] = nodes["tsmc-n4"].model_copy(update={"sram_mbit_per_mm2": 32.0, "wafer_usd": 16000.0,
                                                           "wafer_usd_low": None, "wafer_usd_high": None,
                                                           "defect_density_per_cm2": 0.1})
    w = DATA.wafer.model_copy(update={"mac_area_um2": 500.0, "edge_exclusion_mm": 0.0, "scribe_mm": 0.0})
    gens = dict(DATA.hbm.generations)
    gens["hbm3e"] = gens["hbm3e"].model_copy(update={"usd_per_gbyte": 9.0, "usd_per_gbyte_low": 6.0,
                                                     "usd_per_gbyte_high": 12.0})
    pk = DATA.packaging.model_copy(update={"wafer_sort_usd_per_die": 10.0, "final_test_usd": 100.0, "burn_in_usd": 50.0,
                                           "final_test_yield": 0.95, "board_usd": 400.0})
    return DATA.model_copy(update={"blocks": b, "nodes": nodes, "wafer": w, "packaging": pk,
                                   "hbm": DATA.hbm.model_copy(update={"generations": gens})})


def small_chip(**matrix):
    """An ASIC at tsmc-n4: 4 cores of 128 x 128 at 1 GHz (65,536 MACs), fp8 at 2x."""
    base = load_chip("seedchip-ref").model_dump()
    base.update(id="hand-chip", kind="asic", process_node="tsmc-n4", vector_flops_per_s=2e12)
    base["matrix"].update(num_cores=4, array_rows=128, array_cols=128, clock_hz=1e9,
                          peak_flops_per_s={"bf16": 131.072e12, "fp8": 262.144e12, **matrix})
    base["sram"].update(capacity_bytes=64 * 2**20, per_core_bytes=2**20)       # 64 MiB + 4 x 1 MiB
    base["hbm"].update(generation="hbm3e", num_stacks=2, capacity_per_stack_bytes=24e9)
    base["links"].update(bw_per_direction_bytes_per_s=100e9)                   # 800 Gb/s = 8 lanes of 100G
    return type(load_chip("seedchip-ref")).model_validate(base)


@pytest.mark.unit
def test_area_hand_computed():
    a = die_area(small_chip(), ChipSilicon(), round_data())
    b = a.blocks_mm2
    assert b["matrix"] == pytest.approx(65536 * 500e-6 * 1.10)           # 36.0448 (fp8 at its natural 2x: +10%)
    assert b["vector"] == pytest.approx(1000 * 1000e-6)                   # 2e12 / (2 x 1e9) = 1000 lanes -> 1.0
    assert b["core_control"] == pytest.approx(4 * 0.5)
    assert b["sram"] == pytest.approx(68 * 8 / 32 * 2.0)                  # 68 MiB = 544 Mibit / 32 x 2 = 34.0
    assert b["memory_phy"] == pytest.approx(2 * (10 + 5))
    assert b["serdes"] == pytest.approx(8 * 0.5)
    assert b["io_control"] == 20.0
    subtotal = 36.0448 + 1.0 + 2.0 + 34.0 + 30.0 + 4.0 + 20.0
    assert b["noc"] == pytest.approx(0.1 * subtotal)
    assert a.total_mm2 == pytest.approx(1.1 * subtotal)                   # 139.7489 mm2
    assert a.num_macs == 65536


@pytest.mark.unit
def test_format_overheads_add_area():
    d = round_data()
    plain = die_area(small_chip(), ChipSilicon(), d).blocks_mm2["matrix"]
    fp4 = die_area(small_chip(fp4=524.288e12), ChipSilicon(), d).blocks_mm2["matrix"]       # fp4 at 4x: +10%
    assert fp4 == pytest.approx(plain / 1.10 * 1.20)
    fast8 = die_area(small_chip(fp8=524.288e12), ChipSilicon(), d).blocks_mm2["matrix"]     # fp8 at 4x: 2x natural
    assert fast8 == pytest.approx(plain / 1.10 * (1 + 0.1 + 1.0 * 1.1))


@pytest.mark.unit
def test_gross_dies_hand_case():
    # 100 mm2 on 300 mm: pi 150^2 / 100 - pi 300 / sqrt(200) = 706.86 - 66.64 = 640.2
    assert gross_dies_per_wafer(100.0, 300.0) == 640
    # with 3 mm edge exclusion and a 0.1 mm scribe: d = 294, A = (10.1)^2 = 102.01
    expect = math.pi * 147**2 / 102.01 - math.pi * 294 / math.sqrt(204.02)
    assert gross_dies_per_wafer(100.0, 300.0, 3.0, 0.1) == math.floor(expect) == 600


@pytest.mark.unit
def test_yield_formulas_hand_values():
    assert die_yield(100.0, 0.1, "murphy") == pytest.approx(((1 - math.exp(-0.1)) / 0.1) ** 2)   # 0.90559
    assert die_yield(100.0, 0.1, "negative-binomial", alpha=2.0) == pytest.approx(1.05 ** -2)    # 0.90703
    assert die_yield(100.0, 0.1, "poisson") == pytest.approx(math.exp(-0.1))
    # one spare among 10 cores of yield 0.9: P(<= 1 bad) = 0.9^10 + 10 x 0.1 x 0.9^9
    assert spare_yield(10, 1, 0.9) == pytest.approx(0.9**10 + 10 * 0.1 * 0.9**9)
    with pytest.raises(SpecError):
        die_yield(100.0, 0.1, "seeds")


@pytest.mark.property
@given(a=st.floats(1.0, 2000.0), da=st.floats(0.1, 500.0), d0=st.floats(0.01, 0.5),
       model=st.sampled_from(["murphy", "negative-binomial", "poisson"]))
def test_yield_monotone_decreasing_in_area(a, da, d0, model):
    y1, y2 = die_yield(a, d0, model), die_yield(a + da, d0, model)
    assert 0.0 < y2 < y1 <= 1.0


@pytest.mark.unit
def test_unit_cost_hand_computed():
    d = round_data()
    r = silicon_report(small_chip(), silicon=ChipSilicon(), data=d)
    area = r.die_area_mm2
    gross = gross_dies_per_wafer(area, 300.0)
    y = ((1 - math.exp(-(area - r.area.repairable_mm2) * 0.001)) / ((area - r.area.repairable_mm2) * 0.001)) ** 2
    core = r.area.core_mm2
    y *= (((1 - math.exp(-core * 0.001)) / (core * 0.001)) ** 2) ** 4
    assert r.die_yield == pytest.approx(y)
    assert r.kgd_usd == pytest.approx(16000 / (gross * y))
    # HBM3E 24 GB needs 8 dies of 24 Gbit (3 GiB): 8 x 3.221 GB x $9 = $231.93 a stack, 8-Hi has no premium
    assert r.hbm.height == 8 and r.hbm.usd_per_stack == pytest.approx(8 * 3 * 2**30 / 1e9 * 9.0)
    pk = d.packaging
    inter = (area + 2 * 121) * pk.interposer_fill
    parts = r.cost_breakdown_usd
    assert r.interposer_mm2 == pytest.approx(inter)
    assert parts["interposer"] == pytest.approx(inter * pk.interposer_usd_per_mm2 / math.exp(-inter / 100 * 0.0175))
    assert parts["wafer_sort"] == pytest.approx(10.0 / y)                 # every die probed, paid per good one
    before = (parts["logic_dies"] + parts["wafer_sort"] + parts["hbm"] + parts["interposer"] + parts["substrate"]
              + parts["assembly"])
    assert parts["assembly_yield_loss"] == pytest.approx(before / 0.995**3 - before)
    tested = before / 0.995**3 + 100 + 50                                 # final test and burn-in
    assert parts["test_yield_loss"] == pytest.approx(tested / 0.95 - tested)
    assert r.unit_cost_usd == pytest.approx(tested / 0.95 + 400)
    # the range: HBM at $6 and $12 a GB (the node has no wafer range here)
    low = silicon_report(small_chip(), silicon=ChipSilicon(), data=d.model_copy(update={"hbm": d.hbm.model_copy(
        update={"generations": {**d.hbm.generations, "hbm3e": d.hbm.generations["hbm3e"].model_copy(
            update={"usd_per_gbyte": 6.0})}})}))
    assert r.cost_range_usd["low"] == pytest.approx(low.unit_cost_usd)
    assert r.cost_range_usd["low"] < r.unit_cost_usd < r.cost_range_usd["high"]


@pytest.mark.unit
def test_spares_raise_yield_and_area():
    d = round_data()
    base = silicon_report(small_chip(), silicon=ChipSilicon(), data=d)
    spare = silicon_report(small_chip(), silicon=ChipSilicon(num_cores_on_die=5), data=d)
    assert spare.die_area_mm2 > base.die_area_mm2
    assert spare.die_yield > base.die_yield


@pytest.mark.unit
def test_over_reticle_is_infeasible_with_reason():
    big = small_chip().model_dump()
    big["sram"]["capacity_bytes"] = 2e9          # 2 GB of SRAM: ~1,000 mm2 of arrays
    r = silicon_report(type(small_chip()).model_validate(big))
    assert not r.feasible
    assert r.die_area_mm2 > 858
    assert any("858 mm2 reticle" in x for x in r.reasons)
    d = r.to_dict()
    assert d["feasible"] is False and "reticle" in d["infeasible_reasons"][0]
    two = silicon_report(type(small_chip()).model_validate(big), silicon=ChipSilicon(num_dies=2))
    assert two.area.die_mm2 < 858 and two.feasible


@pytest.mark.unit
def test_bad_inputs_are_typed_errors():
    c = small_chip().model_dump()
    c["process_node"] = "tsmc-n1"
    with pytest.raises(UnknownNameError, match="process node 'tsmc-n1'"):
        silicon_report(type(small_chip()).model_validate(c))
    with pytest.raises(SpecError, match="yield model"):
        silicon_report("h100-sxm", yield_model="bose")


@pytest.mark.unit
def test_every_catalog_chip_has_a_report():
    for cid in catalog_ids():
        d = silicon_report(cid).to_dict()
        assert d["die_area_mm2"] > 0 and 0 < d["yield"] <= 1 and d["unit_cost_usd"] > 0 and d["tdp_w"] > 0


# --- checks against public figures --------------------------------------------------------

@pytest.mark.validation
def test_h100_area_calibration():
    """H100 (GH100 as built) 814 mm2 is the public fact the one fitted coefficient (the MAC
    area) is fitted to: the shipped value must reproduce it within 0.5%."""
    r = silicon_report("h100-sxm")
    assert r.die_area_mm2 == pytest.approx(814, rel=0.005)
    assert DATA.wafer.mac_area_um2 == pytest.approx(fit_mac_area(), rel=0.001)


@pytest.mark.validation
def test_h100_module_cost_against_published_estimates():
    """Raymond James (2023): ~$3,320 to make an H100 with its HBM (nodes.yaml reference, with its
    source). The model gives ~$3,080 (-7%): HBM3 at 17 $/GB (~$1,460 against their
    $1,350-1,500), wafer sort, final test, burn-in and the units final test scraps. Tolerance 20%.
    The HBM alone within the published range +-10%."""
    r = silicon_report("h100-sxm")
    ref = DATA.reference["h100_module_cost_usd"]
    assert r.unit_cost_usd == pytest.approx(ref, rel=0.20)
    c = r.cost_breakdown_usd
    assert 1350 * 0.9 < c["hbm"] < 1500 * 1.1
    assert c["final_test"] > 0 and c["burn_in"] > 0 and c["test_yield_loss"] > 0 and c["wafer_sort"] > 0
    assert 0.6 < r.die_yield < 0.95     # a 814 mm2 die with 12 spare SMs
    assert r.unit_cost_usd < 25000      # well under the selling price (specs.csv: 25,000-30,000)


@pytest.mark.validation
def test_h200_module_cost_against_published_estimates():
    """Silicon Analysts (2026): ~$4,800 to make an H200 (nodes.yaml reference; the same firm's 2026
    HBM brief carries $4,250). The same die as H100 with six 24 GB HBM3E stacks at 15 $/GB gives
    ~$4,050 (-16%). Tolerance 20%; the price ranges must hold the reference."""
    r = silicon_report("h200-sxm")
    ref = DATA.reference["h200_module_cost_usd"]
    assert r.unit_cost_usd == pytest.approx(ref, rel=0.20)
    assert r.cost_range_usd["low"] < ref * 1.2 and r.cost_range_usd["high"] > ref * 0.8
    assert r.unit_cost_usd - silicon_report("h100-sxm").unit_cost_usd > 500     # the HBM3E is what costs more


MTIA_V2 = {
    "id": "mtia-v2", "name": "Meta MTIA v2", "vendor": "Meta", "year": 2024, "kind": "asic", "process_node": "tsmc-n5",
    "matrix": {"peak_flops_per_s": {"bf16": "177 TFLOP/s", "fp8": "354 TFLOP/s", "int8": "354 TFLOP/s"},
               "num_cores": 64, "array_rows": 32, "array_cols": 32, "clock_hz": "1.35 GHz"},
    "vector_flops_per_s": "11 TFLOP/s",
    "sram": {"capacity_bytes": "256 MB", "per_core_bytes": "384 KB", "bw_bytes_per_s": "2.7 TB/s"},
    "hbm": {"generation": "lpddr5", "num_stacks": 4, "capacity_per_stack_bytes": "32 GB",
            "bw_per_stack_bytes_per_s": "51.2 GB/s"},
    "links": {"bw_per_direction_bytes_per_s": "1 GB/s", "latency_s": "10 us"},
    "node": {"scale_up_size": 1, "scale_out_bw_per_direction_bytes_per_s": "100 Gb/s", "scale_out_latency_s": "10 us"},
    "tdp_w": "90 W",
    "energy": {"idle_w": "20 W", "matrix_j_per_flop": {"bf16": "0.3 pJ/FLOP"}, "vector_j_per_flop": "2 pJ/FLOP",
               "sram_j_per_byte": "0.5 pJ/bit", "hbm_j_per_byte": "5 pJ/bit", "link_j_per_byte": "5 pJ/bit"},
    "sources": [{"what": "specs.csv MTIA v2 row; vector FLOP/s, SRAM bandwidth, energy: ESTIMATE", "document": "specs.csv",
                 "year": 2024, "estimate": True}],
}


@pytest.mark.validation
def test_mtia_v2_area_held_out():
    """Held out (never fitted): MTIA v2 is 421 mm2 on TSMC 5nm (specs.csv). The model gives
    ~303 mm2 (-28%): the block list misses what a GPU-fitted MAC area cannot know about an
    ASIC's control cores and engines. Tolerance 35%."""
    from seedchip.hardware.catalog import chip_from_dict
    chip = chip_from_dict(MTIA_V2)
    r = silicon_report(chip)
    assert r.die_area_mm2 == pytest.approx(421, rel=0.35)
    assert r.interposer_mm2 == 0.0    # LPDDR on an organic package


# --- CLI == API ---------------------------------------------------------------------------

def _app():
    app = typer.Typer()
    register(app)
    return app


@pytest.mark.e2e
def test_silicon_cli_equals_api():
    out = CliRunner().invoke(_app(), ["silicon", "--chip", "seedchip-ref", "--json"])
    assert out.exit_code == 0, out.output
    d = json.loads(out.stdout)
    assert d == json.loads(json.dumps(silicon_report("seedchip-ref").to_dict()))
    for key in ("die_area_mm2", "yield", "unit_cost_usd", "cost_breakdown_usd", "tdp_w", "area_breakdown_mm2"):
        assert key in d
    out = CliRunner().invoke(_app(), ["silicon", "--chip", "h100-sxm", "--yield-model", "negative-binomial", "--json"])
    assert json.loads(out.stdout) == json.loads(json.dumps(
        silicon_report("h100-sxm", yield_model="negative-binomial").to_dict()))
    human = CliRunner().invoke(_app(), ["silicon", "--chip", "h200-sxm"])
    assert human.exit_code == 0 and "unit cost" in human.stdout


@pytest.mark.e2e
def test_silicon_user_yaml(tmp_path):
    d = load_chip("seedchip-ref").model_dump(mode="json")
    d.update(id="my-chip", process_node="tsmc-n3")
    p = tmp_path / "my_chip.yaml"
    p.write_text(yaml.safe_dump(d))
    out = CliRunner().invoke(_app(), ["silicon", "--chip", str(p), "--json"])
    assert out.exit_code == 0, out.output
    got = json.loads(out.stdout)
    assert got["chip"] == "my-chip" and got["process_node"] == "tsmc-n3"
    assert got["die_area_mm2"] < silicon_report("seedchip-ref").die_area_mm2   # a denser node


# --- TCO ----------------------------------------------------------------------------------

@pytest.mark.unit
def test_token_cost_hand_computed():
    t = tco_inputs(lifetime_years=4, utilization=0.5, pue=1.5, usd_per_kwh=0.1, system_share_usd=1000)
    c = token_cost(num_chips=2, tokens_per_s=1000.0, energy_j_per_token=3.6, unit_cost_usd=9000.0, inputs=t)
    chip_s = 2 / 1000.0
    per_s = 10000.0 / (4 * 365.25 * 86400 * 0.5)
    assert c.capex_usd_per_token == pytest.approx(chip_s * per_s)
    assert c.energy_usd_per_token == pytest.approx(3.6 * 1.5 * 0.1 / 3.6e6)
    rent = tco_inputs(usd_per_hour=3.6)
    c2 = token_cost(num_chips=1, tokens_per_s=100.0, energy_j_per_token=1.0, unit_cost_usd=0.0, inputs=rent)
    assert c2.usd_per_token == pytest.approx(3.6 / 3600 / 100)   # $0.001/s over 100 tokens/s; the rent includes power
    bought = tco_inputs(purchase_price_usd=30000, system_share_usd=0, lifetime_years=1, utilization=1)
    c3 = token_cost(num_chips=1, tokens_per_s=1.0, energy_j_per_token=0.0, unit_cost_usd=5.0, inputs=bought)
    assert c3.capex_usd_per_token == pytest.approx(30000 / (365.25 * 86400))


@pytest.mark.unit
def test_energy_dollars_hand_values():
    """The one formula for energy dollars (the TCO, the explorer and the fleet planner use it)."""
    import numpy as np
    from seedchip.silicon.tco import energy_usd
    assert energy_usd(3.6e6, 1.0, 0.1) == pytest.approx(0.1)               # 1 kWh at $0.10
    assert energy_usd(7.2e6, 1.25, 0.08) == pytest.approx(0.2)             # 2 kWh x PUE 1.25 x $0.08
    assert energy_usd(np.array([0.0, 3.6e9]), 1.5, 0.1).tolist() == pytest.approx([0.0, 150.0])   # 1 MWh x 1.5 x $0.1


@pytest.mark.unit
def test_tco_per_token_of_an_estimate():
    """A chip we buy is priced at its purchase price; our chip at the silicon model's cost."""
    from seedchip.api import estimate
    from seedchip.silicon import tco_per_token
    kw = dict(model="llama-3.1-8b", num_chips=1, weight_format="fp8", kv_format="fp8", batch=8, input_len=256,
              output_len=32)
    r = estimate(chip="h200-sxm", **kw)
    c = tco_per_token("h200-sxm", r)
    t = tco_inputs(purchase_price_usd=30000)
    expect = token_cost(num_chips=1, tokens_per_s=r.throughput_tokens_per_s, energy_j_per_token=r.energy_j / 256,
                        unit_cost_usd=0.0, inputs=t)
    assert c.usd_per_token == pytest.approx(expect.usd_per_token)
    ours = tco_per_token("seedchip-ref", estimate(chip="seedchip-ref", **kw))
    assert ours.capex_usd_per_token > 0 and ours.to_dict()["tokens_per_usd"] == pytest.approx(1 / ours.usd_per_token)


@pytest.mark.unit
def test_the_reference_asic_is_buildable():
    """seedchip-ref is our design point: one die under the reticle, within its TDP."""
    from seedchip.silicon import silicon_report
    d = silicon_report("seedchip-ref").to_dict()
    assert d["die_area_mm2"] < 858
    assert d["feasible"], d.get("infeasible_reasons") or d


# --- nodes, shoreline, assumptions ---------------------------------------------------------

@pytest.mark.unit
def test_every_node_has_a_date_a_foundry_and_sourced_ranges():
    for name, n in DATA.nodes.items():
        assert re.fullmatch(r"20[0-9]{2}Q[1-4]", n.available_from), name
        assert n.wafer_usd_at("low") <= n.wafer_usd <= n.wafer_usd_at("high"), name
        assert n.sources and all(s.year for s in n.sources)
    for name in ("samsung-sf4x", "samsung-sf3"):
        n = DATA.node(name)
        assert n.foundry == "samsung" and any(s.estimate for s in n.sources)
        assert n.defect_density_per_cm2 > DATA.node("tsmc-n4").defect_density_per_cm2   # 60-75% vs ~80% (hbm_foundry.csv)
    for gen in DATA.hbm.generations.values():
        assert gen.usd_per_gbyte_low <= gen.usd_per_gbyte <= gen.usd_per_gbyte_high
    assert DATA.hbm_generation("hbm3").usd_per_gbyte > 9 and DATA.hbm_generation("hbm3e").usd_per_gbyte > 9


@pytest.mark.unit
def test_recost_on_another_node():
    """node= re-costs a chip: area, yield and wafer price from the node; matrix energy scales
    with energy_scale. An unknown node is a typed error listing the known ones."""
    base = silicon_report("seedchip-ref")
    sam = silicon_report("seedchip-ref", node="samsung-sf4x")
    assert sam.chip.process_node == "samsung-sf4x" and base.chip.process_node == "tsmc-n4"
    assert sam.die_area_mm2 > base.die_area_mm2          # a less dense node
    assert sam.wafer_usd == DATA.node("samsung-sf4x").wafer_usd
    assert sam.to_dict()["node_available_from"] == "2023Q4"
    assert silicon_report("h100-sxm", node="tsmc-n4").to_dict() == silicon_report("h100-sxm").to_dict()
    n3 = silicon_report("h100-sxm", node="tsmc-n3").chip.energy.matrix("bf16")
    assert n3 == pytest.approx(load_chip("h100-sxm").energy.matrix("bf16") * 0.72)
    with pytest.raises(UnknownNameError, match="samsung-sf4x"):
        silicon_report("seedchip-ref", node="samsung-sf9")


@pytest.mark.unit
def test_defect_density_override():
    """The fleet planner's yield learning: a higher D0 lowers the yield and raises the cost."""
    mature = silicon_report("seedchip-ref")
    early = silicon_report("seedchip-ref", defect_density_per_cm2=0.3)
    assert early.die_yield < mature.die_yield and early.unit_cost_usd > mature.unit_cost_usd
    assert early.provenance["defect_density_per_cm2"] == 0.3
    assert early.to_dict()["cost_breakdown_usd"]["hbm"] == mature.hbm.usd
    d0 = {a["name"]: a for a in early.to_dict()["assumptions"]}["tsmc-n4.defect_density_per_cm2"]
    assert d0["value"] == 0.3 and "given by the caller" in d0["source"]
    for bad in (0, -0.1, float("nan"), float("inf"), "0.1", True):
        with pytest.raises(SpecError, match="defect density"):
            silicon_report("seedchip-ref", defect_density_per_cm2=bad)


@pytest.mark.unit
def test_reference_asic_spares_and_its_node():
    """Two spare cores lift seedchip-ref's yield to ~80% on TSMC N4; on Samsung SF4X the same
    design is over the reticle, which is why the catalog keeps it on TSMC N4 (see its YAML)."""
    r = silicon_report("seedchip-ref")
    assert r.area.spare_cores == 2 and 0.75 < r.die_yield < 0.85
    assert r.feasible and r.die_area_mm2 < 858
    sam = silicon_report("seedchip-ref", node="samsung-sf4x")
    assert not sam.feasible and any("reticle" in x for x in sam.reasons)


@pytest.mark.unit
def test_shoreline():
    """HBM PHYs, SerDes and host I/O must fit along the die edge: H100 (6 PHYs, 814 mm2) fits;
    one die with 12 HBM3E stacks does not, whatever its reticle check says."""
    from seedchip.silicon.shoreline import perimeter_mm
    assert perimeter_mm(100.0) == pytest.approx(40.0)
    assert perimeter_mm(100.0, 4.0) == pytest.approx(50.0)             # 5 x 20 mm
    h100 = silicon_report("h100-sxm")
    assert h100.shoreline.fits and h100.shoreline.parts_mm["memory_phy"] == pytest.approx(6 * 10.5)
    big = load_chip("seedchip-ref").model_dump()
    big["hbm"]["num_stacks"] = 12
    big["sram"]["capacity_bytes"] = 64e6                 # keep the die under the reticle
    r = silicon_report(type(load_chip("seedchip-ref")).model_validate(big), silicon=ChipSilicon())
    assert not r.shoreline.fits and r.die_area_mm2 < 858
    why = [x for x in r.reasons if x.startswith("shoreline")]
    assert why and "12 HBM3E PHYs need 132 mm" in why[0], r.reasons
    two = silicon_report(type(load_chip("seedchip-ref")).model_validate(big), silicon=ChipSilicon(num_dies=2))
    sh = two.shoreline                                   # per die: half the PHYs and lanes, plus the die-to-die edge
    assert sh.num_phys_per_die == 6 and sh.parts_mm["die_to_die"] == DATA.blocks.d2d_edge_mm_per_die
    assert sh.parts_mm["serdes"] == pytest.approx(29 * DATA.blocks.serdes_edge_mm_per_lane)    # ceil(58 / 2)


@pytest.mark.unit
def test_assumptions_carry_every_figure_with_a_source():
    for cid in ("h100-sxm", "h200-sxm", "seedchip-ref", "mi300x"):
        for node in (None, "samsung-sf4x", "samsung-sf3"):
            rows = silicon_report(cid, node=node).to_dict()["assumptions"]
            names = [a["name"] for a in rows]
            assert len(names) == len(set(names))
            for a in rows:
                assert set(a) == {"name", "value", "unit", "source"} and a["source"], a
    rows = {a["name"]: a for a in silicon_report("seedchip-ref").to_dict()["assumptions"]}
    assert rows["hbm.hbm3e.usd_per_gbyte"]["value"] == 15.0 and "ESTIMATE" in rows["hbm.hbm3e.usd_per_gbyte"]["source"]
    for key in ("tsmc-n4.wafer_usd", "hbm.hbm3e.usd_per_gbyte_low", "hbm.height_premium.12", "packaging.burn_in_usd",
                "packaging.final_test_yield", "packaging.interposer_usd_per_mm2", "packaging.board_usd"):
        assert key in rows


@pytest.mark.e2e
def test_silicon_cli_node_option():
    out = CliRunner().invoke(_app(), ["silicon", "--chip", "seedchip-ref", "--node", "samsung-sf4x", "--json"])
    assert out.exit_code == 0, out.output
    assert json.loads(out.stdout) == json.loads(json.dumps(silicon_report("seedchip-ref", node="samsung-sf4x").to_dict()))
    bad = CliRunner().invoke(_app(), ["silicon", "--chip", "seedchip-ref", "--node", "sf4x"])
    assert bad.exit_code != 0 and isinstance(bad.exception, UnknownNameError)
