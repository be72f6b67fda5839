"""A capacity answer's sampling error: how much of it a finite run of requests drew by
chance, and the answer pooled over independent request streams (used by
:mod:`seedchip.serve.capacity`)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple, Protocol


class RatePoint(Protocol):
    """A probe of the capacity search (:class:`seedchip.serve.capacity.RatePoint`)."""
    qps: float
    num_requests: int
    failed: tuple[str, ...]
    metrics: dict


BOUND_LEVEL = 0.8          # a search stops on an error small enough at the upper end of its one-sided 80% bound
SLOPE_SPAN = 0.07          # the answer moves at most this far (in ln rate) from the bisection's; a trace's
                           # slope is fitted to its points within this range
SLOPE_STEP = 0.04          # the streams run again this much higher in ln(rate): the share's slope from the pairs
P99_SHARE = 0.01           # a p99 limit holds while at most this share of requests exceeds it
MAX_SLOPE_WIDENING = 3.0   # the error's bound reads the slope no lower than a third of its estimate


@dataclass(frozen=True)
class Streams:
    """One run length's request streams at the bisection's answer: the search's own stream
    first, then the independent ones (seed + i x the stream step). ``errors``: each share's
    batch-means standard error (:func:`seedchip.serve.metrics.exceed_fraction`) and ``blocks``
    the blocks it came from; ``twins``: the independent streams again, the same requests, at
    the rate x e^``SLOPE_STEP``."""
    num_requests: int
    shares: tuple[float, ...]
    errors: tuple[float | None, ...] = ()
    blocks: tuple[int, ...] = ()
    twins: tuple[float, ...] = ()

    @classmethod
    def of(cls, entry: dict) -> "Streams":
        """From a capacity search's convergence entry (its JSON)."""
        k = len(entry["sampling_shares"]) + 1
        return cls(entry["num_requests"], (entry["search_share"], *entry["sampling_shares"]),
                   tuple(entry.get("sampling_errors") or (None,) * k), tuple(entry.get("sampling_blocks") or (0,) * k),
                   tuple(entry.get("slope_shares") or ()))


class Pooled(NamedTuple):
    qps: float
    error: float | None          # relative standard error of the answer
    df: int                      # the error's degrees of freedom (0: not from streams)
    slope: float | None          # d ln F / d ln(rate) used to carry the pooled share to the limit
    slope_sd: float | None = None        # its standard error (from the pairs)
    slope_df: int = 0                    # ... and that error's degrees of freedom (pairs less one)


def binding_share(fail: RatePoint | None) -> str | None:
    """The SLO share that fails just above the answer (None: throughput or memory binds)."""
    return None if fail is None else next((m for m in fail.failed if m in ("ttft_p99", "tpot_p99")), None)


def share_of(metrics: dict, metric: str) -> float | None:
    return ((metrics["steady"].get("slo_exceed") or {}).get(metric) or {}).get("fraction")


def share_slope(points: list[RatePoint], n: int, best: RatePoint, metric: str) -> float | None:
    """d ln F / d ln(rate) on the search's own stream: a least-squares line through ln F
    against ln(rate) over this run length's points within ``SLOPE_SPAN`` of the answer that
    saw any request over the limit. Used where no paired streams exist (a trace): the
    bisection gathers its points where its one stream crosses the limit, which on one
    stream is often a jump (one episode tips many requests over at once), so this slope
    tends to be steeper than the mean share's (:func:`paired_slope`)."""
    near = [(math.log(p.qps), math.log(f)) for p in points
            if p.num_requests == n and abs(math.log(p.qps / best.qps)) <= SLOPE_SPAN
            and (f := share_of(p.metrics, metric))]
    xs = [x for x, _ in near]
    if len(set(xs)) < 2:
        return None
    mx, my = sum(xs) / len(xs), sum(y for _, y in near) / len(near)
    slope = sum((x - mx) * (y - my) for x, y in near) / sum((x - mx) ** 2 for x in xs)
    return slope if slope > 0 else None


