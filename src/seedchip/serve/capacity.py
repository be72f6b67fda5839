"""capacity(): the highest request rate a deployment sustains within its SLOs, in steady
state (mirrored by `seedchip capacity`).

Capacity is a steady-state property, so every judgement reads the steady window of a
run (:func:`seedchip.serve.metrics.steady`: warm-up and drain excluded). A rate passes
when the requests of that window meet the SLO percentiles and the run keeps up
(completes requests as fast as they arrive over the window). The search is a
bisection over the rate between a low rate that must pass and the saturated rate (the
steady completion rate of an offline run, an upper bound no answer exceeds); each point
is a simulation of the same request stream (same seed) rescaled in time. Then
``SAMPLING_STREAMS`` independent streams (other seeds) run at the bisection's answer, and
again ``SLOPE_STEP`` faster (the same requests: a pair differs by the rate alone), and the
answer at that run length is where the share of requests over the binding limit, pooled
over all the streams, meets the limit, carried along the slope of the mean share that
the pairs measure (:func:`pooled_answer`): p99 latencies are
set by a few episodes (a rare long prompt stalls every request decoding beside it), so one
stream's answer is a sample several % wide, and the streams both narrow it and measure how
wide it still is (``max_qps_sampling_error_fraction``). The run length is then doubled, and
the bracket around the last answer re-searched, until two successive answers agree within
``CONVERGED`` (or within twice their sampling errors, at most ``PROMISE``), both were judged
on a settled steady window, and the last one's sampling error is at most ``SE_TARGET`` (or
the run length reaches ``MAX_REQUESTS``, or a trace runs out): the answer does not depend
on how long you simulate. A run that starts empty fills up first; with
requests lasting minutes that takes many sojourns (a fuller batch steps more slowly),
so when the answer's window still held part of the fill-up the next run length is
sized from the measured warm-up (it ends ``MIN_WINDOW_SOJOURNS`` mean sojourns after
it) rather than only doubled. ``binding`` names the limit that fails just above the
answer.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from ..errors import SeedChipError, SpecError
from ..gc_tuning import relaxed_gc
from ..parallel import open_backend
from ..perf.calibration import load_calibration
from ..perf.uncertainty import Z80, Perturbation, draws, interval80
from .api import seconds, simulate
from .bisection import mid, next_rates
from .metrics import MIN_WINDOW_SOJOURNS
from .sampling import SLOPE_STEP, Streams, binding_share, error_bound, pooled_answer, share_of
from .sim import Slo
from .workload import MAX_REQUESTS as RUN_LIMIT

START_REQUESTS = 4000
MAX_REQUESTS = 64000
CONVERGED = 0.015          # successive run lengths agree within 1.5% (half the 3% promise) ...
PROMISE = 0.03             # ... or within twice their sampling errors combined, never more than 3%
SE_TARGET = 0.01           # and the last answer's sampling error is at most 1% (at its 80% bound: sampling.py)
LOW_FRACTION = 1 / 64      # the first low rate, as a share of the saturated rate
HEADROOM = 1.25            # the search reaches this far above an offline run's rate (ramp and drain weigh on it)
BRACKET = 0.06             # a longer run re-searches +-6% around the last answer
INTERVAL_REQUESTS = 2000   # the perturbed searches run this many requests (the spread, not the level)
INTERVAL_TOLERANCE = 0.02
SAMPLING_STREAMS = 4       # independent request streams at the bisection's answer (pooled answer, sampling error)
MAX_STREAMS = 16           # ... added 4 at a time while only the sampling error keeps two lengths from agreeing
MIN_POOLED_REQUESTS = 48000  # ... or while the streams' steady windows hold fewer requests than this (ESTIMATE:
                             # at the 70B chat capacity one 500-request stretch in 100, one per 50,000 requests,
                             # holds 16% of the requests over the limit; fewer pooled requests often miss such an
                             # episode and read both the share and its error low: benchmarks/README)
STREAM_SEED_STEP = 7919    # stream i runs with seed + i x this (a prime: apart from any seed a user picks nearby)


@dataclass(frozen=True)
class RatePoint:
    qps: float
    num_requests: int
    ok: bool
    failed: tuple[str, ...]          # which limits fail: ttft_p99, tpot_p99, throughput, memory
    metrics: dict = field(repr=False, compare=False)

    def row(self) -> dict:
        s = self.metrics["steady"]
        return {"qps": self.qps, "num_requests": self.num_requests, "ttft_p99_s": s["ttft_s"]["p99"],
                "tpot_p99_s": s["tpot_s"]["p99"], "completed_per_s": s["completed_per_s"], "met": self.ok,
                "failed": list(self.failed), "settled": s["settled"]}


@dataclass(frozen=True)
class CapacityResult:
    max_qps: float
    binding: str
    saturated_requests_per_s: float
    metrics: dict
    search: list
    convergence: list
    inputs: dict
    interval: dict | None = None

    @property
    def converged(self) -> bool:
        """The last two run lengths agreed within ``CONVERGED``. False: ``max_requests`` (or
        the end of a trace) stopped the doubling first, and a longer run may move the answer
        by about its last step in ``convergence``."""
        h = self.convergence
        return len(h) >= 2 and _agree(h[-2], h[-1])

    @property
    def rate_scale(self) -> float:
        """The answer over the rate of the run in ``metrics`` (the bisection's answer on the
        search's own stream; the pooled answer may sit a few % from it): its steady output
        tokens/s, scaled by this, is the throughput at the answer (tokens per request do not
        depend on the rate)."""
        q = self.metrics["inputs"].get("qps")
        return self.max_qps / q if q else 1.0

    def to_dict(self) -> dict:
        n = self.inputs["num_chips"]
        price = self.inputs.get("price_per_chip_hour")
        return {"max_qps": self.max_qps, "max_qps_per_chip": self.max_qps / n,
                "max_qps_per_dollar_hour": self.max_qps / (n * price) if price else None,
                "max_qps_interval80": self.interval["max_qps"] if self.interval else None,
                "max_qps_sampling_error_fraction": self.convergence[-1].get("sampling_error_fraction"),
                "interval80": self.interval,
                "binding": self.binding, "saturated_requests_per_s": self.saturated_requests_per_s,
                "throughput_tokens_per_s": self.metrics["steady"]["output_tokens_per_s"] * self.rate_scale,
                "converged": self.converged, "metrics": self.metrics, "convergence": self.convergence,
                "search": self.search,
                "inputs": self.inputs}


def _run_task(_state, item: tuple[dict, dict]) -> dict | None:
    """A worker's run of the search (``seedchip.parallel``): one simulation's JSON; None when
    it fails on the input (the search runs it again in its own process if it asks for it, and
    stops there with that error, as one process would)."""
    base, kw = item
    try:
        return simulate(**base, **kw).to_dict()        # simulate holds the collector back (gc_tuning)
    except SeedChipError:
        return None


class _Search:
    """``backend`` (``seedchip.parallel``, more than one worker): the runs a sequential search
    will ask for next (its sampling streams, the two ends of a bracket, the next levels of a
    bisection) run side by side ahead of it (:meth:`ahead`); the search then reads them in
    its own order, so its points, its answer and its JSON are those of one process.
    Speculative runs it never asks for are dropped."""

    def __init__(self, base: dict, slo: Slo, perturbation: Perturbation | None = None, progress=None,
                 label: str = "search", backend=None):
        self.base, self.slo, self.points = dict(base, interval=False, perturbation=perturbation), slo, []
        self.progress, self.label = progress, label
        self.stream_runs: dict[tuple[float, int, int], dict] = {}      # (rate, run length, stream) -> steady
        self.backend = backend if backend is not None and backend.workers > 1 else None
        self.done: dict[tuple, dict] = {}          # (rate, run length, seed) -> a run made ahead of its turn

    def _seed(self, stream: int = 0) -> int:
        return (self.base.get("seed") or 0) + stream * STREAM_SEED_STEP

    def ahead(self, runs: list[tuple[float, int, int]]) -> None:
        """Run ``runs`` ((rate, run length, stream)) side by side on the backend, those not
        made yet; nothing without one."""
        todo = [r for r in dict.fromkeys(runs) if (r[0], r[1], self._seed(r[2])) not in self.done]
        if self.backend is None or len(todo) < 2:
            return                           # one run: in this process, when its turn comes
        self.tell(f"{len(todo)} runs side by side ({', '.join(f'{q:.4g}' for q, _, _ in todo)} req/s)")
        items = [(dict(self.base, seed=self._seed(i)) if i else self.base, {"qps": q, "num_requests": n})
                 for q, n, i in todo]
        for j, d in self.backend.map(_run_task, items):
            q, n, i = todo[j]
            if d is not None:
                self.done[(q, n, self._seed(i))] = d

    def _simulate(self, q: float, n: int, stream: int = 0) -> dict:
        d = self.done.pop((q, n, self._seed(stream)), None)
        if d is not None:
            return d
        base = dict(self.base, seed=self._seed(stream)) if stream else self.base
        return simulate(**base, qps=q, num_requests=n).to_dict()

    def tree(self, best: RatePoint, fail: RatePoint, n: int, tolerance: float) -> None:
        """Run ahead the bisection's next points between ``best`` and ``fail``, as many as the
        backend has workers (:func:`next_rates`)."""
        if self.backend is not None:
            self.ahead([(q, n, 0) for q in next_rates(self.slo, best, fail, tolerance, self.backend.workers)])

    def tell(self, what: str) -> None:
        """Tell the progress callback (a bar) which run starts: ``progress(runs done, 0, label)``."""
        if self.progress is not None:
            self.progress(len(self.points), 0, f"{self.label}: {what}")

    def saturated(self, n: int) -> tuple[float, dict]:
        """The request rate of an offline run: the first bracket's top (ramp and drain
        weigh on it, so the search goes past it by HEADROOM)."""
        self.tell(f"offline run of {n:,} requests")
        d = simulate(**self.base, num_requests=n, offline=True).to_dict()
        return d["steady"]["completed_per_s"], d

    def point(self, q: float, n: int) -> RatePoint:
        self.tell(f"{q:.4g} req/s x {n:,} requests")
        d = self._simulate(q, n)
        s = d["steady"]
        failed = []
        if self.slo.ttft_p99_s is not None and not (s["ttft_s"]["p99"] is not None
                                                    and s["ttft_s"]["p99"] <= self.slo.ttft_p99_s):
            failed.append("ttft_p99")
        if self.slo.tpot_p99_s is not None and s["tpot_s"]["p99"] is not None and s["tpot_s"]["p99"] > self.slo.tpot_p99_s:
            failed.append("tpot_p99")
        if not s["keeps_up"]:
            failed.append("memory" if d["num_preemptions"] or d["num_rejected"] else "throughput")
        p = RatePoint(q, n, not failed, tuple(failed), d)
        self.points.append(p)
        return p

    def streams(self, q: float, n: int, count: int) -> tuple[list[dict], list[dict]] | None:
        """``count`` independent request streams (stream i: seed + i x ``STREAM_SEED_STEP``)
        at rate ``q``, and the same streams at q x e^``SLOPE_STEP`` (their twins), each run
        once: their steady figures; None for a trace (one stream only)."""
        if self.base.get("trace") is not None:
            return None
        runs = [(r, n, i) for r in (q, q * math.exp(SLOPE_STEP)) for i in range(1, count + 1)]
        self.ahead([r for r in runs if r not in self.stream_runs])
        for r, _, i in runs:
            if (r, n, i) not in self.stream_runs:
                self.tell(f"sampling stream {i}/{count}: {r:.4g} req/s x {n:,} requests")
                self.stream_runs[(r, n, i)] = self._simulate(r, n, i)["steady"]
        steady = [self.stream_runs[r] for r in runs]
        return steady[:count], steady[count:]

    def bisect(self, lo: RatePoint, hi_q: float, n: int, tolerance: float) -> tuple[RatePoint, RatePoint | None]:
        """(best passing point, lowest failing point) between a passing ``lo`` and ``hi_q``."""
        top = self.point(hi_q, n)
        if top.ok:
            if hi_q >= 1e6 * lo.qps:
                raise SpecError("the deployment keeps up with any rate tried: check the workload")
            return top, None
        return self.settle(*self.narrow(lo, top, n, tolerance), n, tolerance)

    def narrow(self, best: RatePoint, fail: RatePoint, n: int, tolerance: float) -> tuple[RatePoint, RatePoint]:
        while (fail.qps - best.qps) / fail.qps > tolerance:
            self.tree(best, fail, n, tolerance)
            p = self.point(mid(best.qps, fail.qps), n)
            best, fail = (p, fail) if p.ok else (best, p)
        return best, fail

    def settle(self, best: RatePoint, fail: RatePoint, n: int, tolerance: float) -> tuple[RatePoint, RatePoint]:
        """Percentiles of a finite run are not exactly monotone in the rate: when a rate
        below the answer failed at this run length, the answer is re-searched below that
        failure, so the bisection's answer never sits above a rate that missed the SLO on its
        stream (the pooled answer may: other streams say whether that stream was unlucky)."""
        while True:
            same = [p for p in self.points if p.num_requests == n]
            low_fail = min((p for p in same if not p.ok), key=lambda p: p.qps)
            if low_fail.qps >= best.qps:
                return best, low_fail
            best = max((p for p in same if p.ok and p.qps < low_fail.qps), key=lambda p: p.qps)
            best, fail = self.narrow(best, low_fail, n, tolerance)


def _base(kw: dict, slo: Slo) -> dict:
    for k in ("qps", "offline", "trace_out", "max_concurrency"):
        if kw.pop(k, None) not in (None, False):
            raise SpecError(f"capacity searches the arrival rate itself: drop --{k.replace('_', '-')}")
    if kw.get("trace") is None and kw.get("workload") is None and kw.get("input_len") is None:
        kw["workload"] = "chat"
    return dict(kw, slo_ttft_p99=slo.ttft_p99_s, slo_tpot_p99=slo.tpot_p99_s)


def _check(slo: Slo, price_per_chip_hour, num_requests, max_requests) -> int:
    if not slo.any():
        raise SpecError("capacity needs at least one SLO: --slo-ttft-p99 and/or --slo-tpot-p99")
    if price_per_chip_hour is not None and not (isinstance(price_per_chip_hour, (int, float))
                                                and 0 < price_per_chip_hour < math.inf):
        raise SpecError(f"--price-per-chip-hour {price_per_chip_hour!r} must be a positive number")
    if isinstance(max_requests, bool) or not isinstance(max_requests, int) or not 100 <= max_requests <= RUN_LIMIT:
        raise SpecError(f"--max-requests {max_requests!r} must be a whole number in 100..{RUN_LIMIT:,}")
    n = min(START_REQUESTS, max_requests) if num_requests is None else num_requests
    if isinstance(n, bool) or not isinstance(n, int) or not 100 <= n <= max_requests:
        raise SpecError(f"--num-requests {num_requests!r}: the first run length must be between 100 and "
                        f"--max-requests {max_requests} (it grows until the answer is stable)")
    return n


def _first(search: _Search, n: int, tolerance: float) -> tuple[RatePoint, RatePoint | None, float]:
    """The whole bracket: from a low rate that must pass up to past the offline rate."""
    sat, _ = search.saturated(n)
    search.ahead([(sat * LOW_FRACTION, n, 0), (sat * HEADROOM, n, 0)])
    lo = search.point(sat * LOW_FRACTION, n)
    if not lo.ok:
        s, slo = lo.metrics["steady"], search.slo
        raise SpecError(
            f"no rate meets the SLO (ttft p99 <= {slo.ttft_p99_s}, tpot p99 <= {slo.tpot_p99_s}): even at "
            f"{lo.qps:.3g} req/s the steady state reaches ttft p99 {s['ttft_s']['p99'] or 0:.3g} s, tpot p99 "
            f"{s['tpot_s']['p99'] or 0:.3g} s; relax the SLO or use a faster deployment")
    hi = sat * HEADROOM
    best, fail = search.bisect(lo, hi, n, tolerance)
    while fail is None:                      # kept up past the offline rate: widen upward
        hi *= 1 + 2 * HEADROOM
        best, fail = search.bisect(best, hi, n, tolerance)
    return best, fail, sat


def _refine(search: _Search, prev: float, n: int, tolerance: float) -> tuple[RatePoint, RatePoint | None]:
    """A longer run: search a narrow bracket around the last answer ``prev`` (req/s),
    widening it when the answer lies outside."""
    span = BRACKET
    search.ahead([(prev * (1 - span), n, 0), (prev * (1 + BRACKET), n, 0)])
    lo = search.point(prev * (1 - span), n)
    while not lo.ok and lo.qps > prev * LOW_FRACTION:
        span *= 2
        lo = search.point(prev * max(1 - span, LOW_FRACTION), n)
    hi = prev * (1 + BRACKET)
    best, fail = search.bisect(lo, hi, n, tolerance)
    while fail is None:                      # passed at the top: widen upward
        hi *= 1 + 2 * BRACKET
        best, fail = search.bisect(best, hi, n, tolerance)
    return best, fail


def _entry(search: _Search, n: int, best: RatePoint, fail: RatePoint | None, earlier: list[dict],
           streams: int = SAMPLING_STREAMS) -> dict:
    """One run length's answer; ``earlier``: the entries of the shorter lengths (their
    streams inform this one's error and slope)."""
    s = best.metrics["steady"]
    metric = binding_share(fail)
    runs = search.streams(best.qps, n, streams) if metric else None
    entry = {"num_requests": n, "search_qps": best.qps, "settled": s["settled"],
             "window_sojourns": s["window_sojourns"], "binding_share": metric,
             "search_share": (share_of(best.metrics, metric) or 0.0) if metric else None, "sampling_shares": None}
    if runs is not None:
        ex = [(st.get("slo_exceed") or {}).get(metric) or {} for st in (s, *runs[0])]
        entry.update(pooled_requests=sum(st["num_requests"] for st in (s, *runs[0])),
                     sampling_shares=[e.get("fraction") or 0.0 for e in ex[1:]],
                     sampling_errors=[e.get("se") for e in ex], sampling_blocks=[e.get("blocks", 0) for e in ex],
                     slope_shares=[share_of({"steady": st}, metric) or 0.0 for st in runs[1]])
    samples = [Streams.of(e) for e in (*earlier, entry)
               if e.get("sampling_shares") and e.get("binding_share") == metric]
    pooled = pooled_answer(search.points, n, best, fail, samples)
    return dict(entry, max_qps=pooled.qps, sampling_error_fraction=pooled.error, sampling_error_df=pooled.df,
                share_slope=pooled.slope, share_slope_sd=pooled.slope_sd, share_slope_df=pooled.slope_df)


