"""A stored sweep read back without changing it (``seedchip report DIR``): the same
dictionary ``explore(...).to_dict()`` returns, plus every stored point."""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import SpecError
from .evaluate import direction
from .pareto import frontier
from .runner import ExploreResult, _public
from .space import parse_space
from .store import Store

MAX_POINTS_SHOWN = 3000          # a report of a huge sweep keeps the frontier and a sample of the rest


def _sample(rows: list[dict], limit: int) -> list[dict]:
    """At most ``limit`` rows, the frontier first, the rest evenly spaced (deterministic)."""
    if len(rows) <= limit:
        return rows
    front = [r for r in rows if r.get("on_frontier")]
    rest = [r for r in rows if not r.get("on_frontier")]
    room = max(limit - len(front), 0)
    step = len(rest) / room if room else 0
    return front + [rest[int(i * step)] for i in range(room)]


def stored_run(directory: str | Path) -> dict:
    """The sweep in ``directory`` (its results.duckdb) as ``ExploreResult.to_dict()`` plus
    ``points``: every stored point (key, params, objectives, metrics, feasible, reason),
    at most MAX_POINTS_SHOWN of them, the frontier always among them."""
    d = Path(directory)
    if not (d / "results.duckdb").is_file():
        raise SpecError(f"{str(d)!r} holds no results.duckdb: give a folder written by seedchip explore --out")
    store = Store.read_only(d)
    try:
        text = store.get_meta("space_yaml")
        if text is None:
            raise SpecError(f"{str(d)!r} holds no design space: the sweep stored there never started")
        sp = parse_space(text, origin=str(store.path))
        opts = json.loads(store.get_meta("run_options") or "{}")
        rows = store.rows()
    finally:
        store.close()
    objs = sp.objectives
    front = frontier(rows, objs, {o: direction(o) for o in objs})
    keys = {r["key"] for r in front}
    for r in rows:
        r["on_frontier"] = r["key"] in keys
    base = next((r for r in rows if r["is_baseline"]), None)
    res = ExploreResult(space=sp, method=opts.get("search") or sp.search.method, rows=rows, front=front,
                        baseline=base, num_new=0, eval_s=0.0, elapsed_s=0.0, store=str(store.path), backend="stored",
                        workers=0)
    out = res.to_dict()
    points = [r for r in rows if not r["is_baseline"]]
    out["points"] = [{**_public(r), "feasible": r["feasible"], "reason": r["reason"], "on_frontier": r["on_frontier"]}
                     for r in _sample(points, MAX_POINTS_SHOWN)]
    out["num_points_shown"] = len(out["points"])
    out["run_options"] = opts
    return out


__all__ = ["stored_run", "MAX_POINTS_SHOWN"]
