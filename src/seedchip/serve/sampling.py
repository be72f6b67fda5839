"""A capacity answer's sampling error: how much of it a finite run of requests drew by
chance, and the answer pooled over independent request streams (used by
:mod:`seedchip.serve.capacity`)."""

from __future__ import annotations

import math
from typing import Protocol


class RatePoint(Protocol):
    """A probe of the capacity search (:class:`seedchip.serve.capacity.RatePoint`)."""
    qps: float
    num_requests: int
    failed: tuple[str, ...]
    metrics: dict


BOUND_LEVEL = 0.8          # a search stops on an error small enough at the upper end of its one-sided 80% bound
SLOPE_SPAN = 0.07          # the SLO share's slope in the rate: from the points within +-7% of the answer
P99_SHARE = 0.01           # a p99 limit holds while at most this share of requests exceeds it


def binding_share(fail: RatePoint | None) -> str | None:
    """The SLO share that fails just above the answer (None: throughput or memory binds)."""
    return None if fail is None else next((m for m in fail.failed if m in ("ttft_p99", "tpot_p99")), None)


def share_of(metrics: dict, metric: str) -> float | None:
    return ((metrics["steady"].get("slo_exceed") or {}).get(metric) or {}).get("fraction")


def share_slope(points: list[RatePoint], n: int, best: RatePoint, metric: str) -> float | None:
    """d ln F / d ln(rate) near the answer: a least-squares line through ln F against ln(rate)
    over this run length's points within ``SLOPE_SPAN`` of the answer that saw any request
    over the limit (one request stream rescaled in time, so the slope is not blurred by
    sampling). On log scales the share's rise is close to straight: on linear ones it bends
    up (it grows several-fold over +-7%), and a secant through it would be too steep."""
    near = [(math.log(p.qps), math.log(f)) for p in points
            if p.num_requests == n and abs(math.log(p.qps / best.qps)) <= SLOPE_SPAN
            and (f := share_of(p.metrics, metric))]
    xs = [x for x, _ in near]
    if len(set(xs)) < 2:
        return None
    mx, my = sum(xs) / len(xs), sum(y for _, y in near) / len(near)
    slope = sum((x - mx) * (y - my) for x, y in near) / sum((x - mx) ** 2 for x in xs)
    return slope if slope > 0 else None


def relative_variance(samples: list[tuple[int, list[float]]], n: int) -> tuple[float | None, int]:
    """The relative variance (variance over the squared mean) of one stream's share at run
    length ``n``, from the streams run at every length so far (``samples``: (run length,
    shares at one rate)): each length's own, scaled by its length over ``n`` (a share over a
    window of requests varies as one over the window's length), weighted by its degrees of
    freedom. A few streams of a share set by rare episodes mostly miss the episodes and
    understate its spread; pooled over the lengths the estimate is steadier, and a search
    that stops once its error looks small is less often stopped by a low draw. Returns
    (relative variance, its degrees of freedom); (None, 0) without two streams anywhere."""
    num = den = 0.0
    for n_k, fs in samples:
        mean = sum(fs) / len(fs)
        if len(fs) < 2 or mean <= 0:
            continue
        var = sum((f - mean) ** 2 for f in fs) / (len(fs) - 1)
        num += (len(fs) - 1) * var / mean ** 2 * n_k / n
        den += len(fs) - 1
    return (num / den, int(den)) if den else (None, 0)


def pooled_answer(points: list[RatePoint], n: int, best: RatePoint, fail: RatePoint | None,
                  shares: list[float] | None = None,
                  earlier: list[tuple[int, list[float]]] = ()) -> tuple[float, float | None, int]:
    """The answer at run length ``n`` and its relative standard error (a fraction of it).

    A p99 limit is met while at most ``P99_SHARE`` of the window's requests exceed it. The
    bisection finds where that share F crosses it on one request stream; ``shares`` are F in
    ``SAMPLING_STREAMS`` independent streams (other seeds) at the bisection's answer. Pooled
    with the search's own stream (the mean share of all of them), F is carried to the limit
    along the share's slope d ln F / d ln(rate) (:func:`share_slope`; at most
    ``SLOPE_SPAN``, the range the slope was measured on): the rate where the pooled share
    meets the limit. Its error is the streams' standard error of that mean, relative to it,
    over the slope, with the one-stream spread pooled over this and the shorter run lengths
    (``earlier``: :func:`relative_variance`). Independent streams, because one run's share
    is decided by a few episodes (a rare very long prompt stalls every request decoding
    beside it): between streams it
    varies several-fold at one rate, one stream's answer carries that spread, and the run's
    own batch-means error (:func:`seedchip.serve.metrics.exceed_fraction`) understates it about
    twofold where the share is low. Without ``shares`` (a trace: one stream only) the answer is
    the bisection's and that batch-means error stands in, as se(F) / F over the slope. The
    error is None when the limit that binds is not an SLO share (throughput, memory) or the
    slope is not measurable. Returns (answer, error, the error's degrees of freedom: 0 when
    it does not come from streams)."""
    metric = binding_share(fail)
    slope = share_slope(points, n, best, metric) if metric else None
    if slope is None:
        return best.qps, None, 0
    if not shares:
        ex = (best.metrics["steady"].get("slo_exceed") or {}).get(metric)
        ok = ex is not None and ex["se"] is not None and ex["fraction"]
        return best.qps, ex["se"] / ex["fraction"] / slope if ok else None, 0
    fs = [share_of(best.metrics, metric) or 0.0, *shares]
    mean = sum(fs) / len(fs)
    if mean <= 0:
        return best.qps, None, 0
    shift = min(SLOPE_SPAN, max(-SLOPE_SPAN, math.log(P99_SHARE / mean) / slope))
    rel, df = relative_variance([*earlier, (n, fs)], n)
    return best.qps * math.exp(shift), math.sqrt(rel / len(fs)) / slope, df


def error_bound(entry: dict) -> float | None:
    """The upper end of a one-sided 80% confidence bound on an answer's sampling error: from a
    handful of streams the error itself is uncertain (a few draws of a share set by rare
    episodes mostly miss them, so a small estimate is often a lucky one), and a search that
    stopped whenever its estimate looked small would stop on lucky estimates. With d degrees
    of freedom the bound is the error x sqrt(d / the 20th percentile of chi-square(d))."""
    from scipy.special import chdtri  # the chi-square quantile without scipy.stats (seconds to import)
    se, df = entry.get("sampling_error_fraction"), entry.get("sampling_error_df") or 0
    if se is None or df < 1:
        return se
    return se * math.sqrt(df / chdtri(df, BOUND_LEVEL))      # chdtri: the upper tail's quantile
