"""The ``silicon`` page: die area by block, the unit-cost waterfall (die, yield loss, HBM,
interposer, package, test), yield against defect density, power, the assumptions."""

from __future__ import annotations

from .page import PALETTE, Page, plotly, show
from .tables import any_table


def _area(page: Page, d: dict) -> None:
    go = plotly()
    blocks = sorted(((k, v) for k, v in d["area_breakdown_mm2"].items() if v), key=lambda kv: kv[1])
    total = d["die_area_per_die_mm2"]
    fig = go.Figure(go.Bar(x=[v for _, v in blocks], y=[k.replace("_", " ") for k, _ in blocks], orientation="h",
                           marker_color=PALETTE[0], text=[f"{v:.0f} mm² ({v / total:.0%})" for _, v in blocks],
                           textposition="auto", hovertemplate="%{y}: %{x:.1f} mm²<extra></extra>"))
    fig.update_xaxes(title_text="mm² per die")
    page.figure(fig, f"Die area by block: {total:.0f} mm² per die, reticle {d['reticle_mm2']:.0f} mm².",
                height=60 + 34 * len(blocks))


def cost_steps(d: dict) -> list[tuple[str, float]]:
    """The unit cost as steps that sum to it: the logic die split into its cost at perfect yield
    and what the yield loses."""
    c = dict(d["cost_breakdown_usd"])
    steps = []
    logic = c.pop("logic_dies", None)
    if logic is not None and d.get("gross_dies_per_wafer"):
        perfect = d["wafer_usd"] / d["gross_dies_per_wafer"] * d.get("num_dies", 1)
        steps += [("logic die (100% yield)", perfect), ("die yield loss", logic - perfect)]
    elif logic is not None:
        steps.append(("logic dies", logic))
    steps += [(k.replace("_", " "), v) for k, v in c.items()]
    return steps


def _waterfall(page: Page, d: dict) -> None:
    go = plotly()
    steps = cost_steps(d)
    fig = go.Figure(go.Waterfall(x=[k for k, _ in steps] + ["unit cost"], y=[v for _, v in steps] + [0],
                                 measure=["relative"] * len(steps) + ["total"],
                                 text=[show(v, "usd") for _, v in steps] + [show(d["unit_cost_usd"], "usd")],
                                 textposition="outside", connector=dict(line=dict(color="#9aa5ae")),
                                 increasing=dict(marker=dict(color=PALETTE[0])),
                                 totals=dict(marker=dict(color=PALETTE[1])),
                                 hovertemplate="%{x}: $%{y:,.0f}<extra></extra>"))
    fig.update_yaxes(title_text="$ per chip", rangemode="tozero")
    fig.update_layout(showlegend=False)
    page.figure(fig, "Unit cost, part by part (the logic die at perfect yield, then what the yield loses).",
                height=400)


def _yield_curve(page: Page, d: dict) -> None:
    from ..silicon.cost import die_yield
    go = plotly()
    prov = d.get("provenance") or {}
    d0 = prov.get("defect_density_per_cm2")
    area = d["die_area_per_die_mm2"]
    model, alpha = d.get("yield_model", "murphy"), prov.get("alpha") or 2.0
    xs = [0.01 * i for i in range(1, 41)]
    fig = go.Figure()
    for m, c in (("murphy", 0), ("negative-binomial", 2), ("poisson", 3)):
        fig.add_trace(go.Scatter(x=xs, y=[die_yield(area, x, m, alpha) for x in xs], mode="lines",
                                 name=m + (" (used)" if m == model else ""),
                                 line=dict(color=PALETTE[c], width=3 if m == model else 1.5,
                                           dash="solid" if m == model else "dot")))
    if d0 is not None:
        fig.add_trace(go.Scatter(x=[d0], y=[d["yield"]], mode="markers+text", name="this chip",
                                 text=[f"{d['yield']:.1%} at {d0:g}/cm²"], textposition="top right",
                                 marker=dict(size=11, color="#b8354a")))
    fig.update_xaxes(title_text="defect density (defects / cm²)")
    fig.update_yaxes(title_text="die yield", tickformat=".0%", range=[0, 1])
    spare = d.get("spare_cores_per_die") or 0
    page.figure(fig, f"Yield of a {area:.0f} mm² die against defect density"
                + (f"; the chip's point counts its {spare} spare cores per die, the curves do not." if spare else "."),
                height=360)


