"""What-ifs: ``key=value`` changes applied to a resolved problem (a copy) before re-solving.

    hbm_supply=-30%          HBM stacks supplied, every quarter (a number sets stacks per quarter)
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
Values: ``+10%`` / ``-30%`` (relative), ``x1.5`` (factor), or a plain number (absolute).
"""

from __future__ import annotations

import re

import numpy as np

from ..errors import SpecError
from .problem import Problem

GLOBAL_KEYS = ("hbm_supply", "power", "budget", "demand", "demand_growth", "chip_slip", "pue", "usd_per_kwh",
               "capacity_derate")
DEVICE_SUFFIXES = ("price", "cap", "production", "slip", "lead_time", "capacity")
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


def _shift(arr: np.ndarray, n: int, fill) -> np.ndarray:
    out = np.empty_like(arr)
    if n <= 0:
        return arr.copy()
    out[:n] = fill
    out[n:] = arr[:-n] if n < len(arr) else arr[:0]
    return out


def apply_what_if(p: Problem, item: str) -> tuple[Problem, str]:
    """A copy of ``p`` with one change, and a sentence saying what changed."""
    if "=" not in item:
        raise SpecError(f"--what-if {item!r}: write key=value, e.g. hbm_supply=-30% or chip_slip=2")
    raw_key, text = item.split("=", 1)
    key = _norm(raw_key)
    key = ALIASES.get(key, key)
    kind, v = parse_value(text, raw_key)
    q = p.copy()
    if key == "hbm_supply":
        q.hbm_supply, msg = _scaled(p.hbm_supply, kind, v, raw_key, "HBM supply per quarter")
    elif key == "power":
        q.power_mw, msg = _scaled(p.power_mw, kind, v, raw_key, "facility power (MW)")
    elif key == "budget":
        q.budget_usd, msg = _scaled(p.budget_usd, kind, v, raw_key, "budget per year")
    elif key == "demand":
        q.peak_rate, msg = _scaled(p.peak_rate, kind, v, raw_key, "demand of every class")
    elif key == "demand_growth":
        g = v if kind != "mul" else v - 1.0
        f = (1.0 + g) ** (np.arange(p.num_quarters) / 4.0)
        q.peak_rate = p.peak_rate * f[None, :]
        msg = f"demand growing {g:+.0%} a year faster (x{f[-1]:.3g} by {p.quarters[-1]})"
    elif key in ("pue", "usd_per_kwh"):
        cur = getattr(p, key)
        new = v if kind == "abs" else cur * _factor(kind, v, raw_key)
        if key == "pue" and new < 1:
            raise SpecError(f"--what-if {raw_key}: PUE {new:.3g} is below 1")
        setattr(q, key, float(new))
        msg = f"{key} {cur:.3g} -> {new:.3g}"
    elif key == "capacity_derate":
        new = v if kind == "abs" else p.capacity_derate * _factor(kind, v, raw_key)
        if not 0 < new <= 1:
            raise SpecError(f"--what-if {raw_key}: capacity_derate {new:.3g} must be in (0, 1]")
        q.rate_per_chip = p.rate_per_chip * (new / p.capacity_derate)
        q.capacity_derate = float(new)
        msg = f"capacity derate {p.capacity_derate:.3g} -> {new:.3g}"
    elif key == "chip_slip" or key.endswith("_slip"):
        target = "chip" if key == "chip_slip" else key[: -len("_slip")]
        n = int(round(v))
        if kind != "abs" or n < 0:
            raise SpecError(f"--what-if {raw_key}={text}: give a whole number of quarters, e.g. 2")
        ds = _devices(p, target, raw_key)
        for d in ds:
            q.available_from[d] = p.available_from[d] + n
            q.cap_chips[d] = _shift(p.cap_chips[d], n, 0.0)
        msg = f"{', '.join(p.devices[d] for d in ds)} {n} quarter{'s' if n != 1 else ''} later (availability and ramp)"
    elif key.endswith("_demand"):
        target = key[: -len("_demand")]
        ms = [i for i, m in enumerate(p.demands) if _norm(m) == target]
        if not ms:
            raise SpecError(f"--what-if {raw_key}: no demand class {target!r}; classes: {', '.join(p.demands)}")
        q.peak_rate[ms[0]], msg = _scaled(p.peak_rate[ms[0]], kind, v, raw_key, f"demand of {p.demands[ms[0]]}")
    else:
        for suf in sorted(DEVICE_SUFFIXES, key=len, reverse=True):
            if key.endswith("_" + suf):
                target = key[: -len(suf) - 1]
                break
        else:
            raise SpecError(f"--what-if {raw_key!r}: unknown key; use {', '.join(GLOBAL_KEYS)}, CLASS_demand or "
                            f"DEVICE_{{{','.join(DEVICE_SUFFIXES)}}} (devices: {', '.join(p.devices)})")
        ds = _devices(p, target, raw_key)
        names = ", ".join(p.devices[d] for d in ds)
        if suf == "price":
            for d in ds:
                q.unit_cost_usd[d] = v if kind == "abs" else p.unit_cost_usd[d] * _factor(kind, v, raw_key)
            msg = f"unit price of {names} " + (f"set to ${v:,.0f}" if kind == "abs" else f"x{_factor(kind, v, raw_key):.3g}")
        elif suf in ("cap", "production"):
            for d in ds:
                if kind == "abs":
                    q.cap_chips[d] = np.where(p.cap_chips[d] > 0, v, 0.0)
                else:
                    q.cap_chips[d] = p.cap_chips[d] * _factor(kind, v, raw_key)
            msg = f"production cap of {names} " + (f"set to {v:,.0f}" if kind == "abs" else f"x{_factor(kind, v, raw_key):.3g}")
        elif suf == "lead_time":
            if kind != "abs" or v < 0:
                raise SpecError(f"--what-if {raw_key}={text}: give a whole number of quarters")
            for d in ds:
                q.lead_time[d] = int(round(v))
            msg = f"lead time of {names} = {int(round(v))} quarters"
        else:  # capacity
            if kind == "abs":
                raise SpecError(f"--what-if {raw_key}={text}: give a relative change such as -15% or x0.85")
            for d in ds:
                q.rate_per_chip[:, d] = p.rate_per_chip[:, d] * _factor(kind, v, raw_key)
            msg = f"served rate per chip of {names} x{_factor(kind, v, raw_key):.3g}"
    return q, msg


def apply_what_ifs(p: Problem, items: list[str] | tuple[str, ...]) -> tuple[Problem, list[dict]]:
    changes = []
    for it in items:
        p, msg = apply_what_if(p, it)
        changes.append({"what_if": it, "applied": msg})
    return p, changes
