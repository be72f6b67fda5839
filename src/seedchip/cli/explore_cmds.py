"""CLI commands for silicon economics and design-space exploration:

    seedchip silicon --chip C [--node N] [--yield-model murphy|negative-binomial|poisson] [--json]
    seedchip explore SPACE.yaml --out DIR [--search grid|random|tpe|nsga2] [--trials N]
                     [--workers N] [--resume DIR] [--ray [--address A]] [--json]

Thin wrappers over :func:`seedchip.silicon.silicon_report` and
:func:`seedchip.explore.explore`: ``--json`` prints exactly the result's ``to_dict()``.
``register(app)`` adds both commands to the main Typer app.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer

from .common import ADDRESS, JSON, RAY, emit




def _console():
    from .render import console
    return console


def silicon_tables(d: dict) -> list:
    from rich.table import Table
    t = Table(title=f"{d['chip']} silicon ({d['process_node']}; {d['num_dies']} die{'s' if d['num_dies'] > 1 else ''})",
              show_header=False)
    t.add_column("", style="bold")
    t.add_column("", justify="right")
    status = "feasible" if d["feasible"] else "[red]INFEASIBLE[/red]: " + "; ".join(d["infeasible_reasons"])
    t.add_row("status", status)
    t.add_row("die area", f"{d['die_area_mm2']:.0f} mm2" + (f" ({d['die_area_per_die_mm2']:.0f} per die)" if d["num_dies"] > 1 else "")
              + f"  (reticle {d['reticle_mm2']:.0f})")
    t.add_row("yield", f"{d['yield']:.1%} ({d['yield_model']}; {d['spare_cores_per_die']} spare cores per die)")
    t.add_row("dies per wafer", f"{d['gross_dies_per_wafer']} gross, {d['good_dies_per_wafer']:.1f} good "
              f"(${d['wafer_usd']:,.0f} wafer)")
    t.add_row("known-good die", f"${d['known_good_die_usd']:,.0f}")
    h = d["hbm"]
    t.add_row("memory", f"{h['num_stacks']} x {h['generation']} {h['height']}-Hi {h['stack_gbyte']:.1f} GB at "
              f"${h['usd_per_stack']:,.0f}")
    t.add_row("interposer", f"{d['interposer_mm2']:.0f} mm2, yield {d['interposer_yield']:.1%}; assembly yield "
              f"{d['assembly_yield']:.1%}")
    r = d["cost_range_usd"]
    t.add_row("unit cost", f"${d['unit_cost_usd']:,.0f} (${r['low']:,.0f}-{r['high']:,.0f} over the price ranges)")
    s = d["shoreline"]
    t.add_row("shoreline", f"{s['need_mm']:.0f} mm of die edge needed, {s['have_mm']:.0f} mm per die")
    t.add_row("node", f"{d['process_node']} ({d['foundry']}, from {d['node_available_from']})")
    ok = "ok" if d["tdp_ok"] else "[red]over the spec TDP[/red]"
    t.add_row("TDP", f"{d['tdp_w']:.0f} W needed ({d['tdp_matrix_format']} GEMM at the TDP point) vs "
              f"{d['tdp_spec_w']:.0f} W spec: {ok}")
    a = Table(title="Area (mm2)", header_style="bold")
    a.add_column("block")
    a.add_column("mm2", justify="right")
    a.add_column("share", justify="right")
    for k, v in d["area_breakdown_mm2"].items():
        a.add_row(k, f"{v:.1f}", f"{v / d['die_area_mm2']:.0%}")
    c = Table(title="Unit cost ($)", header_style="bold")
    c.add_column("part")
    c.add_column("$", justify="right")
    c.add_column("share", justify="right")
    for k, v in d["cost_breakdown_usd"].items():
        c.add_row(k, f"{v:,.0f}", f"{v / d['unit_cost_usd']:.0%}")
    p = Table(title="Power at the TDP point (W)", header_style="bold")
    p.add_column("part")
    p.add_column("W", justify="right")
    for k, v in d["power_breakdown_w"].items():
        p.add_row(k, f"{v:.0f}")
    return [t, a, c, p]


def silicon_command(chip: str = typer.Option(..., "--chip", help="catalog id or chip YAML path"),
                    node: Optional[str] = typer.Option(None, "--node",
                                                       help="re-cost the chip on this process node (nodes.yaml)"),
                    yield_model: str = typer.Option("murphy", "--yield-model",
                                                    help="murphy, negative-binomial or poisson"),
                    alpha: Optional[float] = typer.Option(None, "--alpha", help="negative binomial clustering (default 2)"),
                    as_json: bool = JSON) -> None:
    """Die area, yield, unit cost (with a breakdown) and TDP of a chip."""
    from ..silicon import silicon_report
    d = silicon_report(chip, yield_model=yield_model, alpha=alpha, node=node).to_dict()
    if as_json:
        emit(d)
        return
    con = _console()
    for t in silicon_tables(d):
        con.print(t)


def explore_command(space: Optional[Path] = typer.Argument(None, help="design-space YAML (omit with --resume)"),
                    out: Optional[Path] = typer.Option(None, "--out", help="run directory (results.duckdb, plots)"),
                    search: Optional[str] = typer.Option(None, "--search", help="grid, random, tpe or nsga2 (default: the YAML's)"),
                    trials: Optional[int] = typer.Option(None, "--trials", help="points for random / tpe / nsga2"),
                    seed: Optional[int] = typer.Option(None, "--seed", help="random seed, >= 0 (default: the YAML's)"),
                    workers: int = typer.Option(1, "--workers", help="local worker processes"),
                    resume: Optional[Path] = typer.Option(None, "--resume", help="continue the sweep stored in DIR "
                                                          "(with the search settings stored there)"),
                    use_ray: bool = RAY,
                    address: Optional[str] = ADDRESS,
                    plot: bool = typer.Option(True, "--plot/--no-plot", help="write pareto.html (and pareto.png)"),
                    progress: bool = typer.Option(True, "--progress/--no-progress", help="Rich progress bar on stderr "
                                                  "(only on a terminal, never with --json)"),
                    as_json: bool = JSON) -> None:
    """Search a design space: every point's area, cost, power and workload objectives, the Pareto frontier."""
    from ..errors import SpecError
    from ..explore import explore
    if space is None and resume is None:
        raise SpecError("give a design-space YAML, or --resume DIR to continue a stored sweep")
    r = explore(space, out=out, search=search, trials=trials, seed=seed, workers=workers, resume=resume,
                use_ray=use_ray, address=address, plot=plot,
                progress=progress and not as_json and sys.stderr.isatty())
    d = r.to_dict()
    if as_json:
        emit(d)
        return
    from ..explore.report import frontier_table
    con = _console()
    con.print(frontier_table(d))
    con.print(f"{d['num_points']} points ({d['num_feasible']} feasible, {d['num_new']} evaluated now) at "
              f"{d['points_per_s']:.1f} points/s; stored in {d['store']}")
    for k in ("plot_html", "plot_png"):
        if d.get(k):
            con.print(f"{k.replace('_', ' ')}: {d[k]}")


def register(app: typer.Typer) -> None:
    """Add ``silicon`` and ``explore`` to the main CLI."""
    app.command("silicon")(silicon_command)
    app.command("explore")(explore_command)


__all__ = ["register", "silicon_command", "explore_command", "silicon_tables"]
