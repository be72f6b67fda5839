"""Readers for measured kernel tables (the aiconfigurator "silicon" CSV layout) and
the public microbenchmark CSV. Plain ``csv`` + NumPy: no pandas in the core."""

from __future__ import annotations

import csv
import gzip
from pathlib import Path

import numpy as np

from ..errors import SpecError


def read_csv(path: str | Path) -> list[dict[str, str]]:
    p = Path(path)
    if not p.is_file():
        raise SpecError(f"measurement file {str(p)!r} does not exist")
    opener = gzip.open if p.suffix == ".gz" else open
    with opener(p, "rt", newline="") as f:
        return list(csv.DictReader(f))


def columns(rows: list[dict[str, str]], names: dict[str, type]) -> dict[str, np.ndarray]:
    out = {}
    for name, typ in names.items():
        if typ is str:
            out[name] = np.array([r[name] for r in rows])
        else:
            out[name] = np.array([typ(r[name]) for r in rows], dtype=float)
    return out


def holdout_mask(*keys: np.ndarray, fraction_denominator: int = 5) -> np.ndarray:
    """Deterministic shape-based split: a shape is held out when a hash of its key
    columns falls in one bucket of ``fraction_denominator`` (20% by default). The same
    shape is never in both halves."""
    h = np.zeros(len(keys[0]), dtype=np.uint64)
    for i, key in enumerate(keys):
        v = np.asarray(key, dtype=np.float64).astype(np.int64).astype(np.uint64)
        h = (h ^ (v + np.uint64(0x9E3779B97F4A7C15) + (h << np.uint64(6)) + (h >> np.uint64(2)))) * np.uint64(1099511628211 + i)
    return (h % np.uint64(fraction_denominator)) == 0
