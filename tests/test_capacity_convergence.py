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
    # ... and at the slope less its 80% t-quantile (3 degrees of freedom: 0.978) standard errors:
    # a slope of 20 +- 5 reads the error as if the slope were 15.1 (at most three-fold)
    steep = dict(a, sampling_error_fraction=0.008, sampling_error_df=40, share_slope=20.0, share_slope_sd=5.0,
                 share_slope_df=3)
    plain = error_bound(dict(steep, share_slope_sd=None))
    assert error_bound(steep) == pytest.approx(plain * 20 / (20 - 0.97847 * 5), rel=1e-4)
    assert error_bound(dict(steep, share_slope_sd=50.0)) == pytest.approx(plain * 3)
    assert error_bound(dict(steep, share_slope_df=0)) == plain
    assert not _agree(a, dict(steep, max_qps=10.05))


@pytest.mark.unit
def test_more_streams_only_when_the_sampling_error_alone_keeps_lengths_apart():
    """Streams are added (4 at a time, at most 16) at a run length only while its answer
    agrees with the last length's, its sampling error alone is over 1% or its streams pooled
    fewer than 48,000 requests, and 16 streams would be expected to bring the error to 1%
    (errors fall as one over the root of the streams pooled) and the requests to 48,000:
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
    # a small error from too few pooled requests (5 streams x 4,800 in their windows): not yet an
    # answer; 16 streams would pool 16 x 24,000 / 5 >= 48,000, so streams are added; 2,000 pooled
    # would need 24-fold more: a longer run instead
    few = dict(last, sampling_error_fraction=0.006, pooled_requests=24000)
    assert not _agree(prev, few) and _more_streams(prev, few)
    assert _agree(prev, dict(few, pooled_requests=48000)) and not _more_streams(prev, dict(few, pooled_requests=48000))
    short = dict(few, pooled_requests=2000)
    assert not _agree(prev, short) and not _more_streams(prev, short)


@pytest.mark.unit
def test_capacity_pools_independent_streams_for_its_answer_and_error():
    """Each run length's answer pools independent request streams (other seeds) run at the
    bisection's answer and 4% faster: their shares of requests over the binding limit are in the
    JSON, the answer is where the pooled share meets 1% along the mean share's slope (within +-7%
    of the bisection's), the error is the pooled share's standard error over that slope, the
    throughput is the one at the answer, and the same inputs give the same bytes."""
    import json
    import math

    from seedchip.serve.capacity import SAMPLING_STREAMS
    from seedchip.serve.sampling import SLOPE_SPAN, SLOPE_STEP
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
    twin = seedchip.simulate(model="llama-3.1-8b", workload="chat", qps=searched * math.exp(SLOPE_STEP),
                             num_requests=2000, slo_tpot_p99="25ms", seed=7919, interval=False).to_dict()
    assert twin["steady"]["slo_exceed"]["tpot_p99"]["fraction"] == last["slope_shares"][0]   # its twin, 4% faster
    assert len(last["slope_shares"]) == SAMPLING_STREAMS and last["share_slope"] > 0
    pooled = [c["metrics"]["steady"]["slo_exceed"]["tpot_p99"]["fraction"], *shares]
    mean = sum(pooled) / len(pooled)
    assert (c["max_qps"] > searched) == (mean < 0.01) or c["max_qps"] == searched
    assert json.dumps(seedchip.capacity(**kw).to_dict(), sort_keys=True) == json.dumps(c, sort_keys=True)


def _pt(q, frac, se, n=8000, ok=True, failed=()):
    ex = {"tpot_p99": {"fraction": frac, "se": se, "blocks": 20}}
    return RatePoint(q, n, ok, failed, {"steady": {"slo_exceed": ex}})


@pytest.mark.unit
def test_pooled_answer_by_hand():
    """By hand: the bisection's answer is 10 req/s, where the search's own stream has 0.8% of
    requests over the TPOT limit. Four other streams there give 0.4%, 0.8%, 1.6% and 0, and the
    same four streams 4% faster give 0.6%, 1.2%, 2.6% and 0.1%: the mean share's slope is
    ln(4.5 / 2.8) / 0.04 (~11.9). Pooled with the search's 0.8%, the share is 0.72%, so the
    answer moves up by ln(1 / 0.72) / slope; its error is the mean share's relative standard
    error (the one-stream variance, between streams and within them by batch means, weighted
    by their degrees of freedom, over five streams) and the slope's error times the shift,
    over the slope. A shift past +-7% stops there; a binding limit that is not an SLO share
    gives the bisection's answer and no error; without streams (a trace) the bisection's
    answer stands with the run's own batch-means error over the search's own slope."""
    import math

    from seedchip.serve.sampling import Streams, paired_slope, pooled_answer, share_slope, share_variance
    low, best = _pt(9.5, 0.005, 0.001), _pt(10.0, 0.008, 0.002)
    fail = _pt(10.5, 0.02, 0.004, ok=False, failed=("tpot_p99",))
    others = [_pt(12.0, 0.5, 0.01, ok=False, failed=("tpot_p99",)), _pt(9.9, 0.03, 0.0, n=4000)]
    points = [low, best, fail, _pt(9.4, 0.0, 0.0)] + others   # outside +-7%, another length, or none over: no fit
    # the search's own slope (traces): a least-squares line through the three points within
    # +-7% at this run length that saw a request over the limit
    xs, ys = [math.log(q) for q in (9.5, 10.0, 10.5)], [math.log(f) for f in (0.005, 0.008, 0.02)]
    mx, my = sum(xs) / 3, sum(ys) / 3
    own_by_hand = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2 for x in xs)
    assert share_slope(points, 8000, best, "tpot_p99") == pytest.approx(own_by_hand)
    fs, twins = (0.008, 0.004, 0.008, 0.016, 0.0), (0.006, 0.012, 0.026, 0.001)
    ses = (0.002, 0.0015, 0.003, 0.004, 0.0005)
    here = Streams(8000, fs, ses, (20,) * 5, twins)
    slope, slope_var, pairs = paired_slope([here])
    assert slope == pytest.approx(math.log(0.045 / 0.028) / 0.04)
    r = 0.045 / 0.028
    var_r = 4 / 3 * sum((8000 * (g - r * f)) ** 2 for f, g in zip(fs[1:], twins)) / (8000 * 0.028) ** 2
    assert slope_var == pytest.approx(var_r / r ** 2 / 0.04 ** 2)
    mean = sum(fs) / 5
    between = sum((f - mean) ** 2 for f in fs) / 4 / mean ** 2
    within = sum(se ** 2 for se in ses) / 5 / mean ** 2
    rel = (4 * between + 45 * within) / 49                         # 4 and 5 x 9 degrees of freedom
    assert share_variance([here], 8000) == (pytest.approx(rel), 49)
    shift = math.log(0.01 / mean) / slope
    q, err, df, used, sd, pairs = pooled_answer(points, 8000, best, fail, [here])
    assert q == pytest.approx(10.0 * math.exp(shift)) and used == slope and df == 49
    assert sd == pytest.approx(math.sqrt(slope_var)) and pairs == 3
    assert err == pytest.approx(math.sqrt(rel / 5 + shift ** 2 * slope_var) / slope)
    far = Streams(8000, (0.008, 0.2, 0.2, 0.2, 0.2), ses, (20,) * 5, (0.3, 0.3, 0.3, 0.3))
    assert pooled_answer(points, 8000, best, fail, [far]).qps == pytest.approx(10.0 * math.exp(-0.07))
    own = share_slope(points, 8000, best, "tpot_p99")                # a trace: the search's own slope
    assert pooled_answer(points, 8000, best, fail) == (10.0, pytest.approx(0.002 / 0.008 / own), 0, own, None, 0)
    assert pooled_answer(points, 8000, best, _pt(10.5, 0.0, 0.0, ok=False, failed=("throughput",)),
                         [here]) == (10.0, None, 0, None, None, 0)
    flat = Streams(8000, fs, ses, (20,) * 5, fs[1:])                 # no rise in the pairs: the own slope
    assert pooled_answer(points, 8000, best, fail, [flat]).slope == pytest.approx(own)
    assert pooled_answer([best, others[1]], 8000, best, fail) == (10.0, None, 0, None, None, 0)   # one rate: no slope
    # a shorter length's streams enter the variance (scaled by 4000 / 8000) and the slope's pairs
    earlier = Streams(4000, (0.01, 0.03, 0.005, 0.02, 0.012), (0.004,) * 5, (20,) * 5, (0.02, 0.01, 0.03, 0.02))
    q2, err2, df2, slope2, _, pairs2 = pooled_answer(points, 8000, best, fail, [earlier, here])
    rel2, want_df = share_variance([earlier, here], 8000)
    slope2_want, var2, _ = paired_slope([earlier, here])
    shift2 = math.log(0.01 / mean) / slope2_want
    assert slope2 == pytest.approx(slope2_want) and pairs2 == 7 and df2 == want_df == 98
    assert q2 == pytest.approx(10.0 * math.exp(shift2))
    assert err2 == pytest.approx(math.sqrt(rel2 / 5 + shift2 ** 2 * var2) / slope2_want) and err2 != pytest.approx(err)


@pytest.mark.unit
def test_the_slope_pairs_pool_over_run_lengths_and_leave_the_search_stream_out():
    """The ratio estimator weights each pair by its run length (a share over twice the
    requests counts twice); the search's own stream has no twin; fewer than two pairs, or
    twins no higher than their streams, give no slope."""
    import math

    from seedchip.serve.sampling import Streams, paired_slope
    a = Streams(4000, (0.01, 0.01, 0.02), twins=(0.02, 0.03))
    b = Streams(8000, (0.5, 0.01, 0.01), twins=(0.015, 0.02))
    want = math.log((4000 * 0.05 + 8000 * 0.035) / (4000 * 0.03 + 8000 * 0.02)) / 0.04
    assert paired_slope([a, b])[0] == pytest.approx(want)
    assert paired_slope([Streams(8000, (0.01, 0.01), twins=(0.02,))]) is None
    assert paired_slope([Streams(8000, (0.01, 0.02, 0.02), twins=(0.02, 0.01))]) is None
    assert paired_slope([Streams(8000, (0.01, 0.0, 0.0), twins=(0.01, 0.01))]) is None


@pytest.mark.unit
def test_relative_variance_pools_run_lengths_by_their_degrees_of_freedom():
    """Each length's variance over its squared mean, scaled to the asked length (a share over
    n requests varies as 1 / n), weighted by its streams less one; lengths with one stream or
    no request over the limit add nothing. Within streams: each batch-means error squared over
    its length's mean squared, scaled the same way, with (blocks - 1) // 2 degrees of freedom."""
    from seedchip.serve.sampling import Streams, relative_variance, within_variance

    def rel(fs):
        m = sum(fs) / len(fs)
        return sum((f - m) ** 2 for f in fs) / (len(fs) - 1) / m ** 2
    a, b = [0.01, 0.03, 0.005, 0.02, 0.012], [0.008, 0.004, 0.008, 0.016, 0.0, 0.011, 0.009, 0.01, 0.007]
    sa, sb = Streams(4000, tuple(a)), Streams(8000, tuple(b))
    assert relative_variance([sb], 8000) == (pytest.approx(rel(b)), 8)
    assert relative_variance([sb], 16000) == (pytest.approx(rel(b) / 2), 8)
    want = (4 * rel(a) * 4000 / 8000 + 8 * rel(b)) / 12
    assert relative_variance([sa, sb], 8000) == (pytest.approx(want), 12)
    assert relative_variance([sa, Streams(2000, (0.01,)), Streams(1000, (0.0, 0.0)), sb], 8000) == \
        (pytest.approx(want), 12)
    assert relative_variance([Streams(2000, (0.01,))], 8000) == (None, 0)
    ma = sum(a) / 5
    wa = Streams(4000, tuple(a), (0.004, None, 0.002, 0.003, 0.001), (20, 20, 20, 2, 10))
    wb = Streams(8000, (0.01, 0.02), (0.003, 0.005), (21, 20))
    got = within_variance([wa, wb], 8000)
    num = ((9 * 0.004 ** 2 + 9 * 0.002 ** 2 + 4 * 0.001 ** 2) / ma ** 2 * 0.5
           + (10 * 0.003 ** 2 + 9 * 0.005 ** 2) / 0.015 ** 2)
    assert got == (pytest.approx(num / 41), 41)                       # 2 blocks: no degree of freedom
    assert within_variance([sb], 8000) == (None, 0)
