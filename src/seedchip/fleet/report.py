"""Human outputs of a plan: Rich tables (per quarter, binding constraints, unmet demand,
infeasibility, what-if difference), plots (installed base by device, spend, power, served
tokens) as Plotly HTML (self-contained; a hand-written SVG page when Plotly is not installed)
and PNG (matplotlib, skipped with a note when it is not installed), and the files of ``--out``."""

from __future__ import annotations

import html
import json
from pathlib import Path

from ..outputs import write_text
from .capacity import Capacity, override_yaml


def _si(v: float | None, unit: str = "") -> str:
    if v is None:
        return "-"
    a = abs(v)
    for f, p in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if a >= f:
            return f"{v / f:.3g}{p}{unit}"
    return f"{v:.3g}{unit}"


def _usd(v: float | None) -> str:
    if v is None:
        return "-"
    sign, a = ("-" if v < 0 else ""), abs(v)
    for f, p in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if a >= f:
            return f"{sign}${a / f:,.2f}{p}"
    return f"{sign}${a:,.2f}"


def _num(v: float | None) -> str:
    if v is None:
        return "-"
    return f"{v:,.0f}" if abs(v) >= 100 else f"{v:,.3g}"


def _esc(text: str) -> str:
    from rich.markup import escape
    return escape(text)


def quarter_table(d: dict):
    from rich.table import Table
    devs = list(d["devices"])
    status = d["status"] if d["status"] == "optimal" else f"[red]{d['status'].upper()}[/red]"
    pv = f", present value at {d['discount_rate_per_year']:.0%}/yr" if d["discount_rate_per_year"] else ""
    t = Table(title=f"{_esc(d['scenario'])}: {status}, total cost {_usd(d['total_cost_usd'])} ({d['objective']}{pv}; "
                    f"undiscounted capex {_usd(d['total_capex_usd'])} + energy {_usd(d['total_energy_usd'])})",
              header_style="bold")
    t.add_column("quarter")
    buyable = [x for x in devs if any(q["purchases"][x] for q in d["quarters"]) or d["devices"][x]["first_delivery"]]
    for dev in buyable:
        t.add_column(_esc(f"buy {dev}"), justify="right")
    for dev in devs:
        t.add_column(_esc(f"installed {dev}"), justify="right")
    for col in ("served tok/s", "unmet", "power MW", "spend", "$/Mtok"):
        t.add_column(col, justify="right")
    unmet = {}
    for u in d["unmet_demand"]:
        unmet[u["quarter"]] = unmet.get(u["quarter"], 0.0) + u["unmet_tokens_per_s"]
    for q in d["quarters"]:
        lim = f"/{q['power_limit_mw']:.0f}" if q["power_limit_mw"] is not None else ""
        cpm = q["cost_per_million_tokens_usd"]
        t.add_row(q["quarter"], *[f"{q['purchases'][x]:,}" for x in buyable], *[f"{q['installed'][x]:,}" for x in devs],
                  _si(sum(q["served_tokens_per_s"].values())),
                  _si(unmet[q["quarter"]]) if q["quarter"] in unmet else "-",
                  f"{q['power_mw']:.0f}{lim}", _usd(q["spend_usd"]), f"${cpm:.3f}" if cpm is not None else "-")
    return t


def binding_table(d: dict):
    from rich.table import Table
    t = Table(title="Binding constraints (shadow price: what one more unit of the limit saves, LP relaxation)",
              header_style="bold")
    for col in ("constraint", "limit", "used", "shadow price", "per"):
        t.add_column(col, justify="left" if col in ("constraint", "per") else "right")
    for b in d["binding_constraints"]:
        money = b["kind"] == "budget"
        fmt = _usd if money else _num
        sp = b["shadow_price_usd"]
        t.add_row(_esc(b["name"]) + ("" if b["tight_in_plan"] else " (LP only)"), fmt(b["limit"]), fmt(b["used"]),
                  "-" if sp is None else (f"{sp:.4f}" if money else _usd(sp)), b["shadow_price_unit"])
    return t