def _within(prev: dict, last: dict) -> bool:
    """Two successive run lengths give answers within ``CONVERGED`` of each other, or within
    twice their sampling errors combined (at most ``PROMISE``), each judged on a steady window
    that starts after the fill-up (``settled``; None: no window, e.g. a closed loop)."""
    se = [e.get("sampling_error_fraction") for e in (prev, last)]
    tol = CONVERGED if None in se else min(PROMISE, max(CONVERGED, 2 * math.hypot(*se)))
    return (not last.get("note") and prev.get("settled") is not False and last.get("settled") is not False
            and abs(last["max_qps"] - prev["max_qps"]) <= tol * last["max_qps"])


def _enough(last: dict) -> bool:
    """The last length's streams pooled at least ``MIN_POOLED_REQUESTS`` steady-window
    requests (a trace, or a limit that is not an SLO share: no streams, nothing to ask)."""
    return last.get("pooled_requests") is None or last["pooled_requests"] >= MIN_POOLED_REQUESTS


def _agree(prev: dict, last: dict) -> bool:
    """Two successive run lengths agree (:func:`_within`), the last answer's sampling error
    is at most ``SE_TARGET`` even at its 80% bound (:func:`error_bound`; two short runs can
    agree by chance) and its streams pooled enough requests to have met the rare episodes
    that set a p99 (:func:`_enough`)."""
    bound = error_bound(last)
    return _within(prev, last) and (bound is None or bound <= SE_TARGET) and _enough(last)


