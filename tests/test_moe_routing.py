"""MoE layers as runtimes run them: the routing kernels (sort, permute, finalize), the
un-fused gated activation of the grouped GEMM, and the busiest chip's load under
expert parallelism (expected maximum of a multinomial), with hand-derived numbers."""

import math

import numpy as np
import pytest

import seedchip
from seedchip.errors import SpecError
from seedchip.perf import graph
from seedchip.perf.deployment import make_deployment
from seedchip.perf.routing import EXACT_MAX_TRIALS, _exact, expected_distinct, expected_max_load, expected_max_normal
from seedchip.perf.runtime import Runtime
from seedchip.perf.step import step_cost

pytestmark = pytest.mark.unit


def test_expected_max_load_small_cases_by_hand():
    # 2 rows over 2 bins: (2,0), (0,2) w.p. 1/4 each, (1,1) w.p. 1/2 -> 2/2 + 1/2 = 1.5
    assert expected_max_load(2, 2) == pytest.approx(1.5, abs=1e-12)
    # 3 over 2: max 3 w.p. 2/8, max 2 w.p. 6/8 -> 2.25
    assert expected_max_load(3, 2) == pytest.approx(2.25, abs=1e-12)
    # 4 over 2: max 4 w.p. 2/16, 3 w.p. 8/16, 2 w.p. 6/16 -> 44/16
    assert expected_max_load(4, 2) == pytest.approx(44 / 16, abs=1e-12)
    # 8 over 2: sum over k of C(8,k)/256 * max(k, 8-k) = 1304/256
    assert expected_max_load(8, 2) == pytest.approx(1304 / 256, abs=1e-12)
    # 2 over 3 bins: both in one bin w.p. 1/3 -> 2/3 * 1 + 1/3 * 2 = 4/3
    assert expected_max_load(2, 3) == pytest.approx(4 / 3, abs=1e-12)


def test_expected_max_load_edges():
    assert expected_max_load(0, 8) == 0.0
    assert expected_max_load(37, 1) == 37.0            # one bin holds everything
    assert expected_max_load(1, 8) == pytest.approx(1.0)
    for n, bins in ((16, 4), (100, 8), (5000, 16)):
        assert n / bins < expected_max_load(n, bins) <= n
    assert expected_max_load(1000, 16) < expected_max_load(1000, 8)     # more bins: fewer rows on the busiest


def test_expected_max_normal_two_is_one_over_root_pi():
    # E[max(Z1, Z2)] = 1/sqrt(pi) for independent standard normals
    assert expected_max_normal(2) == pytest.approx(1 / math.sqrt(math.pi), rel=1e-6)
    assert expected_max_normal(1) == 0.0


def test_exact_and_normal_agree_at_the_switch():
    n = EXACT_MAX_TRIALS
    exact, approx = expected_max_load(n, 8), expected_max_load(n + 1, 8)
    assert approx == pytest.approx(exact, rel=0.015)


