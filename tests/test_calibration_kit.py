"""The GPU calibration kit: calibration/gpu_microbench.py -> CSV -> fit -> validate.

No GPU here: the CSV under test is calibration/data/cpu_smoke.csv (a CPU smoke run of
the same script, for tests only) and a synthetic CSV whose times the oracle itself
wrote with a known calibration (the fit must recover it)."""

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import typer
import yaml
from typer.testing import CliRunner

from seedchip.calibrate.check_measured import validate_measured
from seedchip.calibrate.measured import NUMERIC, TEXT, fit_measured, predict, read_measured
from seedchip.cli.calib_cmds import register
from seedchip.errors import SpecError
from seedchip.hardware.catalog import load_chip
from seedchip.perf.calibration import load_calibration

ROOT = Path(__file__).resolve().parent.parent
SMOKE = ROOT / "calibration" / "data" / "cpu_smoke.csv"
SCRIPT = ROOT / "calibration" / "gpu_microbench.py"
CLASSES = {"gemm_bf16", "gemm_fp8", "attention_prefill", "attention_decode", "vector", "layer", "step"}


def _app():
    app, cal = typer.Typer(), typer.Typer()
    app.add_typer(cal, name="calibrate")
    register(app, cal)
    return app


def _roundtrip(obj):
    return json.loads(json.dumps(obj))


# ----------------------------------------------------------------------------- reader

@pytest.mark.unit
def test_reader_reads_the_smoke_csv():
    m = read_measured(SMOKE)
    assert len(m) >= 50
    assert m.provenance["gpu"].startswith("none") and "for tests only" in m.provenance["NOTE"]
    for key in ("torch", "date", "command"):
        assert m.provenance[key]
    assert "tiny-llama" in m.model_configs
    assert set(m.op) >= {"gemm", "attention_prefill", "attention_decode", "copy", "launch", "layer", "step"}
    assert m.cols["time_s"].dtype == float and (m.cols["time_s"] > 0).all()
    gemm = m.op == "gemm"
    assert (m.cols["m"][gemm] > 0).all() and set(m.cols["format"][gemm]) == {"bf16", "fp8"}


def _corrupt(tmp_path, target_op: str, column: str, value: str) -> tuple[Path, int]:
    lines = SMOKE.read_text().splitlines()
    header_i = next(i for i, x in enumerate(lines) if x.startswith("op,"))
    cols = lines[header_i].split(",")
    i = next(i for i, x in enumerate(lines) if x.startswith(target_op + ","))
    fields = lines[i].split(",")
    fields[cols.index(column)] = value
    lines[i] = ",".join(fields)
    p = tmp_path / "bad.csv"
    p.write_text("\n".join(lines) + "\n")
    return p, i + 1


@pytest.mark.unit
@pytest.mark.parametrize("column,value,says", [("time_s", "abc", "is not a number"), ("time_s", "0", "must be > 0"),
                                               ("m", "-3", ">= 0"), ("op", "gemmm", "unknown op"),
                                               ("format", "bf17", "unknown format")])
def test_reader_names_file_and_line_of_a_bad_row(tmp_path, column, value, says):
    p, lineno = _corrupt(tmp_path, "gemm", column, value)
    with pytest.raises(SpecError) as e:
        read_measured(p)
    assert f"bad.csv:{lineno}:" in str(e.value) and says in str(e.value)


@pytest.mark.unit
def test_reader_rejects_short_rows_missing_columns_and_missing_files(tmp_path):
    lines = SMOKE.read_text().splitlines()
    i = next(i for i, x in enumerate(lines) if x.startswith("copy,"))
    lines[i] = ",".join(lines[i].split(",")[:5])
    (tmp_path / "short.csv").write_text("\n".join(lines) + "\n")
    with pytest.raises(SpecError, match=rf"short.csv:{i + 1}: 5 fields"):
        read_measured(tmp_path / "short.csv")
    (tmp_path / "other.csv").write_text("a,b\n1,2\n")
    with pytest.raises(SpecError, match="lacks column"):
        read_measured(tmp_path / "other.csv")
    with pytest.raises(SpecError, match="does not exist"):
        read_measured(tmp_path / "nope.csv")


# ----------------------------------------------------------------------------- fit / validate on the smoke CSV

@pytest.mark.unit
def test_fit_on_smoke_reports_the_split(tmp_path):
    r = fit_measured(SMOKE, "h200-sxm", allow_cpu=True)
    split = r.split
    assert "20%" in split["rule"] and "layer and step" in split["rule"]
    per = split["per_class"]
    assert set(per) == CLASSES
    assert per["layer"]["train"] == 0 and per["step"]["train"] == 0 and per["step"]["holdout"] > 0
    assert per["gemm_bf16"]["train"] > 0 and per["gemm_bf16"]["holdout"] > 0
    assert r.start == "h100-sxm" and r.calibration.id == "h200-sxm-measured"
    assert "gemm_bf16_holdout" in r.report and r.calibration.holdout_error == r.report
    # collectives are kept from the start calibration (one GPU measures none)
    assert r.calibration.collective == load_calibration("h100-sxm").collective
    d = r.to_dict()
    assert d["split"] == split and d["calibration"]["id"] == "h200-sxm-measured"


