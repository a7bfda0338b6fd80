"""How sure a comparison of two runs can be, from what each measured: a bootstrap of the
difference of percentiles, read off the runs' histograms, and exact tests of counts.

- A latency percentile is judged by resampling both runs' latencies (their histograms,
  with the counts they hold) thousands of times and asking, of this run's percentile minus
  the rule's limit of the baseline's, how low it stays in the worst ``a`` of the
  replicates (its median less as many of their standard deviations as a one-sided ``a``
  asks for): above zero, the run broke the rule with confidence 1 - ``a``. The two runs'
  sampling noise is judged together, as it adds up, not each bounded alone. With fewer
  than five requests above the percentile it means little: :func:`requests_needed` says
  how many it takes (a p99 needs 500).
- A failure rate (or the share of one status) is judged with an exact one-sided binomial
  test: could this run's failures have come from a rate at the rule's limit? One reset in
  sixty requests could.

The random draws (numpy's multinomial, seeded per measure, so that a comparison always
gives the same verdict) and the binomial law (``scipy.special``'s incomplete beta
functions) come from libraries; this module decides what to draw and which tails to ask
for.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from scipy.special import bdtrc, ndtri

#: (value, count) pairs in increasing value: a histogram of latencies (ms) or sizes.
Histogram = Sequence[tuple[float, int]]
#: requests above a percentile before it is judged: fewer leave it to one or two requests.
ABOVE = 5
#: bootstrap replicates of each percentile's difference.
DRAWS = 2000


def total(histogram: Histogram) -> int:
    return sum(count for _, count in histogram)


def at_rank(histogram: Histogram, rank: int) -> float:
    """The value of the ``rank``-th smallest observation (1-based) of ``histogram``."""
    seen = 0
    for value, count in histogram:
        seen += count
        if seen >= rank:
            return value
    raise ValueError(f"rank {rank} past the {seen} observations")


def point(histogram: Histogram, q: float) -> float:
    """The q-quantile of ``histogram`` itself."""
    return at_rank(histogram, max(1, math.ceil(q * total(histogram))))


def requests_needed(q: float) -> int:
    """Requests a run needs before its q-quantile is judged (``ABOVE`` beyond it)."""
    return max(math.ceil(ABOVE / (1.0 - q) - 1e-9), 10)


def quantile_draws(histogram: Histogram, q: float, draws: int, rng: np.random.Generator) -> Any:
    """The q-quantile of ``draws`` resamples of ``histogram`` (each as many values as it
    holds, drawn with replacement from its counts)."""
    values = np.array([value for value, _ in histogram], np.float64)
    counts = np.array([count for _, count in histogram], np.float64)
    n = int(counts.sum())
    resampled = rng.multinomial(n, counts / n, size=draws)
    rank = max(1, math.ceil(q * n))
    index = np.argmax(np.cumsum(resampled, axis=1) >= rank, axis=1)
    return values[index]


def quantile_excess(
    current: Histogram,
    baselines: Sequence[Histogram],
    q: float,
    limit: Callable[[Any], Any],
    a: float,
    seed: int,
) -> tuple[float, float]:
    """(the ``a`` quantile, the median) over bootstrap replicates of this run's q-quantile
    minus ``limit`` of the baselines'. Several baselines are pooled, and the spread of
    their own percentiles (the worst night's over their mean) widens the limit: noise the
    nights themselves show is no regression."""
    rng = np.random.default_rng(seed)
    pooled: dict[float, int] = {}
    for histogram in baselines:
        for value, count in histogram:
            pooled[value] = pooled.get(value, 0) + count
    spread = 1.0
    if len(baselines) > 1:
        points = [point(h, q) for h in baselines]
        spread = max(points) / (sum(points) / len(points)) if all(points) else 1.0
    before = quantile_draws(sorted(pooled.items()), q, DRAWS, rng) * spread
    now = quantile_draws(current, q, DRAWS, rng)
    excess = now - limit(before)
    # The far tail of a few thousand replicates is too thin to read at a per mille: its
    # place is taken from their spread (a normal tail), their centre from their median.
    middle = float(np.median(excess))
    return middle + float(ndtri(a)) * float(np.std(excess)), middle


def excess_p_value(failures: int, requests: int, limit: float) -> float:
    """P(at least ``failures`` of ``requests`` fail) if each fails with probability
    ``limit``: small means the run failed more than the limit explains."""
    if failures <= 0 or limit >= 1.0:
        return 1.0
    return float(bdtrc(failures - 1, requests, max(limit, 0.0)))


def failures_needed(requests: int, limit: float, a: float) -> int | None:
    """The fewest failures of ``requests`` that would be significant at ``a`` against a
    rate of ``limit`` (None: not even all of them would)."""
    if excess_p_value(requests, requests, limit) >= a:
        return None
    low, high = 1, requests
    while low < high:
        middle = (low + high) // 2
        if excess_p_value(middle, requests, limit) < a:
            high = middle
        else:
            low = middle + 1
    return low


def requests_to_judge_rate(limit: float, a: float) -> int:
    """Requests a run needs before even all of them failing could be told from the limit."""
    if limit <= 0.0:
        return 1
    if limit >= 1.0:
        return 0
    return math.ceil(math.log(a) / math.log(limit))
