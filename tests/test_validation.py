"""The oracle against public measurements, within stated tolerances.

Nothing here was fitted on: the shipped calibration is fitted on the H100 kernel
tables only (and STREAM bandwidth of the H100); H200 and the nccl-tests rows judge
how it carries to another chip through that chip's spec. The tolerances are what the
model reaches today (see calibration/README.md); tightening one is a claim to test."""

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


def test_h200_large_fp8_gemm_within_25pct(h200_rows):
    # Known bias: the H100 fit (TRT-LLM per-tensor fp8 kernels) reaches 57% of the fp8
    # peak; cuBLASLt on Azure's H200 reaches ~66-69% on large squares: we are 15-20% slow.
    rows = [r for r in h200_rows if r.kind == "gemm_fp8_flops_per_s" and "M=2048" not in r.setting]
    assert len(rows) >= 4
    assert all(-25 <= r.error_pct <= 5 for r in rows), [(r.setting, r.error_pct) for r in rows]


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


def test_shipped_calibration_holdout_errors():
    h = load_calibration("h100-sxm").holdout_error
    for key in ("gemm_bf16_holdout", "gemm_fp8_holdout"):
        assert h[key]["median_abs_pct"] <= 10, (key, h[key])
    for key in ("collective_allreduce_holdout", "collective_allgather_holdout", "collective_reducescatter_holdout"):
        assert h[key]["median_abs_pct"] <= 10, (key, h[key])
    for key in ("attention_prefill_holdout", "attention_decode_holdout"):
        assert h[key]["median_abs_pct"] <= 25, (key, h[key])


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
    assert cal.attention.decode_memory_efficiency == pytest.approx(shipped.attention.decode_memory_efficiency,
                                                                   rel=2e-3)
    assert cal.vector.memory_efficiency == pytest.approx(shipped.vector.memory_efficiency, rel=1e-3)
    assert cal.collective.latency_s["allreduce"] == pytest.approx(shipped.collective.latency_s["allreduce"],
                                                                  rel=2e-3)
