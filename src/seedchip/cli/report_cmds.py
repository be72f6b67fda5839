"""`seedchip report SOURCE --out FILE.html`, and the ``--report FILE.html`` option every
computing command shares: one self-contained HTML page with plots (seedchip.report)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer

REPORT = typer.Option(None, "--report", help="also write the result as one self-contained HTML page with plots "
                      "(FILE.html; its folder must exist)")


def check(path: Optional[Path]) -> None:
    """Refuse an unwritable or non-.html --report before any work."""
    if path is not None:
        from ..report import check_out
        check_out(path, "--report")


def write(path: Optional[Path], result: dict, quiet: bool = False) -> None:
    """Write the page for ``result`` to ``path`` (when given); say so on stderr unless ``quiet``."""
    if path is None:
        return
    from ..report import write_report
    write_report(result, path, "--report")
    if not quiet:
        sys.stderr.write(f"report written to {path}\n")


def register(app: typer.Typer) -> None:
    @app.command("report")
    def report(source: Path = typer.Argument(..., help="what a computing command printed with --json (run, op, "
                                             "estimate, simulate, capacity, silicon, emulate, validate e2e, validate "
                                             "kernels) or an explore / plan --out folder"),
               out: Path = typer.Option(..., "--out", help="the page to write: FILE.html (its folder must exist)")) -> None:
        """One self-contained HTML page with plots of a result (works offline; printable)."""
        from ..report import write_report
        p = write_report(source, out)
        from .render import console
        console.print(f"report written to {p}")


# ---- --report on commands registered elsewhere (their modules stay as they are) --------------

def _silicon(fn, report: Path, kw: dict) -> None:
    """Run the command once for its JSON (cheap: milliseconds), then as asked."""
    import contextlib
    import io
    import json
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        fn(**{**kw, "as_json": True})
    if kw.get("as_json"):
        sys.stdout.write(buf.getvalue())
    else:
        fn(**kw)
    write(report, json.loads(buf.getvalue()), bool(kw.get("as_json")))


def _explore(fn, report: Path, kw: dict) -> None:
    """The page is made from the run folder (every stored point, not only the frontier)."""
    fn(**kw)
    write(report, Path(kw.get("resume") or kw["out"]), bool(kw.get("as_json")))


def _plan(fn, report: Path, kw: dict) -> None:
    from ..errors import SpecError
    if kw.get("out") is None:
        raise SpecError("--report on plan needs --out DIR: the page is made from DIR/plan.json (seedchip plan "
                        "SCENARIO.yaml --out runs/plan1 --report plan1.html)")
    fn(**kw)
    write(report, Path(kw["out"]) / "plan.json", bool(kw.get("as_json")))


RUNNERS = {"silicon": _silicon, "explore": _explore, "plan": _plan}


def add_report_option(app: typer.Typer) -> None:
    """Give silicon, explore and plan a --report FILE.html option by wrapping their callbacks."""
    import functools
    import inspect
    for info in app.registered_commands:
        runner = RUNNERS.get(info.name or "")
        if runner is None:
            continue
        fn = info.callback
        sig = inspect.signature(fn, eval_str=True)      # their annotations, resolved where they were written
        extra = inspect.Parameter("report", inspect.Parameter.KEYWORD_ONLY, default=REPORT, annotation=Optional[Path])

        def command(*, report: Optional[Path] = None, _fn=fn, _runner=runner, **kw) -> None:
            check(report)
            if report is None:
                return _fn(**kw)
            return _runner(_fn, report, kw)
        functools.update_wrapper(command, fn)
        del command.__wrapped__
        params = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in sig.parameters.values()] + [extra]
        command.__signature__ = sig.replace(parameters=params)
        command.__annotations__ = {p.name: p.annotation for p in params}
        info.callback = command
