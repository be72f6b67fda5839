"""Serving metrics: per-request latencies, inter-token latency, utilisation, energy,
and time series of KV use and queue length. Memory is bounded: per-request figures
are kept in compact arrays, inter-token latency in a log-binned histogram."""

from __future__ import annotations

import math
from array import array

import numpy as np

from .workload import RequestStatus

ITL_BINS_PER_DECADE = 400          # histogram resolution: 0.58% per bin
ITL_MIN_S = 1e-7
ITL_DECADES = 10


def summary(values: np.ndarray) -> dict:
    if len(values) == 0:
        return {"mean": None, "p50": None, "p90": None, "p99": None, "max": None}
    return {"mean": float(np.mean(values)), "p50": float(np.percentile(values, 50)),
            "p90": float(np.percentile(values, 90)), "p99": float(np.percentile(values, 99)),
            "max": float(np.max(values))}


class ItlHistogram:
    def __init__(self):
        # a list, not an array: adding to one of its floats is several times quicker than to an
        # array's element (an engine adds once per step), and the sums are the same doubles
        self.w = [0.0] * (ITL_BINS_PER_DECADE * ITL_DECADES + 1)
        self.total = 0.0
        self.weighted_sum = 0.0

    def add(self, seconds: float, weight: float) -> None:
        if seconds <= 0 or weight <= 0:
            return
        w = self.w
        i = int((math.log10(seconds / ITL_MIN_S)) * ITL_BINS_PER_DECADE)
        i = min(max(i, 0), len(w) - 1)
        w[i] += weight
        self.total += weight
        self.weighted_sum += seconds * weight

    def merge(self, other: "ItlHistogram") -> None:
        self.w = [a + b for a, b in zip(self.w, other.w)]
        self.total += other.total
        self.weighted_sum += other.weighted_sum

    def summary(self) -> dict:
        if self.total == 0:
            return summary(np.array([]))
        w = np.asarray(self.w)
        cum = np.cumsum(w) / self.total
        centres = ITL_MIN_S * 10 ** ((np.arange(len(w)) + 0.5) / ITL_BINS_PER_DECADE)
        q = lambda p: float(centres[min(int(np.searchsorted(cum, p)), len(cum) - 1)])
        nz = np.nonzero(w)[0]
        return {"mean": self.weighted_sum / self.total, "p50": q(0.5), "p90": q(0.9), "p99": q(0.99),
                "max": float(centres[nz[-1]])}


CDF_POINTS = 101                    # quantiles 0, 1%, ..., 100% of each latency: a CDF of bounded size


def cdf(values: np.ndarray) -> list[float] | None:
    """The 0..100% quantiles (CDF_POINTS of them) of ``values``, to 6 significant digits."""
    if len(values) == 0:
        return None
    q = np.percentile(values, np.linspace(0.0, 100.0, CDF_POINTS))
    return [float(f"{v:.6g}") for v in q]


