"""Serving engines as they behave: profiles resolved per chip, admission rules (on-demand
with preemption, full reservation, SGLang's estimate), separate prefill and decode steps,
benchmark clients (closed loop, ranged lengths), trtllm-bench's batch limits, the
max-throughput search, steady-state figures, intervals, and the validation replay."""

from __future__ import annotations

import numpy as np
import pytest

import seedchip
from seedchip.errors import SpecError, UnknownNameError
from seedchip.perf.deployment import make_deployment
from seedchip.serve.engine import Engine
from seedchip.serve.profiles import engine_ids, resolve_engine
from seedchip.serve.scheduler import SchedulerConfig
from seedchip.serve.sim import Simulation
from seedchip.serve.tuning import trtllm_bench_limits
from seedchip.serve.workload import WorkloadSpec, requests
from seedchip.validate.e2e import match_chip, match_model

MODEL = "llama-3.1-8b"
pytestmark = pytest.mark.unit


# ------------------------------------------------------------------ profiles

def test_profiles_resolve_their_documented_defaults_per_chip():
    h200, v5e, b200 = (seedchip.load_chip(c) for c in ("h200-sxm", "tpu-v5e", "b200"))
    assert resolve_engine("vllm", h200).max_num_seqs == 1024                      # >= 70 GiB
    assert resolve_engine("vllm", v5e).max_num_seqs == 256
    assert resolve_engine("vllm", h200).max_batched_tokens == 8192                # server
    assert resolve_engine("vllm", h200, offline=True).max_batched_tokens == 16384  # LLM class
    assert resolve_engine("sglang", h200).max_batched_tokens == 8192
    assert resolve_engine("sglang", b200).max_batched_tokens == 16384             # >= 160 GiB
    assert resolve_engine("sglang", h200, tp=8).runtime.graph_max_tokens == 512
    t = resolve_engine("trtllm", h200)
    assert (t.admission, t.memory_basis, t.prefix_caching) == ("reserve", "free", False)
    assert sorted(engine_ids()) == ["sglang", "trtllm", "vllm"]
    for e in engine_ids():
        s = resolve_engine(e, h200).summary()
        assert s["sources"] and s["id"] == e and s["runtime"]["id"] == e


def test_sglang_derives_its_memory_fraction_from_what_it_keeps_out():
    h100, v5e = seedchip.load_chip("h100-sxm"), seedchip.load_chip("tpu-v5e")
    # 80 GiB = 81,920 MiB; reserve 512 + 1.5 x 8,192 + 2 x 256 (graph batch) + 1/8 x 1,024 = 13,440 MiB
    assert resolve_engine("sglang", h100).memory_fraction == 0.836
    # tp 8: graphs of 512 sequences, 8/8 x 1,024: 14,848 MiB -> 0.819
    assert resolve_engine("sglang", h100, tp=8).memory_fraction == 0.819
    # 16 GiB: chunks of 2,048, graphs of 8: 512 + 3,072 + 16 + 128 = 3,728 of 16,384 MiB (no 10 GiB floor)
    p = resolve_engine("sglang", v5e)
    assert (p.max_batched_tokens, p.runtime.graph_max_tokens, p.memory_fraction) == (2048, 8, 0.772)
    # a larger chunk keeps more out: 512 + 1.5 x 16,384 + 512 + 128 = 25,728 MiB -> 0.686
    kw = dict(chip="h100-sxm", model=MODEL, engine="sglang", input_len=128, output_len=8, num_requests=4, qps=1.0)
    assert seedchip.simulate(max_batched_tokens=16384, **kw).to_dict()["inputs"]["kv_memory_fraction"] == 0.686
    # a small chunk: 512 + 3,072 + 512 + 128 = 4,224 MiB, but at least 10 GiB above 60 GiB -> 0.875
    assert seedchip.simulate(max_batched_tokens=2048, **kw).to_dict()["inputs"]["kv_memory_fraction"] == 0.875
    assert seedchip.simulate(kv_memory_fraction=0.7, **kw).to_dict()["inputs"]["kv_memory_fraction"] == 0.7
    # a chunk whose reserve exceeds the chip is refused, not clamped: 512 + 1.5 x 16,384 + ... > 16,384 MiB
    with pytest.raises(SpecError, match="--max-batched-tokens"):
        seedchip.simulate(**dict(kw, chip="tpu-v5e"), max_batched_tokens=16384)


