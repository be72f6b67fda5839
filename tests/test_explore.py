"""Design-space exploration: Pareto on an enumerated space, resume after a kill, YAML errors
with field and line, variants, search methods, CLI == API."""

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from seedchip.cli.explore_cmds import register
from seedchip.errors import SpecError
from seedchip.explore import Context, explore, make_variant, pareto_mask, parse_space, point_key
from seedchip.explore.evaluate import sampled_estimate
from seedchip.explore.variant import VariantError
from seedchip.hardware.catalog import load_chip
from seedchip.perf.deployment import make_deployment
from seedchip.perf.estimate import static_estimate
from seedchip.model.zoo import load_model
from seedchip.silicon import load_silicon_data

TINY = """\
name: tiny
base_chip: seedchip-ref
baseline: {{chip: h200-sxm}}
axes:
  bf16_flops_per_s: [400 TFLOP/s, 800 TFLOP/s, 1200 TFLOP/s]
  sram_mb: [32, 256]
  hbm_stacks: [2, 4]
  hbm_generation: [hbm3e, hbm4]
constraints: {{max_tdp_w: 900}}
workload:
  - model: llama-3.1-8b
    weight_format: fp8
    kv_format: fp8
    deployments: [{{num_chips: 1}}]
    scenarios:
      - {{name: chat, batch: 8, input_len: 128, output_len: {out}}}
objectives: [tokens_per_usd, tokens_per_joule]
search: {{method: grid}}
"""


def write(tmp_path: Path, text: str, name: str = "space.yaml") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def table(rows):
    """The comparable part of a stored table (timings differ run to run)."""
    return sorted((r["key"], r["feasible"], r["reason"], json.dumps(r["objectives"], sort_keys=True), r["on_frontier"])
                  for r in rows)


# --- Pareto --------------------------------------------------------------------------------

@pytest.mark.unit
def test_pareto_mask_hand_case():
    pts = np.array([[1, 5], [2, 4], [3, 3], [2, 2], [1, 1], [3, 3], [0, 6]])
    # [2,2] is dominated by [2,4]; [1,1] by everything; the duplicate [3,3]s both stay
    assert pareto_mask(pts).tolist() == [True, True, True, False, False, True, True]
    assert pareto_mask(np.zeros((0, 2))).tolist() == []


def _brute_frontier(rows, objs):
    feas = [r for r in rows if r["feasible"] and not r["is_baseline"]]
    out = set()
    for a in feas:
        va = [a["objectives"][o] for o in objs]
        if not any(all(b["objectives"][o] >= x for o, x in zip(objs, va)) and
                   any(b["objectives"][o] > x for o, x in zip(objs, va)) for b in feas if b is not a):
            out.add(a["key"])
    return out


@pytest.mark.unit
def test_frontier_on_tiny_enumerated_space(tmp_path):
    r = explore(write(tmp_path, TINY.format(out=8)), out=tmp_path / "run", plot=True)
    d = r.to_dict()
    assert d["num_points"] == 24 and d["num_new"] == 24
    assert {f["key"] for f in d["frontier"]} == _brute_frontier(r.rows, ["tokens_per_usd", "tokens_per_joule"])
    assert d["frontier"] and d["num_feasible"] >= len(d["frontier"])
    marked = {x["key"] for x in r.rows if x["on_frontier"]}
    assert marked == {f["key"] for f in d["frontier"]}
    # frontier sorted best first by the first objective; every frontier point carries its parameters
    vals = [f["objectives"]["tokens_per_usd"] for f in d["frontier"]]
    assert vals == sorted(vals, reverse=True)
    assert set(d["frontier"][0]["params"]) == {"bf16_flops_per_s", "sram_mb", "hbm_stacks", "hbm_generation"}
    assert d["baseline"]["chip"] == "h200-sxm" and d["baseline"]["feasible"]
    assert Path(d["plot_html"]).is_file() and Path(d["plot_png"]).is_file()
    assert (tmp_path / "run" / "results.duckdb").is_file()
    # the same sweep elsewhere draws the same page, byte for byte (no random element ids)
    again = explore(write(tmp_path, TINY.format(out=8)), out=tmp_path / "again", plot=True).to_dict()
    assert Path(again["plot_html"]).read_bytes() == Path(d["plot_html"]).read_bytes()
    # a second run of the same sweep evaluates nothing new
    again = explore(None, resume=tmp_path / "run", plot=False)
    assert again.num_new == 0 and table(again.rows) == table(r.rows)


