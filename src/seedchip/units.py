"""SI units at the edges.

Inside the code every quantity is a float in SI base units (bytes, FLOP, seconds,
joules, watts, bytes/s, FLOP/s). Human strings such as ``"141 GB"``, ``"4.8 TB/s"``,
``"989 TFLOP/s"`` or ``"200 ms"`` are accepted only where users type (YAML, CLI) and
printed only by :func:`fmt`. Decimal prefixes are 10^3n and binary prefixes (KiB, MiB,
GiB, TiB) 2^10n; the two are never mixed.
"""

from __future__ import annotations

import math
import re

from .errors import SpecError

_DEC = {"": 1.0, "k": 1e3, "K": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "P": 1e15, "E": 1e18,
        "m": 1e-3, "u": 1e-6, "µ": 1e-6, "n": 1e-9, "p": 1e-12, "f": 1e-15}
_BIN = {"Ki": 2.0**10, "Mi": 2.0**20, "Gi": 2.0**30, "Ti": 2.0**40, "Pi": 2.0**50}

# base unit spelling -> (dimension, factor to SI)
_BASE = {
    "B": ("bytes", 1.0), "byte": ("bytes", 1.0), "bytes": ("bytes", 1.0),
    "b": ("bits", 1.0), "bit": ("bits", 1.0),
    "B/s": ("bytes/s", 1.0), "Bps": ("bytes/s", 1.0),
    "b/s": ("bits/s", 1.0), "bps": ("bits/s", 1.0),
    "FLOP/s": ("flop/s", 1.0), "FLOPS": ("flop/s", 1.0), "OP/s": ("flop/s", 1.0), "OPS": ("flop/s", 1.0),
    "FLOP": ("flop", 1.0), "OP": ("flop", 1.0),
    "s": ("s", 1.0), "sec": ("s", 1.0),
    "Hz": ("hz", 1.0), "W": ("w", 1.0), "J": ("j", 1.0),
    "J/bit": ("j/bit", 1.0), "J/b": ("j/bit", 1.0), "J/B": ("j/byte", 1.0), "J/FLOP": ("j/flop", 1.0),
    "m2": ("m2", 1.0), "mm2": ("m2", 1e-6),
}
_NUM = r"[-+]?(?:\d+(?:_\d+)*(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?"
_RE = re.compile(rf"^\s*({_NUM})\s*([A-Za-zµ/0-9]*)\s*$")

DIMENSIONS = {"bytes", "bits", "bytes/s", "bits/s", "flop/s", "flop", "s", "hz", "w", "j",
              "j/bit", "j/byte", "j/flop", "m2", "dimensionless"}


def _split_unit(unit: str) -> tuple[str, float]:
    """Return (dimension, factor) of a unit string such as 'TB/s' or 'GiB' or 'pJ/bit'."""
    if unit in _BASE:
        return _BASE[unit]
    for prefix, factor in _BIN.items():
        if unit.startswith(prefix) and unit[len(prefix):] in _BASE:
            dim, f = _BASE[unit[len(prefix):]]
            if dim not in ("bytes", "bits", "bytes/s", "bits/s"):
                break
            return dim, f * factor
    if unit and unit[0] in _DEC and unit[1:] in _BASE:
        dim, f = _BASE[unit[1:]]
        return dim, f * _DEC[unit[0]]
    raise SpecError(f"unknown unit {unit!r}: use SI spellings such as GB, GiB, TB/s, TFLOP/s, GHz, W, ms, pJ/bit")


def parse(value: object, dimension: str, *, what: str = "value") -> float:
    """Parse a number or a human string into SI base units of ``dimension``.

    Plain numbers are taken as already in SI base units. Bits are turned into bytes
    (and bits/s into bytes/s) when the wanted dimension is bytes. Raises SpecError
    that quotes the bad value.
    """
    if isinstance(value, bool):
        raise SpecError(f"{what}: expected a quantity in {dimension}, got {value!r}")
    if isinstance(value, (int, float)):
        v = float(value)
    elif isinstance(value, str):
        m = _RE.match(value)
        if not m:
            raise SpecError(f"{what}: cannot read {value!r} as a quantity; write e.g. '4.8 TB/s' or '141 GB'")
        number = float(m.group(1).replace("_", ""))
        unit = m.group(2)
        if not unit:
            v = number
        else:
            try:
                dim, factor = _split_unit(unit)
            except SpecError as e:
                raise SpecError(f"{what}: {e}") from None
            if dim == "bits" and dimension == "bytes":
                dim, factor = "bytes", factor / 8
            elif dim == "bits/s" and dimension == "bytes/s":
                dim, factor = "bytes/s", factor / 8
            elif dim == "j/bit" and dimension == "j/byte":
                dim, factor = "j/byte", factor * 8
            if dim != dimension:
                raise SpecError(f"{what}: {value!r} is in {dim}, expected {dimension}")
            v = number * factor
    else:
        raise SpecError(f"{what}: expected a number or a string with a unit, got {value!r}")
    if not math.isfinite(v):
        raise SpecError(f"{what}: {value!r} is not finite")
    return v


_FMT_UNITS = {
    "bytes": "B", "bytes/s": "B/s", "flop/s": "FLOP/s", "flop": "FLOP", "s": "s",
    "hz": "Hz", "w": "W", "j": "J", "j/byte": "J/B", "j/flop": "J/FLOP",
}


def fmt(value: float | None, dimension: str, digits: int = 3) -> str:
    """The one formatter for humans: 1.41e11, 'bytes' -> '141 GB'; 2e-4, 's' -> '200 µs'."""
    if value is None:
        return "—"
    unit = _FMT_UNITS.get(dimension, dimension)
    if value == 0:
        return f"0 {unit}"
    a = abs(value)
    if dimension == "s" or dimension.startswith("j/"):
        steps = [(1.0, ""), (1e-3, "m"), (1e-6, "µ"), (1e-9, "n"), (1e-12, "p"), (1e-15, "f")]
        if a >= 1:
            return f"{value:.{digits}g} {unit}"
    else:
        steps = [(1e18, "E"), (1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k"), (1.0, "")]
    for factor, prefix in steps:
        if a >= factor * 0.9995:
            return f"{value / factor:.{digits}g} {prefix}{unit}"
    factor, prefix = steps[-1]
    return f"{value / factor:.{digits}g} {prefix}{unit}"