def whatif_table(d: dict):
    from rich.table import Table
    w = d["what_if"]
    diff = w["diff"]
    devs = list(d["devices"])
    pct = diff["total_cost_delta_pct"]
    t = Table(title="What-if: " + _esc("; ".join(c["applied"] for c in w["changes"]))
              + f"  | total cost {_usd(diff['base_total_cost_usd'])} -> {_usd(diff['total_cost_usd'])} "
              f"({_usd(diff['total_cost_delta_usd'])}{f', {pct:+.1f}%' if pct is not None else ''})"
              + (f"  | status {diff['base_status']} -> {diff['status']}" if diff["status"] != diff["base_status"] else ""),
              header_style="bold")
    t.add_column("quarter")
    for dev in devs:
        t.add_column(_esc(f"d buy {dev}"), justify="right")
    for col in ("d spend", "d power MW", "d $/Mtok"):
        t.add_column(col, justify="right")
    for q in diff["quarters"]:
        c = q["cost_per_million_tokens_usd"]
        t.add_row(q["quarter"], *[f"{q['purchases'][x]:+,}" if q["purchases"][x] else "0" for x in devs],
                  _usd(q["spend_usd"]), f"{q['power_mw']:+.0f}", f"{c:+.3f}" if c is not None else "-")
    t.add_row("total", *[f"{diff['purchases_delta_chips'][x]:+,}" for x in devs], _usd(diff["total_cost_delta_usd"]), "", "")
    return t


def economics_lines(d: dict) -> list[str]:
    """The build decision, the baseline, the saving, the payback and the hedge, as sentences."""
    out = []
    build = d.get("build") or {}
    if d.get("baseline") is not None:
        b = d["baseline"]
        verdict = "build" if d["build_asic"] else "do not build"
        nre = f" (NRE {_usd(d['nre_usd'])} paid)" if d["nre_usd"] else ""
        sav = d["asic_savings_usd"]
        if sav is None:
            why = ("the GPU-only baseline cannot meet demand" if b["status"] == "infeasible"
                   else "the plan cannot meet demand")
            out.append(f"our chip: {verdict}{nre}; no saving figure: {why} "
                       f"(baseline total {_usd(b['total_cost_usd'])})")
        else:
            pb = d["payback_quarter"]
            out.append(f"our chip: {verdict}{nre}; GPU-only baseline {_usd(b['total_cost_usd'])} -> saving "
                       f"{_usd(sav)} ({d['asic_savings_pct']:+.1f}%)"
                       + (f", paid back by {pb}" if pb else (", not paid back within the horizon" if d["build_asic"] else "")))
    elif build:
        out.append("our chip: " + ", ".join(f"{k} {'built' if v else 'not built'}" for k, v in build.items()))
    c = d.get("confidence")
    if c:
        hedge = (f"hedge {_usd(c['hedge_cost_usd'])} over the expected plan ({_usd(c['expected_total_cost_usd'])})"
                 if c["hedge_cost_usd"] is not None else "no hedge figure: demand cannot be met at this confidence "
                 "(see the unmet demand)")
        out.append(f"planned for demand met with probability {c['probability']:g}: {hedge}"
                   + (f"; respin assumed for {', '.join(c['respin_assumed'])}" if c["respin_assumed"] else ""))
    return out


def per_device_table(d: dict):
    """Unit cost and, per class, output tokens/s per chip (derated) and $ per million tokens within SLO."""
    from rich.table import Table
    pd = d["per_device"]
    classes = sorted({c for v in pd.values() for c in v["classes"]})
    t = Table(title="Per device: output tokens/s per chip at the SLOs (derated) and $ per million tokens "
                    "(capex over the lifetime + energy)", header_style="bold")
    t.add_column("device")
    t.add_column("unit $", justify="right")
    for c in classes:
        t.add_column(_esc(f"{c} tok/s"), justify="right")
        t.add_column(_esc(f"{c} $/Mtok"), justify="right")
    for dev, v in pd.items():
        cells = []
        for c in classes:
            x = v["classes"].get(c)
            cells += [_si(x["tokens_per_s_per_chip"]) if x else "-",
                      f"${x['usd_per_million_tokens']:.3f}" if x else "-"]
        t.add_row(_esc(dev), _usd(v["unit_cost_usd"]), *cells)
    return t


