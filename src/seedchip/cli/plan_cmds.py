"""CLI command for the fleet and procurement planner:

    seedchip plan SCENARIO.yaml [--what-if KEY=VALUE ...] [--sweep KEY=FROM..TO:STEPS]
                  [--confidence P] [--json] [--out DIR] [--recompute-capacity [--resume]] [--cache-dir DIR]
                  [--workers N | --ray [--address A]]

A thin wrapper over :func:`seedchip.fleet.plan`: ``--json`` prints exactly the result's
``to_dict()``. ``register(app)`` adds the command to the main Typer app.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import List, Optional

import typer

from .common import ADDRESS, JSON, RAY, emit


def plan_command(scenario: Path = typer.Argument(..., help="scenario YAML (see examples/plan/two_year_plan.yaml)"),
                 what_if: Optional[List[str]] = typer.Option(
                     None, "--what-if", help="re-solve with a change and show the difference, e.g. hbm_supply=-30%, "
                     "h200_price=+10%, chip_slip=2, demand_growth=+20%, budget=-25%, power=-10% (repeatable)"),
                 sweep: Optional[str] = typer.Option(
                     None, "--sweep", help="re-solve over a range of one what-if and report where building our chip "
                     "stops paying off: KEY=FROM..TO:STEPS, e.g. hbm_supply=-90%..0%:10, seedchip_nre=0..8e9:9"),
                 confidence: Optional[float] = typer.Option(
                     None, "--confidence", help="plan so that demand is met with this probability (0.5 to below 1): "
                     "pessimistic capacities (their error bars) and schedules (respins); reports the hedge's cost"),
                 out: Optional[Path] = typer.Option(None, "--out", help="write plan.json, plan.html, plan.png, "
                                                    "capacity.yaml (and sweep.png) to DIR"),
                 recompute_capacity: bool = typer.Option(
                     False, "--recompute-capacity", help="simulate every deployment's SLO capacity again instead of "
                     "the scenario's capacity_override and the cache"),
                 resume: bool = typer.Option(False, "--resume", help="with --recompute-capacity: keep the searches "
                                             "the cache holds from this code (an interrupted recompute continues)"),
                 cache_dir: Optional[Path] = typer.Option(None, "--cache-dir", help="capacity cache folder (default "
                                                          "$SEEDCHIP_CACHE_DIR/capacity or ~/.cache/seedchip/capacity)"),
                 workers: int = typer.Option(1, "--workers", help="local worker processes for the capacity searches "
                                             "and the --sweep points (results as with one)"),
                 use_ray: bool = RAY,
                 address: Optional[str] = ADDRESS,
                 as_json: bool = JSON) -> None:
    """Plan purchases of our chips and GPUs quarter by quarter: least total cost under demand, HBM, power and budget."""
    from ..fleet import plan
    from .progress import progress_bar

    with progress_bar("capacities", enabled=not as_json) as tick:
        done = [0]

        def progress(msg: str) -> None:
            """One capacity search starting: a line on stderr, or the bar's label on a terminal."""
            if tick is None:
                sys.stderr.write(msg + "\n")
                sys.stderr.flush()
            else:
                tick(done[0], 0, msg)
                done[0] += 1

        r = plan(scenario, what_if=what_if or None, recompute_capacity=recompute_capacity, cache_dir=cache_dir,
                 out=out, progress=progress, confidence=confidence, sweep=sweep, workers=workers, use_ray=use_ray,
                 address=address, resume=resume)
    d = r.to_dict()
    if as_json:
        emit(d)
        return
    from ..fleet.report import render
    from .render import console
    render(d, console)
    console.print(f"solved in {r.solve_s:.2f} s")
    for k, v in r.outputs.items():
        console.print(f"{k.replace('_', ' ')}: {v}")
    if recompute_capacity and out is None:
        from rich.markup import escape
        from ..fleet.capacity import Capacity, override_yaml
        caps = [Capacity(**{k: v for k, v in c.items() if k != "tokens_per_s_per_chip"}) for c in d["capacity"]]
        console.print("to plan with these capacities without the cache, put this block in the scenario:")
        console.print(escape(override_yaml(caps)), end="")


def register(app: typer.Typer) -> None:
    """Add ``plan`` to the main CLI."""
    app.command("plan")(plan_command)


__all__ = ["register", "plan_command"]
