"""MoE routing statistics: how a batch's tokens spread over experts and chips.

With ``B`` tokens each routed to ``k`` experts, ``B x k`` (token, expert) rows are dealt
to the experts. Under uniform routing the rows landing on one of ``bins`` equal groups
(an expert, or the experts one chip holds under expert parallelism) follow a multinomial
with ``n = B x k`` trials and probability ``1 / bins`` each. A step in which the groups run
on different chips waits for the busiest one, so what it costs is the *expected maximum*
load, not the mean ``n / bins``.

The expected maximum is computed exactly for small ``n`` (the probability that every bin
holds fewer than ``m`` rows is ``n! / bins^n`` times the ``x^n`` coefficient of
``(sum_{j<m} x^j / j!)^bins``; ``E[max] = sum_{m>=1} P(max >= m)``) and, above
``EXACT_MAX_TRIALS``, by the normal approximation ``mean + sigma x E[max of bins standard
normals]`` (the multinomial's marginals are binomial; their correlation is ignored,
which errs on the slow side by well under 1% of the mean at those sizes).

Approximation made here: a token's ``k`` choices are distinct experts, so its rows are
not independent trials; treating them as independent slightly overstates the spread.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

from ..errors import SpecError

EXACT_MAX_TRIALS = 1024


def _check(num_rows: int, bins: int) -> None:
    if num_rows < 0 or bins < 1 or int(num_rows) != num_rows or int(bins) != bins:
        raise SpecError(f"expected_max_load needs rows >= 0 and bins >= 1 (whole numbers), got {num_rows!r}, "
                        f"{bins!r}")


@lru_cache(maxsize=4096)
def expected_max_normal(bins: int) -> float:
    """E[max of ``bins`` independent standard normals] (0 for one), by quadrature:
    E[max] = integral of x * bins * phi(x) * Phi(x)^(bins - 1)."""
    if bins <= 1:
        return 0.0
    x = np.linspace(-10.0, 10.0, 8001)
    phi = np.exp(-0.5 * x * x) / math.sqrt(2.0 * math.pi)
    cdf = 0.5 * (1.0 + np.vectorize(math.erf)(x / math.sqrt(2.0)))
    f = x * bins * phi * cdf ** (bins - 1)
    return float(np.sum((f[1:] + f[:-1]) * 0.5 * np.diff(x)))


EXACT_CHUNK = 32     # values of m whose P(max < m) one FFT batch computes


def _exact(n: int, bins: int) -> float:
    """E[max] of a multinomial(n, 1/bins), by Poissonization: with X_i independent
    Poisson(n / bins), P(max < m) = P(all X_i < m, sum X_i = n) / P(sum X_i = n), and
    P(all X_i < m, sum X_i = n) is the x^n coefficient of the truncated series
    ``(sum_{j<m} P(X = j) x^j)^bins``. The coefficients of a batch of m values come from
    one FFT: each truncated series is evaluated at the roots of unity of a size above
    both n and the power's degree less n (so that nothing folds onto x^n), raised to the
    power there, and transformed back (within ~1e-14 of the exact polynomial product
    for up to 64 bins, ~1e-12 at 256; tested against it)."""
    lam = n / bins
    j = np.arange(n + 1)
    pois = np.exp(j * math.log(lam) - lam - np.array([math.lgamma(x + 1) for x in j]))
    p_sum = math.exp(n * math.log(n) - n - math.lgamma(n + 1))
    start = -(-n // bins)         # below the mean load some bin surely holds >= m rows
    expected = float(start - 1)
    m = start
    while m <= n:
        ms = np.arange(m, min(n, m + EXACT_CHUNK - 1) + 1)
        size = 1 << int(max(n, bins * (int(ms[-1]) - 1) - n)).bit_length()
        series = np.where(j[None, :] < ms[:, None], pois[None, :], 0.0)
        coeff = np.fft.irfft(np.fft.rfft(series, n=size, axis=1) ** bins, n=size, axis=1)[:, n]
        for p_all_below in coeff / p_sum:
            expected += 1.0 - min(1.0, float(p_all_below))
            if p_all_below > 1.0 - 1e-12:
                return expected
        m = int(ms[-1]) + 1
    return expected


@lru_cache(maxsize=100_000)
def expected_max_load(num_rows: int, bins: int) -> float:
    """Expected rows on the busiest of ``bins`` equally likely groups when ``num_rows``
    rows are dealt uniformly at random (see the module doc). One bin holds them all."""
    _check(num_rows, bins)
    if bins == 1 or num_rows == 0:
        return float(num_rows)
    if num_rows <= EXACT_MAX_TRIALS:
        return _exact(int(num_rows), int(bins))
    p = 1.0 / bins
    mean = num_rows * p
    return min(float(num_rows), mean + math.sqrt(num_rows * p * (1.0 - p)) * expected_max_normal(int(bins)))


def expected_distinct(num_tokens: int, k: int, num_experts: int, local: int) -> float:
    """Expected distinct experts (of ``local`` on one chip) that ``num_tokens`` tokens
    routed top-``k`` of ``num_experts`` touch: each expert is missed by a token with
    probability 1 - k / num_experts."""
    return local * (1.0 - (1.0 - k / num_experts) ** num_tokens)


__all__ = ["expected_max_load", "expected_max_normal", "expected_distinct", "EXACT_MAX_TRIALS"]
