"""Human outputs of a sweep: the frontier table (Rich), the Pareto plot (Plotly HTML, and a
PNG drawn with matplotlib when it is installed), the baseline row marked in both."""

from __future__ import annotations

from pathlib import Path

from .space import OBJECTIVES

SHORT = {"bf16_flops_per_s": "bf16", "clock_hz": "clock", "vector_flops_per_s": "vector", "sram_mb": "SRAM MB",
         "hbm_stacks": "stacks", "hbm_generation": "HBM", "hbm_height": "height", "link_bw_per_direction": "link",
         "process_node": "node", "spare_cores": "spares", "fp4": "fp4", "tdp_w": "TDP cap"}


def fmt_param(name: str, v) -> str:
    from ..units import fmt
    if name == "bf16_flops_per_s" or name == "vector_flops_per_s":
        return fmt(v, "flop/s")
    if name == "clock_hz":
        return fmt(v, "hz")
    if name == "link_bw_per_direction":
        return fmt(v, "bytes/s")
    if isinstance(v, float):
        return f"{v:g}"
    return str(v)


def fmt_obj(name: str, v) -> str:
    if v is None:
        return "—"
    if name == "tokens_per_usd":
        return f"{v / 1e6:.3f} M"
    if name == "tokens_per_joule":
        return f"{v:.3f}"
    if name == "throughput_per_chip":
        return f"{v:,.0f}"
    if name == "unit_cost_usd":
        return f"${v:,.0f}"
    if name == "time_to_market_year":           # a decimal year: 2025.5 = 2025Q3
        q = round(v * 4)
        return f"{q // 4}Q{q % 4 + 1}"
    return f"{v:,.1f}"


def frontier_table(d: dict, limit: int = 30):
    from rich.table import Table
    objs = d["objectives"]
    axes = d.get("axes") or (list(d["frontier"][0]["params"]) if d["frontier"] else [])
    t = Table(title=f"{d['space']}: Pareto frontier ({len(d['frontier'])} of {d['num_feasible']} feasible points; "
                    f"{d['search']})", header_style="bold")
    t.add_column("#", justify="right")
    for a in axes:
        t.add_column(SHORT.get(a, a), justify="right")
    for o in objs:
        t.add_column(o.replace("_", " ") + (" ↑" if OBJECTIVES[o][0] == "max" else " ↓"), justify="right")
    for col in ("die mm2", "unit $", "TDP W", "beats base"):
        t.add_column(col, justify="right")
    for i, r in enumerate(d["frontier"][:limit], 1):
        m = r["metrics"]
        t.add_row(str(i), *[fmt_param(a, r["params"].get(a)) for a in axes],
                  *[fmt_obj(o, r["objectives"][o]) for o in objs],
                  f"{m.get('die_area_mm2', 0):.0f}", f"{m.get('unit_cost_usd', 0):,.0f}", f"{m.get('tdp_w', 0):.0f}",
                  "yes" if r["dominates_baseline"] else "")
    b = d.get("baseline")
    if b:
        m = b["metrics"]
        t.add_row("[bold]base[/bold]", *[("[bold]" + b["chip"] + "[/bold]") if j == 0 else "" for j in range(len(axes))],
                  *[fmt_obj(o, (b["objectives"] or {}).get(o)) for o in objs],
                  f"{m.get('die_area_mm2', 0):.0f}", f"{m.get('unit_cost_usd', 0):,.0f}", f"{m.get('tdp_w', 0):.0f}",
                  "baseline" if b["feasible"] else (b["reason"] or "")[:40], style="cyan")
    if len(d["frontier"]) > limit:
        t.caption = f"... {len(d['frontier']) - limit} more frontier points in the JSON"
    return t


def _axes_pair(objs: list[str]) -> tuple[str, str]:
    if len(objs) >= 2:
        return objs[0], objs[1]
    return objs[0], "unit_cost_usd"


def _value(r: dict, name: str):
    if r.get("objectives") and name in r["objectives"]:
        return r["objectives"][name]
    return (r.get("metrics") or {}).get(name)


def _title(d: dict, feas: list) -> str:
    t = f"{d['space']}: {len(feas)} feasible of {d['num_points']} points"
    if len(d["objectives"]) > 2:
        t += f" (frontier over {len(d['objectives'])} objectives, shown on the first two)"
    return t


