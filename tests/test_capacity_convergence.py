"""Capacity that does not depend on the run length: the steady window starts after the
fill-up of a run that starts empty (measured in the run, in sojourn times), and a run too
short to show its steady state says so (``settled``) and is lengthened by the search.

The reasoning workload's check (deepseek-r1, 8 x h200-sxm, answers at two run lengths
within 3%) takes far longer than a test may (each 16,000-request run ~2-3 minutes): it is
recorded in benchmarks/README.md ("Capacity convergence")."""

import numpy as np
import pytest

import seedchip
from seedchip.serve.capacity import RatePoint, _agree, _more_streams, _next_length
from seedchip.serve.metrics import MAX_GROWTH, MIN_WINDOW_SOJOURNS, steady


def _stream(n: int, sojourn) -> dict:
    """One arrival a second at t = 0, 1, 2, ...; each request stays ``sojourn(t)`` seconds."""
    arrival = np.arange(n, dtype=float)
    finish = arrival + sojourn(arrival)
    return {"arrival": arrival, "finish": finish, "first_token": arrival + 0.5, "output_len": np.full(n, 1000)}


@pytest.mark.unit
def test_warmup_ends_when_the_backlog_reaches_its_plateau():
    """Every request stays 500 s: the backlog seen by arrival k is k + 1 until it reaches 500
    at k = 499, then stays there. Averaged over the preceding sojourn it reaches the plateau
    once that whole sojourn is past the ramp: at 2 x 500 - 1 = 999 s. That is after the 20th
    percentile of arrivals (799 s of 4,000), so the window starts there and not at 799 s."""
    s = steady(_stream(4000, lambda t: np.full_like(t, 500.0)), "open")
    assert s["sojourn_s"] == 500.0 and s["warmup_end_s"] == 999.0
    assert s["window_s"] == [999.0, 3199.0] and s["settled"]
    assert s["window_sojourns"] == pytest.approx(2200 / 500)
    assert s["keeps_up"] and s["backlog_growth"] == pytest.approx(0.0, abs=1e-12)
    # short requests: the fill-up ends long before the 20th percentile, the window is unchanged
    short = steady(_stream(4000, lambda t: np.full_like(t, 5.0)), "open")
    assert short["warmup_end_s"] == 9.0 and short["window_s"] == [799.0, 3199.0] and short["settled"]


@pytest.mark.unit
def test_a_run_shorter_than_its_fill_up_is_not_settled():
    """Requests whose stay grows as the batch fills (300 s at the plateau, half that at the
    start, relaxing over ~1,000 s): the backlog rises for thousands of seconds. At 4,000
    requests the old fixed window (20th-80th percentile) sees that rise as a growing backlog
    and calls the server overloaded; the run is marked unsettled (the search lengthens it).
    At 16,000 requests the window starts after the rise and the server keeps up."""
    stay = lambda t: 300.0 * (1.0 - 0.5 * np.exp(-t / 1000.0))
    short = steady(_stream(4000, stay), "open")
    assert not short["settled"] and short["backlog_growth"] > MAX_GROWTH
    assert short["window_sojourns"] == pytest.approx(MIN_WINDOW_SOJOURNS, rel=0.05)
    long = steady(_stream(16000, stay), "open")
    assert long["settled"] and long["keeps_up"] and long["window_s"][0] > 3200.0
    assert abs(long["backlog_growth"]) < MAX_GROWTH


@pytest.mark.unit
def test_the_next_run_length_covers_the_measured_warmup():
    """The answer's window did not settle at 4,000 requests (warm-up ending at 1,750 s,
    arrivals up to the 80th percentile at 1,760 s, sojourns of 450 s): the window needs
    arrivals until 1,750 + 4 x 450 = 3,550 s, about 8,070 requests, so 16,000 (doubling);
    a settled answer only doubles, and max_requests caps either."""
    s = {"settled": False, "warmup_end_s": 1750.0, "sojourn_s": 450.0, "window_s": [420.0, 1760.0]}
    p = RatePoint(1.8, 4000, False, ("throughput",), {"steady": s})
    assert _next_length(4000, p, 32000) == 16000
    assert _next_length(4000, p, 8000) == 8000
    settled = RatePoint(1.8, 4000, True, (), {"steady": dict(s, settled=True)})
    assert _next_length(4000, settled, 32000) == 8000
    # two answers agree only when both were judged on settled windows
    a, b = {"max_qps": 1.0, "settled": False}, {"max_qps": 1.0, "settled": True}
    assert not _agree(a, b) and _agree(b, dict(b, max_qps=1.01))


