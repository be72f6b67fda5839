"""The Pareto frontier: points no other point dominates (at least as good in every
objective and strictly better in one). Objectives to minimise are negated first."""

from __future__ import annotations

import numpy as np


def pareto_mask(values: np.ndarray) -> np.ndarray:
    """values: (n, k), every column to MAXIMISE. True where the row is non-dominated.
    Duplicate rows are all kept (neither dominates the other)."""
    v = np.asarray(values, dtype=float)
    n = len(v)
    if n == 0:
        return np.zeros(0, dtype=bool)
    order = np.argsort(-v[:, 0], kind="stable")
    keep = np.ones(n, dtype=bool)
    for i in order:
        if not keep[i]:
            continue
        # rows that i dominates
        ge = np.all(v[i] >= v, axis=1)
        gt = np.any(v[i] > v, axis=1)
        dominated = ge & gt
        keep &= ~dominated
    return keep


def frontier(rows: list[dict], objectives: list[str], directions: dict[str, str]) -> list[dict]:
    """The non-dominated feasible rows, best first by the first objective."""
    feas = [r for r in rows if r["feasible"] and r.get("objectives") and not r.get("is_baseline")]
    if not feas:
        return []
    sign = np.array([1.0 if directions[o] == "max" else -1.0 for o in objectives])
    vals = np.array([[r["objectives"][o] for o in objectives] for r in feas]) * sign
    mask = pareto_mask(vals)
    out = [r for r, m in zip(feas, mask) if m]
    return sorted(out, key=lambda r: -sign[0] * r["objectives"][objectives[0]])


def dominates(a: dict, b: dict, objectives: list[str], directions: dict[str, str]) -> bool:
    better = False
    for o in objectives:
        x, y = a[o], b[o]
        if directions[o] == "min":
            x, y = -x, -y
        if x < y:
            return False
        better |= x > y
    return better


__all__ = ["pareto_mask", "frontier", "dominates"]
