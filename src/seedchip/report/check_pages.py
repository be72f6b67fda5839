"""Pages for ``validate e2e`` and ``validate kernels`` (predicted against measured, error by
group) and ``emulate`` (a real model's ops priced on the chip, its numerics against full
precision)."""

from __future__ import annotations

from .page import PALETTE, Page, plotly, show
from .tables import any_table


def _scatter(page: Page, rows: list[dict], group: str, caption: str) -> None:
    go = plotly()
    from plotly.subplots import make_subplots
    metrics = sorted({r["metric"] for r in rows})
    fig = make_subplots(rows=1, cols=len(metrics), subplot_titles=metrics, horizontal_spacing=0.08)
    groups = sorted({str(r.get(group)) for r in rows})
    for col, m in enumerate(metrics, start=1):
        sel = [r for r in rows if r["metric"] == m and r.get("predicted") is not None]
        for gi, g in enumerate(groups):
            pts = [r for r in sel if str(r.get(group)) == g]
            if pts:
                fig.add_trace(go.Scatter(x=[r["measured"] for r in pts], y=[r["predicted"] for r in pts], mode="markers",
                                         name=g, legendgroup=g, showlegend=col == 1,
                                         marker=dict(color=PALETTE[gi % len(PALETTE)], size=7),
                                         text=[f"{r.get('case')}: {r['error']:+.1%}" for r in pts],
                                         hovertemplate="%{text}<extra></extra>"), row=1, col=col)
        vals = [v for r in sel for v in (r["measured"], r["predicted"])]
        if vals:
            fig.add_trace(go.Scatter(x=[min(vals), max(vals)], y=[min(vals), max(vals)], mode="lines",
                                     line=dict(color="#9aa5ae", dash="dot"), showlegend=False, hoverinfo="skip"),
                          row=1, col=col)
        fig.update_xaxes(title_text="measured", type="log", row=1, col=col)
        fig.update_yaxes(title_text="predicted" if col == 1 else None, type="log", row=1, col=col)
    page.figure(fig, caption, height=400)


def _error_by(page: Page, rows: list[dict], group: str) -> None:
    go = plotly()
    groups = sorted({str(r.get(group)) for r in rows if r.get("error") is not None})
    fig = go.Figure()
    for gi, g in enumerate(groups):
        fig.add_trace(go.Box(y=[r["error"] for r in rows if str(r.get(group)) == g and r.get("error") is not None],
                             name=g, marker_color=PALETTE[gi % len(PALETTE)], boxpoints="all", jitter=0.3))
    fig.add_hline(y=0, line=dict(color="#1d2731", width=1))
    fig.update_yaxes(title_text="predicted / measured - 1", tickformat=".0%")
    fig.update_layout(showlegend=False)
    page.figure(fig, f"Error by {group}: above 0 the prediction is too high.", height=360)


def _e2e(d: dict) -> Page:
    rows = d["rows"]
    p = Page("validate-e2e", "End-to-end validation", f"{d['num_rows']} measurements replayed as they were run")
    p.kpi("median |error|", d["median_abs_err"], "pct", "median_abs_err")
    p.kpi("p90 |error|", d["p90_abs_err"], "pct", "p90_abs_err")
    p.kpi("mean error", d["mean_err"], "pct", "mean_err")
    p.kpi("rows", d["num_rows"], "int", "num_rows", f"{d['num_failed']} not simulated")
    if d.get("interval80_coverage") is not None:
        p.kpi("inside the 80% interval", d["interval80_coverage"], "pct", "interval80_coverage")
    p.facts("Inputs", d.get("inputs") or {})
    p.section("Predicted against measured")
    _scatter(p, rows, "model", "Each measurement against its prediction (dotted: equal).")
    _error_by(p, rows, "model")
    p.section("By metric")
    any_table(p, d.get("by_metric") or {}, "Error statistics per metric")
    p.section("Every row")
    p.table(["case", "metric", "measured", "predicted", "error", "note"],
            [[r.get("case"), r["metric"], show(r["measured"]), show(r.get("predicted")),
              f"{r['error']:+.1%}" if r.get("error") is not None else "—", r.get("note") or ""] for r in rows],
            numeric={2, 3, 4})
    return p


