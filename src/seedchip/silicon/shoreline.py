"""Shoreline: whether what must sit on the die edge fits along it.

Per die (the chip's HBM PHY sites, SerDes lanes and host I/O shared over its dies):

    need  = ceil(sites / dies) x PHY edge (per HBM generation)
          + ceil(lanes / dies) x edge per SerDes lane
          + die-to-die interface edge (multi-die chips) + host I/O edge (on one die: counted on each)
    have  = die perimeter = 2 sqrt(A) (sqrt(r) + 1 / sqrt(r)), A the die area, r its aspect ratio
            (r = 1: a square die, 4 sqrt(A))

A die whose need exceeds its perimeter is infeasible, with the reason. The edge lengths and
their sources live in nodes.yaml (hbm.generations.*.phy_edge_mm, blocks.*edge*).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..hardware.spec import ChipSpec
from .area import DieArea
from .data import ChipSilicon, SiliconData


@dataclass(frozen=True)
class Shoreline:
    parts_mm: dict[str, float]         # per die: die edge each interface needs
    have_mm: float                     # per die: the perimeter
    num_phys_per_die: int
    generation: str

    @property
    def need_mm(self) -> float:
        return sum(self.parts_mm.values())

    @property
    def fits(self) -> bool:
        return self.need_mm <= self.have_mm * (1.0 + 1e-9)

    def to_dict(self) -> dict:
        return {"need_mm": self.need_mm, "have_mm": self.have_mm, "fits": self.fits, "parts_mm": dict(self.parts_mm)}


def perimeter_mm(die_mm2: float, aspect_ratio: float = 1.0) -> float:
    """Perimeter of a rectangular die of ``die_mm2`` whose long side is ``aspect_ratio`` x its short one."""
    r = math.sqrt(aspect_ratio)
    return 2.0 * math.sqrt(die_mm2) * (r + 1.0 / r)


def shoreline(chip: ChipSpec, sil: ChipSilicon, area: DieArea, data: SiliconData) -> Shoreline:
    b = data.blocks
    gen = data.hbm_generation(chip.hbm.generation)
    n = area.num_dies
    sites = sil.hbm_phys if sil.hbm_phys is not None else chip.hbm.num_stacks
    phys = math.ceil(sites / n)
    lanes = math.ceil(area.serdes_lanes / n)
    parts = {"memory_phy": phys * gen.phy_edge_mm, "serdes": lanes * b.serdes_edge_mm_per_lane, "io": b.io_edge_mm,
             "die_to_die": b.d2d_edge_mm_per_die if n > 1 else 0.0}
    return Shoreline(parts_mm=parts, have_mm=perimeter_mm(area.die_mm2, b.die_aspect_ratio), num_phys_per_die=phys,
                     generation=chip.hbm.generation.lower())


def shoreline_reason(s: Shoreline, die_mm2: float, aspect_ratio: float) -> str | None:
    """The infeasible reason when the interfaces do not fit along the die edge, else None."""
    if s.fits:
        return None
    p = s.parts_mm
    shape = "square" if aspect_ratio == 1.0 else f"{aspect_ratio:g}:1"
    what = [f"{s.num_phys_per_die} {s.generation.upper()} PHYs need {p['memory_phy']:.0f} mm"]
    if p["serdes"]:
        what.append(f"SerDes {p['serdes']:.0f} mm")
    if p["die_to_die"]:
        what.append(f"die-to-die {p['die_to_die']:.0f} mm")
    what.append(f"host I/O {p['io']:.0f} mm")
    return (f"shoreline: {', '.join(what)}: {s.need_mm:.0f} mm of die edge; a {die_mm2:.0f} mm2 {shape} die has "
            f"{s.have_mm:.0f} mm: fewer HBM stacks or links, or more dies")


__all__ = ["Shoreline", "shoreline", "shoreline_reason", "perimeter_mm"]
