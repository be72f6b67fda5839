"""Golden JSON snapshots of catalog chip x model estimates and of serving simulations.

A change to the oracle, the catalog or the calibration that moves any number shows up
here; if the move is intended, regenerate with SEEDCHIP_REGEN_GOLDEN=1 and say why in
the commit message."""

import json
from pathlib import Path

import pytest

import seedchip
from conftest import regen_golden, rounded

pytestmark = pytest.mark.golden

GOLDEN = Path(__file__).parent / "golden"

CASES = {
    "h200-sxm__llama-3.1-70b__tp8_fp8": dict(chip="h200-sxm", model="llama-3.1-70b", num_chips=8, tp=8,
                                             weight_format="fp8", kv_format="fp8", batch=64, input_len=1024,
                                             output_len=128),
    "seedchip-ref__deepseek-v3__ep16_fp8": dict(chip="seedchip-ref", model="deepseek-v3", num_chips=16, ep=16,
                                                weight_format="fp8", kv_format="fp8", batch=256, input_len=2048,
                                                output_len=256),
    "mi300x__mixtral-8x7b__1chip_bf16": dict(chip="mi300x", model="mixtral-8x7b", batch=32, input_len=512,
                                             output_len=64),
    "b200__gpt-oss-120b__1chip_fp4": dict(chip="b200", model="gpt-oss-120b", weight_format="fp4", kv_format="fp8",
                                          batch=128, input_len=4096, output_len=512),
    "tpu-v6e__llama-3.1-8b__1chip_bf16": dict(chip="tpu-v6e", model="llama-3.1-8b", batch=8, input_len=1024,
                                              output_len=128),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_golden(name):
    check(name, seedchip.estimate(**CASES[name]).to_dict())


# simulations: each engine, open and closed loop, offline, a trace, intervals on one
SIM_CASES = {
    "sim__h200-sxm__llama-3.1-8b__vllm_chat_qps4": dict(chip="h200-sxm", model="llama-3.1-8b", workload="chat",
                                                        qps=4, num_requests=200, interval=True),
    "sim__h100-sxm__llama-3.1-70b__trtllm_tp4_offline": dict(chip="h100-sxm", model="llama-3.1-70b", num_chips=4,
                                                              weight_format="fp8", kv_format="fp8", engine="trtllm",
                                                              input_len=1000, output_len=200, offline=True,
                                                              num_requests=300, interval=False),
    "sim__h200-sxm__mixtral-8x7b__sglang_closed_loop": dict(chip="h200-sxm", model="mixtral-8x7b", num_chips=2,
                                                            engine="sglang", max_concurrency=32, input_len=1024,
                                                            output_len=256, range_ratio=0.5, num_requests=200,
                                                            interval=False),
}


@pytest.mark.parametrize("name", sorted(SIM_CASES))
def test_golden_simulate(name):
    check(name, seedchip.simulate(**SIM_CASES[name]).to_dict())


def check(name: str, result: dict) -> None:
    got = rounded(json.loads(json.dumps(result)))
    path = GOLDEN / f"{name}.json"
    if regen_golden() or not path.exists():
        if not regen_golden():
            pytest.fail(f"missing golden file {path.name}; run with SEEDCHIP_REGEN_GOLDEN=1 to create it")
        path.write_text(json.dumps(got, indent=1, sort_keys=True) + "\n")
    want = json.loads(path.read_text())
    assert got == want