def sweep_table(d: dict):
    from rich.table import Table
    sw = d["sweep"]
    t = Table(title=f"Sweep {_esc(sw['sweep'])}" + "".join(
        f"  | {f['flips']} flips at {_esc(f['what_if'])}" for f in sw["break_even"]), header_style="bold")
    for col in ("value", "status", "build", "our chips", "total cost", "saving", "payback"):
        t.add_column(col, justify="left" if col in ("value", "status", "payback") else "right")
    for pt in sw["points"]:
        t.add_row(_esc(pt["what_if"].split("=", 1)[1]), pt["status"], "yes" if pt["build_asic"] else "no",
                  f"{pt['own_chips_purchased']:,}", _usd(pt["total_cost_usd"]),
                  "GPU-only short" if pt["asic_savings_usd"] is None and pt["baseline_status"] == "infeasible"
                  else _usd(pt["asic_savings_usd"]),
                  pt["payback_quarter"] or "-")
    return t


def render(d: dict, console) -> None:
    console.print(quarter_table(d))
    for line in economics_lines(d):
        console.print(_esc(line))
    if d.get("per_device"):
        console.print(per_device_table(d))
    if d["binding_constraints"]:
        console.print(binding_table(d))
    inf = d.get("infeasibility")
    if inf:
        console.print(f"[red]infeasible[/red]: {_esc(inf['explanation'])}")
        console.print("the plan above is the best within the limits; unmet demand is reported below")
    if d["unmet_demand"]:
        from rich.table import Table
        t = Table(title="Unmet demand", header_style="bold")
        for col in ("class", "quarter", "share", "tokens/s"):
            t.add_column(col, justify="right" if col in ("share", "tokens/s") else "left")
        for u in d["unmet_demand"]:
            t.add_row(u["demand"], u["quarter"], f"{u['unmet_share']:.1%}", _si(u["unmet_tokens_per_s"]))
        console.print(t)
    if d.get("what_if"):
        console.print(whatif_table(d))
        diff = d["what_if"]["diff"]
        if diff["binding_added"] or diff["binding_removed"]:
            console.print(_esc(f"binding now: {', '.join(diff['binding_added']) or '-'}; no longer: "
                               f"{', '.join(diff['binding_removed']) or '-'}"))
    for c in d["capacity"]:
        if c.get("candidates"):       # a deployment search: one line per device x class, the chosen plan
            chosen = next((x for x in c["candidates"] if x["chosen"]), None)
            plan_txt = (f"{chosen['label']}: {_si(chosen['tokens_per_s_per_chip'])} tokens/s per chip"
                        if chosen else "[red]no capacity[/red]")
            console.print(f"deployment {_esc(c['device'])} x {_esc(c['demand'])}: {plan_txt} ({_esc(c['choice'])})")
    if d.get("sweep"):
        console.print(sweep_table(d))
    srcs = sorted({c["source"] for c in d["capacity"]})
    console.print(f"capacities: {len(d['capacity'])} device x class pairs ({', '.join(srcs)}); "
                  f"{d['inputs']['num_variables']} variables ({d['inputs']['num_integer']} integer), "
                  f"{d['inputs']['num_constraints']} constraints")


# ---- plots ---------------------------------------------------------------------------------
def _series(d: dict) -> dict:
    qs = [q["quarter"] for q in d["quarters"]]
    devs = list(d["devices"])
    models = list(d["quarters"][0]["served_tokens_per_s"]) if d["quarters"] else []
    return {"quarters": qs,
            "installed": {x: [q["installed"][x] for q in d["quarters"]] for x in devs},
            "capex": {x: [q["purchases"][x] * d["devices"][x]["capex_per_chip_usd"] for q in d["quarters"]] for x in devs
                      if any(q["purchases"][x] for q in d["quarters"])},
            "energy": [q["energy_usd"] for q in d["quarters"]],
            "power": [q["power_mw"] for q in d["quarters"]],
            "power_limit": [q["power_limit_mw"] for q in d["quarters"]],
            "served": {m: [q["served_tokens_per_s"][m] for q in d["quarters"]] for m in models}}


PANELS = (("installed", "Installed base (chips)"), ("spend", "Spend per quarter ($): capex by device + energy"),
          ("power", "Facility power (MW)"), ("served", "Served output tokens/s (average)"))


