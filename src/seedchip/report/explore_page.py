"""The ``explore`` page: the Pareto frontier (hover shows the design), parallel coordinates
over the axes and objectives, the baseline (the H200 in the shipped spaces) for reference,
the top designs and why points were infeasible. From a run folder every stored point is
shown; from ``explore --json`` the frontier only."""

from __future__ import annotations

import math

from ..explore.report import SHORT, fmt_obj, fmt_param
from .page import PALETTE, Page, plotly, show

TOP = 25
MAX_OTHERS = 300      # designs off the frontier drawn at most (evenly sampled): the page stays under 5 MB


def _value(r: dict, name: str):
    if name in (r.get("objectives") or {}):
        return r["objectives"][name]
    return (r.get("metrics") or {}).get(name)


def _hover(r: dict, objs: list[str]) -> str:
    parts = [f"{SHORT.get(k, k)} = {fmt_param(k, v)}" for k, v in r["params"].items()]
    parts += [f"{o.replace('_', ' ')}: {fmt_obj(o, _value(r, o))}" for o in objs]
    m = r.get("metrics") or {}
    if m.get("unit_cost_usd") is not None:
        parts.append(f"unit cost ${m['unit_cost_usd']:,.0f}, die {m.get('die_area_mm2', 0):.0f} mm²")
    return "<br>".join(parts)


def _brief(r: dict) -> str:
    """A design in one short line (the hover of a point off the frontier)."""
    return " · ".join(f"{SHORT.get(k, k)} {fmt_param(k, v)}" for k, v in r["params"].items())


def others(d: dict, points: list[dict]) -> list[dict]:
    """The feasible designs off the frontier, at most MAX_OTHERS of them, evenly sampled."""
    keys = {r["key"] for r in d["frontier"]}
    rest = [r for r in points if r["key"] not in keys and r.get("feasible", True) and r.get("objectives")]
    if len(rest) <= MAX_OTHERS:
        return rest
    step = len(rest) / MAX_OTHERS
    return [rest[int(i * step)] for i in range(MAX_OTHERS)]


def _pareto(page: Page, d: dict, points: list[dict]) -> None:
    go = plotly()
    objs = d["objectives"]
    x, y = (objs[0], objs[1]) if len(objs) >= 2 else (objs[0], "unit_cost_usd")
    front = sorted(d["frontier"], key=lambda r: _value(r, x))
    rest = others(d, points)
    fig = go.Figure()
    if rest:
        fig.add_trace(go.Scatter(x=[_value(r, x) for r in rest], y=[_value(r, y) for r in rest], mode="markers",
                                 name="feasible designs", marker=dict(color="#aab4bd", size=6),
                                 text=[_brief(r) for r in rest], hovertemplate="%{text}<br>%{x:.4g}, %{y:.4g}"
                                                                                 "<extra></extra>"))
    fig.add_trace(go.Scatter(x=[_value(r, x) for r in front], y=[_value(r, y) for r in front],
                             mode="lines+markers" if len(objs) == 2 else "markers", name="Pareto frontier",
                             marker=dict(color=PALETTE[0], size=10), line=dict(color=PALETTE[0]),
                             text=[_hover(r, objs) for r in front], hovertemplate="%{text}<extra></extra>"))
    b = d.get("baseline")
    if b and b.get("objectives"):
        fig.add_trace(go.Scatter(x=[_value(b, x)], y=[_value(b, y)], mode="markers+text", name=f"{b['chip']} (reference)",
                                 text=[b["chip"]], textposition="top center",
                                 marker=dict(symbol="star", size=17, color="#1d2731"),
                                 hovertemplate=f"{b['chip']}<br>%{{x:.4g}}, %{{y:.4g}}<extra></extra>"))
    fig.update_xaxes(title_text=x.replace("_", " "))
    fig.update_yaxes(title_text=y.replace("_", " "))
    more = f" (frontier over {len(objs)} objectives, drawn on the first two)" if len(objs) > 2 else ""
    off = sum(1 for r in points if r["key"] not in {f["key"] for f in front} and r.get("feasible", True))
    if off > len(rest):
        more += f"; {len(rest)} of the {off} designs off the frontier, evenly sampled"
    page.figure(fig, f"Every feasible design{more}; hover a point for its design.", height=460)


def _dimension(points: list[dict], name: str, is_param: bool):
    """(label, normalise(value) -> 0..1 or None, tick text at 0 and 1) of one parallel axis."""
    vals = [r["params"].get(name) if is_param else _value(r, name) for r in points]
    vals = [v for v in vals if v is not None]
    if not vals:
        return None
    label = SHORT.get(name, name.replace("_", " "))
    if any(isinstance(v, str) for v in vals):
        cats = sorted({str(v) for v in vals})
        n = max(len(cats) - 1, 1)
        return label, (lambda v: cats.index(str(v)) / n if str(v) in cats else None), cats[0], cats[-1]
    lo, hi = min(vals), max(vals)
    log = lo > 0 and hi / lo > 20
    f = (lambda v: math.log(v)) if log else (lambda v: v)
    span = (f(hi) - f(lo)) or 1.0
    fmt = (lambda v: fmt_param(name, v)) if is_param else (lambda v: fmt_obj(name, v))
    return label, (lambda v: None if v is None else (f(v) - f(lo)) / span), fmt(lo), fmt(hi)


