"""The ``plan`` page: purchases and the installed fleet per quarter by device, demand
against what is served, power and HBM against their limits, the binding constraints with
their shadow prices, and, when the plan holds them, the baseline and savings, per-device
figures, the what-if difference and sweeps."""

from __future__ import annotations

from .page import PALETTE, Page, plotly, show
from .tables import any_table

# fields the planner may add; each is rendered when present (a scalar as a key number, the rest as a table)
EXTRA_SCALARS = (("asic_savings_usd", "savings from our chip", "usd"), ("asic_savings_pct", "savings", ""),
                 ("nre_usd", "NRE", "usd"),
                 ("payback_quarter", "payback quarter", ""), ("build_asic", "build our chip", ""))
EXTRA_TABLES = (("baseline", "Baseline (no chip of our own)"), ("per_device", "Per device"), ("sweep", "Sweep"))


def _devices(d: dict) -> list[str]:
    return list((d.get("devices") or {}).keys()) or sorted({k for q in d["quarters"] for k in q.get("installed", {})})


def _by_device(page: Page, d: dict, field: str, title: str, caption: str) -> None:
    go = plotly()
    qs = [q["quarter"] for q in d["quarters"]]
    fig = go.Figure()
    for i, dev in enumerate(_devices(d)):
        ys = [q.get(field, {}).get(dev, 0) for q in d["quarters"]]
        if any(ys):
            fig.add_trace(go.Bar(x=qs, y=ys, name=dev, marker_color=PALETTE[i % len(PALETTE)],
                                 hovertemplate=f"{dev}<br>%{{x}}: %{{y:,.0f}} chips<extra></extra>"))
    fig.update_layout(barmode="stack")
    fig.update_yaxes(title_text=title)
    page.figure(fig, caption, height=340)


def _demand(page: Page, d: dict) -> None:
    go = plotly()
    from plotly.subplots import make_subplots
    qs = [q["quarter"] for q in d["quarters"]]
    fig = make_subplots(rows=1, cols=3, subplot_titles=["demand and served (tokens/s)", "power (MW)", "HBM stacks"],
                        horizontal_spacing=0.08)
    classes = sorted({k for q in d["quarters"] for k in (q.get("demand_tokens_per_s") or {})})
    for i, c in enumerate(classes):
        col = PALETTE[i % len(PALETTE)]
        fig.add_trace(go.Scatter(x=qs, y=[q["demand_tokens_per_s"].get(c, 0) for q in d["quarters"]], name=f"{c} demand",
                                 line=dict(color=col, dash="dot")), row=1, col=1)
        fig.add_trace(go.Scatter(x=qs, y=[(q.get("served_tokens_per_s") or {}).get(c, 0) for q in d["quarters"]],
                                 name=f"{c} served", line=dict(color=col)), row=1, col=1)
    for col, used, limit, unit in ((2, "power_mw", "power_limit_mw", "MW"), (3, "hbm_stacks_used", "hbm_stacks_supply",
                                                                            "stacks")):
        fig.add_trace(go.Bar(x=qs, y=[q.get(used) for q in d["quarters"]], name=f"{unit} used", marker_color=PALETTE[4],
                             showlegend=False), row=1, col=col)
        fig.add_trace(go.Scatter(x=qs, y=[q.get(limit) for q in d["quarters"]], name=f"{unit} limit", mode="lines",
                                 line=dict(color="#b8354a", dash="dash", shape="hv"), showlegend=False), row=1, col=col)
    page.figure(fig, "Left: demand (dotted) and served tokens/s per demand class. Middle and right: power and HBM "
                "stacks used (bars) against the limits (dashed).", height=380)


def _spend(page: Page, d: dict) -> None:
    go = plotly()
    qs = [q["quarter"] for q in d["quarters"]]
    fig = go.Figure([go.Bar(x=qs, y=[q.get("capex_usd", 0) for q in d["quarters"]], name="capex", marker_color=PALETTE[0]),
                     go.Bar(x=qs, y=[q.get("energy_usd", 0) for q in d["quarters"]], name="energy",
                            marker_color=PALETTE[1])])
    fig.update_layout(barmode="stack")
    fig.update_yaxes(title_text="$")
    page.figure(fig, "Spend per quarter.", height=300)


def _binding(page: Page, d: dict) -> None:
    rows = [[b.get("name"), b.get("kind"), show(b.get("limit")), show(b.get("used")), show(b.get("slack")),
             show(b.get("shadow_price_usd"), "usd"), b.get("shadow_price_unit") or ""]
            for b in d.get("binding_constraints") or []]
    if rows:
        page.table(["constraint", "kind", "limit", "used", "slack", "shadow price", "per"], rows,
                   "Binding constraints: the shadow price is what one more unit of the limit would save "
                   "(from the LP relaxation).", numeric={2, 3, 4, 5})
    else:
        page.note("No constraint binds.")


def _what_if(page: Page, d: dict) -> None:
    w = d.get("what_if")
    if not w:
        return
    go = plotly()
    page.section("What-if", "; ".join(f"{c.get('what_if')}: {c.get('applied')}" for c in w.get("changes") or []))
    diff = w.get("diff") or {}
    page.kpi("what-if cost change", diff.get("total_cost_delta_usd"), "usd", "what_if.diff.total_cost_delta_usd",
             f"{diff.get('total_cost_delta_pct', 0):+.1f}%")
    delta = diff.get("purchases_delta_chips") or {}
    if delta:
        fig = go.Figure(go.Bar(x=list(delta), y=list(delta.values()), marker_color=[PALETTE[0] if v >= 0 else PALETTE[3]
                                                                                    for v in delta.values()]))
        fig.update_yaxes(title_text="chips bought, what-if minus base")
        page.figure(fig, "Purchases over the plan: the what-if against the base plan.", height=300)
    changed = [[name, "binds in the what-if only"] for name in diff.get("binding_added") or []]
    changed += [[name, "binds in the base plan only"] for name in diff.get("binding_removed") or []]
    if changed:
        page.table(["constraint", "change"], changed, "Binding constraints that change.", numeric=set())
    if diff.get("quarters"):
        any_table(page, diff["quarters"], "Per quarter, what-if against base")


