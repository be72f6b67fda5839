"""Golden JSON snapshots of ``seedchip.plan`` on examples/plan/two_year_plan.yaml.

The plan uses the scenario's recorded ``capacity_override`` (no simulation), so these runs are
fast and independent of the simulator: they pin the planner (problem, MILP, infeasibility
analysis, what-ifs, result JSON). The plan JSON has no wall-clock or path field (``solve_s`` and
``outputs`` live on the result object, not in ``to_dict()``). If a change moves a number on
purpose, regenerate with SEEDCHIP_REGEN_GOLDEN=1 and say why in the commit message."""

import json
from pathlib import Path

import pytest

import seedchip
from conftest import ROOT, regen_golden, rounded

pytestmark = pytest.mark.golden

GOLDEN = Path(__file__).parent / "golden"
SCENARIO = ROOT / "examples" / "plan" / "two_year_plan.yaml"
WALL_CLOCK_OR_PATH_FIELDS = ("solve_s", "outputs", "out", "path", "cache_dir")

CASES = {
    "plan__two_year_plan": [],
    # feasible what-ifs
    "plan__two_year_plan__hbm_supply_-30pct": ["hbm_supply=-30%"],
    "plan__two_year_plan__chip_slip_2__h200_price_+10pct": ["chip_slip=2", "h200_price=+10%"],
    # infeasible: the elastic analysis and the best plan within the limits
    "plan__two_year_plan__budget_-60pct": ["budget=-60%"],
    # every kind of what-if at once
    "plan__two_year_plan__many_what_ifs": ["demand=+50%", "demand_growth=+20%", "pue=1.4", "usd_per_kwh=+20%",
                                           "capacity_derate=0.7", "seedchip_cap=-20%", "h200_lead_time=2",
                                           "seedchip_capacity=-15%", "feed_demand=x1.2", "gpu_price=+5%"],
}


def plan_json(what_if: list[str]) -> dict:
    d = seedchip.plan(SCENARIO, what_if=what_if or None).to_dict()
    d = {k: v for k, v in d.items() if k not in WALL_CLOCK_OR_PATH_FIELDS}
    return rounded(json.loads(json.dumps(d)))


@pytest.mark.parametrize("name", list(CASES))
def test_golden_plan(name):
    got = plan_json(CASES[name])
    path = GOLDEN / f"{name}.json"
    if regen_golden() or not path.exists():
        if not regen_golden():
            pytest.fail(f"missing golden file {path.name}; run with SEEDCHIP_REGEN_GOLDEN=1 to create it")
        path.write_text(json.dumps(got, indent=1) + "\n")
    want = json.loads(path.read_text())
    assert got == want
    assert list(got) == list(want), "the plan JSON's keys changed order"