class Series:
    """Time series in fixed-width bins; the width doubles (bins merge) past max_bins. Per bin:
    the largest KV use, running and waiting counts, and the sums of preemptions, output tokens
    and step energy (so throughput and power are those sums over the bin width)."""

    def __init__(self, dt: float = 1.0, max_bins: int = 2000):
        self.dt, self.max_bins = dt, max_bins
        self.bins: dict[int, list] = {}

    def add(self, t: float, kv_used: float, running: int, waiting: int, preemptions: int, tokens: int = 0,
            energy_j: float = 0.0) -> None:
        i = int(t // self.dt)
        b = self.bins.get(i)
        if b is None:
            if len(self.bins) >= self.max_bins:
                self._merge()
                i = int(t // self.dt)
                b = self.bins.get(i)
            if b is None:
                b = self.bins[i] = [0.0, 0, 0, 0, 0, 0.0]
        b[0] = max(b[0], kv_used)
        b[1] = max(b[1], running)
        b[2] = max(b[2], waiting)
        b[3] += preemptions
        b[4] += tokens
        b[5] += energy_j

    def _merge(self) -> None:
        merged: dict[int, list] = {}
        for i, b in self.bins.items():
            m = merged.setdefault(i // 2, [0.0, 0, 0, 0, 0, 0.0])
            m[0], m[1], m[2], m[3] = max(m[0], b[0]), max(m[1], b[1]), max(m[2], b[2]), m[3] + b[3]
            m[4], m[5] = m[4] + b[4], m[5] + b[5]
        self.bins, self.dt = merged, self.dt * 2

    def to_dict(self) -> dict:
        keys = sorted(self.bins)
        return {"bin_s": self.dt, "t_s": [k * self.dt for k in keys],
                "kv_used_max": [round(self.bins[k][0], 6) for k in keys],
                "running_max": [self.bins[k][1] for k in keys],
                "waiting_max": [self.bins[k][2] for k in keys],
                "preemptions": [self.bins[k][3] for k in keys],
                "output_tokens_per_s": [round(self.bins[k][4] / self.dt, 3) for k in keys],
                "step_power_w": [round(self.bins[k][5] / self.dt, 3) for k in keys]}


class Collector:
    def __init__(self):
        self.id = array("q")
        self.arrival = array("d")
        self.first_token = array("d")
        self.finish = array("d")
        self.first_scheduled = array("d")
        self.input_len = array("q")
        self.output_len = array("q")
        self.prefix_hit = array("q")
        self.preemptions = array("q")
        self.rejected = 0
        self.itl = ItlHistogram()
        self.series = Series()


    def request_done(self, r) -> None:
        if r.status is RequestStatus.REJECTED:
            self.rejected += 1
            return
        self.id.append(r.id)
        self.arrival.append(r.arrival_s)
        self.first_token.append(r.first_token_s)
        self.finish.append(r.finish_s)
        self.first_scheduled.append(r.first_scheduled_s)
        self.input_len.append(r.input_len)
        self.output_len.append(r.output_len)
        self.prefix_hit.append(r.prefix_hit_tokens)
        self.preemptions.append(r.preemptions)

    def arrays(self) -> dict[str, np.ndarray]:
        return {k: np.frombuffer(getattr(self, k), dtype=np.float64 if getattr(self, k).typecode == "d" else np.int64)
                for k in ("id", "arrival", "first_token", "finish", "first_scheduled", "input_len", "output_len",
                          "prefix_hit", "preemptions")}


STEADY_WINDOW = (0.2, 0.8)   # share of the requests (by arrival, or by completion for offline runs) that counts
MIN_WINDOW_SOJOURNS = 4.0    # the steady window spans at least this many mean sojourn times when the run allows


def steady(a: dict[str, np.ndarray], mode: str, slo_s: dict[str, float] | None = None) -> dict:
    """Steady-state figures of a run, warm-up and drain excluded.

    ``open`` loop: the requests that arrived in the steady window: their TTFT/TPOT
    percentiles, the rate they were offered at, and the completions per second (of any
    request) over that stretch; a run that keeps up completes requests as fast as they
    come: its backlog does not grow by more than ``MAX_GROWTH`` of the arrival rate
    beyond the slope's own noise (a stable queue relaxes slowly near saturation; with
    long requests the backlog is large and slow to change, so a short window cannot tell
    a small slope from chance). The window ends at the 80th percentile of arrivals and
    starts at the later of the 20th percentile and the end of the warm-up
    (:func:`warmup_end`: when the in-flight count reaches its plateau), but no later
    than ``MIN_WINDOW_SOJOURNS`` mean sojourns before its end; ``settled`` says whether
    the warm-up ended before the window starts (False: the run is too short to show the
    steady state; its window still holds part of the fill-up). ``closed`` loop: the same
    window (arrival is when a client sends). ``offline`` (every request at once): the
    whole run, as offline benchmarks report it (the ramp and drain weigh less as the run
    grows; engines that prefill everything before decoding have no shorter stretch
    that stands for the run).

    ``slo_s`` ({"ttft_p99": s, "tpot_p99": s}, the limits set): ``slo_exceed`` gives, per
    limit, the share of the window's requests above it (a p99 limit is met when at most
    1% are) and that share's standard error by batch means (:func:`exceed_fraction`):
    how much the verdict owes to the sample a finite run drew."""
    n = len(a["finish"])
    out = a["output_len"].astype(float)
    res = {"mode": mode, "window_s": None, "num_requests": 0, "offered_per_s": None, "completed_per_s": 0.0,
           "output_tokens_per_s": 0.0, "ttft_s": summary(np.array([])), "tpot_s": summary(np.array([])),
           "backlog_growth": None, "backlog_growth_noise": None, "keeps_up": None, "warmup_end_s": None,
           "sojourn_s": None, "window_sojourns": None, "settled": None, "slo_exceed": None}
    if n < 5:
        return res
    if mode == "offline":
        t1 = float(a["finish"].max())
        return dict(res, window_s=[0.0, t1], num_requests=n, completed_per_s=n / t1,
                    output_tokens_per_s=float(out.sum()) / t1)
    lo_q, hi_q = STEADY_WINDOW
    arrival, finish = np.sort(a["arrival"]), np.sort(a["finish"])
    p20, t1 = arrival[int(lo_q * (n - 1))], arrival[int(hi_q * (n - 1))]
    if t1 <= p20:
        return res
    band = (a["arrival"] >= p20) & (a["arrival"] <= t1)
    sojourn = float(np.mean((a["finish"] - a["arrival"])[band]))
    warm = warmup_end(arrival, finish, t1, sojourn)
    t0 = max(p20, min(warm, t1 - MIN_WINDOW_SOJOURNS * sojourn))
    sel = (a["arrival"] >= t0) & (a["arrival"] <= t1)
    offered = float(sel.sum()) / float(t1 - t0)
    done = (a["finish"] >= t0) & (a["finish"] <= t1)
    completed = float(done.sum()) / float(t1 - t0)
    slope, noise = backlog_growth(arrival, finish, t0, t1, sojourn)
    growth, noise = slope / offered, noise / offered
    ttft = (a["first_token"] - a["arrival"])[sel]
    with np.errstate(invalid="ignore", divide="ignore"):
        tpot = np.where(out > 1, (a["finish"] - a["first_token"]) / np.maximum(out - 1, 1), np.nan)[sel]
    tpot_sel = tpot[~np.isnan(tpot)]
    order = np.argsort(a["arrival"][sel], kind="stable")       # requests are recorded as they finish
    by_arrival = ttft[order], tpot[order][~np.isnan(tpot[order])]
    exceed = ({k: exceed_fraction(v, limit) for k, v, limit in
               (("ttft_p99", by_arrival[0], slo_s.get("ttft_p99")), ("tpot_p99", by_arrival[1], slo_s.get("tpot_p99")))
               if limit is not None} if slo_s and mode == "open" else None)
    return dict(res, window_s=[float(t0), float(t1)], num_requests=int(sel.sum()),
                offered_per_s=offered if mode == "open" else None, completed_per_s=completed,
                output_tokens_per_s=float(out[done].sum()) / float(t1 - t0), ttft_s=summary(ttft),
                tpot_s=summary(tpot_sel), backlog_growth=growth if mode == "open" else None,
                backlog_growth_noise=noise if mode == "open" else None,
                keeps_up=bool(growth <= MAX_GROWTH + NOISE_Z * noise) if mode == "open" else None,
                warmup_end_s=float(warm), sojourn_s=sojourn, window_sojourns=float((t1 - t0) / sojourn),
                settled=bool(warm <= t0), slo_exceed=exceed or None)


EXCEED_BLOCKS = 20        # batch means: the window's requests in this many consecutive blocks (by arrival)
MIN_BLOCK_REQUESTS = 50   # ... fewer when the window holds fewer than 50 requests per block
MAX_BLOCK_CORRELATION = 0.9


def exceed_fraction(values: np.ndarray, limit: float) -> dict:
    """The share of ``values`` (in arrival order) above ``limit`` and its standard error by
    batch means: the values cut into consecutive blocks, the error the spread of the blocks'
    shares over sqrt(blocks), widened by the blocks' lag-1 correlation r as
    sqrt((1 + r) / (1 - r)) (r clipped to 0..0.9). Latencies of requests that overlap are
    correlated (a burst of long requests fills the batch and slows every request decoding
    beside it for minutes near saturation), so neither the binomial error of independent
    draws nor uncorrected batch means would be honest. ``se`` is None with fewer than four
    blocks."""
    n = len(values)
    over = values > limit
    blocks = min(EXCEED_BLOCKS, n // MIN_BLOCK_REQUESTS)
    if n == 0:
        return {"fraction": None, "se": None, "blocks": 0}
    if blocks < 4:
        return {"fraction": float(over.mean()), "se": None, "blocks": blocks}
    shares = np.array([b.mean() for b in np.array_split(over, blocks)])
    dev = shares - shares.mean()
    var = float(np.sum(dev ** 2))
    r = float(np.sum(dev[1:] * dev[:-1]) / var) if var > 0 else 0.0
    r = min(max(r, 0.0), MAX_BLOCK_CORRELATION)
    se = math.sqrt(var / (blocks - 1) / blocks * (1 + r) / (1 - r))
    return {"fraction": float(over.mean()), "se": se, "blocks": blocks}


def warmup_end(arrival_sorted: np.ndarray, finish_sorted: np.ndarray, t1: float, sojourn_s: float) -> float:
    """When a run that starts empty has filled up: the first arrival at which the backlog
    (arrived, not finished), averaged over the preceding mean sojourn ``sojourn_s`` (its
    correlation time), reaches the plateau: the mean backlog seen by the arrivals of the
    last quarter of the requests up to ``t1``. Short requests fill up within a few
    seconds; requests lasting minutes take many sojourns, because a fuller batch steps
    more slowly and so keeps its requests longer (at 1.8 req/s of the reasoning workload
    on deepseek-r1, ~9 sojourns, over an hour). A backlog that never levels off
    (overload) reaches its late mean only near ``t1``."""
    ta = arrival_sorted[arrival_sorted <= t1]
    if len(ta) < 8:
        return float(arrival_sorted[0])
    backlog = np.arange(1, len(ta) + 1) - np.searchsorted(finish_sorted, ta, side="right")
    plateau = float(np.mean(backlog[(3 * len(ta)) // 4:]))
    csum = np.concatenate(([0.0], np.cumsum(backlog, dtype=float)))
    start = np.searchsorted(ta, ta - sojourn_s, side="left")        # arrivals of the preceding sojourn
    mean = (csum[1:] - csum[start]) / (np.arange(1, len(ta) + 1) - start)
    reached = np.nonzero((mean >= plateau) & (ta >= ta[0] + sojourn_s))[0]
    return float(ta[reached[0]]) if len(reached) else float(t1)


def backlog_growth(arrival_sorted: np.ndarray, finish_sorted: np.ndarray, t0: float, t1: float,
                   sojourn_s: float) -> tuple[float, float]:
    """(slope, its standard error) in requests per second by which the backlog (arrived,
    not finished) grows over [t0, t1]: the least-squares slope of the backlog seen by
    each arrival. A stable queue has none; an overloaded one grows by its excess rate.
    The slope uses every arrival, so it is far less noisy than a difference of the two
    ends. Its error counts one independent sample per ``sojourn_s`` (the backlog's
    correlation time: a request stays in it that long), not one per arrival."""
    start = int(np.searchsorted(arrival_sorted, t0, side="left"))
    ta = arrival_sorted[start:]
    ta = ta[ta <= t1]
    if len(ta) < 3:
        return 0.0, 0.0
    backlog = np.arange(start + 1, start + 1 + len(ta)) - np.searchsorted(finish_sorted, ta, side="right")
    slope, icpt = np.polyfit(ta, backlog, 1)
    resid = backlog - (slope * ta + icpt)
    n_eff = max(2.0, min(len(ta), (t1 - t0) / max(sojourn_s, 1e-9)))
    se = float(np.std(resid) / (np.std(ta) * math.sqrt(n_eff))) if np.std(ta) > 0 else 0.0
    return float(slope), se


MAX_GROWTH = 0.01   # a run keeps up when its backlog grows by at most 1% of the arrival rate over the steady window
NOISE_Z = 2.0       # ... beyond this many standard errors of the slope (chance alone exceeds it ~2% of the time)
