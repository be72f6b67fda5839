"""What a report is made from: the JSON a computing command prints (``--json``), or an
explore or plan output folder. The kind of result is read from its keys."""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import SpecError
from ..outputs import read_text

# (kind, keys its JSON always holds): the first match wins, so the more specific come first
SIGNATURES = [
    ("capacity", ("max_qps", "search", "binding")),
    ("simulate", ("num_completed", "steady", "series")),
    ("estimate", ("prefill", "decode", "memory", "ttft_s")),
    ("run", ("rows", "ratios", "inputs")),
    ("op", ("op", "bound", "time_s", "chip")),
    ("silicon", ("die_area_mm2", "cost_breakdown_usd", "area_breakdown_mm2")),
    ("explore", ("frontier", "objectives", "axes")),
    ("plan", ("quarters", "binding_constraints", "devices")),
    ("validate-e2e", ("median_abs_err", "rows", "by_metric")),
    ("validate-kernels", ("regions", "targets", "shipped_calibration")),
    ("emulate", ("numerics", "top_ops", "formats")),
]
KINDS = [k for k, _ in SIGNATURES]
COMMANDS = ("run, op, estimate, simulate, capacity, silicon, emulate, validate e2e, validate kernels, explore, "
            "plan")


def kind_of(d) -> str | None:
    """The command whose JSON ``d`` is, or None."""
    if not isinstance(d, dict):
        return None
    return next((k for k, keys in SIGNATURES if all(x in d for x in keys)), None)


def _from_folder(p: Path) -> tuple[str, dict]:
    if (p / "results.duckdb").is_file():
        from ..explore.stored import stored_run
        return "explore", stored_run(p)
    if (p / "plan.json").is_file():
        return "plan", _from_file(p / "plan.json", expect="plan")[1]
    raise SpecError(f"report SOURCE {str(p)!r} is a folder without results.duckdb (explore --out) or plan.json "
                    f"(plan --out); give one of those folders or a command's --json output")


def _from_file(p: Path, expect: str | None = None) -> tuple[str, dict]:
    text = read_text(p, "report SOURCE")
    try:
        d = json.loads(text)
    except ValueError as e:
        line = getattr(e, "lineno", None)
        raise SpecError(f"report SOURCE {str(p)!r} is not JSON{f' (line {line})' if line else ''}: give what a "
                        f"command prints with --json (seedchip simulate ... --json > sim.json)") from None
    kind = kind_of(d)
    if kind is None or (expect and kind != expect):
        keys = ", ".join(sorted(d)[:8]) if isinstance(d, dict) else type(d).__name__
        raise SpecError(f"report SOURCE {str(p)!r} is JSON no SeedChip command writes (top level: {keys or 'empty'});"
                        f" give the --json output of {COMMANDS}")
    return kind, d


def load(source: str | Path) -> tuple[str, dict]:
    """(kind, result dictionary) of a report source: a JSON file or an explore/plan folder."""
    p = Path(source)
    if str(source).strip() == "":
        raise SpecError("report SOURCE '' is empty: give a JSON file or an explore/plan folder")
    if p.is_dir():
        return _from_folder(p)
    if not p.exists():
        raise SpecError(f"report SOURCE {str(p)!r} does not exist: give a command's --json output or an "
                        f"explore/plan --out folder")
    return _from_file(p)


__all__ = ["load", "kind_of", "KINDS", "SIGNATURES"]
