"""The capacity search's bisection over the request rate, and which of its points to run ahead.

A bisection is sequential: each point depends on whether the last one passed. With workers
to spare, the search runs the next point together with the likeliest of those that may
follow it (:func:`next_rates`) and reads them in its own order, so the answer is that of one
process; a guess that misses costs a run, never a different answer.
"""

from __future__ import annotations

import heapq
import itertools
import math

GUESS_TAKEN = 0.75   # how often a bisection goes the side its SLO margins guess (an estimate: it only orders
                     # the runs made ahead)
MARGIN_FLOOR = 1e-3  # a passing point's margin is at most -this, a failing one's at least +this


def mid(best_q: float, fail_q: float) -> float:
    """The bisection's next rate between a passing and a failing one (geometric while they
    lie far apart)."""
    return math.sqrt(best_q * fail_q) if fail_q / best_q > 4 else (best_q + fail_q) / 2


def margin(slo, point) -> float | None:
    """How far a point's p99s lie over (> 0) or under (< 0) their SLOs (``slo``: a
    :class:`~seedchip.serve.sim.Slo`; ``point``: a rate point with ``ok`` and ``metrics``):
    the log of the worst ratio; None where a p99 is missing or there is no latency SLO."""
    s, worst = point.metrics["steady"], []
    for limit, key in ((slo.ttft_p99_s, "ttft_s"), (slo.tpot_p99_s, "tpot_s")):
        if limit is None:
            continue
        v = s[key]["p99"]
        if v is None or v <= 0:
            return None
        worst.append(math.log(v / limit))
    if not worst:
        return None
    return min(max(worst), -MARGIN_FLOOR) if point.ok else max(max(worst), MARGIN_FLOOR)


def guess(slo, best, fail) -> float | None:
    """Where the answer likely lies between a passing and a failing point: their SLO margins
    interpolated in log rate (None when a margin is unknown)."""
    mb, mf = margin(slo, best), margin(slo, fail)
    if mb is None or mf is None:
        return None
    lb, lf = math.log(best.qps), math.log(fail.qps)
    return math.exp(lb + (lf - lb) * -mb / (mf - mb))


def next_rates(slo, best, fail, tolerance: float, count: int) -> list[float]:
    """Up to ``count`` rates the bisection between ``best`` and ``fail`` may ask for next: the
    next point itself, then those after it in the order of their chance of being asked (the
    side of each point where :func:`guess` puts the answer taken with ``GUESS_TAKEN``)."""
    answer = guess(slo, best, fail)
    rates, order, heap = [], itertools.count(1), [(-1.0, 0, best.qps, fail.qps)]
    while heap and len(rates) < count:
        chance, _, b, f = heapq.heappop(heap)             # chance: minus the probability
        if (f - b) / f <= tolerance:
            continue
        m = mid(b, f)
        rates.append(m)
        up = 0.5 if answer is None else GUESS_TAKEN if m < answer else 1 - GUESS_TAKEN
        heapq.heappush(heap, (chance * up, next(order), m, f))
        heapq.heappush(heap, (chance * (1 - up), next(order), b, m))
    return rates