@pytest.mark.unit
def test_infeasible_points_are_stored_with_reasons(tmp_path):
    text = TINY.format(out=8).replace("sram_mb: [32, 256]", "sram_mb: [32, 1500]")
    r = explore(write(tmp_path, text), out=tmp_path / "run", plot=False)
    bad = [x for x in r.rows if not x["feasible"]]
    assert bad and all(x["reason"] for x in bad)
    assert any("reticle" in x["reason"] for x in bad)
    assert all(x["objectives"] is None for x in bad)
    assert r.to_dict()["num_points"] == 24


# --- resume after a kill ---------------------------------------------------------------------

KILL_SCRIPT = """
import sys
from seedchip.explore import explore
explore(sys.argv[1], out=sys.argv[2], workers=1, plot=False)
"""


@pytest.mark.e2e
def test_resume_after_kill_gives_the_same_table(tmp_path):
    text = TINY.format(out=160).replace("hbm_stacks: [2, 4]", "hbm_stacks: [2, 3, 4, 5]\n  link_bw_per_direction: [400 GB/s, 800 GB/s]")  # 96 points
    space = write(tmp_path, text)
    killed = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "-c", KILL_SCRIPT, str(space), str(killed)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    prog = killed / "progress.json"
    deadline = time.time() + 60
    seen = 0
    while time.time() < deadline and proc.poll() is None:
        if prog.is_file():
            try:
                seen = json.loads(prog.read_text())["done"]
            except (ValueError, KeyError):
                seen = 0
            if seen >= 1:       # at least one point committed: kill now, mid-sweep
                break
        time.sleep(0.02)
    assert proc.poll() is None, "the sweep finished before it could be killed: make its points slower"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    partial = explore(None, resume=killed, plot=False)          # continues from the store
    assert 0 < partial.num_new < 96
    assert len([x for x in partial.rows if not x["is_baseline"]]) == 96
    full = explore(space, out=tmp_path / "full", plot=False)
    assert full.num_new == 96
    assert table(partial.rows) == table(full.rows)


@pytest.mark.unit
def test_resume_refuses_a_different_workload(tmp_path):
    explore(write(tmp_path, TINY.format(out=8)), out=tmp_path / "run", plot=False)
    other = write(tmp_path, TINY.format(out=9), "other.yaml")
    with pytest.raises(SpecError, match="different workload"):
        explore(other, resume=tmp_path / "run", plot=False)
    with pytest.raises(SpecError, match="no results.duckdb"):
        explore(None, resume=tmp_path / "nowhere")


@pytest.mark.unit
def test_resume_refuses_rows_of_another_oracle_version(tmp_path, monkeypatch):
    """The store's evaluation hash covers the package's code and data: rows priced by an
    older oracle are never mixed with new ones."""
    import seedchip.explore.space as space_mod
    explore(write(tmp_path, TINY.format(out=8)), out=tmp_path / "run", plot=False)
    monkeypatch.setattr(space_mod, "code_hash", lambda: "another version")
    with pytest.raises(SpecError, match="hash"):
        explore(None, resume=tmp_path / "run", plot=False)


# --- YAML errors name the field and the line ---------------------------------------------------

@pytest.mark.unit
@pytest.mark.parametrize("old,new,expect", [
    ("sram_mb: [32, 256]", "sram_mb: [32, -1]", r"space.yaml:6: axes.sram_mb\[1\]: -1 must be > 0"),
    ("sram_mb: [32, 256]", "sram_mbytes: [32, 256]", r"space.yaml:6: axes.sram_mbytes: unknown axis 'sram_mbytes'"),
    ("batch: 8", "batch: 0", r"space.yaml:16: workload\[0\].scenarios\[0\].batch: Input should be greater than 0"),
    ("model: llama-3.1-8b", "model: llama-9", r"space.yaml:11: workload\[0\].model: unknown model 'llama-9'"),
    ("{num_chips: 1}", "{num_chips: 3, tp: 2}", r"space.yaml:14: workload\[0\].deployments\[0\]: num_chips 3"),
    ("max_tdp_w: 900", "max_tdp_watts: 900", r"space.yaml:9: constraints.max_tdp_watts: unknown field .max_tdp_watts."),
    ("hbm_generation: [hbm3e, hbm4]", "hbm_generation: [hbm3e, hbm5]", r"space.yaml:8: axes.hbm_generation\[1\]: unknown HBM generation 'hbm5'"),
    ("objectives: [tokens_per_usd, tokens_per_joule]", "objectives: [tokens_per_dollar]", r"space.yaml:17: objectives: unknown objective"),
    ("base_chip: seedchip-ref", "base_chip: seedchip", r"space.yaml:2: base_chip: unknown chip 'seedchip'"),
])
def test_bad_yaml_names_field_and_line(tmp_path, old, new, expect):
    text = TINY.format(out=8)
    assert old in text
    p = write(tmp_path, text.replace(old, new))
    with pytest.raises(SpecError, match=expect):
        explore(p, out=tmp_path / "run")