@pytest.mark.unit
def test_chat_answers_are_judged_on_settled_windows():
    """Short chat requests on a small model fill up within seconds: at the final run length
    every rate that passed was judged on a settled window (one that starts after the
    fill-up, here ~30 s, and spans more than the minimum of sojourns). (300 requests at ~10 req/s span only ~30 s, a few sojourns: there the
    rates near the answer had not settled, and the search went on to 600.)"""
    c = seedchip.capacity(model="llama-3.1-8b", workload="chat", num_requests=300, max_requests=600,
                          slo_ttft_p99="1s", slo_tpot_p99="25ms", interval=False).to_dict()
    n = c["convergence"][-1]["num_requests"]
    assert c["convergence"][-1]["settled"] and all(p["settled"] for p in c["search"] if p["num_requests"] == n
                                                   and p["met"])
    s = c["metrics"]["steady"]
    assert s["warmup_end_s"] <= s["window_s"][0] and s["window_sojourns"] > MIN_WINDOW_SOJOURNS


@pytest.mark.unit
def test_exceed_share_error_counts_correlated_episodes():
    """The SLO share's error by batch means: 20,000 independent draws with 1% above the limit
    give about the binomial error; the same 1% bunched into a few long episodes (as a burst
    of long requests slows every request beside it) gives a far larger one, which the
    binomial error of independent draws would miss."""
    from seedchip.serve.metrics import exceed_fraction
    rng = np.random.default_rng(0)
    n = 20000
    iid = (rng.random(n) < 0.01).astype(float)
    e = exceed_fraction(iid, 0.5)
    binomial = np.sqrt(0.01 * 0.99 / n)
    assert e["blocks"] == 20 and e["fraction"] == pytest.approx(iid.mean())
    assert 0.5 * binomial < e["se"] < 2 * binomial
    bunched = np.zeros(n)
    for start in (3000, 11000, 17000):          # three episodes of ~67 requests each: 1% in all
        bunched[start:start + 67] = 1.0
    b = exceed_fraction(bunched, 0.5)
    assert b["fraction"] == pytest.approx(0.01, rel=0.01) and b["se"] > 3 * binomial
    assert exceed_fraction(bunched[:150], 0.5)["se"] is None        # too few requests for four blocks


@pytest.mark.unit
def test_answers_agree_only_once_the_sampling_error_is_small():
    """Two run lengths that give the same answer by chance do not end the search while the
    last answer's sampling error exceeds 1% (at its 80% bound when it comes from streams);
    answers further apart than 1.5% agree when they lie within twice their combined sampling
    errors (never beyond 3%)."""
    a = {"max_qps": 10.0, "settled": True, "sampling_error_fraction": 0.004}
    assert _agree(a, dict(a, max_qps=10.1))
    assert not _agree(a, dict(a, max_qps=10.0, sampling_error_fraction=0.02))
    assert _agree(dict(a, sampling_error_fraction=0.009), dict(a, max_qps=10.2, sampling_error_fraction=0.008))   # 2% < 2 x 1.2%
    assert not _agree(dict(a, sampling_error_fraction=0.009), dict(a, max_qps=10.35, sampling_error_fraction=0.009))   # 3.4%
    assert not _agree(dict(a, sampling_error_fraction=None), dict(a, max_qps=10.2, sampling_error_fraction=None))      # 2% > 1.5%
    # an error from streams is judged at its 80% bound: 0.8% from 8 degrees of freedom is up to
    # 0.8% x sqrt(8 / 4.594) = 1.06%, not yet small enough; from 40 it is up to 0.89%
    from seedchip.serve.sampling import error_bound
    assert error_bound(dict(a, sampling_error_fraction=0.008, sampling_error_df=8)) == pytest.approx(0.010557, rel=1e-3)
    assert not _agree(a, dict(a, max_qps=10.05, sampling_error_fraction=0.008, sampling_error_df=8))
    assert _agree(a, dict(a, max_qps=10.05, sampling_error_fraction=0.008, sampling_error_df=40))


