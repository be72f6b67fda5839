"""Hand-derived numbers for the oracle (seedchip.perf)."""


import pytest

import seedchip
from seedchip.serve.profiles import engine_deployment, resolve_engine
from seedchip.errors import DoesNotFitError, ParallelismError, SpecError
from seedchip.formats import get_format
from seedchip.perf import kernels, ops
from seedchip.perf.calibration import IDEAL, load_calibration
from seedchip.perf.deployment import make_deployment
from seedchip.perf.memory import kv_bytes_per_token, memory_plan
from seedchip.perf.step import step_cost

pytestmark = pytest.mark.unit

H200 = seedchip.load_chip("h200-sxm")


def test_gemm_flops_are_2mnk():
    r = seedchip.op("gemm", chip="h200-sxm", m=1, n=8192, k=8192, format="fp8")
    assert r.to_dict()["flops"] == 2 * 1 * 8192 * 8192


def test_ideal_gemm_is_the_roofline():
    # compute bound: 2*8192^3 / 989.4e12
    c = ops.gemm(H200, IDEAL, 8192, 8192, 8192)
    assert c.time_s == pytest.approx(2 * 8192**3 / 989.4e12, rel=1e-9)
    assert c.bound == "compute"
    # memory bound GEMV: weights 8192*8192 fp8 bytes + tiny activations over 4.8 TB/s
    g = ops.gemm(H200, IDEAL, 1, 8192, 8192, "fp8", "fp8", "bf16")
    expected = (8192 * 8192 * 1 + 8192 * 1 + 8192 * 2) / 4.8e12
    assert g.time_s == pytest.approx(expected, rel=1e-9)
    assert g.bound == "memory"


def test_fp4_on_hopper_computes_on_the_fp8_path_with_fp4_bytes():
    c = ops.gemm(H200, IDEAL, 8192, 8192, 8192, "fp4", "fp4", "bf16")
    assert c.time_s == pytest.approx(2 * 8192**3 / 1978.9e12, rel=1e-9)
    assert "on fp8" in c.detail
    assert c.hbm_bytes == pytest.approx(2 * 8192 * 8192 * 9 / 16 + 8192 * 8192 * 2)


def test_h200_big_bf16_gemm_matches_measured_range():
    # What an H200 measures for 8192^3 bf16: 769-798 TFLOP/s (issue #2). Our H100-fitted
    # calibration carried to the H200 spec must land in that range +-5%.
    r = seedchip.op("gemm", chip="h200-sxm", m=8192, n=8192, k=8192, format="bf16").to_dict()
    assert 0.95 * 769e12 <= r["achieved_flops_per_s"] <= 1.05 * 798e12