def write_plotly(d: dict, path: Path) -> bool:
    try:
        import plotly.graph_objects as go
        from plotly.subplots import make_subplots
    except ImportError:
        return False
    s = _series(d)
    fig = make_subplots(rows=2, cols=2, subplot_titles=[t for _, t in PANELS])
    x = s["quarters"]
    for name, ys in s["installed"].items():
        fig.add_trace(go.Bar(x=x, y=ys, name=f"installed {name}", legendgroup="installed"), 1, 1)
    for name, ys in s["capex"].items():
        fig.add_trace(go.Bar(x=x, y=ys, name=f"capex {name}", legendgroup="spend"), 1, 2)
    fig.add_trace(go.Bar(x=x, y=s["energy"], name="energy", legendgroup="spend"), 1, 2)
    fig.add_trace(go.Scatter(x=x, y=s["power"], name="power used", mode="lines+markers"), 2, 1)
    if any(v is not None for v in s["power_limit"]):
        fig.add_trace(go.Scatter(x=x, y=s["power_limit"], name="power limit", mode="lines", line={"dash": "dash"}), 2, 1)
    for name, ys in s["served"].items():
        fig.add_trace(go.Bar(x=x, y=ys, name=f"served {name}", legendgroup="served"), 2, 2)
    fig.update_layout(barmode="stack", title=f"{d['scenario']}: {d['status']}, total {_usd(d['total_cost_usd'])}",
                      template="plotly_white", height=850)
    # a fixed div id, not a random one: the same input writes the same file
    fig.write_html(str(path), include_plotlyjs=True, full_html=True, div_id="plan")
    return True


def _svg_panel(title: str, x: list[str], stacks: dict[str, list[float]], lines: dict[str, list], w=560, h=320) -> str:
    colors = ["#4C78A8", "#F58518", "#54A24B", "#E45756", "#72B7B2", "#EECA3B", "#B279A2", "#FF9DA6"]
    pad_l, pad_b, pad_t = 70, 40, 30
    n = max(len(x), 1)
    tops = [sum(v[i] for v in stacks.values()) for i in range(len(x))] if stacks else [0] * len(x)
    lmax = [v for ys in lines.values() for v in ys if v is not None]
    ymax = max(tops + lmax + [1e-12])
    sx = (w - pad_l - 10) / n
    sy = (h - pad_b - pad_t) / ymax
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="11">',
           f'<text x="{w / 2}" y="16" text-anchor="middle" font-size="13">{html.escape(title)}</text>',
           f'<line x1="{pad_l}" y1="{h - pad_b}" x2="{w - 10}" y2="{h - pad_b}" stroke="#333"/>',
           f'<text x="{pad_l - 5}" y="{pad_t + 4}" text-anchor="end">{_si(ymax)}</text>',
           f'<text x="{pad_l - 5}" y="{h - pad_b}" text-anchor="end">0</text>']
    for i, q in enumerate(x):
        out.append(f'<text x="{pad_l + (i + 0.5) * sx}" y="{h - pad_b + 14}" text-anchor="middle">{html.escape(q)}</text>')
        base = 0.0
        for k, (name, ys) in enumerate(stacks.items()):
            v = ys[i]
            if v > 0:
                out.append(f'<rect x="{pad_l + i * sx + 0.1 * sx:.1f}" y="{h - pad_b - (base + v) * sy:.1f}" '
                           f'width="{0.8 * sx:.1f}" height="{v * sy:.1f}" fill="{colors[k % len(colors)]}">'
                           f'<title>{html.escape(name)} {q}: {v:,.4g}</title></rect>')
            base += v
    for k, (name, ys) in enumerate(lines.items()):
        pts = " ".join(f"{pad_l + (i + 0.5) * sx:.1f},{h - pad_b - v * sy:.1f}" for i, v in enumerate(ys) if v is not None)
        if pts:
            dash = ' stroke-dasharray="5,4"' if k else ""
            out.append(f'<polyline points="{pts}" fill="none" stroke="{["#333", "#E45756"][k % 2]}" stroke-width="2"'
                       f'{dash}><title>{html.escape(name)}</title></polyline>')
    legend = list(stacks) + list(lines)
    for k, name in enumerate(legend):
        col = colors[k % len(colors)] if k < len(stacks) else ["#333", "#E45756"][(k - len(stacks)) % 2]
        out.append(f'<rect x="{pad_l + 5 + 120 * (k % 4)}" y="{h - 14 - 0 * (k // 4)}" width="10" height="10" fill="{col}"/>'
                   f'<text x="{pad_l + 18 + 120 * (k % 4)}" y="{h - 5}">{html.escape(name[:16])}</text>')
    out.append("</svg>")
    return "\n".join(out)