def paired_slope(samples: list[Streams]) -> tuple[float, float, int] | None:
    """d ln E[F] / d ln(rate), the slope of the mean share, and its variance: every
    independent stream run twice, at the answer and ``SLOPE_STEP`` above it (common random
    numbers: the same requests, so the pair differs by the rate alone), over every run length
    so far; the ratio estimator sum(n G) / sum(n F) of the shares weighted by the run
    length, its variance from the pairs' residuals n (G - R F). The search's own stream is
    left out (the bisection chose its rate where its share meets the limit). Returns (slope,
    its variance, the pairs less one); None with fewer than two pairs or a ratio not above one."""
    pairs = [(s.num_requests, f, g) for s in samples for f, g in zip(s.shares[1:], s.twins)]
    sf, sg = sum(w * f for w, f, _ in pairs), sum(w * g for w, _, g in pairs)
    if len(pairs) < 2 or sf <= 0 or sg <= sf:
        return None
    r = sg / sf
    var_r = len(pairs) / (len(pairs) - 1) * sum((w * (g - r * f)) ** 2 for w, f, g in pairs) / sf ** 2
    return math.log(r) / SLOPE_STEP, var_r / r ** 2 / SLOPE_STEP ** 2, len(pairs) - 1


def relative_variance(samples: list[Streams], n: int) -> tuple[float | None, int]:
    """The relative variance (variance over the squared mean) of one stream's share at run
    length ``n`` from the spread between the streams of every length so far: each length's
    own, scaled by its length over ``n`` (a share over a window of requests varies as one
    over the window's length), weighted by its degrees of freedom. Returns (relative
    variance, its degrees of freedom); (None, 0) without two streams anywhere."""
    num = den = 0.0
    for s in samples:
        fs = s.shares
        mean = sum(fs) / len(fs)
        if len(fs) < 2 or mean <= 0:
            continue
        var = sum((f - mean) ** 2 for f in fs) / (len(fs) - 1)
        num += (len(fs) - 1) * var / mean ** 2 * s.num_requests / n
        den += len(fs) - 1
    return (num / den, int(den)) if den else (None, 0)


def within_variance(samples: list[Streams], n: int) -> tuple[float | None, int]:
    """The same relative variance from inside each stream: its share's batch-means error
    squared (the blocks of one run are close to independent once they span a few sojourns),
    over its length's mean share squared, scaled by length over ``n``, averaged over every
    stream of every length with (blocks - 1) // 2 degrees of freedom each (the lag-1
    correction widens the error; correlated blocks count about half: an estimate). It adds no
    requests, but it rests on many blocks instead of a handful of streams, so it is steadier;
    streams that all missed the rare episodes still read it low. (None, 0) without batch
    means."""
    num = den = 0.0
    for s in samples:
        mean = sum(s.shares) / len(s.shares)
        for se, blocks in zip(s.errors, s.blocks):
            d = (blocks - 1) // 2
            if se is None or d < 1 or mean <= 0:
                continue
            num += d * se ** 2 / mean ** 2 * s.num_requests / n
            den += d
    return (num / den, int(den)) if den else (None, 0)


def share_variance(samples: list[Streams], n: int) -> tuple[float | None, int]:
    """One stream's relative share variance at run length ``n``: the between-stream
    (:func:`relative_variance`) and within-stream (:func:`within_variance`) estimates of the
    same quantity, weighted by their degrees of freedom."""
    parts = [(v, d) for v, d in (relative_variance(samples, n), within_variance(samples, n)) if v is not None]
    df = sum(d for _, d in parts)
    return (sum(v * d for v, d in parts) / df, df) if df else (None, 0)