def _baseline(page: Page, d: dict) -> None:
    """The plan's cumulative spend against the baseline's, when the baseline has quarters."""
    bq = {q.get("quarter"): q for q in (d["baseline"].get("quarters") or []) if isinstance(q, dict)}
    qs = [q["quarter"] for q in d["quarters"]]
    if not bq or not all(q in bq and "spend_usd" in bq[q] for q in qs):
        return
    go = plotly()
    cum = lambda xs: [sum(xs[:i + 1]) for i in range(len(xs))]
    fig = go.Figure([go.Scatter(x=qs, y=cum([q.get("spend_usd", 0) for q in d["quarters"]]), name="this plan",
                                line=dict(color=PALETTE[0], width=3)),
                     go.Scatter(x=qs, y=cum([bq[q]["spend_usd"] for q in qs]), name="baseline",
                                line=dict(color=PALETTE[1], dash="dash"))])
    fig.update_yaxes(title_text="cumulative spend ($)")
    page.figure(fig, "Cumulative spend (undiscounted): this plan against the baseline.", height=320)


def _sweep(page: Page, sw: dict) -> None:
    """Total cost with and without our chip over the swept values; where the decision flips."""
    pts = [x for x in sw.get("points") or [] if isinstance(x, dict) and "value" in x]
    if not pts:
        return
    go = plotly()
    xs = [x["value"] for x in pts]
    fig = go.Figure()
    for key, name, c in (("total_cost_usd", "this plan", 0), ("baseline_total_cost_usd", "baseline (GPUs only)", 1)):
        if any(x.get(key) is not None for x in pts):
            fig.add_trace(go.Scatter(x=xs, y=[x.get(key) for x in pts], name=name, mode="lines+markers",
                                     line=dict(color=PALETTE[c]), text=[f"{x.get('what_if')}: {x.get('status')}"
                                                                         for x in pts],
                                     hovertemplate="%{text}<br>$%{y:,.0f}<extra></extra>"))
    for b in sw.get("break_even") or []:
        if isinstance(b, dict) and b.get("value") is not None:
            fig.add_vline(x=b["value"], line=dict(color="#b8354a", dash="dash"),
                          annotation_text=f"{b.get('flips', 'flips')} at {b.get('what_if', b['value'])}")
    fig.update_xaxes(title_text=f"{sw.get('key', 'swept value')} ({'relative change' if sw.get('kind') == 'rel' else 'value'})",
                     tickformat=".0%" if sw.get("kind") == "rel" else None)
    fig.update_yaxes(title_text="total cost ($)")
    page.figure(fig, f"Sweep {sw.get('sweep', '')}: total cost per point; dashed: where the decision flips.", height=360)
    any_table(page, pts, "Sweep points")
    if sw.get("break_even"):
        any_table(page, sw["break_even"], "Break-evens")


def _extras(page: Page, d: dict) -> None:
    for key, title in EXTRA_TABLES:
        if d.get(key) not in (None, [], {}):
            page.section(title)
            if key == "baseline" and isinstance(d[key], dict):
                _baseline(page, d)
                any_table(page, {k: v for k, v in d[key].items() if k != "quarters"}, title)
            elif key == "sweep" and isinstance(d[key], dict):
                _sweep(page, d[key])
            else:
                any_table(page, d[key], title)


def build(kind: str, d: dict) -> Page:
    qs = d["quarters"]
    p = Page("plan", f"Fleet plan: {d.get('scenario')}", f"{qs[0]['quarter']} to {qs[-1]['quarter']}; status "
             f"{d.get('status')}; objective {d.get('objective')}" if qs else f"status {d.get('status')}")
    p.kpi("total cost", d.get("total_cost_usd"), "usd", "total_cost_usd", f"discounted at {show(d.get('discount_rate_per_year'), 'pct')}/yr")
    p.kpi("capex", d.get("total_capex_usd"), "usd", "total_capex_usd")
    p.kpi("energy", d.get("total_energy_usd"), "usd", "total_energy_usd")
    for dev, v in (d.get("devices") or {}).items():
        p.kpi(f"{dev} bought", v.get("total_purchased_chips"), "int", f"devices.{dev}.total_purchased_chips")
    for key, label, dim in EXTRA_SCALARS:
        if d.get(key) is not None:
            p.kpi(label, d[key], dim, key)
    if d.get("infeasibility"):
        p.note(f"infeasible: {d['infeasibility']}", cls="warn")
    p.facts("Inputs", d.get("inputs") or {})
    p.facts("Provenance", {k: d.get(k) for k in ("provenance", "mip_gap", "lp_relaxation_cost_usd")})
    if qs:
        p.section("Purchases and fleet")
        _by_device(p, d, "purchases", "chips bought", "Chips bought per quarter, by device.")
        _by_device(p, d, "installed", "chips installed", "Installed fleet at each quarter's end, by device.")
        p.section("Demand, power and HBM")
        _demand(p, d)
        _spend(p, d)
    p.section("Binding constraints")
    _binding(p, d)
    p.section("Devices")
    any_table(p, d.get("devices") or {}, "Devices")
    if d.get("unmet_demand"):
        p.section("Unmet demand")
        any_table(p, d["unmet_demand"], "Unmet demand")
    _what_if(p, d)
    _extras(p, d)
    p.notes(d.get("notes"))
    return p
