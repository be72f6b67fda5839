"""YAML with line numbers, so that a validation error can say ``plan.yaml:12: demand.chat.slo: ...``
(used by the design-space and the plan loaders).

The document is composed (not just loaded) so every mapping key and sequence item keeps the
line it starts on; pydantic's error location is then mapped back to the nearest line.
"""

from __future__ import annotations

from typing import Any

import yaml
from pydantic import ValidationError

from .errors import SpecError, first_error, inner_error, one_line


_FAST_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def safe_load(text: str) -> Any:
    """``yaml.safe_load`` through libyaml's parser when PyYAML was built with it (the same
    data, several times faster: data files are read at every start)."""
    return yaml.load(text, Loader=_FAST_LOADER)


class PathError(ValueError):
    """A validation error that knows where below its field it happened (for the YAML line)."""

    def __init__(self, msg: str, path: tuple = ()):
        super().__init__(msg)
        self.path = tuple(path)


def _scalar(node: yaml.ScalarNode) -> Any:
    loader = yaml.SafeLoader("")
    try:
        return loader.construct_object(node, deep=True)
    finally:
        loader.dispose()


def _compose(node: yaml.Node, path: tuple, marks: dict) -> Any:
    marks.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        out = {}
        for k, v in node.value:
            key = _scalar(k) if isinstance(k, yaml.ScalarNode) else str(k.start_mark)
            marks[path + (key,)] = k.start_mark.line + 1
            out[key] = _compose(v, path + (key,), marks)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_compose(v, path + (i,), marks) for i, v in enumerate(node.value)]
    return _scalar(node)


def load_marked(text: str, origin: str) -> tuple[Any, dict]:
    """(data, {path tuple: line}) of a YAML document."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as e:
        raise SpecError(f"{origin}: not valid YAML: {one_line(e)}") from None
    if root is None:
        return None, {}
    marks: dict = {}
    return _compose(root, (), marks), marks


def line_of(marks: dict, loc: tuple) -> int | None:
    loc = tuple(loc)
    while loc:
        if loc in marks:
            return marks[loc]
        loc = loc[:-1]
    return marks.get(())


def clean_loc(loc, drop: tuple[str, ...] = ()) -> tuple:
    """Drop pydantic's union-member tags (``list[float]``, ``function-after[...]``, and the
    model names in ``drop``) from a location."""
    return tuple(x for x in loc if not (isinstance(x, str) and ("[" in x or "(" in x or x in drop)))


def loc_name(loc: tuple) -> str:
    out = ""
    for x in loc:
        out += f"[{x}]" if isinstance(x, int) else (f".{x}" if out else str(x))
    return out or "(top level)"


def where(origin: str, marks: dict, loc: tuple) -> str:
    line = line_of(marks, loc)
    return f"{origin}:{line}: {loc_name(loc)}" if line else f"{origin}: {loc_name(loc)}"


def validation_error(e: ValidationError, origin: str, marks: dict, drop: tuple[str, ...] = ()) -> SpecError:
    """The first pydantic error as one line naming the file, the line and the field."""
    errs = e.errors()
    first, unknown = first_error(errs)
    loc = clean_loc(first["loc"], drop)
    inner = inner_error(e) if first is errs[0] else None
    if isinstance(inner, PathError):
        loc = loc + inner.path
    msg = first["msg"].removeprefix("Value error, ")
    if unknown:
        msg = f"unknown field {loc[-1]!r} {unknown}" if loc else msg
    elif ("input" in first and first.get("type") not in ("missing",) and not isinstance(first["input"], (dict, list))
          and repr(first["input"]) not in msg):
        msg = f"{msg} (got {first['input']!r})"
    more = f" (and {len(errs) - 1} more)" if len(errs) > 1 else ""
    return SpecError(f"{where(origin, marks, loc)}: {msg}{more}")