def pooled_answer(points: list[RatePoint], n: int, best: RatePoint, fail: RatePoint | None,
                  samples: list[Streams] = ()) -> Pooled:
    """The answer at run length ``n`` and its relative standard error (a fraction of it).

    A p99 limit is met while at most ``P99_SHARE`` of the window's requests exceed it. The
    bisection finds where that share F crosses it on one request stream; ``samples[-1]``
    holds F in the independent streams at the bisection's answer (and ``samples`` the
    shorter lengths' streams, for the same binding limit). The mean share of all of them is
    carried to the limit along the slope of the mean share (:func:`paired_slope`; the
    search's own slope where no pairs exist), by at most ``SLOPE_SPAN``: the rate where the
    pooled share meets the limit. Its error, by the delta method: the mean share's relative
    standard error over the slope (the one-stream spread from :func:`share_variance`), and
    the slope's own error times the shift over the slope. Independent streams, because one
    run's share is decided by a few episodes (a rare very long prompt stalls every request
    decoding beside it): between streams it varies several-fold at one rate. Without streams
    (a trace: one stream only) the answer is the bisection's and the run's batch-means error
    stands in, as se(F) / F over the search's slope. The error is None when the limit that
    binds is not an SLO share (throughput, memory) or no slope is measurable."""
    metric = binding_share(fail)
    here = samples[-1] if samples and samples[-1].num_requests == n and len(samples[-1].shares) > 1 else None
    if metric is None:
        return Pooled(best.qps, None, 0, None)
    if here is None:
        slope = share_slope(points, n, best, metric)
        ex = (best.metrics["steady"].get("slo_exceed") or {}).get(metric)
        ok = slope is not None and ex is not None and ex["se"] is not None and ex["fraction"]
        return Pooled(best.qps, ex["se"] / ex["fraction"] / slope if ok else None, 0, slope)
    paired = paired_slope(samples)
    slope, slope_var, slope_df = paired if paired else (share_slope(points, n, best, metric), 0.0, 0)
    mean = sum(here.shares) / len(here.shares)
    if slope is None or mean <= 0:
        return Pooled(best.qps, None, 0, slope)
    shift = min(SLOPE_SPAN, max(-SLOPE_SPAN, math.log(P99_SHARE / mean) / slope))
    rel, df = share_variance(samples, n)
    err = None if rel is None else math.sqrt(rel / len(here.shares) + shift ** 2 * slope_var) / slope
    return Pooled(best.qps * math.exp(shift), err, df, slope, math.sqrt(slope_var) if paired else None, slope_df)


def error_bound(entry: dict) -> float | None:
    """The upper end of a one-sided 80% confidence bound on an answer's sampling error: from a
    handful of streams the error itself is uncertain (a few draws of a share set by rare
    episodes mostly miss them, so a small estimate is often a lucky one), and a search that
    stopped whenever its estimate looked small would stop on lucky estimates. With d degrees
    of freedom the share's part is the error x sqrt(d / the 20th percentile of
    chi-square(d)); the error is over the slope, so a slope measured too steep reads it too
    small: with the slope's standard error from p pairs, it is read at the slope less the
    80% quantile of Student's t(p - 1) standard errors (at most ``MAX_SLOPE_WIDENING``-fold)."""
    from scipy.special import chdtri, stdtrit  # quantiles without scipy.stats (seconds to import)
    se, df = entry.get("sampling_error_fraction"), entry.get("sampling_error_df") or 0
    if se is None:
        return None
    bound = se * math.sqrt(df / chdtri(df, BOUND_LEVEL)) if df >= 1 else se     # chdtri: the upper tail's quantile
    slope, sd, pairs_df = entry.get("share_slope"), entry.get("share_slope_sd"), entry.get("share_slope_df") or 0
    if slope and sd and pairs_df >= 1:
        low = slope - float(stdtrit(pairs_df, BOUND_LEVEL)) * sd
        bound *= slope / max(low, slope / MAX_SLOPE_WIDENING)
    return bound
