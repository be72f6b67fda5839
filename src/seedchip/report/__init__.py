"""report/: one self-contained HTML page with plots for any SeedChip result.

    from seedchip.report import report_html, write_report
    write_report("sim.json", "sim.html")           # a command's --json output
    write_report("runs/asic1", "asic1.html")       # an explore --out folder (or a plan --out folder)
    html = report_html(seedchip.simulate(...).to_dict())

Every page puts the inputs, the provenance and the key numbers on top, then the plots of
its kind (``source.KINDS``). The same result gives byte-identical HTML."""

from __future__ import annotations

import importlib
from pathlib import Path

from ..errors import SeedChipError, SpecError
from ..outputs import check_file, probe, write_text
from .source import KINDS, kind_of, load

# kind -> module (in this package) whose build(d) returns a Page
BUILDERS = {"estimate": "perf_pages", "run": "perf_pages", "op": "perf_pages", "simulate": "serve_pages",
            "capacity": "serve_pages", "silicon": "silicon_page", "explore": "explore_page", "plan": "plan_page",
            "validate-e2e": "check_pages", "validate-kernels": "check_pages", "emulate": "check_pages"}


def check_out(path: str | Path, option: str = "--out") -> Path:
    """``path`` as an HTML file this process can write (checked before any work)."""
    p = check_file(path, option)
    if p.suffix.lower() not in (".html", ".htm"):
        raise SpecError(f"{option} {str(p)!r} must end in .html (the report is one HTML page)")
    return probe(p, option)


def report_html(result: dict, kind: str | None = None) -> str:
    """The page for a result dictionary (what a command's ``to_dict()`` / ``--json`` gives)."""
    kind = kind or kind_of(result)
    if kind not in BUILDERS:
        raise SpecError(f"no report for this result (kind {kind!r}); known kinds: {', '.join(KINDS)}")
    module = importlib.import_module(f".{BUILDERS[kind]}", __name__)
    try:
        page = module.build(kind, result)
    except SeedChipError:
        raise
    except (KeyError, TypeError, ValueError, IndexError, AttributeError, ZeroDivisionError) as e:
        raise SpecError(f"this {kind} result lacks or garbles a field ({type(e).__name__}: {str(e)[:80]}); make it "
                        f"again with this SeedChip version's --json") from None
    return page.html()


def write_report(source: str | Path | dict, out: str | Path, option: str = "--out") -> Path:
    """Write the page for ``source`` (a JSON file, an explore/plan folder or a result dict) to ``out``."""
    check_out(out, option)
    if isinstance(source, dict):
        text = report_html(source)
    else:
        kind, d = load(source)
        text = report_html(d, kind)
    return write_text(out, text, option)


__all__ = ["report_html", "write_report", "check_out", "load", "kind_of", "KINDS"]