def _kernels(d: dict) -> Page:
    go = plotly()
    p = Page("validate-kernels", f"Kernel validation on {d.get('chip')}", f"{d.get('csv')}: shipped "
             f"{d.get('shipped_calibration')} against fitted {d.get('fitted_calibration')}")
    for t in d.get("targets") or []:
        p.kpi(t["target"][:40], t["value_pct"] / 100.0, "pct", "", "met" if t["met"] else "NOT met")
    p.facts("Provenance", d.get("provenance") or {})
    regions = d.get("regions") or []
    labels = [f"{g['op_class']} {g['region']}" for g in regions]
    fig = go.Figure()
    for i, side in enumerate(("shipped", "fitted")):
        fig.add_trace(go.Bar(x=labels, y=[(g.get(side) or {}).get("median_abs_pct") for g in regions],
                             name=f"{side} median", marker_color=PALETTE[i]))
    fig.update_yaxes(title_text="median |error| %")
    p.section("Error by op class and region")
    p.figure(fig, "Held-out rows only.", height=380)
    any_table(p, [{"class": g["op_class"], "region": g["region"], "held out": g.get("n_holdout"),
                   "shipped median %": (g.get("shipped") or {}).get("median_abs_pct"),
                   "fitted median %": (g.get("fitted") or {}).get("median_abs_pct")} for g in regions], "Regions")
    if d.get("model_rows"):
        p.section("Whole layers and steps")
        any_table(p, d["model_rows"], "Layer and step rows (step_cost)")
    return p


def _emulate(d: dict) -> Page:
    go = plotly()
    f = d.get("formats") or {}
    p = Page("emulate", f"{d['model']} emulated on {d['chip']}", f"{d.get('num_layers')} layers, formats W "
             f"{f.get('weights')} / A {f.get('activations')} / KV {f.get('kv')}; calibration {d.get('calibration')}")
    n = d["numerics"]
    p.kpi("prefill", d["prefill_time_s"], "s", "prefill_time_s", f"{d['prompt_len']} tokens")
    p.kpi("decode per token", d["decode_time_s_per_token"], "s", "decode_time_s_per_token")
    p.kpi("top-1 agreement", n.get("top1_agreement"), "pct", "numerics.top1_agreement")
    p.kpi("KL(full || chip)", n.get("kl_divergence"), "", "numerics.kl_divergence")
    if "perplexity_delta" in n:
        p.kpi("perplexity change", n["perplexity_delta"], "", "numerics.perplexity_delta")
    p.facts("Inputs", {k: d.get(k) for k in ("model", "architecture", "num_layers", "random_weights", "chip",
                                             "prompt_len", "num_new_tokens", "formats", "priced_formats")})
    p.facts("Provenance", {"calibration": d.get("calibration"), "aten ops captured": d.get("num_ops_captured"),
                           "unpriced ops": d.get("unpriced_ops")})
    top = d.get("top_ops") or []
    fig = go.Figure(go.Bar(y=[o["name"] for o in top][::-1], x=[o["time_s"] for o in top][::-1], orientation="h",
                           marker_color=PALETTE[0], text=[o["bound"] for o in top][::-1], textposition="auto"))
    fig.update_xaxes(title_text="seconds (prefill + every decode step)")
    p.section("Where the time goes")
    p.figure(fig, "The most expensive ops, with the resource that binds each.", height=80 + 28 * max(len(top), 1))
    steps = d.get("decode_step_times_s") or []
    if steps:
        fig = go.Figure(go.Scatter(x=list(range(1, len(steps) + 1)), y=steps, mode="lines+markers"))
        fig.update_xaxes(title_text="decode step", dtick=1 if len(steps) <= 20 else None)
        fig.update_yaxes(title_text="seconds", rangemode="tozero")
        p.figure(fig, "Time of each decode step.", height=280)
    p.section("Numerics")
    layers = n.get("layers") or []
    if layers:
        fig = go.Figure(go.Bar(x=[f"{x['layer']}" for x in layers], y=[x["rel_l2"] for x in layers],
                               marker_color=PALETTE[1], customdata=[x["max_abs"] for x in layers],
                               hovertemplate="layer %{x}: relative L2 %{y:.3g}, max |diff| %{customdata:.3g}"
                                             "<extra></extra>"))
        fig.update_xaxes(title_text="layer output (0: embeddings)")
        fig.update_yaxes(title_text="||chip - full|| / ||full||", rangemode="tozero")
        p.figure(fig, "How far each layer's output drifts from the full-precision run.", height=300)
    any_table(p, {k: v for k, v in n.items() if k != "layers"}, "Against the full-precision run")
    p.notes(d.get("notes"))
    return p


def build(kind: str, d: dict) -> Page:
    return {"validate-e2e": _e2e, "validate-kernels": _kernels, "emulate": _emulate}[kind](d)