@pytest.mark.unit
def test_validate_on_smoke_returns_every_class():
    v = validate_measured(SMOKE, "h200-sxm")
    kinds = {g["op_class"] for g in v.regions}
    assert kinds == CLASSES
    m = read_measured(SMOKE)
    assert len(v.model_rows) == int(np.isin(m.op, ("layer", "step")).sum())
    for g in v.regions:
        if g["n_holdout"]:
            assert g["shipped"]["median_abs_pct"] >= 0 and g["fitted"]["worst_abs_pct"] >= g["fitted"]["median_abs_pct"]
    for x in v.model_rows:
        assert x["measured_s"] > 0 and x["shipped_s"] > 0 and x["fitted_s"] > 0
    assert {t["target"].split(" abs")[0] for t in v.targets} >= {"held-out GEMM median", "decode step worst"}
    assert v.shipped == "h100-sxm" and json.loads(json.dumps(v.to_dict()))["chip"] == "h200-sxm"


# ----------------------------------------------------------------------------- recovery on oracle-written data

def _synthetic_csv(path: Path) -> None:
    rows = []

    def add(op, **kw):
        r = {c: 0 for c in NUMERIC}
        r.update(op=op, format="bf16", mode="cuda_graph", model="", time_s=1.0)
        r.update(kw)
        rows.append(r)

    for n, k in ((6144, 4096), (4096, 14336), (28672, 4096), (8192, 8192), (576, 7168), (32768, 512)):
        for m in (1, 4, 16, 64, 128, 512, 1024, 4096, 16384):
            for f in ("bf16", "fp8"):
                add("gemm", format=f, m=m, n=n, k=k)
    for h, kv in ((32, 8), (64, 8), (32, 32)):
        for s in (512, 1024, 2048, 4096, 8192, 16384):
            add("attention_prefill", batch=1, seq_len=s, new_tokens=s, num_heads=h, num_kv_heads=kv, head_dim=128)
        for b in (1, 4, 16, 64, 256):
            for c in (512, 2048, 8192, 32768):
                add("attention_decode", batch=b, context=c, seq_len=1, new_tokens=1, num_heads=h, num_kv_heads=kv,
                    head_dim=128)
    for size in (2**20, 2**22, 2**24, 2**26, 2**28, 2**30):
        add("copy", bytes=2.0 * size, elements=size // 2)
        add("elementwise_add", flops=size / 2, bytes=3.0 * size, elements=size // 2)
    add("launch", elements=1)
    for op, layers in (("layer", 1), ("step", 32)):
        for b, c in ((1, 1024), (8, 4096), (32, 1024)):
            add(op, model="llama-3.1-8b", batch=b, context=c, new_tokens=1, seq_len=1, num_layers=layers)
        add(op, model="llama-3.1-8b", batch=1, context=0, new_tokens=2048, seq_len=2048, num_layers=layers)

    def write():
        cols = [*TEXT, *NUMERIC]
        with open(path, "w") as f:
            f.write("# gpu: synthetic (times written by the oracle)\n" + ",".join(cols) + "\n")
            for r in rows:
                f.write(",".join(str(r[c]) for c in cols) + "\n")

    write()
    base = load_calibration("h100-sxm")
    truth = base.model_copy(update={
        "gemm": base.gemm.model_copy(update={"compute_efficiency": {"bf16": 0.72, "fp8": 0.62},
                                             "memory_efficiency": {"bf16": 0.9, "fp8": 0.86}, "overlap_p": 3.5,
                                             "overhead_s": {"bf16": 4e-6, "fp8": 9e-6}}),
        "attention": base.attention.model_copy(update={
            "prefill_compute_efficiency": {"bf16": 0.7, "fp8": 0.55},
            "core_stream_per_sram_byte": 0.85 * base.attention.core_stream_per_sram_byte,
            "decode_overhead_s": {**base.attention.decode_overhead_s, "per_head": 6e-6, "grouped_16bit": 6e-6}}),
        "vector": base.vector.model_copy(update={"memory_efficiency": 0.9, "overhead_s": 2.5e-6}), "id": "truth"})
    t = predict(load_chip("h200-sxm"), truth, read_measured(path))
    for r, x in zip(rows, t):
        r["time_s"] = float(x)
    write()


@pytest.mark.unit
def test_fit_recovers_a_known_calibration_and_prices_the_steps(tmp_path):
    p = tmp_path / "synthetic.csv"
    _synthetic_csv(p)
    v = validate_measured(p, "h200-sxm")
    by = {(g["op_class"], g["region"]): g for g in v.regions}
    for key, g in by.items():
        if g["n_holdout"] and key[0] not in ("layer", "step"):
            assert g["fitted"]["median_abs_pct"] < 1.0, (key, g)
    for x in v.model_rows:
        assert abs(x["fitted_error_pct"]) < 2.0, x
    # the shipped (H100) calibration is measurably off this "chip": the check has teeth
    assert max(abs(x["shipped_error_pct"]) for x in v.model_rows) > 5.0
    assert all(t["met"] for t in v.targets)


# ----------------------------------------------------------------------------- CLI

@pytest.mark.e2e
def test_cli_fit_and_validate_json_equal_the_api(tmp_path):
    app, run = _app(), CliRunner()
    out = tmp_path / "fitted.yaml"
    r = run.invoke(app, ["calibrate", "fit", str(SMOKE), "--chip", "h200-sxm", "--out", str(out), "--allow-cpu", "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout) == _roundtrip(fit_measured(SMOKE, "h200-sxm", allow_cpu=True).to_dict())
    text = out.read_text()
    assert text.startswith("# Calibration fitted by `seedchip calibrate fit cpu_smoke.csv --chip h200-sxm`")
    cal = load_calibration(str(out))
    assert cal.id == "h200-sxm-measured" and yaml.safe_load(text)["holdout_error"]
    r = run.invoke(app, ["validate", "kernels", str(SMOKE), "--chip", "h200-sxm", "--calibration", str(out), "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout) == _roundtrip(validate_measured(SMOKE, "h200-sxm", str(out)).to_dict())
    r = run.invoke(app, ["validate", "kernels", str(SMOKE), "--chip", "h200-sxm"])
    assert r.exit_code == 0 and "Oracle error on held-out rows" in r.output and "smoke test" in r.output
    assert "Whole layer and whole step" in r.output


@pytest.mark.e2e
def test_cli_bad_input_is_one_line_exit_2(tmp_path):
    bad, lineno = _corrupt(tmp_path, "attention_decode", "context", "x")
    r = CliRunner().invoke(_app(), ["validate", "kernels", str(bad), "--chip", "h200-sxm"])
    assert isinstance(r.exception, SpecError) and f":{lineno}:" in str(r.exception)
    # through the real entry point (main turns SeedChipError into exit 2 and one line)
    code = ("import sys; from seedchip.cli import main as M; from seedchip.cli.calib_cmds import register\n"
            "names = {c.name for c in M.app.registered_commands}\n"
            "if 'validate' not in names: register(M.app, M.calibrate_app)\n"
            "M.main(sys.argv[1:])")
    p = subprocess.run([sys.executable, "-c", code, "validate", "kernels", str(bad), "--chip", "h200-sxm"], capture_output=True,
                       text=True, timeout=120)
    assert p.returncode == 2, p.stderr
    assert p.stderr.count("\n") == 1 and f"bad.csv:{lineno}: column 'context'" in p.stderr


# ----------------------------------------------------------------------------- the script itself (needs torch)

@pytest.mark.e2e
@pytest.mark.slow
def test_script_cpu_tiny_writes_the_documented_csv(tmp_path):
    pytest.importorskip("torch")
    out = tmp_path / "smoke.csv"
    p = subprocess.run([sys.executable, str(SCRIPT), "--device", "cpu", "--tiny", "--out", str(out), "--quiet",
                        "--sections", "launch,memory,model,gemm,attention"], capture_output=True, text=True,
                       timeout=300)
    assert p.returncode == 0, p.stderr[-2000:]
    lines = out.read_text().splitlines()
    head = [x for x in lines if x.startswith("# ")]
    for key in ("# gpu:", "# driver:", "# cuda:", "# torch:", "# date:", "# command:", "# model_config tiny-llama "):
        assert any(x.startswith(key) for x in head), key
    assert lines[-1].startswith("# finished:") and "0 failed" in lines[-1]
    cols = next(x for x in lines if not x.startswith("#")).split(",")
    assert cols[:14] == ["op", "phase", "shape", "format", "impl", "mode", "time_s", "time_min_s", "repeats", "inner",
                         "flops", "bytes", "achieved_flops_per_s", "achieved_bytes_per_s"]
    assert set(TEXT) | set(NUMERIC) <= set(cols)
    m = read_measured(out)
    assert set(m.op) >= {"gemm", "attention_prefill", "attention_decode", "copy", "elementwise_add", "rmsnorm",
                         "silu_mul", "launch", "layer", "step"}
    assert (tmp_path / "smoke.log").is_file()


@pytest.mark.slow
def test_script_full_plan_builds_without_a_gpu_and_fits_the_budget(capsys, monkeypatch):
    pytest.importorskip("torch")
    monkeypatch.syspath_prepend(str(SCRIPT.parent))
    spec = importlib.util.spec_from_file_location("gpu_microbench_under_test", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, mod)    # dataclasses look their module up there
    spec.loader.exec_module(mod)
    assert mod.main(["--device", "cuda", "--plan-only"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    n, est = lines[-1].split(" tasks, estimated ")
    assert int(n) > 500 and float(est.split()[0]) < 420
    tiers = [int(x.split()[1]) for x in lines[:-1]]
    assert tiers == sorted(tiers)                       # most valuable first
    first = " ".join(lines[:40])
    assert "step decode" in first and "layer decode" in first    # the held-out targets come early
