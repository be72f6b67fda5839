"""Wafer, yield and package cost.

gross dies  DPW = pi (d/2)^2 / A - pi d / sqrt(2 A), d = wafer diameter - 2 x edge exclusion,
            A = (sqrt(die) + scribe)^2
yield       Murphy ((1 - e^-AD) / AD)^2, negative binomial (1 + AD/alpha)^-alpha, or Poisson e^-AD,
            times, with spare cores, P(at most `spares` of the die's cores are bad)
KGD         wafer price / (gross dies x yield)
            + wafer sort (every die probed: sort $ / yield per good die)
HBM         height x die GB x $/GB x (1 + height premium) per stack ($/GB: a point and a low-high range
            per generation)
package     (KGDs + HBM + interposer / its yield + substrate + assembly) / assembly yield,
            assembly yield = bond_yield ^ (dies + stacks)
tested      (package + final test + burn-in) / final test yield: a unit failing final test or
            burn-in is scrapped with everything in it
module      tested + board = unit cost
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..errors import SpecError
from ..hardware.spec import ChipSpec
from .data import SiliconData

YIELD_MODELS = ("murphy", "negative-binomial", "poisson")


def gross_dies_per_wafer(die_mm2: float, diameter_mm: float = 300.0, edge_exclusion_mm: float = 0.0,
                         scribe_mm: float = 0.0) -> int:
    """Whole dies on a round wafer (the standard approximation with its edge-loss term)."""
    if die_mm2 <= 0:
        raise SpecError(f"die area {die_mm2!r} mm2 must be > 0")
    a = (math.sqrt(die_mm2) + scribe_mm) ** 2
    d = diameter_mm - 2.0 * edge_exclusion_mm
    return max(0, math.floor(math.pi * (d / 2.0) ** 2 / a - math.pi * d / math.sqrt(2.0 * a)))


def die_yield(area_mm2: float, d0_per_cm2: float, model: str = "murphy", alpha: float = 2.0) -> float:
    """Fraction of dies of ``area_mm2`` without a killer defect at density ``d0_per_cm2``."""
    ad = area_mm2 / 100.0 * d0_per_cm2
    if ad <= 0:
        return 1.0
    if model == "murphy":
        return ((1.0 - math.exp(-ad)) / ad) ** 2
    if model == "negative-binomial":
        return (1.0 + ad / alpha) ** -alpha
    if model == "poisson":
        return math.exp(-ad)
    raise SpecError(f"yield model {model!r}: use {', '.join(YIELD_MODELS)}")


def spare_yield(num_cores: int, spares: int, core_yield: float) -> float:
    """P(at most ``spares`` of ``num_cores`` independent cores are bad)."""
    if spares <= 0:
        return core_yield ** num_cores
    q = 1.0 - core_yield
    return sum(math.comb(num_cores, k) * q ** k * core_yield ** (num_cores - k) for k in range(spares + 1))


def stack_height(capacity_per_stack_bytes: float, die_bytes: float, heights: list[int]) -> int:
    """The smallest offered stack height that holds the per-stack capacity (-1: none does)."""
    need = capacity_per_stack_bytes / die_bytes
    for h in sorted(heights):
        if h >= need - 1e-6:
            return h
    return -1   # taller than any offered stack


@dataclass(frozen=True)
class HbmCost:
    generation: str
    num_stacks: int
    height: int
    stack_gbyte: float
    usd_per_stack: float
    usd_per_gbyte: float = 0.0
    height_premium: float = 0.0

    @property
    def usd(self) -> float:
        return self.num_stacks * self.usd_per_stack


def hbm_cost(chip: ChipSpec, data: SiliconData, price: str = "point") -> HbmCost:
    """The chip's HBM at the ``price`` end (low, point or high) of its generation's $/GB estimates."""
    gen = data.hbm_generation(chip.hbm.generation)
    h = stack_height(chip.hbm.capacity_per_stack_bytes, gen.die_bytes, gen.heights)
    height = h if h > 0 else max(gen.heights)
    gb = height * gen.die_bytes / 1e9
    premium = data.hbm.height_premium.get(height, max(data.hbm.height_premium.values()))
    usd_gb = gen.usd_per_gbyte_at(price)
    return HbmCost(chip.hbm.generation.lower(), chip.hbm.num_stacks, h, gb, gb * usd_gb * (1.0 + premium), usd_gb, premium)


def interposer_area_mm2(total_die_mm2: float, sites: int, footprint_mm2: float, fill: float) -> float:
    return (total_die_mm2 + sites * footprint_mm2) * fill


__all__ = ["YIELD_MODELS", "gross_dies_per_wafer", "die_yield", "spare_yield", "stack_height", "hbm_cost",
           "HbmCost", "interposer_area_mm2"]
