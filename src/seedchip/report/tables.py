"""A table for any JSON value: fields a page knows only by name (a planner's sweep, a
per-device breakdown) are shown whatever their shape."""

from __future__ import annotations

import json

from .page import Page, compact, show

MAX_ROWS = 200


def _cell(key: str, v) -> str:
    if isinstance(v, (dict, list)):
        return json.dumps(compact(v), sort_keys=True)[:160]
    if isinstance(v, bool) or v is None or isinstance(v, str):
        return show(v)
    if key.endswith("_usd"):
        return show(v, "usd")
    if key.endswith(("_pct", "_percent")):
        return f"{v:.2f}%"
    if key.endswith("_s"):
        return show(v, "s")
    return show(v)


def _flat(r: dict) -> dict:
    """A record with its dict-of-scalars fields spread into columns (``purchases h200-sxm``)."""
    out = {}
    for k, v in r.items():
        if isinstance(v, dict) and v and all(not isinstance(x, (dict, list)) for x in v.values()):
            out.update({f"{k} {kk}": vv for kk, vv in v.items()})
        else:
            out[k] = v
    return out


def _columns(rows: list[dict]) -> list[str]:
    cols: list[str] = []
    for r in rows:
        cols += [k for k in r if k not in cols]
    return cols


def _head(c: str) -> str:
    return c.replace("_", " ")


def _numeric(rows: list[dict], cols: list[str], offset: int = 0) -> set[int]:
    """Indices of the columns holding numbers only (aligned right)."""
    def num(v):
        return v is None or (isinstance(v, (int, float)) and not isinstance(v, bool))
    return {i + offset for i, c in enumerate(cols) if all(num(r.get(c)) for r in rows)}


def any_table(page: Page, value, caption: str = "") -> None:
    """``value`` as a table: a list of records, a dict of records, a dict of scalars or a list of scalars."""
    if isinstance(value, list) and value and all(isinstance(r, dict) for r in value):
        recs = [_flat(r) for r in value[:MAX_ROWS]]
        cols = _columns(recs)
        page.table([_head(c) for c in cols], [[_cell(c, r.get(c)) for c in cols] for r in recs], caption,
                   _numeric(recs, cols))
    elif isinstance(value, dict) and value and all(isinstance(r, dict) for r in value.values()):
        recs = {k: _flat(r) for k, r in list(value.items())[:MAX_ROWS]}
        cols = _columns(list(recs.values()))
        page.table(["", *map(_head, cols)], [[k, *(_cell(c, r.get(c)) for c in cols)] for k, r in recs.items()],
                   caption, _numeric(list(recs.values()), cols, 1))
    elif isinstance(value, dict):
        page.table(["field", "value"], [[_head(k), _cell(k, v)] for k, v in list(value.items())[:MAX_ROWS]], caption,
                   numeric=set())
    elif isinstance(value, list):
        page.table(["#", "value"], [[i, _cell("", v)] for i, v in enumerate(value[:MAX_ROWS])], caption, numeric={0})
    else:
        page.note(f"{caption}: {_cell('', value)}")


__all__ = ["any_table"]
