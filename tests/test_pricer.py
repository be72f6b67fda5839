"""The one step aggregator: the simulator's path (the bucketed StepPricer, fed the
sequences an engine schedules) against ``step_cost`` (its exact mode), across
deployments that exercise every branch (dp replicas, pipeline stages, sliding windows,
MoE with expert parallelism, MLA), and the physical laws of the step oracle run through
the simulator's path, with and without an engine runtime."""

from __future__ import annotations

import random
from functools import lru_cache

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import seedchip
from seedchip.perf import graph
from seedchip.perf.pricer import BUCKET, StepPricer, pricer_for
from seedchip.perf.runtime import Runtime

DEPLOYMENTS = {
    "8b-h100": ("llama-3.1-8b", "h100-sxm", {}),
    "70b-h200-dp4-tp2": ("llama-3.1-70b", "h200-sxm", dict(num_chips=8, tp=2, weight_format="fp8")),
    "mixtral-h100-tp2-pp2": ("mixtral-8x7b", "h100-sxm", dict(num_chips=4, tp=2, pp=2)),
    "gptoss-h100-dp2-windows": ("gpt-oss-20b", "h100-sxm", dict(num_chips=2, tp=1)),
    "dsv3-h200-ep8-pp2-mla": ("deepseek-v3", "h200-sxm", dict(num_chips=16, tp=8, pp=2, ep=8, weight_format="fp8",
                                                              kv_format="fp8")),
    "qwen3moe-h100-ep4-dp4": ("qwen3-30b-a3b", "h100-sxm", dict(num_chips=4, tp=1, ep=4)),
}
ENGINE_LIKE = Runtime(id="test-engine", fuse_gated_act=True, fuse_rotary=True, graph_max_tokens=256,
                      launch_s=6e-6, host_step_s=300e-6, host_seq_s=2e-6)


@lru_cache(maxsize=None)
def setup(name: str, runtime: Runtime | None = None):
    m, c, kw = DEPLOYMENTS[name]
    return seedchip.load_model(m), seedchip.make_deployment(c, runtime=runtime, **kw)


def random_step(rnd: random.Random) -> tuple:
    seqs = [(1, rnd.randint(0, 9000), True) for _ in range(rnd.randint(0, 40))]
    seqs += [(rnd.randint(2, 900), rnd.randint(0, 3000), rnd.random() < 0.5) for _ in range(rnd.randint(0, 3))]
    return tuple(seqs) or ((1, 5, True),)


@pytest.mark.unit
@pytest.mark.parametrize("name", DEPLOYMENTS)
def test_simulator_path_prices_what_step_cost_prices(name):
    """Bucketing moves the attention keys by at most 0.5%, so a step moves by less."""
    model, dep = setup(name)
    sim = StepPricer(model, dep, bucketed=True)
    rnd = random.Random(name)
    for _ in range(15):
        seqs = random_step(rnd)
        exact = seedchip.step_cost(model, dep, seqs)
        p = sim.price(seqs)
        assert p.time_s == pytest.approx(exact.time_s, rel=BUCKET)
        assert p.energy_j == pytest.approx(exact.energy_j, rel=BUCKET)
        assert p.kernel_s == pytest.approx(exact.kernel_s, rel=BUCKET)


@pytest.mark.unit
@pytest.mark.parametrize("name", DEPLOYMENTS)
def test_below_the_bucket_threshold_the_two_paths_are_identical(name):
    model, dep = setup(name)
    seqs = ((1, 100, True),) * 3 + ((1, 500, False),)      # 805 keys: below the bucketing threshold
    assert StepPricer(model, dep, bucketed=True).price(seqs).time_s == seedchip.step_cost(model, dep, seqs).time_s


@pytest.mark.unit
def test_advance_prices_the_decode_sequences_later():
    model, dep = setup("gptoss-h100-dp2-windows")
    p = pricer_for(model, dep)
    seqs = ((1, 100, True), (1, 5000, True), (40, 0, True))
    later = tuple((n, c + 7 if n == 1 else c, s) for n, c, s in seqs)
    assert p.price(seqs, advance=7).time_s == p.price(later).time_s


