"""Serving metrics: per-request latencies, inter-token latency, utilisation, energy,
and time series of KV use and queue length. Memory is bounded: per-request figures
are kept in compact arrays, inter-token latency in a log-binned histogram."""

from __future__ import annotations

import math
from array import array

import numpy as np

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
        self.w = np.zeros(ITL_BINS_PER_DECADE * ITL_DECADES + 1)
        self.total = 0.0
        self.weighted_sum = 0.0

    def add(self, seconds: float, weight: float) -> None:
        if seconds <= 0 or weight <= 0:
            return
        i = int((math.log10(seconds / ITL_MIN_S)) * ITL_BINS_PER_DECADE)
        i = min(max(i, 0), len(self.w) - 1)
        self.w[i] += weight
        self.total += weight
        self.weighted_sum += seconds * weight

    def merge(self, other: "ItlHistogram") -> None:
        self.w += other.w
        self.total += other.total
        self.weighted_sum += other.weighted_sum

    def summary(self) -> dict:
        if self.total == 0:
            return summary(np.array([]))
        cum = np.cumsum(self.w) / self.total
        centres = ITL_MIN_S * 10 ** ((np.arange(len(self.w)) + 0.5) / ITL_BINS_PER_DECADE)
        q = lambda p: float(centres[min(int(np.searchsorted(cum, p)), len(cum) - 1)])
        nz = np.nonzero(self.w)[0]
        return {"mean": self.weighted_sum / self.total, "p50": q(0.5), "p90": q(0.9), "p99": q(0.99),
                "max": float(centres[nz[-1]])}


class Series:
    """Time series in fixed-width bins; the width doubles (bins merge) past max_bins."""

    def __init__(self, dt: float = 1.0, max_bins: int = 2000):
        self.dt, self.max_bins = dt, max_bins
        self.bins: dict[int, list] = {}

    def add(self, t: float, kv_used: float, running: int, waiting: int, preemptions: int) -> None:
        i = int(t // self.dt)
        b = self.bins.get(i)
        if b is None:
            if len(self.bins) >= self.max_bins:
                self._merge()
                i = int(t // self.dt)
                b = self.bins.get(i)
            if b is None:
                b = self.bins[i] = [0.0, 0, 0, 0]
        b[0] = max(b[0], kv_used)
        b[1] = max(b[1], running)
        b[2] = max(b[2], waiting)
        b[3] += preemptions

    def _merge(self) -> None:
        merged: dict[int, list] = {}
        for i, b in self.bins.items():
            m = merged.setdefault(i // 2, [0.0, 0, 0, 0])
            m[0], m[1], m[2], m[3] = max(m[0], b[0]), max(m[1], b[1]), max(m[2], b[2]), m[3] + b[3]
        self.bins, self.dt = merged, self.dt * 2

    def to_dict(self) -> dict:
        keys = sorted(self.bins)
        return {"bin_s": self.dt, "t_s": [k * self.dt for k in keys],
                "kv_used_max": [round(self.bins[k][0], 6) for k in keys],
                "running_max": [self.bins[k][1] for k in keys],
                "waiting_max": [self.bins[k][2] for k in keys],
                "preemptions": [self.bins[k][3] for k in keys]}


class Collector:
    def __init__(self):
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
        if r.extra.get("rejected"):
            self.rejected += 1
            return
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
                for k in ("arrival", "first_token", "finish", "first_scheduled", "input_len", "output_len",
                          "prefix_hit", "preemptions")}