def _write_plotly(d: dict, feas: list[dict], front_keys: set, base: dict | None, directory: Path) -> str | None:
    """pareto.html (Plotly, self-contained): the feasible points, the frontier and the baseline;
    its path, or None without Plotly."""
    try:
        import plotly.graph_objects as go
    except ImportError:
        return None
    x, y = _axes_pair(d["objectives"])

    def hover(r):
        return "<br>".join(f"{k}={fmt_param(k, v)}" for k, v in r["params"].items())
    fig = go.Figure()
    rest = [r for r in feas if r["key"] not in front_keys]
    fig.add_trace(go.Scattergl(x=[_value(r, x) for r in rest], y=[_value(r, y) for r in rest], mode="markers",
                               name="feasible", marker={"color": "#9aa5b1", "size": 5}, text=[hover(r) for r in rest],
                               hoverinfo="text+x+y"))
    fr = sorted([r for r in feas if r["key"] in front_keys], key=lambda r: _value(r, x))
    mode = "lines+markers" if len(d["objectives"]) == 2 else "markers"
    fig.add_trace(go.Scatter(x=[_value(r, x) for r in fr], y=[_value(r, y) for r in fr], mode=mode,
                             name="Pareto frontier", marker={"color": "#d62728", "size": 8},
                             text=[hover(r) for r in fr], hoverinfo="text+x+y"))
    if base is not None:
        fig.add_trace(go.Scatter(x=[_value(base, x)], y=[_value(base, y)], mode="markers+text",
                                 name=f"baseline {base['params']['baseline']}", text=[base["params"]["baseline"]],
                                 textposition="top center",
                                 marker={"symbol": "star", "size": 16, "color": "black"}))
    fig.update_layout(title=_title(d, feas),
                      xaxis_title=x.replace("_", " "), yaxis_title=y.replace("_", " "), template="plotly_white")
    html = directory / "pareto.html"
    # a fixed div id, not a random one: the same input writes the same file
    fig.write_html(str(html), include_plotlyjs=True, full_html=True, div_id="pareto")
    return str(html)


def _write_png(d: dict, feas: list[dict], front_keys: set, base: dict | None, directory: Path) -> str | None:
    """pareto.png (matplotlib): the same plot; its path, or None without matplotlib."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    x, y = _axes_pair(d["objectives"])
    fig, ax = plt.subplots(figsize=(8, 5.5), dpi=110)
    ax.scatter([_value(r, x) for r in feas if r["key"] not in front_keys],
               [_value(r, y) for r in feas if r["key"] not in front_keys], s=8, c="#9aa5b1", label="feasible")
    fr = sorted([r for r in feas if r["key"] in front_keys], key=lambda r: _value(r, x))
    ax.plot([_value(r, x) for r in fr], [_value(r, y) for r in fr], "o-" if len(d["objectives"]) == 2 else "o",
            c="#d62728", ms=5, label="Pareto frontier")
    if base is not None:
        ax.scatter([_value(base, x)], [_value(base, y)], marker="*", s=250, c="black",
                   label=f"baseline {base['params']['baseline']}")
        ax.annotate(base["params"]["baseline"], (_value(base, x), _value(base, y)), textcoords="offset points",
                    xytext=(6, 6))
    ax.set_xlabel(x.replace("_", " "))
    ax.set_ylabel(y.replace("_", " "))
    ax.set_title(_title(d, feas), fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(loc="best")
    fig.tight_layout()
    png = directory / "pareto.png"
    fig.savefig(png)
    plt.close(fig)
    return str(png)


def write_plots(d: dict, rows: list[dict], directory: Path) -> dict:
    """pareto.html (Plotly, self-contained) and pareto.png (matplotlib); the paths written."""
    front_keys = {r["key"] for r in d["frontier"]}
    feas = [r for r in rows if r["feasible"] and not r["is_baseline"]]
    base = next((r for r in rows if r["is_baseline"] and r["feasible"]), None)
    out: dict = {}
    html = _write_plotly(d, feas, front_keys, base, directory)
    if html is not None:
        out["plot_html"] = html
    png = _write_png(d, feas, front_keys, base, directory)
    if png is not None:
        out["plot_png"] = png
    return out


__all__ = ["frontier_table", "write_plots"]
