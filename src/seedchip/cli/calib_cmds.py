"""CLI commands over measured GPU microbenchmarks (calibration/gpu_microbench.py):

    seedchip calibrate fit MEASURED.csv --chip h200-sxm --out h200-measured.yaml [--json]
    seedchip validate MEASURED.csv --chip h200-sxm [--calibration h200-measured.yaml] [--json]

Thin wrappers over :mod:`seedchip.calibrate.measured` (``fit_measured``,
``validate_measured``): ``--json`` prints exactly the result's ``to_dict()``. Bad input
raises :class:`seedchip.errors.SpecError`, which the main CLI turns into exit code 2 and
one line. ``register(app, calibrate_app)`` adds them to the main Typer app.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from . import report_cmds
from .common import JSON, emit




def _pct(s: dict | None, key: str) -> str:
    return "—" if not s else f"{s[key]:.1f}%"


def _smoke_warning(prov: dict) -> str | None:
    if prov.get("gpu", "").startswith("none"):
        return ("[yellow]this CSV was measured on a CPU (a smoke test of the kit): its errors say nothing "
                "about any chip[/yellow]")
    return None


def fit_command(measured: Path, chip: str, out: Path, start: Optional[str], cal_id: Optional[str],
                as_json: bool, allow_cpu: bool = False) -> None:
    from ..calibrate.fit import write_calibration
    from ..calibrate.measured import fit_header, fit_measured
    from ..outputs import probe
    probe(out)
    r = fit_measured(measured, chip, start, cal_id, allow_cpu=allow_cpu)
    cmd = f"seedchip calibrate fit {measured.name} --chip {chip}" + (f" --start {start}" if start else "")
    write_calibration(r.calibration, out, fit_header(r, cmd))
    if as_json:
        emit(r.to_dict())
        return
    from rich.table import Table

    from .render import console
    warn = _smoke_warning(r.provenance)
    if warn:
        console.print(warn)
    console.print(f"wrote {out} (calibration {r.calibration.id!r}, started from {r.start})")
    console.print(f"split: {r.split['rule']}")
    t = Table(title=f"Fit on {r.provenance.get('gpu', 'unknown device')}: abs % error", header_style="bold")
    for col in ("class", "side", "rows", "median", "p90", "worst"):
        t.add_column(col, justify="left" if col in ("class", "side") else "right")
    for key, s in r.report.items():
        cls, side = key.rsplit("_", 1)
        t.add_row(cls, side, str(int(s["n"])), f"{s['median_abs_pct']:.1f}%", f"{s['p90_abs_pct']:.1f}%",
                  f"{s['max_abs_pct']:.1f}%")
    console.print(t)


def validate_command(measured: Path, chip: str, calibration: Optional[str], as_json: bool,
                     report: Optional[Path] = None) -> None:
    from ..calibrate.check_measured import validate_measured
    from ..units import fmt
    report_cmds.check(report)
    r = validate_measured(measured, chip, calibration)
    report_cmds.write(report, r.to_dict(), as_json)
    if as_json:
        emit(r.to_dict())
        return
    from rich.table import Table

    from .render import console
    warn = _smoke_warning(r.provenance)
    if warn:
        console.print(warn)
    fitted = r.fitted if calibration else f"{r.fitted} (fitted now on the training split)"
    console.print(f"{r.csv} on {r.chip}: shipped calibration {r.shipped}, fitted {fitted}")
    console.print(f"split: {r.split['rule']}")
    t = Table(title="Oracle error on held-out rows (abs %)", header_style="bold")
    for col in ("class", "region", "train", "held out", "shipped median", "shipped worst", "fitted median",
                "fitted worst"):
        t.add_column(col, justify="left" if col in ("class", "region") else "right")
    for g in r.regions:
        t.add_row(g["op_class"], g["region"], str(g["n_train"]), str(g["n_holdout"]), _pct(g["shipped"], "median_abs_pct"),
                  _pct(g["shipped"], "worst_abs_pct"), _pct(g["fitted"], "median_abs_pct"),
                  _pct(g["fitted"], "worst_abs_pct"))
    console.print(t)
    if r.model_rows:
        t = Table(title="Whole layer and whole step (tp=1, bf16; step_cost)", header_style="bold")
        for col in ("op", "phase", "model", "batch", "context", "new", "measured", "shipped", "err", "fitted", "err "):
            t.add_column(col, justify="left" if col in ("op", "phase", "model") else "right")
        for x in r.model_rows:
            t.add_row(x["op"], x["phase"], x["model"], str(x["batch"]), str(x["context"]), str(x["new_tokens"]),
                      fmt(x["measured_s"], "s"), fmt(x["shipped_s"], "s"), f"{x['shipped_error_pct']:+.1f}%",
                      fmt(x["fitted_s"], "s"), f"{x['fitted_error_pct']:+.1f}%")
        console.print(t)
    for x in r.targets:
        console.print(f"{'met' if x['met'] else 'NOT met'}: {x['target']}: {x['value_pct']:.1f}% (n={x['n']})")


def e2e_command(table: Path, engine: str, calibration: Optional[str], kv_memory_fraction: Optional[float],
                build_for_largest: bool, interval: bool, as_json: bool, report: Optional[Path] = None) -> None:
    from ..validate.replay import validate_e2e
    from .progress import progress_bar
    report_cmds.check(report)
    with progress_bar("replaying rows", enabled=not as_json) as tick:
        r = validate_e2e(str(table), engine=engine, calibration=calibration, kv_memory_fraction=kv_memory_fraction,
                         build_for_largest=build_for_largest, interval=interval, progress=tick).to_dict()
    report_cmds.write(report, r, as_json)
    if as_json:
        emit(r)
        return
    from .render import console, e2e_tables
    for t in e2e_tables(r):
        console.print(t)


def register(app: typer.Typer, calibrate_app: typer.Typer) -> None:
    """Add ``calibrate fit`` to ``calibrate_app`` and the ``validate`` group to ``app``."""
    validate_app = typer.Typer(no_args_is_help=True, help="How wrong are we: the oracle and the simulator against "
                                                         "measurements.")
    app.add_typer(validate_app, name="validate")

    @calibrate_app.command("fit")
    def fit_cmd(measured: Path = typer.Argument(..., help="CSV written by calibration/gpu_microbench.py"),
                chip: str = typer.Option(..., "--chip", help="the chip that was measured (catalog id or YAML)"),
                out: Path = typer.Option(..., "--out", help="calibration YAML to write"),
                start: Optional[str] = typer.Option(None, "--start",
                                                    help="calibration to start from (default: the shipped one)"),
                cal_id: Optional[str] = typer.Option(None, "--id", help="calibration id (default: <chip>-measured)"),
                allow_cpu: bool = typer.Option(False, "--allow-cpu", help="fit a file measured on a CPU (the kit's "
                                               "smoke test) anyway; its figures say nothing about the chip"),
                as_json: bool = JSON) -> None:
        """Fit a calibration on a GPU's measured microbenchmarks (80/20 split by shape)."""
        fit_command(measured, chip, out, start, cal_id, as_json, allow_cpu)

    @validate_app.command("e2e")
    def e2e_cmd(table: Path = typer.Argument(..., help="measured end-to-end results (the columns of "
                                                   "../shared/data/e2e: model, chip or system, tp, isl, osl, formats, "
                                                   "out_tok_s; optional engine, num_requests, qps, max_concurrency, "
                                                   "req_s, ttft_mean_ms, itl_mean_ms, tpot_mean_ms)"),
                engine: str = typer.Option("trtllm", "--engine", help="engine of rows without an engine column: "
                                           "trtllm, vllm or sglang"),
                calibration: Optional[str] = typer.Option(None, "--calibration", help="calibration id or YAML"),
                kv_memory_fraction: Optional[float] = typer.Option(
                    None, "--kv-memory-fraction", help="the memory share the runs used (default: the engine's)"),
                build_for_largest: bool = typer.Option(
                    False, "--build-for-largest", help="one engine per model built for its largest ISL + OSL in the "
                    "table, reused for every row (as Azure's benchmarking guide runs trtllm-bench)"),
                interval: bool = typer.Option(
                    False, "--interval", help="also each row's 80%% interval and the share of measurements inside "
                    "(perturbed runs: several times slower)"),
                report: Optional[Path] = report_cmds.REPORT, as_json: bool = JSON) -> None:
        """Replay a table of measured end-to-end results as they were run; median and p90 absolute error."""
        e2e_command(table, engine, calibration, kv_memory_fraction, build_for_largest, interval, as_json, report)

    @validate_app.command("kernels")
    def validate_cmd(measured: Path = typer.Argument(..., help="CSV written by calibration/gpu_microbench.py"),
                     chip: str = typer.Option(..., "--chip", help="the chip that was measured (catalog id or YAML)"),
                     calibration: Optional[str] = typer.Option(
                         None, "--calibration", help="fitted calibration to judge (default: fit now on the training split)"),
                     report: Optional[Path] = report_cmds.REPORT, as_json: bool = JSON) -> None:
        """The oracle's error against measured microbenchmarks, per op class and shape region."""
        validate_command(measured, chip, calibration, as_json, report)


__all__ = ["register", "fit_command", "validate_command"]