@pytest.mark.unit
def test_more_streams_only_when_the_sampling_error_alone_keeps_lengths_apart():
    """Streams are added (4 at a time, at most 16) at a run length only while its answer
    agrees with the last length's, its sampling error alone is over 1%, and 16 streams would
    be expected to bring it to 1% (errors fall as one over the root of the streams pooled):
    then more streams can end the search without a longer run; otherwise the next length is
    needed anyway."""
    prev = {"max_qps": 10.0, "settled": True, "sampling_error_fraction": 0.012}
    last = dict(prev, max_qps=10.1, sampling_error_fraction=0.013, sampling_shares=[0.01] * 4)   # no df: as is
    assert _more_streams(prev, last) and not _agree(prev, last)
    assert not _more_streams(prev, dict(last, sampling_error_fraction=0.009))            # already small enough
    assert not _more_streams(prev, dict(last, max_qps=10.5))                             # apart: a longer run
    assert not _more_streams(prev, dict(last, sampling_shares=[0.01] * 16))              # at the cap
    assert _more_streams(prev, dict(last, sampling_shares=[0.01] * 12, sampling_error_fraction=0.011))
    assert not _more_streams(prev, dict(last, sampling_shares=[0.01] * 12))      # 1.3% x (13 / 17)^0.5 > 1%
    assert not _more_streams(prev, dict(last, settled=False))
    assert not _more_streams(prev, dict(last, sampling_error_fraction=None, sampling_shares=None))
    # 5 streams at 2.0% would need ~20 for 1%: more than 16 can give, so a longer run instead
    assert _more_streams(prev, dict(last, max_qps=10.2, sampling_error_fraction=0.018))
    assert not _more_streams(prev, dict(last, max_qps=10.2, sampling_error_fraction=0.0186))


@pytest.mark.unit
def test_capacity_pools_independent_streams_for_its_answer_and_error():
    """Each run length's answer pools independent request streams (other seeds) run at the
    bisection's answer: their shares of requests over the binding limit are in the JSON, the
    answer is where the pooled share meets 1% along the share's slope (within +-7% of the
    bisection's), the error is the pooled share's standard error over that slope, the
    throughput is the one at the answer, and the same inputs give the same bytes."""
    import json
    import math

    from seedchip.serve.capacity import SAMPLING_STREAMS
    from seedchip.serve.sampling import SLOPE_SPAN
    kw = dict(model="llama-3.1-8b", workload="chat", num_requests=1000, max_requests=2000, slo_tpot_p99="25ms",
              interval=False)
    c = seedchip.capacity(**kw).to_dict()
    errs = [e["sampling_error_fraction"] for e in c["convergence"]]
    assert c["max_qps_sampling_error_fraction"] == errs[-1]
    assert c["binding"] == "tpot_p99" and all(e is not None and 0 < e < 0.5 for e in errs)
    if errs[-1] > 0.01:                     # 2,000 requests are too few here: not called converged
        assert c["converged"] is False
    last = c["convergence"][-1]
    assert c["max_qps"] == last["max_qps"] <= c["saturated_requests_per_s"]
    searched = last["search_qps"]
    assert c["metrics"]["inputs"]["qps"] == searched and abs(math.log(c["max_qps"] / searched)) <= SLOPE_SPAN + 1e-12
    assert c["throughput_tokens_per_s"] == pytest.approx(
        c["metrics"]["steady"]["output_tokens_per_s"] * c["max_qps"] / searched)
    shares = last["sampling_shares"]
    assert len(shares) == SAMPLING_STREAMS and len(set(shares)) > 1       # independent streams differ
    one = seedchip.simulate(model="llama-3.1-8b", workload="chat", qps=searched, num_requests=2000,
                            slo_tpot_p99="25ms", seed=7919, interval=False).to_dict()
    assert one["steady"]["slo_exceed"]["tpot_p99"]["fraction"] == shares[0]          # stream 1: seed 0 + 7919
    pooled = [c["metrics"]["steady"]["slo_exceed"]["tpot_p99"]["fraction"], *shares]
    mean = sum(pooled) / len(pooled)
    assert (c["max_qps"] > searched) == (mean < 0.01) or c["max_qps"] == searched
    assert json.dumps(seedchip.capacity(**kw).to_dict(), sort_keys=True) == json.dumps(c, sort_keys=True)


