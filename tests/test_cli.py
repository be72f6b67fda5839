"""The CLI from a user's side, in a subprocess: CLI JSON == API to_dict, exit codes."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

import seedchip

pytestmark = pytest.mark.e2e

EXE = [sys.executable, "-m", "seedchip.cli.main"]


def cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([*EXE, *args], capture_output=True, text=True, cwd=cwd, timeout=120)


def cli_json(*args: str):
    r = cli(*args, "--json")
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def roundtrip(obj):
    return json.loads(json.dumps(obj))


def test_op_gemm_cli_equals_api():
    out = cli_json("op", "--chip", "h200-sxm", "gemm", "--m", "8192", "--n", "8192", "--k", "8192",
                   "--format", "bf16")
    api = seedchip.op("gemm", chip="h200-sxm", m=8192, n=8192, k=8192, format="bf16").to_dict()
    assert out == roundtrip(api)
    for key in ("time_s", "flops", "bytes", "bound"):
        assert key in out


def test_op_attention_and_collective_cli_equals_api():
    out = cli_json("op", "--chip", "seedchip-ref", "attention", "--phase", "decode", "--batch", "64",
                   "--seq-len", "4096", "--num-heads", "64", "--num-kv-heads", "8", "--head-dim", "128",
                   "--format", "bf16", "--kv-format", "fp8")
    api = seedchip.op("attention", chip="seedchip-ref", phase="decode", batch=64, seq_len=4096, num_heads=64,
                      num_kv_heads=8, head_dim=128, format="bf16", kv_format="fp8").to_dict()
    assert out == roundtrip(api)
    out = cli_json("op", "--chip", "h100-sxm", "allreduce", "--bytes", "16777216", "--num-chips", "8")
    assert out == roundtrip(seedchip.op("allreduce", chip="h100-sxm", bytes=16777216, num_chips=8).to_dict())


def test_estimate_cli_equals_api():
    args = dict(chip="h200-sxm", model="llama-3.1-70b", num_chips=8, tp=8, weight_format="fp8", kv_format="fp8",
                batch=64, input_len=1024, output_len=128)
    flags = []
    for k, v in args.items():
        flags += [f"--{k.replace('_', '-')}", str(v)]
    out = cli_json("estimate", *flags)
    assert out == roundtrip(seedchip.estimate(**args).to_dict())
    assert out["memory"]["weights_bytes"] > 0 and out["prefill"]["by_class"] and out["decode"]["by_class"]


def test_chips_and_models_json():
    chips = cli_json("chips")
    ids = {c["id"] for c in chips}
    assert {"h100-sxm", "h200-sxm", "b200", "mi300x", "mi325x", "tpu-v5e", "tpu-v6e", "trainium2", "gaudi3",
            "ascend-910b", "seedchip-ref"} <= ids
    for c in chips:
        assert c["sources"] and c["hbm_capacity_bytes"] > 0 and c["tdp_w"] > 0 and c["bf16_flops_per_s"] > 0
    models = cli_json("models")
    for m in models:
        assert {"id", "architecture", "total_params", "active_params"} <= set(m)
    assert roundtrip(seedchip.models()) == models


def test_human_output_runs():
    r = cli("chips")
    assert r.returncode == 0 and "h200-sxm" in r.stdout
    r = cli("estimate", "--chip", "h200-sxm", "--model", "llama-3.1-8b", "--batch", "4")
    assert r.returncode == 0 and "TTFT" in r.stdout and "decode" in r.stdout


def test_run_headline_writes_json(tmp_path):
    r = cli("run", "--out", str(tmp_path / "run.json"))
    assert r.returncode == 0, r.stderr
    data = json.loads((tmp_path / "run.json").read_text())
    assert [row["chip"] for row in data["rows"]] == ["seedchip-ref", "h200-sxm"]
    assert "seedchip-ref" in r.stdout
    # every headline figure carries its 80% interval, the ratios too
    for row in data["rows"]:
        lo, hi = row["interval80"]["throughput_tokens_per_s"]
        assert lo < row["throughput_tokens_per_s"] < hi
    ratio = data["ratios"]["seedchip-ref_vs_h200-sxm"]
    for k in ("throughput", "ttft", "tpot", "tokens_per_joule"):
        lo, hi = ratio[f"{k}_interval80"]
        assert lo < ratio[k] < hi


def test_output_is_deterministic():
    a = cli("estimate", "--chip", "seedchip-ref", "--model", "mixtral-8x7b", "--num-chips", "2", "--json")
    b = cli("estimate", "--chip", "seedchip-ref", "--model", "mixtral-8x7b", "--num-chips", "2", "--json")
    assert a.returncode == 0 and a.stdout == b.stdout


@pytest.mark.parametrize("args,needle", [
    (["estimate", "--chip", "h200", "--model", "llama-3.1-8b"], "h200-sxm"),
    (["estimate", "--chip", "h200-sxm", "--model", "llama3-8b"], "llama-3.1-8b"),
    (["estimate", "--chip", "h200-sxm", "--model", "llama-3.1-8b", "--batch", "0"], "batch"),
    (["estimate", "--chip", "h200-sxm", "--model", "llama-3.1-8b", "--batch", "-3"], "batch"),
    (["estimate", "--chip", "h200-sxm", "--model", "llama-3.1-70b", "--num-chips", "3", "--tp", "3"], "tp 3"),
    (["estimate", "--chip", "h200-sxm", "--model", "llama-3.1-405b"], "does not fit"),
    (["estimate", "--chip", "h200-sxm", "--model", "llama-3.1-8b", "--batch", "many"], "--batch"),
    (["estimate", "--chip", "h200-sxm", "--model", "llama-3.1-8b", "--weight-format", "fp9"], "fp8"),
    (["op", "--chip", "h200-sxm", "gemm", "--m", "0", "--n", "1", "--k", "1"], "--m 0"),
    (["op", "--chip", "h200-sxm", "attention", "--batch", "1", "--seq-len", "8", "--num-heads", "6",
      "--num-kv-heads", "4"], "multiple"),
    (["estimate", "--chip", "nowhere/chip.yaml", "--model", "llama-3.1-8b"], "does not exist"),
])
def test_bad_input_exits_2_with_one_line(args, needle):
    r = cli(*args)
    assert r.returncode == 2, (r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in r.stderr
    assert needle in lines[0]


def test_malformed_chip_yaml_exits_2(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("id: x\nmatrix: [unclosed\n")
    r = cli("estimate", "--chip", str(bad), "--model", "llama-3.1-8b")
    assert r.returncode == 2 and "not valid YAML" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    bad.write_text("id: my-chip\nname: x\n")
    r = cli("op", "--chip", str(bad), "gemm", "--m", "1", "--n", "1", "--k", "1")
    assert r.returncode == 2
    assert "field required" in r.stderr.lower() or "missing" in r.stderr.lower()


def test_unsupported_model_config_exits_2(tmp_path):
    cfg = tmp_path / "config.json"
    cfg.write_text(json.dumps({"architectures": ["BertModel"], "hidden_size": 8}))
    r = cli("estimate", "--chip", "h200-sxm", "--model", str(cfg))
    assert r.returncode == 2 and "BertModel" in r.stderr and "LlamaForCausalLM" in r.stderr


def test_simulate_cli_equals_api_and_has_the_contract_keys(tmp_path):
    args = dict(chip="h200-sxm", model="llama-3.1-8b", workload="chat", qps=4, num_requests=60, seed=3)
    flags = []
    for k, v in args.items():
        flags += [f"--{k.replace('_', '-')}", str(v)]
    out = cli_json("simulate", *flags, "--trace-out", str(tmp_path / "steps.json"))
    api = roundtrip(seedchip.simulate(**args, trace_out=str(tmp_path / "api_steps.json")).to_dict())
    for d in (out, api):
        d["inputs"].pop("trace_out", None)
    assert out == api
    for key in ("throughput_tokens_per_s", "input_tokens_per_s", "requests_per_s", "num_requests", "num_completed",
                "num_preemptions", "prefix_hit_rate", "energy_j_per_token"):
        assert key in out
    for key in ("ttft_s", "tpot_s", "e2e_s"):
        assert set(out[key]) >= {"mean", "p50", "p90", "p99"}
    trace = json.loads((tmp_path / "steps.json").read_text())
    assert trace["traceEvents"] and trace["traceEvents"][0]["ph"] == "X"


def test_capacity_cli_equals_api():
    out = cli_json("capacity", "--model", "llama-3.1-8b", "--workload", "chat", "--num-requests", "150",
                   "--max-requests", "300", "--slo-ttft-p99", "2s", "--slo-tpot-p99", "40ms", "--no-interval")
    api = roundtrip(seedchip.capacity(model="llama-3.1-8b", workload="chat", num_requests=150, max_requests=300,
                                      slo_ttft_p99="2s", slo_tpot_p99="40ms", interval=False).to_dict())
    assert out == api
    assert out["max_qps"] > 0 and out["metrics"]["num_completed"] == out["convergence"][-1]["num_requests"]
    assert out["binding"] and out["max_qps"] <= out["saturated_requests_per_s"]


def test_engines_and_validate_e2e_cli_equal_the_api(tmp_path):
    assert cli_json("engines") == roundtrip(seedchip.engines())
    table = tmp_path / "e2e.csv"
    table.write_text("model,chip,tp,isl,osl,weight_format,kv_format,num_requests,out_tok_s\n"
                     "Llama 3.1 8B,H100 SXM 80GB,1,1000,200,fp8,fp8,200,9000\n")
    out = cli_json("validate", "e2e", str(table))
    api = roundtrip(seedchip.validate_e2e(str(table)).to_dict())
    assert out == api and out["num_rows"] == 1 and out["rows"][0]["model"] == "llama-3.1-8b"
    assert out["median_abs_err"] == pytest.approx(abs(out["rows"][0]["predicted"] / 9000 - 1))


@pytest.mark.parametrize("args,needle", [
    (["simulate", "--model", "llama-3.1-8b", "--workload", "chat"], "--qps"),
    (["simulate", "--model", "llama-3.1-8b", "--trace", "nowhere.csv"], "does not exist"),
    (["simulate", "--model", "llama-3.1-8b", "--workload", "chat", "--qps", "1", "--router", "random"], "router"),
    (["capacity", "--model", "llama-3.1-8b", "--num-requests", "100", "--max-requests", "100", "--slo-ttft-p99",
      "1us"], "no rate meets"),
    (["capacity", "--model", "llama-3.1-8b", "--slo-tpot-p99", "100"], "no unit"),
    (["simulate", "--model", "llama-3.1-8b", "--workload", "chat", "--qps", "1", "--offline"], "drop one"),
    (["simulate", "--model", "llama-3.1-8b", "--workload", "chat", "--max-concurrency", "0"], "--max-concurrency"),
    (["simulate", "--model", "llama-3.1-8b", "--workload", "chat", "--qps", "1", "--engine", "tgi"], "engine"),
    (["simulate", "--model", "llama-3.1-8b", "--workload", "chat", "--qps", "1", "--max-throughput"], "--offline"),
    (["validate", "e2e", "nowhere.csv"], "does not exist"),
    (["capacity", "--model", "llama-3.1-8b"], "SLO"),
])
def test_serving_bad_input_exits_2(args, needle):
    r = cli(*args)
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert len(r.stderr.strip().splitlines()) == 1 and needle in r.stderr


def test_malformed_trace_line_cli(tmp_path):
    p = tmp_path / "t.csv"
    p.write_text("arrival_s,input_len,output_len\n0,10,2\n0.5,ten,2\n")
    r = cli("simulate", "--model", "llama-3.1-8b", "--trace", str(p))
    assert r.returncode == 2 and "t.csv:3:" in r.stderr
