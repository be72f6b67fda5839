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


@pytest.fixture(scope="session")
def results(tmp_path_factory) -> dict[str, object]:
    """Small results of the computing commands, and an explore and a plan folder (report tests)."""
    import json

    import seedchip
    from test_hostile import run_cli
    space = ROOT / "examples" / "explore" / "inference_asic.yaml"
    scenario = ROOT / "examples" / "plan" / "two_year_plan.yaml"
    d = tmp_path_factory.mktemp("report-sources")
    out: dict[str, object] = {
        "simulate": seedchip.simulate(model="llama-3.1-8b", workload="chat", qps=4, num_requests=60, seed=1,
                                      interval=False, slo_ttft_p99="1s", slo_tpot_p99="50ms").to_dict(),
        "estimate": seedchip.estimate(chip="h200-sxm", model="llama-3.1-8b", batch=8, interval=False).to_dict(),
        "op": seedchip.op("attention", chip="h200-sxm", phase="decode", batch=8, seq_len=2048, num_heads=32,
                          num_kv_heads=8, head_dim=128).to_dict(),
    }
    code, text, err = run_cli(["silicon", "--chip", "seedchip-ref", "--json"])
    assert code == 0, err
    out["silicon"] = json.loads(text)
    code, _, err = run_cli(["explore", str(space), "--out", str(d / "sweep"), "--search", "random", "--trials", "4",
                            "--no-plot", "--no-progress", "--json"])
    assert code == 0, err
    out["explore"] = d / "sweep"
    code, _, err = run_cli(["plan", str(scenario), "--out", str(d / "plan"), "--json"])
    assert code == 0, err
    out["plan"] = d / "plan"
    return out