def test_sglang_sizes_its_request_pool_from_the_kv_cache():
    kw = dict(engine="sglang", input_len=128, output_len=8, num_requests=4, qps=1.0)

    def run(**more) -> tuple[int, int]:
        d = seedchip.simulate(**kw, **more).to_dict()
        return d["inputs"]["max_num_seqs"], d["engines"][0]["kv_tokens"]

    # 8B on one H100: ~418,000 KV tokens / 131,072 of context x 512 = ~1,630 -> at least 2,048
    seqs, kv = run(chip="h100-sxm", model=MODEL)
    assert seqs == 2048 and kv / 131072 * 512 < 2048
    # Mixtral (32,768 of context) on 2 H200s: ~1.37M tokens -> ~21,000 -> at most 4,096
    seqs, kv = run(chip="h200-sxm", model="mixtral-8x7b", num_chips=2)
    assert seqs == 4096 and kv / 32768 * 512 > 4096
    # a pool of ~3,000 tokens: at most one request per 2 tokens
    seqs, kv = run(chip="h100-sxm", model=MODEL, kv_memory_fraction=0.194)
    assert seqs == kv // 2 < 2048
    assert run(chip="h100-sxm", model=MODEL, max_num_seqs=300)[0] == 300


def test_sglang_static_memory_holds_weights_and_kv_and_leaves_activations_out():
    from seedchip.perf.memory import RUNTIME_RESERVE_BYTES, memory_plan
    from seedchip.serve.profiles import engine_deployment
    h100, m = seedchip.load_chip("h100-sxm"), seedchip.load_model(MODEL)
    p = resolve_engine("sglang", h100)
    plans = [memory_plan(m, engine_deployment(p, h100, max_batched_tokens=t, memory_fraction=0.836)) for t in
             (2048, 8192)]
    for plan in plans:   # KV = fraction x (HBM - the runtime's reserve) - weights, whatever the activations
        kv = 0.836 * (h100.hbm_capacity_bytes - RUNTIME_RESERVE_BYTES) - plan.weights_bytes
        assert plan.max_kv_tokens == int(kv // plan.kv_bytes_per_token)
    assert plans[0].activation_bytes < plans[1].activation_bytes


def test_trtllm_runs_sliding_window_layers_as_full_attention_by_default():
    """TensorRT-LLM keeps and reads the whole context unless max_attention_window_size is
    set; vLLM and SGLang honour the model's window. A Mistral decode at 16k of context
    therefore reads more KV and runs slower on trtllm, while Llama (no window) is untouched."""
    from seedchip.serve.profiles import engine_model
    h100 = seedchip.load_chip("h100-sxm")
    mistral, llama = seedchip.load_model("mistral-7b"), seedchip.load_model(MODEL)
    assert any(w for w in mistral.layer_windows)
    full = engine_model(resolve_engine("trtllm", h100), mistral)
    assert all(w is None for w in full.layer_windows)
    assert engine_model(resolve_engine("vllm", h100), mistral) is mistral
    assert engine_model(resolve_engine("trtllm", h100), llama) is llama
    kw = dict(chip="h100-sxm", model="mistral-7b", weight_format="fp8", kv_format="fp8", batch=16,
              input_len=16000, output_len=64, interval=False)
    trt, vllm = seedchip.estimate(engine="trtllm", **kw), seedchip.estimate(engine="vllm", **kw)
    # per step: 7 GB of fp8 weights + 16 x 16k x 64 KiB = 17 GB of KV on trtllm vs 4.3 GB windowed
    assert trt.tpot_s > 1.3 * vllm.tpot_s
    assert resolve_engine("trtllm", h100).summary()["sliding_window"] == "ignored"


def test_unknown_engine_is_a_typed_error():
    with pytest.raises(UnknownNameError, match="did you mean 'trtllm'"):
        resolve_engine("trtlm", seedchip.load_chip("h200-sxm"))


def test_trtllm_bench_limits_by_hand():
    # llama-3.1-8b fp8 on one 80 GB H100, 128/128, 0.95 of the memory the weights leave:
    # (80e9 - 8.03e9 params x 1 B) x 0.95 / (2 x 32 layers x 8 KV heads x 128 x 1 B x 256 tokens)
    # = ~4,080 requests -> batch 4096 (rounded up to 256), tokens 4,080 x 2 = 8,160 -> 8192 (to 512)
    m = seedchip.load_model(MODEL)
    seqs, tokens = trtllm_bench_limits(m, 80e9, 1, 1, "fp8", "fp8", 128, 128, 0.95)
    assert (seqs, tokens) == (4096, 8192)
    # a long prompt: few requests fit, the batch floor is 64 and the token floor 2,048
    assert trtllm_bench_limits(m, 80e9, 1, 1, "fp8", "fp8", 20000, 2000, 0.95) == (64, 2048)


def test_trtllm_bench_batch_size_tuner_table():
    h100 = seedchip.load_chip("h100-sxm")
    t = resolve_engine("trtllm", h100, offline=True).batch_size_tuning
    # KV capacity in requests -> runtime batch: the table, then multiples of 512 within 128 above them
    caps = (100, 143, 144, 335, 336, 671, 672, 831, 1279, 1663, 1664, 2047, 2048, 2175, 2176)
    assert [t.batch(c) for c in caps] == [128, 128, 256, 256, 512, 512, 768, 768, 1024, 1536, 1664, 2047,
                                          2048, 2048, 2176]
    assert resolve_engine("trtllm", h100).batch_size_tuning is None      # trtllm-serve: no tuner
    assert resolve_engine("vllm", h100, offline=True).batch_size_tuning is None


def test_trtllm_bench_offline_runs_take_the_build_limits_and_the_tuner_cap():
    # llama-3.1-8b fp8 on one H100, 128/4096: the build sizes for 384 requests (0.95 of the free
    # memory); the KV cache holds ~258 requests of 4,224 tokens, which the tuner maps to 256
    kw = dict(chip="h100-sxm", model=MODEL, weight_format="fp8", kv_format="fp8", engine="trtllm",
              input_len=128, output_len=4096, num_requests=8)
    d = seedchip.simulate(offline=True, kv_memory_fraction=0.95, **kw).to_dict()["inputs"]
    tuned = d["batch_size_tuning"]
    assert tuned["engine_max_num_seqs"] == 384 and 144 <= tuned["kv_capacity_requests"] < 336
    assert d["max_num_seqs"] == tuned["runtime_max_num_seqs"] == 256
    # --max-throughput starts from what the engine was built with, not the tuner's cap
    best = seedchip.simulate(offline=True, kv_memory_fraction=0.95, max_throughput=True, **kw).to_dict()["tuned"]
    assert best["engine_choice"]["max_num_seqs"] == 384
    # the build's limits do not follow the fraction the benchmark runs with; the tuner does
    half = seedchip.simulate(offline=True, kv_memory_fraction=0.5, **kw).to_dict()["inputs"]
    assert half["batch_size_tuning"]["engine_max_num_seqs"] == 384
    assert half["max_batched_tokens"] == d["max_batched_tokens"]
    assert half["batch_size_tuning"]["kv_capacity_requests"] < 144 and half["max_num_seqs"] == 128
    # an explicit limit below the tuner's stands; an online server has no tuner
    assert seedchip.simulate(offline=True, max_num_seqs=200, **kw).to_dict()["inputs"]["max_num_seqs"] == 200
    online = seedchip.simulate(qps=1.0, **kw).to_dict()["inputs"]
    assert online["max_num_seqs"] == 2048 and "batch_size_tuning" not in online


# ------------------------------------------------------------------ admission

def engine(name: str, kv_tokens: int | None = None, **over) -> Engine:
    model = seedchip.load_model(MODEL)
    chip = seedchip.load_chip("h200-sxm")
    p = resolve_engine(name, chip)
    cfg = SchedulerConfig(admission=p.admission, max_num_seqs=over.get("max_num_seqs", p.max_num_seqs),
                          block_size=p.block_size, mixed_batches=p.mixed_batches,
                          new_token_ratio=p.new_token_ratio).validate()
    dep = make_deployment(chip, max_batched_tokens=over.get("max_batched_tokens", p.max_batched_tokens),
                          runtime=p.runtime)
    e = Engine(0, model, dep, cfg)
    if kv_tokens is not None:
        e.kv.total = kv_tokens // e.kv.block_size
    return e


def run(e: Engine, spec: WorkloadSpec) -> dict:
    return Simulation(e.model, [e], spec).run().to_dict()


def test_reservation_never_preempts_where_on_demand_thrashes():
    spec = WorkloadSpec(input_len=3000, output_len=2000, num_requests=12, offline=True)
    vllm = run(engine("vllm", kv_tokens=20000), spec)
    trt = run(engine("trtllm", kv_tokens=20000), spec)
    assert vllm["num_preemptions"] > 0 and trt["num_preemptions"] == 0
    assert trt["num_completed"] == vllm["num_completed"] == 12


def test_reservation_admits_only_what_fits_whole():
    e = engine("trtllm", kv_tokens=3 * 63 * 64)          # room for three requests of 63 blocks of 64 tokens
    sim = Simulation(e.model, [e], WorkloadSpec(input_len=3000, output_len=1000, num_requests=6, offline=True))
    most = 0
    finish = e.finish

    def watch(now):
        nonlocal most
        most = max(most, len(e.running))
        finish(now)
    e.finish = watch
    res = sim.run().to_dict()
    assert most == 3 and res["num_completed"] == 6


def test_sglang_never_mixes_prefill_and_decode_in_a_step():
    e = engine("sglang")
    kinds = set()
    start = e.start

    def watch(now, horizon):
        end = start(now, horizon)
        if e.current is not None:
            kinds.add(tuple(sorted({n == 1 for _, n in e.batch()})))
        return end
    e.start = watch
    res = run(e, WorkloadSpec(input_len=500, output_len=50, num_requests=40, qps=20.0))
    assert res["num_completed"] == 40
    assert kinds <= {(False,), (True,)} and len(kinds) == 2


def test_vllm_mixes_prefill_and_decode():
    e = engine("vllm")
    mixed = []
    start = e.start

    def watch(now, horizon):
        end = start(now, horizon)
        if e.current is not None:
            mixed.append(len({n == 1 for _, n in e.batch()}) == 2)
        return end
    e.start = watch
    run(e, WorkloadSpec(input_len=500, output_len=50, num_requests=40, qps=20.0))
    assert any(mixed)


# ------------------------------------------------------------------ clients and lengths

def test_closed_loop_keeps_at_most_n_in_flight():
    one = seedchip.simulate(model=MODEL, input_len=300, output_len=40, num_requests=10, max_concurrency=1,
                            interval=False).to_dict()
    assert one["engines"][0]["macro_steps"] > 0
    assert one["queue_s"]["max"] == pytest.approx(0.0, abs=1e-12)        # nobody ever waits for the engine
    assert one["steady"]["mode"] == "closed" and one["steady"]["keeps_up"] is None
    four = seedchip.simulate(model=MODEL, input_len=300, output_len=40, num_requests=40, max_concurrency=4,
                             interval=False).to_dict()
    assert max(four["series"]["running_max"]) == 4
    assert four["throughput_tokens_per_s"] > 2.5 * one["throughput_tokens_per_s"]


def test_range_ratio_draws_lengths_in_the_range():
    spec = WorkloadSpec(input_len=1000, output_len=200, range_ratio=0.5, num_requests=4000, qps=1.0, seed=3)
    rs = list(requests(spec))
    ins = [r.input_len for r in rs]
    outs = [r.output_len for r in rs]
    assert min(ins) >= 500 and max(ins) <= 1000 and min(outs) >= 100 and max(outs) <= 200
    assert sum(ins) / len(ins) == pytest.approx(750, rel=0.02)
    with pytest.raises(SpecError, match="range-ratio"):
        WorkloadSpec(workload="chat", range_ratio=0.5, qps=1.0).validate()


def test_the_first_requests_do_not_depend_on_the_run_length():
    a = [(r.arrival_s, r.input_len, r.output_len) for r in requests(WorkloadSpec(workload="chat", qps=3.0,
                                                                                 num_requests=100))]
    b = [(r.arrival_s, r.input_len, r.output_len) for r in requests(WorkloadSpec(workload="chat", qps=3.0,
                                                                                 num_requests=5000))][:100]
    assert a == b


# ------------------------------------------------------------------ offline throughput

def test_max_throughput_searches_limits_and_reports_them():
    kw = dict(chip="h100-sxm", model=MODEL, weight_format="fp8", kv_format="fp8", engine="trtllm", input_len=1000,
              output_len=200, num_requests=300, offline=True, interval=False)
    base = seedchip.simulate(**kw).to_dict()
    best = seedchip.simulate(**kw, max_throughput=True).to_dict()
    t = best["tuned"]
    assert t["engine_choice"]["max_num_seqs"] == base["inputs"]["max_num_seqs"]
    assert best["throughput_tokens_per_s"] >= base["throughput_tokens_per_s"]
    assert best["throughput_tokens_per_s"] == max(c["throughput_tokens_per_s"] for c in t["candidates"])
    assert (best["inputs"]["max_num_seqs"], best["inputs"]["max_batched_tokens"]) == (t["max_num_seqs"],
                                                                                    t["max_batched_tokens"])


# ------------------------------------------------------------------ steady state

def test_backlog_growth_tells_overload_from_steady_load():
    kw = dict(model=MODEL, workload="chat", num_requests=1500, interval=False)
    sat = seedchip.simulate(offline=True, **kw).to_dict()["steady"]["completed_per_s"]
    light = seedchip.simulate(qps=0.3 * sat, **kw).to_dict()["steady"]
    over = seedchip.simulate(qps=2.0 * sat, **kw).to_dict()["steady"]
    assert light["keeps_up"] and abs(light["backlog_growth"]) < 0.01
    assert not over["keeps_up"] and over["backlog_growth"] > 0.2
    assert over["completed_per_s"] < over["offered_per_s"]


def test_long_requests_keep_up_within_the_backlog_noise():
    """A queue of long requests (a server that keeps up, each request ~300 s) has a large,
    slowly changing backlog: its slope over a short window is noise, and a judge that
    ignored it would call the server overloaded; a real excess of 5% is still caught."""
    from seedchip.serve.metrics import MAX_GROWTH, steady
    n, naive, judged = 4000, 0, 0
    for seed in range(20):
        rng = np.random.default_rng(seed)
        arrival = np.cumsum(rng.exponential(1.0, n))                  # 1 request/s
        sojourn = rng.gamma(2.0, 150.0, n)                            # 300 s mean, wide spread
        a = {"arrival": arrival, "finish": arrival + sojourn, "first_token": arrival + 0.5,
             "output_len": np.full(n, 4000)}
        ok = steady(a, "open")
        naive += ok["backlog_growth"] > MAX_GROWTH                    # the slope alone: a false alarm
        judged += not ok["keeps_up"]
    assert naive >= 2 and judged <= 1
    # overload: completions run 5% slower than arrivals, so the backlog grows by ~5% of the rate
    slow = arrival[0] + np.arange(n) / 0.95 + 300.0
    a_over = dict(a, finish=np.maximum(slow, arrival + 1.0))
    over = steady(a_over, "open")
    assert not over["keeps_up"] and over["backlog_growth"] > 0.03


def test_a_prompt_ending_in_a_one_token_chunk_gets_its_first_token():
    """A 16-token budget leaves prompts whose last chunk is one token: that step must not be
    taken for a decode step (the request's first token, and so its TTFT, would be lost)."""
    from seedchip.perf.calibration import load_calibration
    from seedchip.perf.uncertainty import draws
    for p in draws(load_calibration(None), 0.15)[:3]:      # timings under which such steps occur
        d = seedchip.simulate(model=MODEL, workload="chat", qps=1, num_requests=50, max_batched_tokens=16,
                              interval=False, perturbation=p).to_dict()
        assert d["num_completed"] == 50 and d["ttft_s"]["mean"] > 0 and d["ttft_s"]["p50"] > 0


# ------------------------------------------------------------------ runtime costs and intervals

@pytest.mark.parametrize("eng", ["vllm", "trtllm", "sglang"])
def test_fp8_weights_decode_faster_than_bf16(eng):
    kw = dict(chip="h200-sxm", model="llama-3.1-70b", num_chips=8, tp=8, kv_format="fp8", batch=64, engine=eng,
              interval=False)
    fp8 = seedchip.estimate(weight_format="fp8", **kw).to_dict()
    bf16 = seedchip.estimate(weight_format="bf16", **kw).to_dict()
    assert fp8["tpot_s"] < bf16["tpot_s"]


def test_intervals_hold_the_nominal_and_are_deterministic():
    kw = dict(chip="h200-sxm", model=MODEL, batch=16, input_len=512, output_len=64)
    a = seedchip.estimate(**kw).to_dict()
    b = seedchip.estimate(**kw).to_dict()
    assert a["interval80"] == b["interval80"]
    for key, nominal in (("throughput_tokens_per_s", a["throughput_tokens_per_s"]), ("ttft_mean_s", a["ttft_s"]),
                         ("tpot_mean_s", a["tpot_s"])):
        lo, hi = a["interval80"][key]
        assert lo < nominal < hi and hi / lo < 4
    ideal = seedchip.estimate(**kw, calibration="ideal", engine="trtllm").to_dict()["interval80"]
    lo, hi = ideal["tpot_mean_s"]
    assert hi / lo < a["interval80"]["tpot_mean_s"][1] / a["interval80"]["tpot_mean_s"][0]   # no kernel residuals


# ------------------------------------------------------------------ validation replay

@pytest.mark.parametrize("name,zoo", [("LLaMA v3.1 8B", "llama-3.1-8b"), ("LLAMA 3.1 (70B)", "llama-3.1-70b"),
                                      ("LLAMA 3 (405B)", "llama-3.1-405b"), ("Mixtral 8x7B", "mixtral-8x7b"),
                                      ("Mixtral 8x22B", "mixtral-8x22b"), ("Mistral 7B", "mistral-7b"),
                                      ("Qwen3-30B-A3B", "qwen3-30b-a3b"), ("DeepSeek-V3", "deepseek-v3")])
def test_published_model_names_match_the_zoo(name, zoo):
    assert match_model(name) == zoo


def test_published_chip_names_match_the_catalog():
    assert match_chip("H100 SXM 80GB") == "h100-sxm"
    assert match_chip("Azure ND H100 v5 (8x H100 80GB HBM3 SXM)") == "h100-sxm"
    assert match_chip("H200 SXM 141GB") == "h200-sxm"
    with pytest.raises(SpecError, match="matches no catalog chip"):
        match_chip("GB300 NVL72")


def test_validate_e2e_names_bad_rows(tmp_path):
    p = tmp_path / "t.csv"
    p.write_text("model,chip,tp,isl,osl,weight_format,kv_format,out_tok_s\nLlama 3.1 8B,H100,1,128,128,fp8,fp8,-3\n")
    with pytest.raises(SpecError, match=r"t.csv:2: out_tok_s = '-3' must be a positive number"):
        seedchip.validate_e2e(str(p))
    p.write_text("model,chip,tp,isl,osl\nLlama 3.1 8B,H100,1,128,128\n")
    with pytest.raises(SpecError, match="no measured figure"):
        seedchip.validate_e2e(str(p))


def test_validate_e2e_interval_reports_each_band_and_the_coverage(tmp_path):
    """With intervals each row carries its 80% band around the prediction, and the coverage
    is the share of measurements inside: one row measured at the prediction (inside),
    one at a third of it (outside any credible band)."""
    table = tmp_path / "e2e.csv"
    head = "model,chip,tp,isl,osl,weight_format,kv_format,num_requests,out_tok_s\n"
    row = "Llama 3.1 8B,H100 SXM 80GB,1,1000,200,fp8,fp8,100,{}\n"
    table.write_text(head + row.format(9000))
    pred = seedchip.validate_e2e(str(table)).to_dict()["rows"][0]["predicted"]
    table.write_text(head + row.format(pred) + row.format(pred / 3))
    r = seedchip.validate_e2e(str(table), interval=True).to_dict()
    lo, hi = r["rows"][0]["interval80"]
    assert lo < pred < hi and hi / lo < 2
    assert [x["inside_interval80"] for x in r["rows"]] == [True, False]
    assert r["interval80_coverage"] == 0.5 and r["interval80_rows"] == 2
