"""Sweeps: re-solve a plan over a range of one what-if and find where the decision flips.

    --sweep KEY=FROM..TO:STEPS      e.g. hbm_supply=-90%..0%:10, seedchip_nre=0..8e9:9, h200_price=x0.6..x1.2:7

FROM and TO are what-if values of one kind (``-90%``, ``x0.6`` or a number); STEPS points
(2-201) are spread evenly between them, ends included. Each point is a full plan with its
GPU-only baseline (``economics.py``). Where two neighbouring points disagree on building our chip
(``build_asic``) or on feasibility, the value where it flips is found by bisection
(``REFINE`` more solves, to 1/64 of a step) and reported as a break-even. The points, and then
the break-evens, can be solved in parallel (``plan --sweep ... --workers N`` or ``--ray``).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from ..errors import SpecError
from ..parallel import Inline
from .problem import Problem
from .whatif import apply_what_if, parse_value

MAX_STEPS = 201
REFINE = 6
SWEEP_RE = re.compile(r"^\s*([^=]+?)\s*=\s*(.+?)\s*\.\.\s*(.+?)\s*:\s*(\S+)\s*$")


def parse_sweep(text: str) -> tuple[str, str, list[float]]:
    """(key, kind of value, the values) of ``KEY=FROM..TO:STEPS``."""
    m = SWEEP_RE.match(str(text))
    if not m:
        raise SpecError(f"--sweep {text!r}: write KEY=FROM..TO:STEPS, e.g. hbm_supply=-90%..0%:10")
    key, a, b, n = m.groups()
    ka, va = parse_value(a, key)
    kb, vb = parse_value(b, key)
    if ka != kb:
        raise SpecError(f"--sweep {text!r}: FROM and TO must be of one kind (both percentages, both factors such as "
                        "x0.5, or both numbers)")
    try:
        steps = int(n)
    except ValueError:
        steps = 0
    if not 2 <= steps <= MAX_STEPS:
        raise SpecError(f"--sweep {text!r}: STEPS {n!r} must be a whole number from 2 to {MAX_STEPS}")
    if not (np.isfinite(va) and np.isfinite(vb)):
        raise SpecError(f"--sweep {text!r}: FROM and TO must be finite")
    return key, ka, [float(v) for v in np.linspace(va, vb, steps)]


def value_text(kind: str, v: float) -> str:
    """A swept value written as a what-if value."""
    if kind == "rel":
        return f"{v * 100:+.6g}%"
    if kind == "mul":
        return f"x{v:.6g}"
    return f"{v:.6g}"


def _point(p: Problem, key: str, kind: str, v: float, solve) -> dict:
    q, applied = apply_what_if(p, f"{key}={value_text(kind, v)}")
    d = solve(q).to_dict()
    own = sum(dev["total_purchased_chips"] for dev in d["devices"].values() if dev["kind"] == "own")
    return {"value": v, "what_if": f"{key}={value_text(kind, v)}", "applied": applied, "status": d["status"],
            "total_cost_usd": d["total_cost_usd"], "build_asic": d["build_asic"], "own_chips_purchased": own,
            "nre_usd": d["nre_usd"], "asic_savings_usd": d["asic_savings_usd"], "payback_quarter": d["payback_quarter"],
            "baseline_total_cost_usd": d["baseline"]["total_cost_usd"] if d["baseline"] else None,
            "baseline_status": d["baseline"]["status"] if d["baseline"] else None}


def _decision(pt: dict) -> tuple:
    return pt["build_asic"], pt["status"] == "infeasible"


def _refine(p: Problem, key: str, kind: str, lo: dict, hi: dict, solve) -> dict:
    """The flip between two neighbouring points, by bisection on the value."""
    a, b = lo, hi
    for _ in range(REFINE):
        mid = _point(p, key, kind, 0.5 * (a["value"] + b["value"]), solve)
        if _decision(mid) == _decision(a):
            a = mid
        else:
            b = mid
    what = ("build_asic" if a["build_asic"] != b["build_asic"] else "feasible")
    return {"flips": what, "between": [lo["value"], hi["value"]], "value": 0.5 * (a["value"] + b["value"]),
            "what_if": f"{key}={value_text(kind, 0.5 * (a['value'] + b['value']))}",
            "below": {"build_asic": a["build_asic"], "status": a["status"]},
            "above": {"build_asic": b["build_asic"], "status": b["status"]}}


def _sweep_state(shared: tuple) -> dict:
    """A worker's sweep: the problem, what is swept, the solver and its solved baselines."""
    p, key, kind, solve = shared
    return {"p": p, "key": key, "kind": kind, "solve": solve, "baselines": {}}