def _more_streams(prev: dict, last: dict) -> bool:
    """Only the last answer's sampling error, or too few pooled requests, keeps two run
    lengths from agreeing, and more streams at this length may mend it: cheaper than a
    longer run (no new bisection). Streams are worth adding only while ``MAX_STREAMS`` of
    them would be expected to bring the error's bound to ``SE_TARGET`` (the error falls as
    one over the root of the streams pooled) and the pooled requests to
    ``MIN_POOLED_REQUESTS``."""
    bound, shares = error_bound(last), last.get("sampling_shares") or ()
    if bound is None or not shares or len(shares) + SAMPLING_STREAMS > MAX_STREAMS or not _within(prev, last):
        return False
    if bound <= SE_TARGET and _enough(last):
        return False
    reach = (MAX_STREAMS + 1) / (len(shares) + 1)           # the search's own stream and the others
    pooled = last.get("pooled_requests")
    return bound / math.sqrt(reach) <= SE_TARGET and (pooled is None or pooled * reach >= MIN_POOLED_REQUESTS)


def _next_length(n: int, best: RatePoint, max_requests: int) -> int:
    """The next run length: double, and more while the answer's window did not settle:
    enough requests that arrivals run on ``MIN_WINDOW_SOJOURNS`` mean sojourns past the
    measured warm-up (arrivals are spread evenly over a run, the window ends at the 80th
    percentile of arrivals). Never past ``max_requests``."""
    s, m = best.metrics["steady"], 2 * n
    if s["settled"] is False:
        need = n * (s["warmup_end_s"] + MIN_WINDOW_SOJOURNS * s["sojourn_s"]) / s["window_s"][1]
        while m < need and m * 2 <= max_requests:
            m *= 2
    return m


