"""Typed errors. Every user mistake raises a subclass of :class:`SeedChipError`
whose message quotes the bad value and says how to fix it; the CLI turns these
into one line on stderr and exit code 2."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class SeedChipError(Exception):
    """Base of every error a user can cause. ``str(err)`` is one line."""


class SpecError(SeedChipError, ValueError):
    """A chip, model or option value is malformed or out of range."""


class UnknownNameError(SeedChipError, KeyError):
    """A catalog name (chip, model, format, calibration) that does not exist."""

    def __init__(self, kind: str, name: str, known: Iterable[str]):
        known = sorted(known)
        close = difflib.get_close_matches(name.lower(), known, n=3, cutoff=0.5)
        hint = f"did you mean {', '.join(repr(c) for c in close)}? " if close else ""
        msg = f"unknown {kind} {name!r}: {hint}known: {', '.join(known)}"
        super().__init__(msg)
        self.kind, self.name, self.known, self.close = kind, name, known, close

    def __str__(self) -> str:  # KeyError would quote the message otherwise
        return self.args[0]


class UnsupportedArchitectureError(SeedChipError, ValueError):
    """A Hugging Face config whose architecture the model layer cannot normalise."""


class ParallelismError(SeedChipError, ValueError):
    """A parallel plan that does not fit the model or the number of chips."""


class BackendError(SeedChipError, RuntimeError):
    """A parallel backend that cannot start, or lost a worker for good (``parallel.py``)."""


class DoesNotFitError(SeedChipError, ValueError):
    """The model (weights + KV + activations) does not fit in the chips' memory."""

    def __init__(self, message: str, needed_bytes: float, available_bytes: float):
        super().__init__(message)
        self.needed_bytes = needed_bytes
        self.available_bytes = available_bytes


def one_line(err: BaseException) -> str:
    """The error as a single line (pydantic and YAML errors span several)."""
    text = " ".join(str(err).split())
    return text


def first_error(errors: list[dict]) -> tuple[dict, str | None]:
    """The error to report first, and a hint when it is an unknown field: a typo'd key
    (``tdp_wat``) also makes its intended field "missing", so the unknown key is the cause
    to name, with the missing field it most resembles."""
    extra = next((e for e in errors if e.get("type") == "extra_forbidden" and e["loc"]), None)
    if extra is None:
        return errors[0], None
    name, parent = str(extra["loc"][-1]), tuple(extra["loc"][:-1])
    missing = [str(e["loc"][-1]) for e in errors if e.get("type") == "missing" and tuple(e["loc"][:-1]) == parent]
    close = difflib.get_close_matches(name, missing, n=1, cutoff=0.5)
    return extra, f"(did you mean {close[0]!r}?)" if close else "(a typo?)"


def validation_line(err, what: str = "", default_loc: str = "(top level)") -> str:
    """A pydantic ValidationError as the project's one line: ``what: field.path: message``
    (the first error, an unknown field before the rest; how many more when there are several)."""
    first, unknown = first_error(err.errors())
    loc = "" if unknown else (".".join(str(x) for x in first["loc"]) or default_loc)
    msg = (f"unknown field {'.'.join(map(str, first['loc']))!r} {unknown}" if unknown
           else first["msg"].removeprefix("Value error, "))
    if not unknown and first.get("type") not in ("missing",) and "input" in first \
            and not isinstance(first["input"], (dict, list)) and repr(first["input"]) not in msg:
        msg = f"{msg} (got {first['input']!r})"
    more = f" (and {err.error_count() - 1} more)" if err.error_count() > 1 else ""
    return f"{what + ': ' if what else ''}{loc + ': ' if loc else ''}{msg}{more}"


def inner_error(err) -> BaseException | None:
    """The project's own error raised inside a pydantic validator, if that is the first."""
    return (err.errors()[0].get("ctx") or {}).get("error")
