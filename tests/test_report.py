"""The HTML report (seedchip.report, `seedchip report`, `--report`): every result kind renders
to one self-contained, deterministic page; bad sources and outputs are refused in one line.
The pages themselves are checked in headless Chromium in test_report_browser.py."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from plotly.offline import get_plotlyjs

from seedchip.errors import SpecError
from seedchip.report import kind_of, report_html, write_report

from test_hostile import assert_refused, run_cli

ROOT = Path(__file__).resolve().parent.parent
SCENARIO = ROOT / "examples" / "plan" / "two_year_plan.yaml"
MAX_PAGE_BYTES = 5_000_000

pytestmark = pytest.mark.e2e


def test_every_kind_is_recognised(results):
    for kind in ("simulate", "estimate", "op", "silicon", "capacity", "run"):
        assert kind_of(results[kind]) == kind
    assert kind_of(json.loads((results["plan"] / "plan.json").read_text())) == "plan"
    assert kind_of({"something": 1}) is None and kind_of([1, 2]) is None


def test_pages_are_self_contained_deterministic_and_small(results, tmp_path):
    for kind, src in results.items():
        a, b = tmp_path / f"{kind}-a.html", tmp_path / f"{kind}-b.html"
        write_report(src, a)
        write_report(src, b)
        html = a.read_text()
        assert a.read_bytes() == b.read_bytes(), f"{kind}: two renders differ"
        assert a.stat().st_size < MAX_PAGE_BYTES, f"{kind}: {a.stat().st_size:,} bytes"
        assert html.count("Plotly.newPlot") == 1 and 'id="fig-1"' in html, kind     # plotly.js once, figures drawn
        ours = html.replace(get_plotlyjs(), "")
        assert "<script src=" not in ours and "http://" not in ours and "https://" not in ours, kind
        assert f'data-kind="{kind}"' in html


def test_the_cli_writes_the_same_page_as_the_api(results, tmp_path):
    src = tmp_path / "sim.json"
    src.write_text(json.dumps(results["simulate"]))
    code, out, err = run_cli(["report", str(src), "--out", str(tmp_path / "sim.html")])
    assert code == 0, err
    assert (tmp_path / "sim.html").read_text() == report_html(results["simulate"])


def test_report_option_on_commands(tmp_path):
    page = tmp_path / "est.html"
    code, out, err = run_cli(["estimate", "--chip", "h200-sxm", "--model", "llama-3.1-8b", "--json", "--report",
                              str(page)])
    assert code == 0, err
    assert json.loads(out)["ttft_s"] > 0 and page.is_file()
    code, out, err = run_cli(["silicon", "--chip", "seedchip-ref", "--report", str(tmp_path / "s.html")])
    assert code == 0 and "unit cost" in out and (tmp_path / "s.html").is_file(), err


def test_bad_sources_and_outputs_are_refused(results, tmp_path):
    notjson = tmp_path / "x.json"
    notjson.write_text("{not json")
    other = tmp_path / "other.json"
    other.write_text('{"hello": 1}')
    good = tmp_path / "good.json"
    good.write_text(json.dumps(results["silicon"]))
    garbled = tmp_path / "garbled.json"
    garbled.write_text(json.dumps({**results["silicon"], "area_breakdown_mm2": [1, 2]}))
    (tmp_path / "empty").mkdir()
    out = str(tmp_path / "r.html")
    for argv, word in [
        (["report", str(notjson), "--out", out], "not JSON"),
        (["report", str(other), "--out", out], "no SeedChip command"),
        (["report", str(tmp_path / "nope.json"), "--out", out], "does not exist"),
        (["report", str(tmp_path / "empty"), "--out", out], "results.duckdb"),
        (["report", str(garbled), "--out", out], "garbles"),
        (["report", str(good), "--out", str(tmp_path / "r.txt")], ".html"),
        (["report", str(good), "--out", str(tmp_path / "no" / "r.html")], "does not exist"),
        (["report", str(good), "--out", str(tmp_path)], "folder"),
        (["estimate", "--chip", "h200-sxm", "--model", "llama-3.1-8b", "--report", str(tmp_path / "x.pdf")], ".html"),
        (["plan", str(SCENARIO), "--report", out], "--out"),
    ]:
        assert_refused(argv, word)
    assert not (tmp_path / "r.html").exists()
    with pytest.raises(SpecError):
        report_html({"nothing": True})


def test_simulate_result_holds_a_bounded_cdf_and_throughput_series(results):
    d = results["simulate"]
    assert len(d["cdf"]["ttft_s"]) == d["cdf"]["quantiles"] == 101
    assert d["cdf"]["ttft_s"] == sorted(d["cdf"]["ttft_s"])
    s = d["series"]
    tokens = sum(s["output_tokens_per_s"]) * s["bin_s"]
    assert tokens == pytest.approx(d["throughput_tokens_per_s"] * d["makespan_s"], rel=1e-6)
    assert len(s["step_power_w"]) == len(s["t_s"])


def test_plan_fields_render_when_present_and_are_optional(results):
    d = json.loads((results["plan"] / "plan.json").read_text())
    lean = {k: v for k, v in d.items() if k not in ("baseline", "asic_savings_usd", "payback_quarter", "nre_usd",
                                                     "build_asic", "per_device", "sweep", "what_if")}
    assert "Binding constraints" in report_html(lean)
    rich = {**lean, "asic_savings_usd": 1.5e9, "payback_quarter": "2028Q1", "sweep": [{"hbm_supply": -0.3,
                                                                                       "build_asic": True}]}
    html = report_html(rich)
    assert "savings from our chip" in html and "2028Q1" in html and "Sweep" in html
    swept = {**lean, "sweep": {"key": "hbm_supply", "kind": "rel", "points": [
        {"value": -0.5, "what_if": "hbm_supply=-50%", "status": "optimal", "total_cost_usd": 2e10,
         "baseline_total_cost_usd": 3e10},
        {"value": 0.0, "what_if": "hbm_supply=+0%", "status": "optimal", "total_cost_usd": 1.9e10,
         "baseline_total_cost_usd": 2.8e10}], "break_even": [{"flips": "build", "value": -0.2}]}}
    html = report_html(swept)
    assert "Break-evens" in html and html.count('draw("fig-') == report_html(lean).count('draw("fig-') + 1


def test_a_large_sweep_stays_under_the_page_budget(results):
    """Thousands of designs: the page samples those off the frontier and stays under 5 MB."""
    import copy
    from seedchip.explore.stored import stored_run
    d = stored_run(results["explore"])
    base = next(p for p in d["points"] if p["feasible"])
    extra = []
    for i in range(2000):
        p = copy.deepcopy(base)
        p["key"], p["on_frontier"] = f"synthetic{i:05d}", False
        p["objectives"] = {k: v * (0.5 + (i % 97) / 200) for k, v in p["objectives"].items()}
        extra.append(p)
    html = report_html({**d, "points": d["points"] + extra})
    assert len(html.encode()) < MAX_PAGE_BYTES
    assert "evenly sampled" in html


def test_a_long_timeline_is_drawn_coarser():
    from seedchip.report.serve_pages import MAX_BINS, coarser
    n = 2000
    s = {"bin_s": 1.0, "t_s": [float(i) for i in range(n)], "running_max": list(range(n)), "preemptions": [1] * n,
         "output_tokens_per_s": [10.0] * n}
    c = coarser(s)
    assert len(c["t_s"]) <= MAX_BINS and c["bin_s"] == 4.0
    assert c["running_max"][0] == 3 and sum(c["preemptions"]) == n and c["output_tokens_per_s"][0] == 10.0