@pytest.mark.unit
def test_window_keys_cap_each_sequence_at_its_window():
    assert graph.window_keys([10, 5000, 200], (0, 128)) == (5210.0, 10.0 + 128 + 128)
    b = graph.ReplicaBatch.from_seqs(((1, 9, True), (1, 4999, True), (30, 0, False)), windows=(0, 128))
    assert (b.num_tokens, b.num_seqs, b.num_logits, b.num_decode) == (32, 3, 2, 2)
    assert b.decode_keys == (5010.0, 10.0 + 128) and b.prefill == ((30, 0),)


@pytest.mark.unit
def test_replicas_are_dealt_by_position_and_the_step_waits_for_the_slowest():
    model, dep = setup("70b-h200-dp4-tp2")
    heavy = ((1, 30000, True),) + ((1, 10, True),) * 3
    rep = graph.aggregate(heavy, (0,), dep.dp)
    assert [r.decode_keys for r in rep] == [(30001.0,), (11.0,), (11.0,), (11.0,)]
    light = ((1, 10, True),) * 4
    assert seedchip.step_cost(model, dep, heavy).time_s > seedchip.step_cost(model, dep, light).time_s


@pytest.mark.unit
def test_runtime_adds_launches_and_host_work():
    model, dep = setup("8b-h100")
    _, eng = setup("8b-h100", ENGINE_LIKE)
    big_prefill = ((4000, 0, True),)
    bare = seedchip.step_cost(model, dep, big_prefill)
    run = seedchip.step_cost(model, eng, big_prefill)
    # eager (a prefill step is never graphed here): the host issues every kernel; host work adds
    n_kernels = sum(o.count for o in run.ops)
    assert run.time_s == pytest.approx(max(run.kernel_s, n_kernels * 6e-6) + 300e-6 + 2e-6)
    assert run.kernel_s < bare.kernel_s          # fused activation and rotary: fewer kernels, fewer bytes
    decode = ((1, 500, True),) * 64
    d = seedchip.step_cost(model, eng, decode)
    assert d.time_s == pytest.approx(d.kernel_s + 300e-6 + 64 * 2e-6)   # graphed: no launch bound


# ------------------------------------------------------------- laws, simulator path

def prop(n: int):
    return settings(max_examples=n, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow])


names = st.sampled_from(sorted(DEPLOYMENTS))
runtimes = st.sampled_from((None, ENGINE_LIKE))
contexts = st.lists(st.integers(0, 32768), min_size=1, max_size=32)
chunks = st.lists(st.tuples(st.integers(2, 4096), st.integers(0, 8192)), min_size=0, max_size=3)


def sim_time(name, runtime, seqs, chip=None) -> float:
    model, dep = setup(name, runtime)
    if chip is not None:
        dep = dep.replace(chip=chip)
    return pricer_for(model, dep, bucketed=True).price(tuple(seqs)).time_s


def faster_hbm(c, s):
    return c.replace(hbm={**c.hbm.model_dump(), "bw_per_stack_bytes_per_s": c.hbm.bw_per_stack_bytes_per_s * s})


@pytest.mark.property
@prop(60)
@given(names, runtimes, contexts, chunks, st.floats(1.0, 8.0))
def test_more_hbm_bandwidth_never_slows_a_simulated_step(name, runtime, ctx, pre, s):
    seqs = [(1, c, True) for c in ctx] + [(n, c, True) for n, c in pre]
    _, dep = setup(name, runtime)
    assert sim_time(name, runtime, seqs, faster_hbm(dep.chip, s)) <= sim_time(name, runtime, seqs) * (1 + 1e-12)