@pytest.mark.unit
def test_yaml_syntax_error_and_missing_field(tmp_path):
    with pytest.raises(SpecError, match="not valid YAML"):
        parse_space("name: [unclosed", "s.yaml")
    with pytest.raises(SpecError, match=r"s.yaml:1: workload: Field required"):
        parse_space("name: x\nbase_chip: seedchip-ref\naxes: {sram_mb: [1]}\n", "s.yaml")


# --- variants, fidelity, search methods ------------------------------------------------------

@pytest.mark.unit
def test_variant_rules():
    base = load_chip("seedchip-ref")
    data = load_silicon_data()
    half = base.peak_flops("bf16")[0] / 2
    chip, sil = make_variant(base, {"bf16_flops_per_s": half, "hbm_generation": "hbm4", "hbm_height": 12,
                                    "hbm_stacks": 6, "spare_cores": 2}, data)
    pk = chip.matrix.peak_flops_per_s
    assert pk["bf16"] == half and pk["fp8"] == pytest.approx(2 * pk["bf16"]) and pk["fp4"] == pytest.approx(4 * pk["bf16"])
    assert base.matrix.num_cores == 28
    assert chip.matrix.num_cores == 14                            # half the base's 28 cores of 128 x 128
    assert chip.hbm.num_stacks == 6 and chip.hbm.capacity_per_stack_bytes == 36e9
    assert chip.hbm.bw_per_stack_bytes_per_s == 2.048e12
    assert sil.num_cores_on_die == 16                             # 14 + 2 spares
    assert chip.energy.idle_w < base.energy.idle_w              # a smaller die leaks less
    n3, _ = make_variant(base, {"process_node": "tsmc-n3"}, data)
    assert n3.energy.matrix_j_per_flop["bf16"] == pytest.approx(base.energy.matrix_j_per_flop["bf16"] * 0.72)
    no4, _ = make_variant(base, {"fp4": False}, data)
    assert no4.matrix.peak_flops_per_s["fp4"] is None
    with pytest.raises(VariantError, match="no 4-Hi"):
        make_variant(base, {"hbm_generation": "hbm4", "hbm_height": 4}, data)


@pytest.mark.unit
def test_sampled_fidelity_close_to_estimate():
    model = load_model("llama-3.1-8b")
    dep = make_deployment("seedchip-ref", num_chips=1, weight_format="fp8", kv_format="fp8")
    for b, i, o in ((8, 512, 300), (32, 1024, 2000)):
        ref = static_estimate(model, dep, b, i, o)
        s = sampled_estimate(model, dep, b, i, o, 9)
        assert s["ttft_s"] == pytest.approx(ref.ttft_s, rel=1e-9)
        assert s["e2e_s"] == pytest.approx(ref.e2e_s, rel=0.01)
        assert s["energy_j"] == pytest.approx(ref.energy_j, rel=0.01)


@pytest.mark.unit
def test_random_and_optuna_searches(tmp_path):
    space = write(tmp_path, TINY.format(out=8).replace("search: {method: grid}", "search: {method: random, trials: 10}"))
    a = explore(space, out=tmp_path / "r1", plot=False)
    b = explore(space, out=tmp_path / "r2", plot=False)
    assert table(a.rows) == table(b.rows)                       # same seed, same points
    assert a.to_dict()["num_points"] <= 10
    pytest.importorskip("optuna")
    for method in ("tpe", "nsga2"):
        r = explore(space, out=tmp_path / method, search=method, trials=12, plot=False)
        d = r.to_dict()
        assert d["search"] == method and d["num_points"] <= 12 and d["frontier"]
        more = explore(space, resume=tmp_path / method, search=method, trials=16, plot=False)
        assert more.to_dict()["num_points"] <= 16 and more.num_new <= 4