def _power(page: Page, d: dict) -> None:
    go = plotly()
    parts = list(d["power_breakdown_w"].items())
    fig = go.Figure(go.Bar(x=[k for k, _ in parts], y=[v for _, v in parts], marker_color=PALETTE[4],
                           text=[f"{v:.0f} W" for _, v in parts], textposition="auto"))
    fig.update_yaxes(title_text="W at the TDP point")
    page.figure(fig, f"Power at the TDP point ({d.get('tdp_matrix_format')} GEMM): {d['tdp_w']:.0f} W needed against "
                f"{d['tdp_spec_w']:.0f} W in the spec.", height=320)


def build(kind: str, d: dict) -> Page:
    dies = d.get("num_dies", 1)
    p = Page("silicon", f"{d['chip']} silicon", f"{d.get('process_node')}, {dies} die{'s' if dies > 1 else ''}; "
             f"{d.get('yield_model')} yield model")
    if not d.get("feasible", True):
        p.note("INFEASIBLE: " + "; ".join(d.get("infeasible_reasons") or []), cls="warn")
    rng = d.get("cost_range_usd") or {}
    p.kpi("unit cost", d["unit_cost_usd"], "usd", "unit_cost_usd",
          f"{show(rng['low'], 'usd')}-{show(rng['high'], 'usd')} over the price ranges" if rng else "")
    p.kpi("die area", d["die_area_mm2"], "", "die_area_mm2", f"mm², reticle {d['reticle_mm2']:.0f}")
    p.kpi("die yield", d["yield"], "pct", "yield")
    p.kpi("good dies per wafer", d["good_dies_per_wafer"], "", "good_dies_per_wafer",
          f"of {d['gross_dies_per_wafer']} gross")
    p.kpi("known-good die", d["known_good_die_usd"], "usd", "known_good_die_usd")
    p.kpi("TDP needed", d["tdp_w"], "w", "tdp_w", f"spec {d['tdp_spec_w']:.0f} W: {'ok' if d['tdp_ok'] else 'over'}")
    h = d.get("hbm") or {}
    p.facts("Inputs", {"chip": d["chip"], "process node": d.get("process_node"), "dies": dies,
                       "cores per die": d.get("cores_per_die"), "spare cores per die": d.get("spare_cores_per_die"),
                       "MACs": d.get("num_macs"), "SRAM bits": d.get("sram_bits"), "SerDes lanes": d.get("serdes_lanes"),
                       "HBM": f"{h.get('num_stacks')} x {h.get('generation')} {h.get('height')}-high, "
                              f"{show(h.get('stack_gbyte'))} GB at {show(h.get('usd_per_stack'), 'usd')} per stack",
                       "wafer": show(d.get("wafer_usd"), "usd"), "interposer": f"{d.get('interposer_mm2', 0):.0f} mm², "
                       f"yield {show(d.get('interposer_yield'), 'pct')}",
                       "assembly yield": show(d.get("assembly_yield"), "pct"),
                       "purchase price": show(d.get("purchase_price_usd"), "usd") if d.get("purchase_price_usd") else None})
    sh = d.get("shoreline") or {}
    p.facts("Provenance", {**(d.get("provenance") or {}), "foundry": d.get("foundry"),
                           "node available from": d.get("node_available_from"),
                           "shoreline": f"{sh['need_mm']:.0f} mm of die edge needed, {sh['have_mm']:.0f} mm per die"
                           if sh else None})
    p.section("Area")
    _area(p, d)
    p.section("Cost")
    _waterfall(p, d)
    p.table(["part", "$ per chip", "share"], [[k, show(v, "usd"), show(v / d["unit_cost_usd"], "pct")]
                                              for k, v in cost_steps(d)])
    p.section("Yield")
    _yield_curve(p, d)
    p.section("Power")
    _power(p, d)
    assumptions = d.get("assumptions")
    if assumptions:
        p.section("Assumptions", "Every coefficient the cost and area stand on, with its source.")
        if isinstance(assumptions, list):
            p.table(["assumption", "value", "unit", "source"],
                    [[a.get("name"), show(a.get("value")), a.get("unit", ""), a.get("source", "")] for a in assumptions],
                    numeric={1})
        else:
            any_table(p, assumptions, "Assumptions")
    return p
