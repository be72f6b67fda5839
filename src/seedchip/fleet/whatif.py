"""What-ifs: ``key=value`` changes applied to a resolved problem (a copy) before re-solving.

    hbm_supply=-30%          HBM stacks supplied, every quarter (a number sets stacks per quarter)
    hbm_price=+50%           HBM price: each device's unit cost moves by its HBM content x the change
                             x its pass-through (our chips and, by default, GPUs)
    nre=+100%                NRE of every own chip (a number sets it); DEVICE_nre=... one chip
    power=-10%               facility MW available (alias power_mw)
    budget=+25%              capex budget per year
    demand=+20%              every class's demand; CLASS_demand=+20% one class
    demand_growth=+20%       demand grows 20% a year faster (compounded from the first quarter)
    chip_slip=2              every own chip arrives 2 quarters later (availability and ramp shift)
    DEVICE_slip=1            one device arrives later
    DEVICE_price=+10%        unit price (chip only; a number sets $ per chip); gpu_price / chip_price: all
                             GPUs / all own chips
    DEVICE_cap=-20%          production cap (alias DEVICE_production)
    DEVICE_lead_time=2       lead time in quarters
    DEVICE_capacity=-15%     served rate per chip (a slower chip than simulated)
    pue=1.4, usd_per_kwh=0.1 (or +20%), capacity_derate=0.8

DEVICE matches a device name or its chip id, by prefix (``h200`` matches ``h200-sxm``).
Each key has a small handler: ``GLOBAL_HANDLERS`` (keys matched whole) and ``SUFFIX_HANDLERS``
(``TARGET_suffix`` keys).
Values: ``+10%`` / ``-30%`` (relative), ``x1.5`` (factor), or a plain number (absolute).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable

import numpy as np

from ..errors import SpecError
from .problem import Problem, check_magnitudes
from .schedule import shift

GLOBAL_KEYS = ("hbm_supply", "hbm_price", "power", "budget", "demand", "demand_growth", "chip_slip", "nre", "pue",
               "usd_per_kwh", "capacity_derate")
DEVICE_SUFFIXES = ("price", "nre", "cap", "production", "slip", "lead_time", "capacity")
ALIASES = {"hbm": "hbm_supply", "power_mw": "power", "energy_price": "usd_per_kwh", "derate": "capacity_derate",
           "slip": "chip_slip"}


def _norm(s: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", s.lower()).strip("_")


def parse_value(text: str, key: str) -> tuple[str, float]:
    """('rel', 0.1) for '+10%', ('mul', 1.5) for 'x1.5', ('abs', 2.0) for '2'."""
    t = text.strip().replace(" ", "")
    try:
        if t.endswith("%"):
            return "rel", float(t[:-1]) / 100.0
        if t[:1] in ("x", "X", "*"):
            return "mul", float(t[1:])
        return "abs", float(t)
    except ValueError:
        raise SpecError(f"--what-if {key}={text!r}: write a change such as +10%, -30%, x1.5 or a number") from None


def _factor(kind: str, v: float, key: str) -> float:
    f = 1.0 + v if kind == "rel" else v
    if not f >= 0:
        raise SpecError(f"--what-if {key}: the change leaves a negative value (factor {f:.3g})")
    return f


def _scaled(arr, kind: str, v: float, key: str, what: str):
    if arr is None:
        raise SpecError(f"--what-if {key}: the scenario has no {what} limit to change")
    if kind == "abs":
        if v < 0:
            raise SpecError(f"--what-if {key}={v}: must be >= 0")
        return np.full_like(arr, v, dtype=float), f"{what} set to {v:,.6g}"
    f = _factor(kind, v, key)
    return arr * f, f"{what} x{f:.3g}"


def _devices(p: Problem, target: str, key: str) -> list[int]:
    if target in ("chip", "chips", "own"):
        out = [i for i, k in enumerate(p.kinds) if k == "own"]
    elif target in ("gpu", "gpus"):
        out = [i for i, k in enumerate(p.kinds) if k == "gpu"]
    else:
        exact = [i for i, (d, c) in enumerate(zip(p.devices, p.chips)) if target in (_norm(d), _norm(c))]
        out = exact or [i for i, (d, c) in enumerate(zip(p.devices, p.chips))
                        if _norm(d).startswith(target) or _norm(c).startswith(target)]
        if len(out) > 1:
            raise SpecError(f"--what-if {key}: {target!r} matches {', '.join(p.devices[i] for i in out)}; "
                            "use the full device name")
    if not out:
        raise SpecError(f"--what-if {key}: no device matches {target!r}; devices: {', '.join(p.devices)}")
    return out


@dataclass(frozen=True)
class _Change:
    """One what-if being applied: ``p`` the problem before, ``q`` its copy to change, the parsed
    value (``kind`` rel | mul | abs, ``v``), the key as the user wrote it and the value's text."""
    p: Problem
    q: Problem
    kind: str
    v: float
    raw_key: str
    text: str

    def factor(self) -> float:
        return _factor(self.kind, self.v, self.raw_key)

    def scaled(self, arr, what: str):
        return _scaled(arr, self.kind, self.v, self.raw_key, what)


