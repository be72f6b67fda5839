"""The engine's decoding cohort (``serve/cohort.py``) against the per-request loop it
stands for: the same simulation with and without it gives the same JSON to the last byte,
over the cases where the cohort has to step aside (preemptions, a token budget smaller
than the batch, prefix-cache sharing and eviction, a router that reads every engine's
outstanding tokens) and where it decodes on its own (macro stretches, reserved blocks,
one-token blocks, data-parallel replicas that a step's sequences are dealt to by position),
then on 40 settings drawn at random."""

from __future__ import annotations

import json

import random

import pytest

import seedchip
from seedchip.errors import DoesNotFitError
from seedchip.serve import engine as engine_mod

pytestmark = pytest.mark.unit

TRACE = "../shared/data/traces/mooncake_conversation_trace.jsonl"

CASES = {
    "vllm chat, large batches": dict(model="llama-3.1-8b", workload="chat", qps=40.0, num_requests=1500),
    "on-demand blocks run out: preemptions": dict(model="llama-3.1-8b", workload="chat", qps=30.0, num_requests=600,
                                                  kv_memory_fraction=0.14),
    "budget below the batch": dict(model="llama-3.1-8b", workload="chat", qps=30.0, num_requests=800,
                                   max_batched_tokens=96, max_num_seqs=512),
    "trtllm reserve, offline": dict(model="llama-3.1-8b", engine="trtllm", input_len=900, output_len=300,
                                    range_ratio=0.3, offline=True, num_requests=700),
    "one-token blocks, closed loop": dict(model="llama-3.1-8b", block_size=1, max_concurrency=48, input_len=300,
                                          output_len=120, range_ratio=0.1, num_requests=400),
    "large blocks, short outputs": dict(model="llama-3.1-8b", block_size=64, input_len=200, output_len=3,
                                        range_ratio=0.3, qps=50.0, num_requests=500),
    "prefix cache, two replicas, least work": dict(model="llama-3.1-8b", trace=TRACE, num_requests=600,
                                                   prefix_caching=True, replicas=2, kv_memory_fraction=0.13),
    "prefix cache, prefix-aware router": dict(model="llama-3.1-8b", trace=TRACE, num_requests=500,
                                              prefix_caching=True, replicas=2, router="prefix-aware"),
    "four replicas dealt by position": dict(model="llama-3.1-8b", num_chips=4, tp=1, workload="chat", qps=60.0,
                                            num_requests=800),
    "MoE, expert parallel over four replicas": dict(model="mixtral-8x7b", num_chips=4, ep=4, weight_format="fp8",
                                                    workload="chat", qps=30.0, num_requests=600,
                                                    kv_memory_fraction=0.5),
    "three replicas, preemptions": dict(model="llama-3.1-8b", num_chips=3, tp=1, workload="chat", qps=90.0,
                                        num_requests=800, kv_memory_fraction=0.13),
}


def _run(kw: dict, tmp_path, tag: str) -> str:
    trace = tmp_path / f"{tag}.json"
    d = seedchip.simulate(**kw, interval=False, trace_out=str(trace)).to_dict()
    d.pop("provenance", None)
    return json.dumps(d, sort_keys=True) + trace.read_text()


@pytest.mark.parametrize("name", list(CASES))
def test_the_cohort_equals_the_per_request_loop(name, tmp_path, monkeypatch):
    kw = CASES[name]
    joined = []
    real = engine_mod.Cohort

    def counting(kv, dp):
        c = real(kv, dp)
        joined.append(c)
        return c

    monkeypatch.setattr(engine_mod, "Cohort", counting)
    fast = _run(kw, tmp_path, "fast")
    assert joined and sum(c.seq for c in joined) > 0          # requests did join a cohort
    monkeypatch.setattr(engine_mod, "Cohort", lambda kv, dp: None)
    slow = _run(kw, tmp_path, "slow")
    assert fast == slow


def test_the_cases_reach_what_they_name():
    """The cases above do exercise the paths they are named for."""
    pre = seedchip.simulate(**CASES["on-demand blocks run out: preemptions"], interval=False).to_dict()
    assert pre["num_preemptions"] > 0
    macro = seedchip.simulate(**CASES["trtllm reserve, offline"], interval=False).to_dict()
    assert macro["engines"][0]["macro_steps"] < macro["engines"][0]["steps"]
    hit = seedchip.simulate(**CASES["prefix cache, two replicas, least work"], interval=False).to_dict()
    assert hit["prefix_hit_rate"] > 0 and hit["num_preemptions"] > 0
    dealt = seedchip.simulate(**CASES["three replicas, preemptions"], interval=False).to_dict()
    assert dealt["engines"][0]["dp"] == 3 and dealt["num_preemptions"] > 0


@pytest.mark.property
@pytest.mark.parametrize("draw", range(40))
def test_the_cohort_equals_the_loop_on_drawn_settings(draw, tmp_path, monkeypatch):
    """The same comparison on settings drawn uniformly (a seeded generator per case):
    engines, block sizes, budgets, batch limits, KV sizes, one replica or two dealt by
    position, lengths, length ranges and arrival patterns."""
    rnd = random.Random(draw)
    pick = rnd.choice
    load = pick([("qps", 20.0), ("qps", 200.0), ("offline", True), ("max_concurrency", 24)])
    kw = dict(model="llama-3.1-8b", engine=pick(["vllm", "vllm", "trtllm"]), block_size=pick([1, 4, 16, 64]),
              max_batched_tokens=pick([None, 48, 256, 2048]), max_num_seqs=pick([None, 8, 64]),
              kv_memory_fraction=pick([0.125, 0.13, None]), num_chips=pick([1, 2]), tp=1,
              input_len=rnd.randint(1, 3000), output_len=rnd.randint(1, 600), range_ratio=pick([0.05, 0.5, 1.0]),
              num_requests=250, seed=rnd.randint(0, 3), **{load[0]: load[1]})
    try:
        fast = _run(kw, tmp_path, "fast")
    except DoesNotFitError:
        pytest.skip("the KV share is too small for the drawn engine's memory plan")
    monkeypatch.setattr(engine_mod, "Cohort", lambda kv, dp: None)
    assert fast == _run(kw, tmp_path, "slow"), kw