@pytest.mark.property
@prop(60)
@given(names, runtimes, contexts, chunks, st.data())
def test_more_work_never_speeds_a_simulated_step(name, runtime, ctx, pre, data):
    seqs = [(1, c, True) for c in ctx] + [(n, c, True) for n, c in pre]
    grown = list(seqs)
    i = data.draw(st.integers(0, len(seqs) - 1), label="which")
    n, c, s = grown[i]
    grown[i] = (n, c + data.draw(st.integers(1, 20000), label="more context"), s) if n == 1 else (n + 64, c, s)
    grown.append((1, data.draw(st.integers(0, 32768), label="another sequence"), True))
    assert sim_time(name, runtime, grown) >= sim_time(name, runtime, seqs) * (1 - 1e-12)


@pytest.mark.property
@prop(60)
@given(names, runtimes, contexts, chunks)
def test_simulated_step_energy_covers_idle_power(name, runtime, ctx, pre):
    model, dep = setup(name, runtime)
    seqs = tuple([(1, c, True) for c in ctx] + [(n, c, True) for n, c in pre])
    p = pricer_for(model, dep, bucketed=True).price(seqs)
    assert p.time_s > 0 and p.energy_j >= dep.chip.energy.idle_w * dep.num_chips * p.time_s * (1 - 1e-12)


@pytest.mark.unit
@pytest.mark.parametrize("name", DEPLOYMENTS)
def test_uniform_decode_is_the_aggregate_of_its_sequences(name):
    """A static batch's decode step aggregated without its sequences equals the aggregate
    of the sequences, for every replica split (dp), window set and batch size."""
    model, dep = setup(name)
    windows = graph.model_windows(model)
    for batch in (1, 3, 8, 63, 64):
        for ctx in (0, 1, 127, 4095, 70_000):
            seqs = ((1, ctx, True),) * batch
            assert graph.uniform_decode(batch, ctx, windows, dep.dp) == graph.aggregate(seqs, windows, dep.dp)


@pytest.mark.unit
@pytest.mark.parametrize("name", ["8b-h100", "70b-h200-dp4-tp2", "gptoss-h100-dp2-windows", "dsv3-h200-ep8-pp2-mla"])
@pytest.mark.parametrize("samples", [None, 9])
def test_static_figures_equal_the_estimates(name, samples):
    """The explorer's and the intervals' path (figures only) gives the estimate's figures
    exactly, with and without an engine runtime and under a perturbation."""
    from seedchip.perf.estimate import static_estimate, static_figures
    from seedchip.perf.uncertainty import draws
    model, dep = setup(name)
    for d in (dep, setup(name, ENGINE_LIKE)[1], dep.replace(perturbation=draws(dep.calibration, 0.15, 2, 7)[1])):
        for batch, i, o in ((3, 300, 40), (16, 1024, 300)):
            r = static_estimate(model, d, batch, i, o, decode_samples=samples)
            f = static_figures(model, d, batch, i, o, decode_samples=samples)
            assert f == {"ttft_s": r.ttft_s, "tpot_s": r.tpot_s, "e2e_s": r.e2e_s,
                         "throughput_tokens_per_s": r.throughput_tokens_per_s, "energy_j": r.energy_j}