# ---- global changes: each sets one field of the copy and says what it did -------------------
def _scaled_field(field: str, what: str) -> "Handler":
    """A handler that scales the problem's array ``field`` (``what`` names it for the message)."""
    def handler(c: _Change, target: str | None) -> str:
        value, msg = c.scaled(getattr(c.p, field), what)
        setattr(c.q, field, value)
        return msg
    return handler


def _demand_growth(c: _Change, target: str | None) -> str:
    p = c.p
    g = c.v if c.kind != "mul" else c.v - 1.0
    f = (1.0 + g) ** (np.arange(p.num_quarters) / 4.0)
    c.q.peak_rate = p.peak_rate * f[None, :]
    return f"demand growing {g:+.0%} a year faster (x{f[-1]:.3g} by {p.quarters[-1]})"


def _facility_number(key: str):
    """pue or usd_per_kwh: a number sets it, a change scales it."""
    def handler(c: _Change, target: str | None) -> str:
        cur = getattr(c.p, key)
        new = c.v if c.kind == "abs" else cur * c.factor()
        if key == "pue" and new < 1:
            raise SpecError(f"--what-if {c.raw_key}: PUE {new:.3g} is below 1")
        setattr(c.q, key, float(new))
        return f"{key} {cur:.3g} -> {new:.3g}"
    return handler


def _capacity_derate(c: _Change, target: str | None) -> str:
    p = c.p
    new = c.v if c.kind == "abs" else p.capacity_derate * c.factor()
    if not 0 < new <= 1:
        raise SpecError(f"--what-if {c.raw_key}: capacity_derate {new:.3g} must be in (0, 1]")
    c.q.rate_per_chip = p.rate_per_chip * (new / p.capacity_derate)
    c.q.capacity_derate = float(new)
    return f"capacity derate {p.capacity_derate:.3g} -> {new:.3g}"


def _hbm_price(c: _Change, target: str | None) -> str:
    """HBM price per stack: every device's unit cost moves by its HBM content x the change x its
    pass-through (our chips 1; a GPU what its vendor passes on)."""
    p, q = c.p, c.q
    if c.kind == "abs":
        raise SpecError(f"--what-if {c.raw_key}={c.text}: give a relative change such as +50% or x1.5")
    f = c.factor()
    q.unit_cost_usd = p.unit_cost_usd + p.hbm_usd * (f - 1.0) * p.hbm_pass
    q.hbm_usd = p.hbm_usd * f
    moved = [f"{p.devices[d]} {q.unit_cost_usd[d] - p.unit_cost_usd[d]:+,.0f} $" for d in range(len(p.devices))
             if p.hbm_usd[d] > 0 and p.hbm_pass[d] > 0]
    return f"HBM price x{f:.3g}: unit cost " + (", ".join(moved) if moved else "unchanged (no device has an HBM cost)")


# ---- per-device and per-class changes (the target is the key's prefix) ----------------------
def _nre(c: _Change, target: str | None) -> str:
    p, q = c.p, c.q
    ds = [d for d in _devices(p, target or "chip", c.raw_key) if p.own[d]]
    if not ds:
        raise SpecError(f"--what-if {c.raw_key}: NRE belongs to our own chips; {target!r} is a GPU")
    for d in ds:
        if c.kind == "abs":
            if c.v < 0:
                raise SpecError(f"--what-if {c.raw_key}={c.text}: NRE must be >= 0")
            q.nre_usd[d] = c.v
        else:
            q.nre_usd[d] = p.nre_usd[d] * c.factor()
    return "NRE of " + ", ".join(f"{p.devices[d]} ${q.nre_usd[d]:,.0f}" for d in ds)


def _slip(c: _Change, target: str | None) -> str:
    p, q = c.p, c.q
    n = int(round(c.v))
    if c.kind != "abs" or n < 0:
        raise SpecError(f"--what-if {c.raw_key}={c.text}: give a whole number of quarters, e.g. 2")
    ds = _devices(p, target, c.raw_key)
    for d in ds:
        q.available_from[d] = p.available_from[d] + n
        q.cap_chips[d] = shift(p.cap_chips[d], n, 0.0)
    return f"{', '.join(p.devices[d] for d in ds)} {n} quarter{'s' if n != 1 else ''} later (availability and ramp)"


def _class_demand(c: _Change, target: str | None) -> str:
    p = c.p
    ms = [i for i, m in enumerate(p.demands) if _norm(m) == target]
    if not ms:
        raise SpecError(f"--what-if {c.raw_key}: no demand class {target!r}; classes: {', '.join(p.demands)}")
    c.q.peak_rate[ms[0]], msg = c.scaled(p.peak_rate[ms[0]], f"demand of {p.demands[ms[0]]}")
    return msg