def _parallel(page: Page, d: dict, points: list[dict]) -> None:
    go = plotly()
    feas = [r for r in points if r.get("feasible", True) and r.get("objectives")]
    dims = [(a, True) for a in d["axes"]] + [(o, False) for o in d["objectives"]]
    axes = [(n, p, _dimension(feas, n, p)) for n, p in dims]
    axes = [(n, p, ax) for n, p, ax in axes if ax is not None]
    if len(axes) < 2 or not feas:
        return

    def line(r):
        return [ax[1](r["params"].get(n) if p else _value(r, n)) for n, p, ax in axes]
    xs = list(range(len(axes)))
    fig = go.Figure()
    keys = {r["key"] for r in d["frontier"]}
    gx, gy = [], []
    for r in others(d, points):
        gx += xs + [None]
        gy += [None if v is None else round(v, 3) for v in line(r)] + [None]
    if gx:
        fig.add_trace(go.Scatter(x=gx, y=gy, mode="lines", name="other feasible designs", hoverinfo="skip",
                                 line=dict(color="rgba(150,160,170,0.35)", width=1)))
    for i, r in enumerate(x for x in feas if x["key"] in keys):
        fig.add_trace(go.Scatter(x=xs, y=line(r), mode="lines+markers", name="Pareto frontier", legendgroup="front",
                                 showlegend=i == 0, line=dict(color=PALETTE[i % len(PALETTE)], width=2),
                                 marker=dict(size=5), text=[_hover(r, d["objectives"])] * len(xs),
                                 hovertemplate="%{text}<extra></extra>"))
    for j, (_, _, ax) in enumerate(axes):
        fig.add_annotation(x=j, y=-0.04, text=ax[2], showarrow=False, yanchor="top", font=dict(size=10))
        fig.add_annotation(x=j, y=1.04, text=ax[3], showarrow=False, yanchor="bottom", font=dict(size=10))
        fig.add_annotation(x=j, y=1.16, text=f"<b>{ax[0]}</b>", showarrow=False, yanchor="bottom", font=dict(size=11))
    fig.update_xaxes(tickvals=xs, showticklabels=False, showgrid=True, gridcolor="#9aa5ae",
                     range=[-0.4, len(xs) - 0.6])
    fig.update_yaxes(visible=False, range=[-0.12, 1.26])
    fig.update_layout(margin=dict(t=30, l=30, r=30))
    page.figure(fig, "Parallel coordinates: each line a design, each axis from its lowest (bottom) to its highest (top) "
                "value among the feasible designs (log scale where the range is wide); coloured: the frontier.",
                height=420)


def _top_table(page: Page, d: dict) -> None:
    axes, objs = d["axes"], d["objectives"]
    rows = []
    for i, r in enumerate(d["frontier"][:TOP], 1):
        m = r.get("metrics") or {}
        rows.append([i, *(fmt_param(a, r["params"].get(a)) for a in axes), *(fmt_obj(o, _value(r, o)) for o in objs),
                     show(m.get("unit_cost_usd"), "usd"), show(m.get("die_area_mm2")), show(m.get("tdp_w"), "w"),
                     "yes" if r.get("dominates_baseline") else ""])
    b = d.get("baseline")
    if b:
        m = b.get("metrics") or {}
        rows.append([b["chip"], *([""] * len(axes)), *(fmt_obj(o, (b.get("objectives") or {}).get(o)) for o in objs),
                     show(m.get("unit_cost_usd"), "usd"), show(m.get("die_area_mm2")), show(m.get("tdp_w"), "w"),
                     "reference"])
    heads = ["#", *(SHORT.get(a, a) for a in axes), *(o.replace("_", " ") + (" ↑" if d["directions"].get(o) == "max"
                                                                               else " ↓") for o in objs),
             "unit cost", "die mm²", "TDP", "beats reference"]
    page.table(heads, rows, f"The frontier, best first by {objs[0].replace('_', ' ')} (first {TOP}).")


def build(kind: str, d: dict) -> Page:
    points = d.get("points") or d["frontier"]
    p = Page("explore", f"Design space: {d['space']}", f"{d['search']} search over {', '.join(d['axes'])}; objectives "
             + ", ".join(f"{o} ({d['directions'].get(o)})" for o in d["objectives"]))
    p.kpi("designs evaluated", d["num_points"], "int", "num_points")
    p.kpi("feasible", d["num_feasible"], "int", "num_feasible")
    p.kpi("on the frontier", len(d["frontier"]), "int", "frontier.length")
    b = d.get("baseline")
    if d["frontier"] and b and b.get("objectives"):
        o = d["objectives"][0]
        best = _value(d["frontier"][0], o)
        p.kpi(f"best {o.replace('_', ' ')}", best, "", f"frontier.0.objectives.{o}",
              f"{best / b['objectives'][o]:.2f}x the {b['chip']}" if b["objectives"].get(o) else "")
        p.kpi("frontier designs beating the reference", sum(1 for r in d["frontier"] if r.get("dominates_baseline")),
              "int", "")
    p.facts("Inputs", {"space": d["space"], "search": d["search"], "axes": d["axes"], "objectives": d["objectives"],
                       **{f"run {k}": v for k, v in (d.get("run_options") or {}).items()}})
    p.facts("Provenance", {"store": d.get("store"), "backend": d.get("backend"),
                           "points shown": d.get("num_points_shown"), "reference chip": b["chip"] if b else None})
    p.section("Pareto frontier")
    _pareto(p, d, points)
    p.section("Designs across every axis")
    _parallel(p, d, points)
    p.section("Top designs")
    _top_table(p, d)
    reasons = d.get("infeasible_reasons") or {}
    if reasons:
        p.table(["why infeasible", "designs"], [[k, v] for k, v in reasons.items()], "Infeasible designs by reason.")
    if not d.get("points"):
        p.note("Made from explore --json, which holds the frontier only: give the run folder for every design.")
    return p