def _point_task(st: dict, v: float) -> dict:
    return _point(st["p"], st["key"], st["kind"], v, lambda q: st["solve"](q, st["baselines"]))


def _refine_task(st: dict, pair: tuple[dict, dict]) -> dict:
    return _refine(st["p"], st["key"], st["kind"], *pair, lambda q: st["solve"](q, st["baselines"]))


def _in_order(results, n: int) -> list:
    out = [None] * n
    for i, r in results:
        out[i] = r
    return out


def run_sweep(p: Problem, text: str, solve, backend=None) -> dict:
    """The sweep's points and break-evens. ``solve(problem, baselines) -> PlanResult`` solves one
    point (``baselines``: the GPU-only plans solved so far, by fingerprint; a module-level function
    when the backend runs elsewhere); ``backend``: a ``seedchip.parallel`` backend that solves the
    points (and then the break-evens) in parallel (default: one after another in this process).
    The result is the same on any backend, in the order of the swept values."""
    key, kind, values = parse_sweep(text)
    backend = backend if backend is not None else Inline()
    shared = (p, key, kind, solve)
    points = _in_order(backend.map(_point_task, values, setup=_sweep_state, shared=shared), len(values))
    pairs = [(a, b) for a, b in zip(points, points[1:]) if _decision(a) != _decision(b)]
    flips = _in_order(backend.map(_refine_task, pairs, setup=_sweep_state, shared=shared), len(pairs))
    return {"sweep": text, "key": key, "kind": kind, "points": points, "break_even": flips}


def sweep_png(sweep: dict, path: Path) -> Path | None:
    """Savings against the swept value, our chips bought on a second axis (None without matplotlib)."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    pts = sweep["points"]
    xs = [pt["value"] * (100 if sweep["kind"] == "rel" else 1) for pt in pts]
    sav = [(pt["asic_savings_usd"] or 0.0) / 1e9 for pt in pts]
    fig, ax = plt.subplots(figsize=(7.5, 4.2), dpi=110)
    ax.plot(xs, sav, "o-", color="#1f77b4", label="saving against GPU-only ($B)")
    ax.axhline(0, color="#888", lw=0.8)
    ax2 = ax.twinx()
    ax2.plot(xs, [pt["own_chips_purchased"] / 1e3 for pt in pts], "s--", color="#ff7f0e", label="our chips bought (k)")
    for f in sweep["break_even"]:
        ax.axvline(f["value"] * (100 if sweep["kind"] == "rel" else 1), color="#d62728", ls=":", lw=1.2)
    unit = " (%)" if sweep["kind"] == "rel" else (" (factor)" if sweep["kind"] == "mul" else "")
    ax.set_xlabel(sweep["key"] + unit)
    ax.set_ylabel("saving ($B)")
    ax2.set_ylabel("our chips bought (thousands)")
    ax.set_title(f"sweep {sweep['sweep']}" + (" - break-even marked" if sweep["break_even"] else ""))
    lines = ax.get_legend_handles_labels()[0] + ax2.get_legend_handles_labels()[0]
    ax.legend(lines, [ln.get_label() for ln in lines], loc="best", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, metadata={"Software": None})
    plt.close(fig)
    return path


__all__ = ["parse_sweep", "run_sweep", "sweep_png", "value_text"]