def _interval_search(base: dict, slo: Slo, perturbation: Perturbation | None, answer: float, n: int,
                     progress=None, label: str = "interval") -> float | None:
    """One search of the interval: the answer near ``answer`` under ``perturbation`` (None:
    the unperturbed model at this run length), or None when a draw meets the SLO at no rate."""
    try:
        return _refine(_Search(base, slo, perturbation, progress, label), answer, n, INTERVAL_TOLERANCE)[0].qps
    except SpecError:
        if perturbation is None:
            raise
        return None            # no rate meets the SLO under this draw


def _interval_task(_state, item: tuple) -> float | None:
    """A worker's interval search (``seedchip.parallel``)."""
    return _interval_search(*item)


def _interval(base: dict, slo: Slo, answer: float, metrics: dict, n: int, sampling_error: float | None,
              progress=None, backend=None) -> dict:
    """80% interval on the answer: the same search under ``DRAWS`` draws of the model's
    error (kernel classes, host time, engine residual), at a shorter run length, each
    relative to the unperturbed search at that length; widened by the answer's own
    sampling error (independent of the model's: added in quadrature in log space). The
    searches are independent: ``backend`` (``seedchip.parallel``) runs them side by side,
    with the same results as one after another."""
    n = min(n, INTERVAL_REQUESTS)
    ps = draws(load_calibration(base.get("calibration")), metrics["engine"]["step_sigma"])
    labels = ["interval"] + [f"interval draw {i}/{len(ps)}" for i in range(1, len(ps) + 1)]
    jobs = [None, *ps]
    if backend is None or backend.name == "inline":
        found = [_interval_search(base, slo, p, answer, n, progress, lab) for p, lab in zip(jobs, labels)]
    else:
        def starting(i: int) -> None:
            if progress is not None:
                progress(i, 0, f"{labels[i]} (of {len(jobs)} searches side by side)")
        found = [None] * len(jobs)
        for i, q in backend.map(_interval_task, [(base, slo, p, answer, n) for p in jobs], before=starting):
            found[i] = q
    nominal = found[0]
    ratios = [LOW_FRACTION if q is None else q / nominal for q in found[1:]]
    lo, hi = interval80(answer, [answer * r for r in ratios])
    spread = math.hypot(math.log(hi / answer) / Z80, sampling_error or 0.0)
    return {"max_qps": [answer * math.exp(-Z80 * spread), answer * math.exp(Z80 * spread)], "draws": len(ratios),
            "num_requests": n, "sampling_error_fraction": sampling_error}