def write_svg_html(d: dict, path: Path) -> None:
    s = _series(d)
    x = s["quarters"]
    panels = [
        _svg_panel(PANELS[0][1], x, s["installed"], {}),
        _svg_panel(PANELS[1][1], x, {**{f"capex {k}": v for k, v in s["capex"].items()}, "energy": s["energy"]}, {}),
        _svg_panel(PANELS[2][1], x, {}, {"power used": s["power"], "power limit": s["power_limit"]}),
        _svg_panel(PANELS[3][1], x, s["served"], {}),
    ]
    body = "\n".join(f'<div style="display:inline-block;margin:8px">{p}</div>' for p in panels)
    write_text(path, f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(d['scenario'])}</title></head>"
                    f"<body><h2>{html.escape(d['scenario'])}: {d['status']}, total {_usd(d['total_cost_usd'])}</h2>"
                    f"{body}</body></html>\n")


def write_png(d: dict, path: Path) -> bool:
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    s = _series(d)
    x = list(range(len(s["quarters"])))
    fig, axes = plt.subplots(2, 2, figsize=(13, 8.5))

    def stack(ax, series: dict, title: str):
        base = [0.0] * len(x)
        for name, ys in series.items():
            ax.bar(x, ys, bottom=base, label=name)
            base = [b + v for b, v in zip(base, ys)]
        ax.set_title(title)
        ax.legend(fontsize=7)

    stack(axes[0][0], s["installed"], PANELS[0][1])
    stack(axes[0][1], {**{f"capex {k}": v for k, v in s["capex"].items()}, "energy": s["energy"]}, PANELS[1][1])
    ax = axes[1][0]
    ax.plot(x, s["power"], marker="o", label="power used")
    if any(v is not None for v in s["power_limit"]):
        ax.plot(x, [v if v is not None else float("nan") for v in s["power_limit"]], "--", label="power limit")
    ax.set_ylim(bottom=0)
    ax.set_title(PANELS[2][1])
    ax.legend(fontsize=7)
    stack(axes[1][1], s["served"], PANELS[3][1])
    for a in axes.flat:
        a.set_xticks(x)
        a.set_xticklabels(s["quarters"], fontsize=7, rotation=30)
    fig.suptitle(f"{d['scenario']}: {d['status']}, total {_usd(d['total_cost_usd'])}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def write_outputs(result, out: Path) -> dict:
    """plan.json (and base_plan.json for a what-if), plan.html, plan.png (when matplotlib is
    installed) and capacity.yaml (a ``capacity_override`` block) in ``out``. The paths written
    and notes on what was skipped are returned (``plan`` keeps them in ``result.outputs``), not put
    in the plan's JSON, so that the JSON stays identical to the API's."""
    out.mkdir(parents=True, exist_ok=True)
    d = result.to_dict()
    written = {"json": str(out / "plan.json")}
    write_text(out / "plan.json", json.dumps(d, indent=2) + "\n")
    if d.get("what_if") and result.base is not None:
        write_text(out / "base_plan.json", json.dumps(result.base.to_dict(), indent=2) + "\n")
        written["base_json"] = str(out / "base_plan.json")
    html_path = out / "plan.html"
    if write_plotly(d, html_path):
        written["html"] = str(html_path)
    else:
        write_svg_html(d, html_path)
        written["html"] = str(html_path)
        written["note_html"] = "plotly is not installed: plan.html is a self-contained SVG page"
    if write_png(d, out / "plan.png"):
        written["png"] = str(out / "plan.png")
    else:
        written["note_png"] = "matplotlib is not installed: no plan.png (pip install matplotlib)"
    if d.get("sweep"):
        from .sweep import sweep_png
        if sweep_png(d["sweep"], out / "sweep.png"):
            written["sweep_png"] = str(out / "sweep.png")
    caps = [Capacity(**{k: v for k, v in c.items() if k != "tokens_per_s_per_chip"}) for c in d["capacity"]]
    write_text(out / "capacity.yaml", override_yaml(caps))
    written["capacity_yaml"] = str(out / "capacity.yaml")
    return written