def _direct_expected_max(n: int, bins: int) -> float:
    """The same Poissonization with the truncated series raised to the power by exact
    polynomial products (no FFT): the reference the FFT batches are checked against."""
    lam = n / bins
    pois = np.array([math.exp(j * math.log(lam) - lam - math.lgamma(j + 1)) for j in range(n + 1)])
    p_sum = math.exp(n * math.log(n) - n - math.lgamma(n + 1))
    start = -(-n // bins)
    out = float(start - 1)
    for m in range(start, n + 1):
        poly = np.array([1.0])
        for _ in range(bins):
            poly = np.convolve(poly, pois[:m])[: n + 1]
        p = (poly[n] if len(poly) > n else 0.0) / p_sum
        out += 1.0 - min(1.0, p)
        if p > 1.0 - 1e-12:
            break
    return out


@pytest.mark.parametrize("bins", [2, 3, 8, 16, 64])
def test_exact_expected_max_equals_the_direct_polynomial_product(bins):
    for n in (1, 2, 5, 17, 64, 129, 300, 1000):
        assert _exact(n, bins) == pytest.approx(_direct_expected_max(n, bins), rel=1e-12, abs=1e-12), n


def test_expected_max_load_refuses_bad_input():
    with pytest.raises(SpecError):
        expected_max_load(-1, 2)
    with pytest.raises(SpecError):
        expected_max_load(4, 0)


def test_expected_distinct_one_token_touches_k():
    assert expected_distinct(1, 2, 8, 8) == pytest.approx(2.0)


def _ops(dep, model, t):
    return {o.name: o for o in graph.routed_expert_ops(model, dep, t, t)}


def test_copy_runtime_permutes_and_finalizes_by_the_bytes():
    mix = seedchip.load_model("mixtral-8x7b")
    h, k, t = mix.hidden_size, mix.num_experts_per_tok, 1000
    copy = Runtime(id="copy", moe_permute="copy")
    dep = make_deployment("h100-sxm", num_chips=2, tp=2, weight_format="fp8", kv_format="fp8", runtime=copy)
    ops_ = _ops(dep, mix, t)
    # expand: read each token once (fp8), write it once per chosen expert (fp8)
    assert ops_["moe_permute"].hbm_bytes == pytest.approx((t + t * k) * h * 1.0)
    # finalize: read the k bf16 outputs per token, write one bf16 row per token
    assert ops_["moe_finalize"].hbm_bytes == pytest.approx((t * k + t) * h * 2.0)
    # sort: 32-bit keys and values read and written, one 8-bit-digit pass for 8 experts
    assert ops_["moe_sort"].hbm_bytes == pytest.approx(t * k * 16.0)
    assert "experts_act" in ops_          # the grouped GEMM does not fuse the gated activation
    gather = make_deployment("h100-sxm", num_chips=2, tp=2, weight_format="fp8", kv_format="fp8",
                             runtime=Runtime(id="gather", moe_permute="gather", moe_fuse_gated_act=True))
    ops_ = _ops(gather, mix, t)
    assert "moe_permute" not in ops_ and "experts_act" not in ops_
    assert {"moe_sort", "moe_finalize"} <= set(ops_)


def test_expert_parallel_step_waits_for_the_busiest_chip():
    mix = seedchip.load_model("mixtral-8x7b")
    h, k, t = mix.hidden_size, mix.num_experts_per_tok, 4
    dep = make_deployment("h100-sxm", num_chips=2, ep=2, weight_format="fp8", kv_format="fp8")
    ops_ = _ops(dep, mix, t)
    # 8 (token, expert) rows over 2 chips: the busiest holds 1304/256 of them on average
    busiest = 1304 / 256
    assert ops_["moe_finalize"].hbm_bytes == pytest.approx((busiest + t) * h * 2.0)
    assert busiest > t * k / 2


def test_routing_kernels_make_moe_steps_slower_not_dense_ones():
    mix = seedchip.load_model("mixtral-8x7b")
    llama = seedchip.load_model("llama-3.1-8b")
    step = [(1, 1000)] * 256
    for runtime in (Runtime(id="a", moe_permute="copy"), Runtime(id="b", moe_permute="gather")):
        dep = make_deployment("h100-sxm", num_chips=2, tp=2, weight_format="fp8", kv_format="fp8", runtime=runtime)
        names = set(step_cost(mix, dep, step).by_op())
        assert {"moe_sort", "moe_finalize"} <= names
        assert not {"moe_sort", "moe_finalize", "moe_permute"} & set(step_cost(llama, dep, step).by_op())
    slow = make_deployment("h100-sxm", num_chips=2, tp=2, weight_format="fp8", kv_format="fp8",
                           runtime=Runtime(id="c", moe_permute="copy"))
    fast = make_deployment("h100-sxm", num_chips=2, tp=2, weight_format="fp8", kv_format="fp8",
                           runtime=Runtime(id="d", moe_permute="gather", moe_fuse_gated_act=True))
    assert step_cost(mix, slow, step).time_s > step_cost(mix, fast, step).time_s