def capacity(*, slo_ttft_p99: str | float | None = None, slo_tpot_p99: str | float | None = None,
             num_requests: int | None = None, max_requests: int = MAX_REQUESTS,
             price_per_chip_hour: float | None = None, tolerance: float = 0.01, interval: bool = True,
             progress=None, workers: int = 1, use_ray: bool = False, address: str | None = None,
             **kw) -> CapacityResult:
    """The highest steady arrival rate meeting the SLO percentiles (see module doc).
    ``num_requests``: the first run length (default 4,000); it doubles, up to
    ``max_requests``, until two successive answers agree within 1.5%. ``interval``: add
    ``max_qps_interval80`` from perturbed searches (several more runs). ``progress``: called as
    ``progress(runs done, 0, label)`` before each run (a progress bar). ``workers`` / ``use_ray``
    / ``address``: a local process pool or a Ray cluster (``seedchip.parallel``) runs the
    search's sampling streams, the ends of its brackets and the next levels of its bisections
    ahead of it, and the interval's independent searches, side by side: the same JSON as one
    process, byte for byte."""
    slo = Slo(seconds(slo_ttft_p99, "--slo-ttft-p99"), seconds(slo_tpot_p99, "--slo-tpot-p99"))
    n = _check(slo, price_per_chip_hour, num_requests, max_requests)
    backend = open_backend(workers, use_ray, address)
    try:
        with relaxed_gc():
            return _capacity(slo, n, max_requests, price_per_chip_hour, tolerance, interval, progress, backend, kw)
    finally:
        backend.close()


