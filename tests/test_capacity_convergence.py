"""Capacity that does not depend on the run length: the steady window starts after the
fill-up of a run that starts empty (measured in the run, in sojourn times), and a run too
short to show its steady state says so (``settled``) and is lengthened by the search.

The reasoning workload's check (deepseek-r1, 8 x h200-sxm, answers at two run lengths
within 3%) takes far longer than a test may (each 16,000-request run ~2-3 minutes): it is
recorded in benchmarks/README.md ("Capacity convergence")."""

import numpy as np
import pytest

import seedchip
from seedchip.serve.capacity import RatePoint, _agree, _next_length
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
    last answer's sampling error exceeds 1%; answers further apart than 1.5% agree when they
    lie within twice their combined sampling errors (never beyond 3%)."""
    a = {"max_qps": 10.0, "settled": True, "sampling_error_fraction": 0.004}
    assert _agree(a, dict(a, max_qps=10.1))
    assert not _agree(a, dict(a, max_qps=10.0, sampling_error_fraction=0.02))
    assert _agree(dict(a, sampling_error_fraction=0.009), dict(a, max_qps=10.2, sampling_error_fraction=0.008))   # 2% < 2 x 1.2%
    assert not _agree(dict(a, sampling_error_fraction=0.009), dict(a, max_qps=10.35, sampling_error_fraction=0.009))   # 3.4%
    assert not _agree(dict(a, sampling_error_fraction=None), dict(a, max_qps=10.2, sampling_error_fraction=None))      # 2% > 1.5%


@pytest.mark.unit
def test_capacity_reports_its_sampling_error():
    """The answer's sampling error (from the SLO share's batch-means error and its slope in the
    rate over the same request stream) is in the JSON, per run length and for the answer."""
    c = seedchip.capacity(model="llama-3.1-8b", workload="chat", num_requests=1000, max_requests=2000,
                          slo_tpot_p99="25ms", interval=False).to_dict()
    errs = [e["sampling_error_fraction"] for e in c["convergence"]]
    assert c["max_qps_sampling_error_fraction"] == errs[-1]
    assert c["binding"] == "tpot_p99" and all(e is not None and 0 < e < 0.5 for e in errs)
    if errs[-1] > 0.01:                     # 2,000 requests are too few here: not called converged
        assert c["converged"] is False
    ex = c["metrics"]["steady"]["slo_exceed"]["tpot_p99"]
    assert ex["fraction"] <= 0.011 and ex["blocks"] >= 4


@pytest.mark.unit
def test_sampling_error_is_the_share_error_over_its_slope():
    """By hand: 0.8% of requests over the TPOT limit at 10 req/s (error 0.1 points), 2.0% at
    10.5 req/s (fails): the share rises 1.2 points per ln(1.05) of rate, so the answer's
    error is 0.001 / (0.012 / ln 1.05) = 0.41%. A point outside +-7%, or at another run length,
    does not enter the slope; a binding limit that is not an SLO share gives none."""
    import math
    from seedchip.serve.capacity import sampling_error

    def pt(q, frac, se, n=8000, ok=True, failed=()):
        ex = {"tpot_p99": {"fraction": frac, "se": se, "blocks": 20}}
        return RatePoint(q, n, ok, failed, {"steady": {"slo_exceed": ex}})
    best, fail = pt(10.0, 0.008, 0.001), pt(10.5, 0.02, 0.002, ok=False, failed=("tpot_p99",))
    others = [pt(12.0, 0.5, 0.01, ok=False, failed=("tpot_p99",)), pt(9.9, 0.0, 0.0, n=4000)]
    err = sampling_error([best, fail] + others, 8000, best, fail)
    assert err == pytest.approx(0.001 / (0.012 / math.log(1.05)))
    assert sampling_error([best, fail], 8000, best, pt(10.5, 0.0, 0.0, ok=False, failed=("throughput",))) is None
    assert sampling_error([best], 8000, best, fail) is None          # one rate: no slope
