"""Golden JSON snapshots of catalog chip x model estimates.

A change to the oracle, the catalog or the calibration that moves any number shows up
here; if the move is intended, regenerate with SEEDCHIP_REGEN_GOLDEN=1 and say why in
the commit message."""

import json
from pathlib import Path

import pytest

import seedchip
from conftest import regen_golden

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


def rounded(x):
    if isinstance(x, float):
        return float(f"{x:.10g}")
    if isinstance(x, dict):
        return {k: rounded(v) for k, v in x.items()}
    if isinstance(x, list):
        return [rounded(v) for v in x]
    return x


@pytest.mark.parametrize("name", sorted(CASES))
def test_golden(name):
    got = rounded(json.loads(json.dumps(seedchip.estimate(**CASES[name]).to_dict())))
    path = GOLDEN / f"{name}.json"
    if regen_golden() or not path.exists():
        if not regen_golden():
            pytest.fail(f"missing golden file {path.name}; run with SEEDCHIP_REGEN_GOLDEN=1 to create it")
        path.write_text(json.dumps(got, indent=1, sort_keys=True) + "\n")
    want = json.loads(path.read_text())
    assert got == want