def _capacity(slo: Slo, n: int, max_requests: int, price_per_chip_hour, tolerance: float, interval: bool, progress,
              backend, kw: dict) -> CapacityResult:
    search = _Search(_base(dict(kw), slo), slo, None, progress, backend=backend)
    best, fail, sat = _first(search, n, tolerance)
    history = [_entry(search, n, best, fail, [])]
    while n * 2 <= max_requests:
        n = _next_length(n, best, max_requests)
        best, fail = _refine(search, history[-1]["max_qps"], n, tolerance)
        if best.metrics["num_requests"] < n:       # a trace shorter than n: no longer run exists
            history.append({"num_requests": best.metrics["num_requests"], "max_qps": best.qps,
                            "note": "the trace has no more requests"})
            break
        entry = _entry(search, n, best, fail, history)
        while _more_streams(history[-1], entry):
            entry = _entry(search, n, best, fail, history, len(entry["sampling_shares"]) + SAMPLING_STREAMS)
        history.append(entry)
        if _agree(history[-2], history[-1]):
            break
    final = [p for p in search.points if p.num_requests == history[-1]["num_requests"]]
    observed = max([sat] + [p.metrics["steady"]["completed_per_s"] for p in final])
    binding = ",".join(fail.failed)
    answer = min(history[-1]["max_qps"], observed)
    inputs = dict(best.metrics["inputs"], slo_ttft_p99_s=slo.ttft_p99_s, slo_tpot_p99_s=slo.tpot_p99_s,
                  price_per_chip_hour=price_per_chip_hour, num_requests=history[-1]["num_requests"], qps=answer)
    band = (_interval(search.base, slo, answer, best.metrics, history[-1]["num_requests"],
                      history[-1].get("sampling_error_fraction"), progress, backend) if interval
            else None)
    return CapacityResult(max_qps=answer, binding=binding, saturated_requests_per_s=observed,
                          metrics=best.metrics, search=[p.row() for p in search.points], convergence=history,
                          inputs=dict(inputs, interval=interval), interval=band)


__all__ = ["capacity", "CapacityResult"]