def test_wave_quantisation_penalises_one_extra_tile():
    cal = load_calibration()
    base = ops.gemm(H200, cal, 128 * 132 // 2, 256, 4096)
    more = ops.gemm(H200, cal, 128 * 132 // 2 + 1, 256, 4096)
    assert more.compute_s > base.compute_s


def test_tiled_and_exact_causal_pairs():
    assert float(kernels.exact_pairs(4, 0, 0)) == 10          # 1+2+3+4
    assert float(kernels.exact_pairs(4, 6, 0)) == 4 * 6 + 10
    assert float(kernels.exact_pairs(10, 0, 3)) == 1 + 2 + 3 * 8   # window 3
    # tiled work covers at least the useful pairs
    for q, c, w in [(1, 0, 0), (100, 50, 0), (5000, 0, 128), (300, 1000, 4096)]:
        assert float(kernels.tiled_pairs(q, c, w)) >= float(kernels.exact_pairs(q, c, w))
    assert float(kernels.tiled_pairs(128, 0, 0)) == 128 * 128


def test_collective_ring_volume():
    c = ops.collective(H200, IDEAL, "allreduce", 1e9, 8)
    assert c.comm_bytes == pytest.approx(2 * 7 / 8 * 1e9)
    assert c.time_s == pytest.approx(2 * 7 / 8 * 1e9 / 450e9 + 2e-6, rel=1e-6)
    assert ops.collective(H200, IDEAL, "allgather", 1e9, 1).time_s == 0.0


def test_collectives_beyond_the_scale_up_domain_use_the_nics():
    cal = load_calibration()
    inside = ops.collective(H200, cal, "allreduce", 1e8, 8)
    outside = ops.collective(H200, cal, "allreduce", 1e8, 16)
    assert outside.time_s > 5 * inside.time_s   # 50 GB/s NIC vs 450 GB/s NVLink


def test_kv_bytes_per_token_gqa_and_mla():
    llama = seedchip.load_model("llama-3.1-70b")
    dep = make_deployment("h200-sxm", num_chips=8, tp=8, kv_format="fp8")
    # 80 layers x (8 KV heads / 8 chips) x (128 + 128) x 1 byte
    assert kv_bytes_per_token(llama, dep) == 80 * 1 * 256 * 1
    ds = seedchip.load_model("deepseek-v3")
    dep = make_deployment("h200-sxm", num_chips=16, ep=16, weight_format="fp8", kv_format="bf16")
    # 61 layers x (512 latent + 64 rope) x 2 bytes, not sharded by attention DP
    assert kv_bytes_per_token(ds, dep) == 61 * 576 * 2


def test_memory_plan_weights():
    llama = seedchip.load_model("llama-3.1-8b")
    dep = make_deployment("h200-sxm", num_chips=1)
    p = memory_plan(llama, dep)
    params = seedchip.models()
    total = next(m for m in params if m["id"] == "llama-3.1-8b")["total_params"]
    assert p.weights_bytes == pytest.approx(total * 2, rel=1e-9)
    assert p.free_bytes == pytest.approx(p.usable_bytes - p.weights_bytes - p.activation_bytes - p.reserve_bytes)


def test_moe_touches_expected_distinct_experts():
    mix = seedchip.load_model("mixtral-8x7b")
    dep = make_deployment("h200-sxm", num_chips=2, tp=2)
    one = step_cost(mix, dep, [(1, 100)]).by_op()
    # one token routes to top-2 of 8 experts: exactly 2 expert GEMMs' weights are read
    up = next(o for o in step_cost(mix, dep, [(1, 100)]).ops if o.name == "experts_up_proj")
    assert "2x[" in up.detail
    many = next(o for o in step_cost(mix, dep, [(1, 100)] * 256).ops if o.name == "experts_up_proj")
    assert "8x[" in many.detail   # 256 tokens touch all 8 experts
    assert one["experts_up_proj"]["count"] == 32


def test_sliding_window_caps_decode_attention():
    oss = seedchip.load_model("gpt-oss-20b")
    dep = make_deployment("h200-sxm", num_chips=1, weight_format="fp8")
    s = step_cost(oss, dep, [(1, 32000)] * 8)
    windowed = [o for o in s.ops if o.name == "attention_decode" and o.count == 12]
    assert len(windowed) == 2
    assert min(o.hbm_bytes for o in windowed) < max(o.hbm_bytes for o in windowed) / 100


def test_mla_decode_uses_the_absorbed_latent():
    ds = seedchip.load_model("deepseek-v3")
    dep = make_deployment("h200-sxm", num_chips=16, ep=16, weight_format="fp8", kv_format="fp8")
    names = {o.name for o in step_cost(ds, dep, [(1, 4096)] * 32).ops}
    assert {"q_absorb", "v_absorb", "attention_decode", "moe_dispatch", "moe_combine"} <= names
    names = {o.name for o in step_cost(ds, dep, [(512, 0)]).ops}
    assert "kv_up_proj" in names and "attention_prefill" in names


def test_step_breakdown_sums_to_time():
    llama = seedchip.load_model("llama-3.1-70b")
    dep = make_deployment("h200-sxm", num_chips=8, tp=8, weight_format="fp8", kv_format="fp8")
    s = step_cost(llama, dep, [(1, 2048)] * 32 + [(512, 0)])
    assert sum(o.time_s * o.count for o in s.ops) == pytest.approx(s.time_s, rel=1e-12)
    assert s.energy_j >= H200.energy.idle_w * 8 * s.time_s
    assert set(s.by_class()) == {"gemm", "attention", "vector", "collective"}


def test_pipeline_parallel_adds_sends_and_splits_memory():
    llama = seedchip.load_model("llama-3.1-70b")
    a = make_deployment("h200-sxm", num_chips=8, tp=4, pp=2)
    b = make_deployment("h200-sxm", num_chips=4, tp=4, pp=1)
    assert memory_plan(llama, a).weights_bytes < 0.6 * memory_plan(llama, b).weights_bytes
    assert any(o.name == "pp_send" for o in step_cost(llama, a, [(1, 100)] * 8).ops)


def test_estimate_contract_keys():
    d = seedchip.estimate(chip="h200-sxm", model="llama-3.1-8b", batch=8, input_len=512, output_len=32).to_dict()
    for key in ("ttft_s", "tpot_s", "e2e_s", "throughput_tokens_per_s"):
        assert d[key] > 0
    for key in ("weights_bytes", "kv_bytes_per_token", "free_bytes"):
        assert d["memory"][key] > 0
    for phase in ("prefill", "decode"):
        for cls, v in d[phase]["by_class"].items():
            assert v["bound"] in ops.BOUNDS
    # the phases the breakdown prices add up to the headline figures: one prefill step,
    # 31 decode steps (the first output token comes with the prefill)
    assert d["prefill"]["steps"] == 1 and d["decode"]["steps"] == 31
    assert d["prefill"]["time_s"] + d["decode"]["time_s"] == pytest.approx(d["e2e_s"], rel=1e-9)
    # a decode step of batch 8 at ~530 keys reads the 16 GB of bf16 weights: at most 4.8 TB/s
    assert d["tpot_s"] > 16.06e9 / 4.8e12


def test_long_outputs_are_integrated_accurately():
    kw = dict(chip="h200-sxm", model="llama-3.1-8b", batch=16, input_len=1000)
    # 300 output tokens: interpolated; compare with the exact sum done step by step
    approx = seedchip.estimate(**kw, output_len=300, interval=False).to_dict()["decode"]["time_s"]
    model = seedchip.load_model("llama-3.1-8b")
    chip = seedchip.load_chip("h200-sxm")
    dep = engine_deployment(resolve_engine("vllm", chip, offline=True), chip)     # estimate's default engine
    exact = sum(step_cost(model, dep, [(1, 1000 + j)] * 16).time_s for j in range(299))
    assert approx == pytest.approx(exact, rel=2e-3)


def test_does_not_fit_says_what_would():
    with pytest.raises(DoesNotFitError) as e:
        seedchip.estimate(chip="h200-sxm", model="llama-3.1-405b")
    msg = str(e.value)
    assert "--num-chips 8" in msg and "fp8" in msg
    assert e.value.needed_bytes > e.value.available_bytes


@pytest.mark.parametrize("kw,err", [
    (dict(num_chips=8, tp=3), ParallelismError),
    (dict(num_chips=6, tp=6), ParallelismError),
    (dict(num_chips=8, tp=8, ep=2), ParallelismError),
    (dict(batch=0), SpecError),
    (dict(input_len=-5), SpecError),
    (dict(num_chips=0), SpecError),
])
def test_bad_plans_are_typed_errors(kw, err):
    args = dict(chip="h200-sxm", model="llama-3.1-70b", weight_format="fp8")
    args.update(kw)
    if "num_chips" not in kw:
        args.update(num_chips=8, tp=8)
    with pytest.raises(err):
        seedchip.estimate(**args)


def test_user_chip_file_and_config_path(tmp_path, shared_data):
    import yaml

    from seedchip.hardware.catalog import CATALOG_DIR
    data = yaml.safe_load((CATALOG_DIR / "h200-sxm.yaml").read_text())
    data["id"] = "my-chip"
    data["hbm"]["bw_per_stack_bytes_per_s"] = "1.6 TB/s"     # twice the H200's
    path = tmp_path / "my_chip.yaml"
    path.write_text(yaml.safe_dump(data))
    cfg = shared_data / "models" / "meta-llama--Meta-Llama-3.1-8B.json"
    mine = seedchip.estimate(chip=str(path), model=str(cfg), batch=32, output_len=64).to_dict()
    base = seedchip.estimate(chip="h200-sxm", model="llama-3.1-8b", batch=32, output_len=64).to_dict()
    assert mine["tpot_s"] < base["tpot_s"]
    assert mine["memory"]["weights_bytes"] == base["memory"]["weights_bytes"]


def test_scalar_twins_equal_the_vectorised_kernels():
    """The oracle's plain-Python hot paths give exactly the vectorised results."""
    import numpy as np

    from seedchip.formats import get_format
    rng = np.random.default_rng(0)
    for chip_id in ("h200-sxm", "seedchip-ref", "tpu-v6e"):
        chip = seedchip.load_chip(chip_id)
        for cal in (load_calibration(), IDEAL):
            for fmt in ("bf16", "fp8", "fp4"):
                f = get_format(fmt)
                m = rng.integers(1, 20000, 300)
                n = rng.integers(1, 60000, 300)
                k = rng.integers(1, 30000, 300)
                g = rng.integers(1, 64, 300)
                vec = ops.gemm_model(chip, cal, m, n, k, f, f, get_format("bf16"), g)
                for i in range(0, 300, 7):
                    one = ops.gemm_model(chip, cal, int(m[i]), int(n[i]), int(k[i]), f, f, get_format("bf16"),
                                         int(g[i]))
                    for key in ("compute_s", "memory_s", "time_s", "hbm_bytes", "flops"):
                        assert one[key] == pytest.approx(float(vec[key][i]), rel=1e-12, abs=0), key
    for _ in range(5000):
        q, c, w = int(rng.integers(1, 20000)), int(rng.integers(0, 50000)), int(rng.choice([0, 128, 4096, 777]))
        assert kernels.tiled_pairs_scalar(q, c, w) == float(kernels.tiled_pairs(q, c, w))


# ---------------------------------------------------------------- activation quantization

def test_act_quant_dynamic_per_tensor_is_three_kernels():
    # zero the scale, amax (reads 2 B/elem), quantize (reads 2, writes 1): 3 overheads + 5 B/elem at HBM x eff
    cal = load_calibration()
    v = cal.vector
    e = 4096 * 8192
    c = ops.act_quant(H200, cal, e, "fp8")
    bw = H200.hbm_bw_bytes_per_s * v.memory_efficiency
    assert c.time_s == pytest.approx(3 * v.overhead_s + 2 * e / bw + 3 * e / bw, rel=1e-12)
    assert c.hbm_bytes == 5 * e and c.op_class == "vector" and "3 kernels" in c.detail
    static = ops.act_quant(H200, cal, e, "fp8", dynamic=False)
    assert static.time_s == pytest.approx(v.overhead_s + 3 * e / bw, rel=1e-12)


def test_act_quant_block_scaled_is_one_pass_and_bf16_is_free():
    cal = load_calibration()
    v = cal.vector
    e = 1_000_000
    # one per-token-group pass: read 2 B, write 1 B + one fp32 scale per 128 values
    c = ops.act_quant(H200, cal, e, "fp8-block")
    assert c.hbm_bytes == pytest.approx(e * (2 + 1 + 4 / 128))
    assert c.time_s == pytest.approx(v.overhead_s + c.hbm_bytes / (H200.hbm_bw_bytes_per_s * v.memory_efficiency))
    assert ops.act_quant(H200, cal, e, "bf16").time_s == 0.0
    assert ops.act_quant(H200, IDEAL, e, "fp8").time_s == pytest.approx(5 * e / 4.8e12)


def test_fp8_gemm_overhead_is_a_kernel_overhead_and_fp8_decode_beats_bf16():
    # the fit prices the activation quantization of the measured fp8 rows apart, so the
    # fp8 GEMM kernel's own fixed time is of the order of bf16's, not ~4x it
    cal = load_calibration()
    assert 0.5 <= cal.gemm_overhead("fp8") / cal.gemm_overhead("bf16") <= 2.0
    assert 1e-6 <= cal.vector.overhead_s <= 6e-6
    for n, k in ((8192, 8192), (1024, 8192), (28672, 8192)):
        assert ops.gemm(H200, cal, 16, n, k, "fp8", "fp8").time_s < ops.gemm(H200, cal, 16, n, k).time_s


# ---------------------------------------------------------------- attention mapping

def test_xqa_split_rule_hand_values():
    # one partition per 128 keys, at most sqrt(8 x that); cut back beyond 8 waves of 132 cores
    assert kernels.xqa_splits(8.0, 65536.0, 132, 128.0, 8.0) == pytest.approx(64.0)        # sqrt(8 x 512)
    assert kernels.xqa_splits(8.0, 512.0, 132, 128.0, 8.0) == pytest.approx(4.0)           # 512 / 128
    assert kernels.xqa_splits(2048.0, 65536.0, 132, 128.0, 8.0) == pytest.approx(1.0)      # enough groups
    assert kernels.xqa_splits(512.0, 65536.0, 132, 128.0, 8.0) == pytest.approx(8 * 132 / 512)
    assert kernels.fill_splits(4.0, 65536.0, 132, 128.0) == pytest.approx(33.0)            # fill 132 cores


def _simple_attention(**changes):
    cal = load_calibration()
    a = cal.attention.model_copy(update={"decode_unit_s": {}, "decode_overhead_s": {},
                                         "decode_unit_s_per_head_dim": 0.0, "decode_compute_efficiency": 1.0,
                                         "decode_overlap_p": 1e9, **changes})
    return cal.model_copy(update={"attention": a, "id": "hand"})


def test_decode_occupancy_is_littles_law():
    # 1 sequence, 8 query heads on 1 KV head of 128 dims, bf16, 65,536 keys: 64 partitions
    # of 1024 keys (512 B each) on 64 of the 132 cores. Each core streams at most
    # 1e5 x 228 KiB = 23.3 GB/s, so 64 cores reach 1.5 TB/s, not the HBM's 4.2 TB/s.
    cal = _simple_attention(core_stream_per_sram_byte=1e5)
    c = ops.decode_attention(H200, cal, 1, 65536.0, 8, 1, 4.0 * 128, 256, 128, "bf16", "bf16")
    core_rate = 1e5 * 228 * 1024
    assert c.memory_s == pytest.approx(1024 * 512 / core_rate, rel=1e-12)
    assert c.time_s == pytest.approx(c.memory_s, rel=1e-12)            # compute (8 heads padded to 64 rows) is smaller
    assert c.hbm_bytes == 65536 * 512 + 2 * 8 * 128 * 2
    # a batch that fills the chip is bound by HBM bandwidth instead (when 132 cores x their
    # rate exceed it: 2e5 x 228 KiB x 132 = 6.2 TB/s > 4.8 TB/s x STREAM efficiency)
    cal = _simple_attention(core_stream_per_sram_byte=2e5)
    full = ops.decode_attention(H200, cal, 256, 256 * 65536.0, 8, 1, 4.0 * 128, 256, 128, "bf16", "bf16")
    assert full.memory_s == pytest.approx(full.hbm_bytes / (H200.hbm_bw_bytes_per_s * cal.vector.memory_efficiency),
                                          rel=1e-12)


def test_decode_fixed_work_is_per_wave_of_units():
    # 264 sequences x 1 KV head, 2 keys each: 264 units, no split, two waves of 132 cores
    cal = _simple_attention(decode_unit_s={"grouped_16bit": 1e-6}, core_stream_per_sram_byte=None)
    c = ops.decode_attention(H200, cal, 264, 264 * 2.0, 8, 1, 4.0 * 128, 256, 128, "bf16", "bf16")
    assert c.time_s == pytest.approx(2e-6 + max(c.memory_s, c.compute_s), rel=1e-12)


def test_prefill_softmax_runs_on_the_exponential_units():
    # a chip twice as fast in matrix FLOP/s but not in exponentials gains little at head dim 64
    cal = load_calibration()
    fast = H200.replace(matrix={**H200.matrix.model_dump(), "clock_hz": 3.66e9, "peak_flops_per_s": {
        k: (2 * v if v else v) for k, v in H200.matrix.peak_flops_per_s.items()}})
    args = (float(kernels.tiled_pairs(8192, 0, 0)), 8192.0, 8192.0, 8192.0, 64, 8, 64, 64, 1024, "bf16", "bf16")
    slow_t, fast_t = (ops.prefill_attention(ch, cal, *args).compute_s for ch in (H200, fast))
    assert fast_t > 0.6 * slow_t
    pairs_heads = args[0] * 64
    assert slow_t >= pairs_heads / H200.exp_rate_per_s      # never faster than its exponentials
    assert H200.exp_rate_per_s == pytest.approx(132 * 16 * 1.83e9, rel=0.01)


def test_prefill_on_an_fp8_kv_cache_runs_in_fp8():
    cal = load_calibration()
    args = (float(kernels.tiled_pairs(4096, 0, 0)), 4096.0, 4096.0, 4096.0, 32, 8, 128, 128, 2048)
    bf16 = ops.prefill_attention(H200, cal, *args, "bf16", "bf16")
    fp8 = ops.prefill_attention(H200, cal, *args, "bf16", "fp8")
    assert fp8.compute_s < bf16.compute_s
    assert ops.prefill_matrix_class(get_format("bf16"), get_format("fp8")) == "fp8"
    assert ops.prefill_matrix_class(get_format("bf16"), get_format("bf16")) == "bf16"


def test_window_tiles_scalar_twin():
    import numpy as np
    rng = np.random.default_rng(1)
    for _ in range(2000):
        q, c, w = int(rng.integers(1, 20000)), int(rng.integers(0, 50000)), int(rng.choice([0, 128, 4096, 777]))
        assert kernels.window_tiles_scalar(q, c, w) == float(kernels.window_tiles(q, c, w))
    assert kernels.window_tiles_scalar(1024, 0, 128) == 6.0     # 8 tiles; the first two attend <= w + 128 keys anyway