def _price(c: _Change, target: str | None) -> str:
    p, q = c.p, c.q
    ds = _devices(p, target, c.raw_key)
    for d in ds:
        q.unit_cost_usd[d] = c.v if c.kind == "abs" else p.unit_cost_usd[d] * c.factor()
    names = ", ".join(p.devices[d] for d in ds)
    return f"unit price of {names} " + (f"set to ${c.v:,.0f}" if c.kind == "abs" else f"x{c.factor():.3g}")


def _production_cap(c: _Change, target: str | None) -> str:
    p, q = c.p, c.q
    ds = _devices(p, target, c.raw_key)
    for d in ds:
        if c.kind == "abs":
            q.cap_chips[d] = np.where(p.cap_chips[d] > 0, c.v, 0.0)
        else:
            q.cap_chips[d] = p.cap_chips[d] * c.factor()
    names = ", ".join(p.devices[d] for d in ds)
    return f"production cap of {names} " + (f"set to {c.v:,.0f}" if c.kind == "abs" else f"x{c.factor():.3g}")


def _lead_time(c: _Change, target: str | None) -> str:
    p, q = c.p, c.q
    ds = _devices(p, target, c.raw_key)
    if c.kind != "abs" or c.v < 0:
        raise SpecError(f"--what-if {c.raw_key}={c.text}: give a whole number of quarters")
    for d in ds:
        q.lead_time[d] = int(round(c.v))
    return f"lead time of {', '.join(p.devices[d] for d in ds)} = {int(round(c.v))} quarters"


def _served_rate(c: _Change, target: str | None) -> str:
    p, q = c.p, c.q
    ds = _devices(p, target, c.raw_key)
    if c.kind == "abs":
        raise SpecError(f"--what-if {c.raw_key}={c.text}: give a relative change such as -15% or x0.85")
    for d in ds:
        q.rate_per_chip[:, d] = p.rate_per_chip[:, d] * c.factor()
    return f"served rate per chip of {', '.join(p.devices[d] for d in ds)} x{c.factor():.3g}"


Handler = Callable[[_Change, str | None], str]       # (the change, its target) -> what changed

# keys matched whole (after aliases)
GLOBAL_HANDLERS: dict[str, Handler] = {
    "hbm_supply": _scaled_field("hbm_supply", "HBM supply per quarter"),
    "hbm_price": _hbm_price,
    "nre": _nre,                        # every own chip
    "power": _scaled_field("power_mw", "facility power (MW)"),
    "budget": _scaled_field("budget_usd", "budget per year"),
    "demand": _scaled_field("peak_rate", "demand of every class"),
    "demand_growth": _demand_growth,
    "pue": _facility_number("pue"),
    "usd_per_kwh": _facility_number("usd_per_kwh"),
    "capacity_derate": _capacity_derate,
    "chip_slip": _slip,                 # every own chip: the target is "chip"
}
# TARGET_suffix keys, tried in this order: slip and class demand first, then the device suffixes
# longest first
SUFFIX_HANDLERS: dict[str, Handler] = {
    "slip": _slip,
    "demand": _class_demand,
    "nre": _nre,
    "production": _production_cap,
    "lead_time": _lead_time,
    "capacity": _served_rate,
    "price": _price,
    "cap": _production_cap,
}


def _handler(p: Problem, key: str, raw_key: str) -> tuple[Handler, str | None]:
    """The handler of a (normalised, de-aliased) key and the target it names."""
    if key in GLOBAL_HANDLERS:
        return GLOBAL_HANDLERS[key], ("chip" if key == "chip_slip" else None)
    for suf, handler in SUFFIX_HANDLERS.items():
        if key.endswith("_" + suf):
            return handler, key[: -len(suf) - 1]
    raise SpecError(f"--what-if {raw_key!r}: unknown key; use {', '.join(GLOBAL_KEYS)}, CLASS_demand or "
                    f"DEVICE_{{{','.join(DEVICE_SUFFIXES)}}} (devices: {', '.join(p.devices)})")


def apply_what_if(p: Problem, item: str) -> tuple[Problem, str]:
    """A copy of ``p`` with one change, and a sentence saying what changed."""
    if "=" not in item:
        raise SpecError(f"--what-if {item!r}: write key=value, e.g. hbm_supply=-30% or chip_slip=2")
    raw_key, text = item.split("=", 1)
    key = _norm(raw_key)
    key = ALIASES.get(key, key)
    kind, v = parse_value(text, raw_key)
    q = p.copy()
    handler, target = _handler(p, key, raw_key)
    return q, handler(_Change(p, q, kind, v, raw_key, text), target)


def apply_what_ifs(p: Problem, items: list[str] | tuple[str, ...]) -> tuple[Problem, list[dict]]:
    changes = []
    for it in items:
        p, msg = apply_what_if(p, it)
        changes.append({"what_if": it, "applied": msg})
    check_magnitudes(p)
    return p, changes