@pytest.mark.unit
def test_pooled_answer_by_hand():
    """By hand: the share over the TPOT limit is 0.5% at 9.5 req/s, 0.8% at 10 (the
    bisection's answer) and 2.0% at 10.5 (fails) on the search's stream; ln F against
    ln(rate) rises by the least-squares slope through the three (~13.9). Four other streams at
    10 req/s give 0.4%, 0.8%, 1.6% and 0: pooled with the search's 0.8%, the share is 0.72%,
    so the answer moves up by ln(1 / 0.72) / slope, and its error is the five shares'
    standard error of their mean, over 0.72%, over the slope. A shift past +-7% stops there;
    a point outside +-7%, at another run length or with no request over the limit does not
    enter the slope; a binding limit
    that is not an SLO share gives the bisection's answer and no error; without streams (a
    trace) the bisection's answer stands with the run's own batch-means error se(F) / F."""
    import math

    from seedchip.serve.sampling import pooled_answer, share_slope

    def pt(q, frac, se, n=8000, ok=True, failed=()):
        ex = {"tpot_p99": {"fraction": frac, "se": se, "blocks": 20}}
        return RatePoint(q, n, ok, failed, {"steady": {"slo_exceed": ex}})
    low, best = pt(9.5, 0.005, 0.001), pt(10.0, 0.008, 0.002)
    fail = pt(10.5, 0.02, 0.004, ok=False, failed=("tpot_p99",))
    others = [pt(12.0, 0.5, 0.01, ok=False, failed=("tpot_p99",)), pt(9.9, 0.0, 0.0, n=4000)]
    points = [low, best, fail, pt(9.4, 0.0, 0.0)] + others           # no request over the limit: no log
    xs, ys = [math.log(q) for q in (9.5, 10.0, 10.5)], [math.log(f) for f in (0.005, 0.008, 0.02)]
    mx, my = sum(xs) / 3, sum(ys) / 3
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2 for x in xs)
    assert share_slope(points, 8000, best, "tpot_p99") == pytest.approx(slope)
    fs = [0.008, 0.004, 0.008, 0.016, 0.0]
    mean = sum(fs) / 5
    se = math.sqrt(sum((f - mean) ** 2 for f in fs) / 4 / 5) / mean / slope
    q, err, df = pooled_answer(points, 8000, best, fail, fs[1:])
    assert q == pytest.approx(10.0 * math.exp(math.log(0.01 / mean) / slope)) and err == pytest.approx(se) and df == 4
    q, _, _ = pooled_answer(points, 8000, best, fail, [0.2, 0.2, 0.2, 0.2])       # far over: stops at -7%
    assert q == pytest.approx(10.0 * math.exp(-0.07))
    assert pooled_answer(points, 8000, best, fail) == (10.0, pytest.approx(0.002 / 0.008 / slope), 0)
    assert pooled_answer(points, 8000, best, pt(10.5, 0.0, 0.0, ok=False, failed=("throughput",)),
                         [0.004, 0.008]) == (10.0, None, 0)
    assert pooled_answer([best, others[1]], 8000, best, fail, [0.004, 0.008]) == (10.0, None, 0)   # one rate: no slope
    # the one-stream spread pooled with a shorter length's streams (scaled by 4000 / 8000)
    earlier = [(4000, [0.01, 0.03, 0.005, 0.02, 0.012])]
    _, err2, df2 = pooled_answer(points, 8000, best, fail, fs[1:], earlier)
    from seedchip.serve.sampling import relative_variance
    rel, _ = relative_variance(earlier + [(8000, fs)], 8000)
    assert err2 == pytest.approx(math.sqrt(rel / 5) / slope) and err2 != pytest.approx(se) and df2 == 8


@pytest.mark.unit
def test_relative_variance_pools_run_lengths_by_their_degrees_of_freedom():
    """Each length's variance over its squared mean, scaled to the asked length (a share over
    n requests varies as 1 / n), weighted by its streams less one; lengths with one stream or
    no request over the limit add nothing."""
    from seedchip.serve.sampling import relative_variance

    def rel(fs):
        m = sum(fs) / len(fs)
        return sum((f - m) ** 2 for f in fs) / (len(fs) - 1) / m ** 2
    a, b = [0.01, 0.03, 0.005, 0.02, 0.012], [0.008, 0.004, 0.008, 0.016, 0.0, 0.011, 0.009, 0.01, 0.007]
    assert relative_variance([(8000, b)], 8000) == (pytest.approx(rel(b)), 8)
    assert relative_variance([(8000, b)], 16000) == (pytest.approx(rel(b) / 2), 8)
    want = (4 * rel(a) * 4000 / 8000 + 8 * rel(b)) / 12
    assert relative_variance([(4000, a), (8000, b)], 8000) == (pytest.approx(want), 12)
    assert relative_variance([(4000, a), (2000, [0.01]), (1000, [0.0, 0.0]), (8000, b)], 8000) == \
        (pytest.approx(want), 12)
    assert relative_variance([(2000, [0.01])], 8000) == (None, 0)
