import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED.is_dir():
        pytest.skip("../shared/data is not beside the checkout")
    return SHARED


def regen_golden() -> bool:
    return os.environ.get("SEEDCHIP_REGEN_GOLDEN") == "1"


def rounded(x):
    """Floats to 10 significant digits (golden files hold what the platform's libm agrees on)."""
    if isinstance(x, float):
        return float(f"{x:.10g}")
    if isinstance(x, dict):
        return {k: rounded(v) for k, v in x.items()}
    if isinstance(x, list):
        return [rounded(v) for v in x]
    return x


TINY_SPACE = """\
name: tiny
base_chip: seedchip-ref
baseline: {chip: h200-sxm}
axes:
  bf16_flops_per_s: [400 TFLOP/s, 800 TFLOP/s, 1200 TFLOP/s]
  sram_mb: [32, 256]
  hbm_stacks: [4, 8]
  hbm_generation: [hbm3e, hbm4]
workload:
  - {model: llama-3.1-8b, weight_format: fp8, kv_format: fp8, deployments: [{num_chips: 1}],
     scenarios: [{name: chat, batch: 4, input_len: 128, output_len: 16}]}
objectives: [tokens_per_usd, tokens_per_joule]
search: {method: grid}
"""


@pytest.fixture(scope="session")
def tiny_space(tmp_path_factory) -> Path:
    """A design space of 24 points that sweeps in a few seconds."""
    p = tmp_path_factory.mktemp("space") / "tiny.yaml"
    p.write_text(TINY_SPACE)
    return p


@pytest.fixture(scope="session")
def results(tmp_path_factory, tiny_space) -> dict[str, object]:
    """Small results of the computing commands, and an explore and a plan folder (report tests)."""
    import json

    import seedchip
    from test_hostile import run_cli
    scenario = ROOT / "examples" / "plan" / "two_year_plan.yaml"
    d = tmp_path_factory.mktemp("report-sources")
    out: dict[str, object] = {
        "simulate": seedchip.simulate(model="llama-3.1-8b", workload="chat", qps=4, num_requests=60, seed=1,
                                      interval=False, slo_ttft_p99="1s", slo_tpot_p99="50ms").to_dict(),
        "estimate": seedchip.estimate(chip="h200-sxm", model="llama-3.1-8b", batch=8, interval=False).to_dict(),
        "op": seedchip.op("attention", chip="h200-sxm", phase="decode", batch=8, seq_len=2048, num_heads=32,
                          num_kv_heads=8, head_dim=128).to_dict(),
    }
    out["capacity"] = seedchip.capacity(model="llama-3.1-8b", workload="chat", slo_ttft_p99="1s", slo_tpot_p99="50ms",
                                        num_requests=100, max_requests=100, interval=False).to_dict()
    code, text, err = run_cli(["run", "--out", str(d / "run.json"), "--json"])
    assert code == 0, err
    out["run"] = json.loads(text)
    code, text, err = run_cli(["silicon", "--chip", "seedchip-ref", "--json"])
    assert code == 0, err
    out["silicon"] = json.loads(text)
    code, _, err = run_cli(["explore", str(tiny_space), "--out", str(d / "sweep"), "--search", "random", "--trials",
                            "6", "--no-plot", "--no-progress", "--json"])
    assert code == 0, err
    out["explore"] = d / "sweep"
    code, _, err = run_cli(["plan", str(scenario), "--out", str(d / "plan"), "--json"])
    assert code == 0, err
    out["plan"] = d / "plan"
    return out