@pytest.mark.unit
def test_ray_is_optional(tmp_path, monkeypatch):
    import builtins
    real = builtins.__import__

    def no_ray(name, *a, **k):
        if name == "ray":
            raise ImportError("no ray")
        return real(name, *a, **k)
    monkeypatch.setattr(builtins, "__import__", no_ray)
    with pytest.raises(SpecError, match="needs Ray"):
        explore(write(tmp_path, TINY.format(out=8)), out=tmp_path / "run", use_ray=True)


@pytest.mark.unit
def test_two_workers_match_one(tmp_path):
    space = write(tmp_path, TINY.format(out=8))
    one = explore(space, out=tmp_path / "w1", plot=False)
    two = explore(space, out=tmp_path / "w2", workers=2, plot=False)
    assert two.backend == "process-pool" and table(one.rows) == table(two.rows)


# --- CLI == API -------------------------------------------------------------------------------

def _strip(d):
    for k in ("points_per_s", "eval_s", "elapsed_s", "store", "plot_html", "plot_png", "num_new"):
        d.pop(k, None)
    return d


@pytest.mark.e2e
def test_explore_cli_equals_api(tmp_path):
    """`seedchip explore` in a subprocess, as a user runs it: its JSON is the API's."""
    app = typer.Typer()
    register(app)
    space = write(tmp_path, TINY.format(out=8))
    out = subprocess.run([sys.executable, "-m", "seedchip.cli.main", "explore", str(space), "--out",
                          str(tmp_path / "cli"), "--json", "--no-plot"], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    cli = json.loads(out.stdout)
    for key in ("num_points", "num_feasible", "frontier", "points_per_s"):
        assert key in cli
    assert cli["store"].endswith("results.duckdb")
    api = explore(space, out=tmp_path / "api", plot=False).to_dict()
    assert _strip(cli) == _strip(json.loads(json.dumps(api)))
    human = CliRunner().invoke(app, ["explore", "--resume", str(tmp_path / "cli"), "--no-plot", "--no-progress"])
    assert human.exit_code == 0 and "Pareto frontier" in human.stdout


@pytest.mark.unit
def test_grid_size_hand_counted():
    sp = parse_space(TINY.format(out=8), "space.yaml")
    assert sp.grid_size() == 24                                   # 3 x 2 x 2 x 2
    ranged = parse_space(TINY.format(out=8).replace("sram_mb: [32, 256]", "sram_mb: {low: 32, high: 128, step: 32}")
                         .replace("hbm_stacks: [2, 4]", "hbm_stacks: {low: 2, high: 6, num: 3}"), "space.yaml")
    grid = ranged.grid()
    assert ranged.grid_size() == 72 and len(grid) == 72             # 3 x 4 (32, 64, 96, 128) x 3 (2, 4, 6) x 2
    assert sorted({p["sram_mb"] for p in grid}) == [32, 64, 96, 128]
    assert sorted({p["hbm_stacks"] for p in grid}) == [2, 4, 6]
    assert len({point_key(p) for p in grid}) == 72


@pytest.mark.unit
def test_example_space_loads():
    root = Path(__file__).resolve().parent.parent
    sp = parse_space((root / "examples/explore/inference_asic.yaml").read_text(), "inference_asic.yaml")
    assert sp.baseline.chip == "h200-sxm"
    assert {w.model for w in sp.workload} == {"llama-3.1-70b", "qwen3-235b-a22b"}
    # hand count: bf16 3 x sram 2 x stacks 3 x generation 2 x height 2 x link 2 x node 3
    assert sp.grid_size() == 432
    assert len({point_key(p) for p in sp.grid()}) == 432
    Context.build(sp)


# --- SLO goodput from the serving simulator ---------------------------------------------------

GOODPUT = """\
name: goodput
base_chip: seedchip-ref
baseline: {chip: h200-sxm}
axes:
  hbm_stacks: [2, 6]
workload:
  - model: llama-3.1-8b
    weight_format: fp8
    kv_format: fp8
    deployments: [{num_chips: 1}]
    scenarios:
      - {name: chat, batch: 8, input_len: 128, output_len: 8}
    serving:
      workload: chat
      num_requests: 150
      max_requests: 300
      slo_ttft_p99: 2 s
      slo_tpot_p99: 50 ms
objectives: [slo_goodput_per_chip, tokens_per_usd]
search: {method: grid}
"""


@pytest.mark.unit
def test_slo_goodput_objective_from_the_serving_simulator(tmp_path):
    res = explore(write(tmp_path, GOODPUT), out=tmp_path / "run", plot=False)
    pts = {r["params"]["hbm_stacks"]: r for r in res.rows if not r["is_baseline"]}
    assert len(pts) == 2 and all(r["feasible"] for r in pts.values())
    g = {k: r["objectives"]["slo_goodput_per_chip"] for k, r in pts.items()}
    assert all(math.isfinite(v) and v > 0 for v in g.values())
    assert g[6] > g[2]                               # three times the HBM bandwidth serves more within the SLO
    detail = pts[6]["metrics"]["slo_goodput"]["llama-3.1-8b"]
    assert detail["reason"] is None and detail["tpot_p99_s"] <= 0.05 and detail["max_qps"] > 0
    base = res.baseline
    assert base["feasible"] and base["objectives"]["slo_goodput_per_chip"] > 0


@pytest.mark.unit
def test_slo_goodput_is_zero_with_a_reason_when_no_rate_meets_the_slo(tmp_path):
    text = GOODPUT.replace("slo_tpot_p99: 50 ms", "slo_tpot_p99: 0.01 ms").replace("hbm_stacks: [2, 6]",
                                                                                   "hbm_stacks: [6]")
    res = explore(write(tmp_path, text.replace("baseline: {chip: h200-sxm}", "baseline: null")),
                  out=tmp_path / "run", plot=False)
    (row,) = res.rows
    assert row["feasible"] and row["objectives"]["slo_goodput_per_chip"] == 0.0
    assert "no rate meets the SLO" in row["metrics"]["slo_goodput"]["llama-3.1-8b"]["reason"]


@pytest.mark.unit
@pytest.mark.parametrize("old, new, expect", [
    ("num_requests: 150", "num_requets: 150", r"space.yaml:15: workload\[0\].serving.num_requets: unknown field .num_requets."),
    ("num_requests: 150", "num_requests: 0", r"space.yaml:15: workload\[0\].serving.num_requests: Input should be greater than or equal to 100"),
    ("slo_tpot_p99: 50 ms", "slo_tpot_p99: 50 parsecs", r"space.yaml:18: workload\[0\].serving.slo_tpot_p99: "),
    ("workload: chat", "workload: chitchat", r"space.yaml:14: workload\[0\].serving.workload: unknown workload 'chitchat'"),
])
def test_bad_serving_yaml_names_field_and_line(tmp_path, old, new, expect):
    with pytest.raises(SpecError, match=expect):
        parse_space(GOODPUT.replace(old, new), "space.yaml")


@pytest.mark.unit
def test_serving_slo_defaults_to_the_scenarios_and_is_required():
    sp = parse_space(GOODPUT.replace("      slo_ttft_p99: 2 s\n      slo_tpot_p99: 50 ms\n", "").replace(
        "output_len: 8}", "output_len: 8, max_tpot_s: 40 ms}"), "space.yaml")
    assert sp.workload[0].serving_slo() == (None, 0.04)
    with pytest.raises(SpecError, match=r"space.yaml:13: workload\[0\].serving: slo_goodput_per_chip needs"):
        parse_space(GOODPUT.replace("      slo_ttft_p99: 2 s\n      slo_tpot_p99: 50 ms\n", ""), "space.yaml")
    parse_space(GOODPUT.replace("      slo_ttft_p99: 2 s\n      slo_tpot_p99: 50 ms\n", "").replace(
        "objectives: [slo_goodput_per_chip, tokens_per_usd]", "objectives: [tokens_per_usd]"), "space.yaml")


@pytest.mark.unit
def test_goodput_example_space_loads():
    root = Path(__file__).resolve().parent.parent
    sp = parse_space((root / "examples/explore/slo_goodput.yaml").read_text(), "slo_goodput.yaml")
    assert "slo_goodput_per_chip" in sp.objectives and sp.workload[0].serving.num_requests == 1000
    assert "slo_goodput_per_chip" not in parse_space(
        (root / "examples/explore/inference_asic.yaml").read_text(), "inference_asic.yaml").objectives


# --- what a design buys: deployment and batch chosen per point, NRE and time to market -------

CHOICE = """\
name: choice
base_chip: seedchip-ref
baseline: null
axes:
  hbm_stacks: [4]
  hbm_height: [8, 12]
  hbm_generation: [hbm3e, hbm4]
tco: {{nre_usd: 4.0e8, nre_usd_by_node: {{tsmc-n4: 5.0e8}}, volume_units: 100000, design_quarters: 2}}
workload:
  - model: llama-3.1-70b
    weight_format: fp8
    kv_format: fp8
    choose: {choose}
    deployments: [{{num_chips: 8, tp: 8}}, {{num_chips: 2, tp: 2}}]
    scenarios:
      - {{name: chat, batch: 16, max_batch: {max_batch}, input_len: 2048, output_len: 512{slo}}}
objectives: [tokens_per_usd, time_to_market_year]
"""


def _point(choose="best", max_batch=1024, slo="", **params):
    sp = parse_space(CHOICE.format(choose=choose, max_batch=max_batch, slo=slo))
    from seedchip.explore.evaluate import evaluate_point
    p = {"hbm_stacks": 4, "hbm_height": 8, "hbm_generation": "hbm3e", **params}
    return evaluate_point(Context.build(sp), p)


@pytest.mark.unit
def test_best_deployment_and_largest_batch_within_memory_and_slo():
    first = _point(choose="first")
    best = _point()
    assert first["metrics"]["workload"]["llama-3.1-70b/chat"]["num_chips"] == 8
    assert best["metrics"]["workload"]["llama-3.1-70b/chat"]["num_chips"] == 2      # cheaper per token
    assert best["objectives"]["tokens_per_usd"] > first["objectives"]["tokens_per_usd"]
    # 12-Hi stacks hold 1.5x the KV of 8-Hi: the batch grows with the memory, the tokens per $ with it
    b8 = best["metrics"]["workload"]["llama-3.1-70b/chat"]["batch"]
    tall = _point(hbm_height=12)
    b12 = tall["metrics"]["workload"]["llama-3.1-70b/chat"]["batch"]
    assert 16 <= b8 < b12 <= 1024
    # the batch is the largest that fits: twice as many sequences would not
    chip = load_chip("seedchip-ref")
    from seedchip.explore.variant import make_variant as mv
    from seedchip.silicon.data import chip_silicon
    var, _ = mv(chip, {"hbm_stacks": 4, "hbm_height": 8, "hbm_generation": "hbm3e"}, load_silicon_data(),
                chip_silicon(chip.id))
    dep = make_deployment(var, num_chips=2, tp=2, weight_format="fp8", kv_format="fp8")
    static_estimate(load_model("llama-3.1-70b"), dep, b8, 2048, 512)
    if b8 * 2 <= 1024:
        from seedchip.errors import DoesNotFitError
        with pytest.raises(DoesNotFitError):
            static_estimate(load_model("llama-3.1-70b"), dep, b8 * 2, 2048, 512)
    # a TPOT limit the largest batches break: a smaller batch is chosen, and it meets the limit
    untimed = best["metrics"]["workload"]["llama-3.1-70b/chat"]
    limit = untimed["tpot_s"] * 0.9
    tight = _point(slo=f", max_tpot_s: {limit * 1e3:.6f} ms")["metrics"]["workload"]["llama-3.1-70b/chat"]
    assert tight["num_chips"] == 2 and tight["batch"] < b8 and tight["tpot_s"] <= limit
    # a limit no batch on two chips meets: the eight-chip deployment is chosen instead
    small = load_model("llama-3.1-70b")
    dep16 = make_deployment(var, num_chips=2, tp=2, weight_format="fp8", kv_format="fp8")
    floor = static_estimate(small, dep16, 16, 2048, 512).tpot_s
    wide = _point(slo=f", max_tpot_s: {floor * 0.9 * 1e3:.6f} ms")
    assert wide["feasible"], wide["reason"]
    assert wide["metrics"]["workload"]["llama-3.1-70b/chat"]["num_chips"] == 8


@pytest.mark.unit
def test_nre_by_node_and_time_to_market_year():
    r = _point()
    assert r["metrics"]["nre_usd"] == 5.0e8                               # tsmc-n4 from nre_usd_by_node
    assert r["metrics"]["technology_available_quarter"] == "2024Q1"               # HBM3E after N4 (2022Q1)
    assert r["objectives"]["time_to_market_year"] == pytest.approx(2024.0 + 2 / 4)
    later = _point(hbm_generation="hbm4")
    assert later["objectives"]["time_to_market_year"] == pytest.approx(2026.0 + 2 / 4)
    with pytest.raises(SpecError, match="nre_usd_by_node"):
        parse_space(CHOICE.format(choose="best", max_batch=64, slo="").replace("tsmc-n4: 5.0e8", "tsmc-n9: 5.0e8"))
