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


def validation_line(err, what: str = "", default_loc: str = "(top level)") -> str:
    """A pydantic ValidationError as the project's one line: ``what: field.path: message``
    (the first error; how many more when there are several)."""
    first = err.errors()[0]
    loc = ".".join(str(x) for x in first["loc"]) or default_loc
    msg = first["msg"].removeprefix("Value error, ")
    more = f" (and {err.error_count() - 1} more)" if err.error_count() > 1 else ""
    return f"{what + ': ' if what else ''}{loc}: {msg}{more}"


def inner_error(err) -> BaseException | None:
    """The project's own error raised inside a pydantic validator, if that is the first."""
    return (err.errors()[0].get("ctx") or {}).get("error")
