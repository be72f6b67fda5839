"""The oracle against public measurements, within stated tolerances.

Nothing here was fitted on: the shipped calibration is fitted on the H100 kernel
tables only (and STREAM bandwidth of the H100); H200 and the nccl-tests rows judge
how it carries to another chip through that chip's spec. The tolerances are what the
model reaches today (see calibration/README.md); tightening one is a claim to test.
The held-out errors on the H100 tables are recomputed here from the tables with the
shipped calibration, so a wrong figure in the YAML fails a test."""

import pytest

import seedchip
from seedchip.perf.calibration import load_calibration
from seedchip.validate.microbench import compare, summary

pytestmark = pytest.mark.validation


@pytest.fixture(scope="module")
def h200_rows(shared_data):
    return compare(shared_data / "calibration" / "microbench.csv", "H200", "h200-sxm")


def test_h200_stream_bandwidth_within_10pct(h200_rows):
    rows = [r for r in h200_rows if r.kind == "stream_bytes_per_s"]
    assert len(rows) == 4
    assert all(abs(r.error_pct) <= 10 for r in rows), [(r.setting, r.error_pct) for r in rows]


def test_h200_large_fp8_gemm_within_10pct(h200_rows):
    # The H100 table's fp8 rows quantize their bf16 input inside the timed call; priced
    # apart (ops.act_quant), the fp8 GEMM kernel alone reaches ~69% of the fp8 peak on
    # large squares, as cuBLASLt does on Azure's H200 (66-69%). Until the fit priced the
    # quantization it absorbed it (57% of peak) and this test allowed -25% .. +5%.
    rows = [r for r in h200_rows if r.kind == "gemm_fp8_flops_per_s" and "M=2048" not in r.setting]
    assert len(rows) >= 4
    assert all(-10 <= r.error_pct <= 10 for r in rows), [(r.setting, r.error_pct) for r in rows]


def test_h200_allreduce_bus_bandwidth(h200_rows):
    # nccl-tests with NVLS on 8 x H200, messages of 1 MB to 8 GB. Known bias: beyond the
    # H100 table's largest message (537 MB) the curve is flat, while NVLS keeps climbing.
    s = summary(h200_rows)["allreduce_busbw_bytes_per_s"]
    assert s["n"] >= 10
    assert s["median_abs_pct"] <= 15, s
    assert s["max_abs_pct"] <= 35, s


def test_h200_big_bf16_gemm_in_the_measured_range():
    # An H200 measures 769-798 TFLOP/s on an 8192^3 bf16 GEMM (issue #2).
    r = seedchip.op("gemm", chip="h200-sxm", m=8192, n=8192, k=8192, format="bf16").to_dict()
    assert 0.95 * 769e12 <= r["achieved_flops_per_s"] <= 1.05 * 798e12


def test_h200_device_copy_bandwidth():
    # A device-to-device copy on an H200 reaches about 4.3 TB/s (read + write).
    r = seedchip.load_chip("h200-sxm")
    from seedchip.perf import ops
    c = ops.vector(r, load_calibration(), 0.0, 2 * 8 * 2**30)
    assert c.hbm_bytes / c.time_s == pytest.approx(4.3e12, rel=0.10)


@pytest.fixture(scope="module")
def recomputed(shared_data):
    """The shipped calibration's train / held-out errors, recomputed from the shared H100
    tables (the same split and predictors as the fit), not read from the YAML."""
    from seedchip.calibrate.fit import evaluate_tables
    return evaluate_tables(shared_data / "calibration" / "h100_sxm", seedchip.load_chip("h100-sxm"),
                           load_calibration("h100-sxm"))


# held-out (hash split) median / p90 absolute % error the shipped calibration must reach
HOLDOUT_LIMITS = {
    "gemm_bf16_holdout": (10, 30), "gemm_fp8_holdout": (7, 20), "gemm_fp8-block_holdout": (20, 45),
    "attention_prefill_holdout": (10, 25), "attention_decode_holdout": (14, 35),
    "collective_allreduce_holdout": (10, None), "collective_allgather_holdout": (10, None),
    "collective_reducescatter_holdout": (10, None),
}


def test_shipped_calibration_holdout_errors(recomputed):
    for key, (median, p90) in HOLDOUT_LIMITS.items():
        got = recomputed[key]
        assert got["median_abs_pct"] <= median, (key, got)
        assert p90 is None or got["p90_abs_pct"] <= p90, (key, got)


def test_stored_holdout_errors_are_what_the_tables_give(recomputed):
    """The YAML's holdout_error is what its own (rounded) figures give on the tables."""
    stored = load_calibration("h100-sxm").holdout_error
    assert set(stored) == set(recomputed)
    for key, got in recomputed.items():
        for stat in ("median_abs_pct", "p90_abs_pct"):
            assert got[stat] == pytest.approx(stored[key][stat], abs=0.3), (key, stat, got, stored[key])


@pytest.mark.slow
def test_shipped_calibration_is_reproducible(shared_data):
    """Re-fitting on the shared tables gives the shipped calibration back."""
    from seedchip.calibrate.fit import fit_tables, stream_efficiency
    chip = seedchip.load_chip("h100-sxm")
    eff, _ = stream_efficiency(shared_data / "calibration" / "microbench.csv", "H100", chip)
    cal = fit_tables(shared_data / "calibration" / "h100_sxm", chip, "h100-sxm", eff, 3e-6)
    shipped = load_calibration("h100-sxm")
    for cls, v in shipped.gemm.compute_efficiency.items():
        assert cal.gemm.compute_efficiency[cls] == pytest.approx(v, rel=2e-3)
    for cls, v in shipped.attention.prefill_compute_efficiency.items():
        assert cal.attention.prefill_compute_efficiency[cls] == pytest.approx(v, rel=2e-3)
    assert cal.attention.core_stream_per_sram_byte == pytest.approx(shipped.attention.core_stream_per_sram_byte,
                                                                    rel=2e-3)
    for kernel, v in shipped.attention.decode_unit_s.items():
        assert cal.attention.decode_unit_s[kernel] == pytest.approx(v, rel=2e-3)
    assert cal.vector.memory_efficiency == pytest.approx(shipped.vector.memory_efficiency, rel=1e-3)
    assert cal.vector.overhead_s == pytest.approx(shipped.vector.overhead_s, rel=2e-3)   # fitted, not hand-set
    assert cal.collective.latency_s["allreduce"] == pytest.approx(shipped.collective.latency_s["allreduce"],
                                                                  rel=2e-3)


@pytest.mark.slow
def test_calibration_transfers_to_left_out_shape_families(shared_data):
    """Refit without a whole family of shapes (a head size, MHA, long prompts, skinny
    GEMMs) and price that family: an extrapolation, the way another chip's shapes are
    (seedchip.calibrate.families; benchmarks/bench_calibration_families.py runs them all)."""
    from seedchip.calibrate.families import attention_families, gemm_families
    folder, chip = shared_data / "calibration" / "h100_sxm", seedchip.load_chip("h100-sxm")
    cal = load_calibration("h100-sxm")
    rows = (attention_families(chip, cal, folder, "decode", only=("head_dim=64", "gqa=1 (MHA)"))
            + attention_families(chip, cal, folder, "prefill", only=("head_dim=256", "isl>=8192"))
            + [r for r in gemm_families(chip, cal, folder, only=("m<=16",)) if r["op"] != "gemm fp8-block"])
    assert len(rows) == 6
    for r in rows:
        assert r["left_out"]["median_abs_pct"] <= 18, r
        assert r["left_out"]["p90_abs_pct"] <= 45, r