@pytest.mark.unit
@pytest.mark.parametrize("name", DEPLOYMENTS)
def test_a_run_of_decode_steps_priced_at_once_equals_each_step(name):
    """The static batch's decode steps priced at once (the explorer's and the estimate's
    figures path) equal each step priced alone to the last bit: time, energy, work and
    kernel time, for every replica split, window set, pipeline, MLA, engine runtimes
    (launch-bound, host-overlapped), a perturbation, the ideal calibration and a chip
    that throttles to its TDP."""
    from seedchip.perf.calibration import IDEAL
    from seedchip.perf.uncertainty import draws
    model, dep = setup(name)
    m, c, kw = DEPLOYMENTS[name]
    chip = seedchip.load_chip(c)
    hot = chip.replace(tdp_w=(chip.energy.idle_w + chip.energy.active_w) * 1.02)     # little headroom: throttles
    overlapped = ENGINE_LIKE.replace(overlap_host=True, graph_max_tokens=0)
    variants = [dep, setup(name, ENGINE_LIKE)[1], setup(name, overlapped)[1],
                dep.replace(perturbation=draws(dep.calibration, 0.15, 2, 7)[1]),
                seedchip.make_deployment(c, calibration=IDEAL, **kw), seedchip.make_deployment(hot, **kw)]
    contexts = [0, 1, 2, 127, 128, 4095, 4096, 4097, 9000, 70_000]
    throttled = False
    for d in variants:
        pricer = StepPricer(model, d)
        for batch in (1, 3, 64):
            run = pricer.price_uniform_decode(batch, contexts)
            for i, ctx in enumerate(contexts):
                one = pricer.price_batches(graph.uniform_decode(batch, ctx, pricer.windows, d.dp))
                got = (float(run.time_s[i]), float(run.energy_j[i]), float(run.flops[i]), float(run.hbm_bytes[i]),
                       float(run.kernel_s[i]))
                assert got == (one.time_s, one.energy_j, one.flops, one.hbm_bytes, one.kernel_s), (d.chip.id, batch, ctx)
        steps = pricer.price_batches(graph.uniform_decode(64, 70_000, pricer.windows, d.dp), detail=True)
        throttled |= any(o.bound == "power" for o in steps.ops if o.op_class == "attention")
    assert throttled, "the hot chip should throttle decode attention"


@pytest.mark.unit
def test_a_run_of_decode_steps_needs_an_exact_pricer():
    model, dep = setup("8b-h100")
    with pytest.raises(ValueError, match="exact"):
        StepPricer(model, dep, bucketed=True).price_uniform_decode(4, [10, 20])


@pytest.mark.parametrize("name", ["dsv3-h200-ep8-pp2-mla", "qwen3moe-h100-ep4-dp4", "mixtral-h100-tp2-pp2"])
def test_parts_built_from_shared_pieces_hold_the_ops_built_whole(name):
    """An MoE layer's ops around its routed experts and an MLA decode's absorb GEMMs are
    built once and shared (pricer pieces): every part holds the ops, in the order, that
    building it whole gives, whatever part was priced before it."""
    model, dep = setup(name)
    p = StepPricer(model, dep, bucketed=True)
    rnd = random.Random(name)
    for _ in range(40):
        t = rnd.choice([1, 2, 7, 64, 255, 1000])
        t_all = t * rnd.choice([1, 2, 4]) + rnd.randint(0, 3)
        whole = graph.qkv_ops(model, dep, t) + graph.out_proj_ops(model, dep, t) + graph.moe_ops(model, dep, t, t_all)
        assert p._moe_layer_ops(t, t_all) == tuple(whole)
        n = rnd.choice([1, 3, 64])
        keys, longest = float(n * rnd.randint(1, 5000)), float(rnd.randint(5000, 9000))
        assert p._decode_ops(n, keys, longest, 0) == tuple(graph.decode_attention_ops(model, dep, n, keys, longest, 0))


@pytest.mark.unit
@pytest.mark.parametrize("name", DEPLOYMENTS)
def test_a_cached_step_is_the_breakdowns_step_to_the_last_bit(name):
    """The simulator's path (no breakdown, one replica priced on its own path) sums the
    same parts in the same order as the breakdown's, on every kind of deployment."""
    rnd = random.Random(name + "/exact")
    launch_bound = Runtime(id="launch-bound", launch_s=1e-3)       # the step's time counts its kernels
    for runtime, bucketed in ((None, False), (None, True), (ENGINE_LIKE, True), (launch_bound, True)):
        model, dep = setup(name, runtime)
        p = StepPricer(model, dep, bucketed=bucketed)
        for _ in range(12):
            replicas = p.aggregate(random_step(rnd))
            for part in ([replicas[0]], replicas):
                fast, full = p.price_batches(part), p.price_batches(part, detail=True)
                assert (fast.time_s, fast.energy_j, fast.flops, fast.hbm_bytes, fast.kernel_s) == \
                    (full.time_s, full.energy_j, full.flops, full.hbm_bytes, full.kernel_s)
