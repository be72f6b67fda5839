"""Die area from blocks.

matrix   = MACs x mac_area x (1 + format overheads) x logic_scale, MACs = bf16 peak / (2 x clock)
           (spare cores on the die included)
vector   = fp32 lanes x lane area x logic_scale, lanes = vector FLOP/s / (2 x clock)
control  = cores on die x per-core control area (by chip kind) x logic_scale
sram     = bits / (node macro density) x array overhead
memory   = stacks x (PHY area [analog, does not scale] + controller x logic_scale)
serdes   = ceil(link bits/s per direction / lane rate) x lane area [does not scale]
io       = host interface, management, test (by kind)
noc      = noc_fraction (by kind) x the sum above
d2d      = a die-to-die interface per die, multi-die chips only

Each term is ``count x coefficient``; the coefficients and their sources live in nodes.yaml.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..hardware.spec import ChipSpec
from .data import ChipSilicon, SiliconData

MIBIT = 2.0**20


@dataclass(frozen=True)
class DieArea:
    blocks_mm2: dict[str, float]       # chip total per block
    total_mm2: float                   # all dies
    num_dies: int
    die_mm2: float                     # one die
    repairable_mm2: float              # per die: the core blocks a spare core can stand in for
    cores_on_die: int                  # per die
    spare_cores: int                   # per die
    num_macs: float                    # bf16-equivalent MACs on the chip (spares included)
    sram_bits: float
    serdes_lanes: int

    @property
    def core_mm2(self) -> float:
        """Area of one core (matrix + vector + control share) for spare-core yield."""
        return self.repairable_mm2 / self.cores_on_die if self.cores_on_die else 0.0


def matrix_format_factor(chip: ChipSpec, data: SiliconData) -> float:
    """1 + the area overhead of every native narrow format (see module doc)."""
    peaks = chip.matrix.peak_flops_per_s
    bf16 = peaks["bf16"]
    f = 1.0
    for name, over in data.blocks.format_overhead.items():
        p = peaks.get(name)
        if not p:
            continue
        r = p / (data.blocks.natural_rate.get(name, 1.0) * bf16)
        f += over * min(r, 1.0) + max(r - 1.0, 0.0) * (1.0 + over)
    return f


def die_area(chip: ChipSpec, sil: ChipSilicon, data: SiliconData) -> DieArea:
    node = data.node(chip.process_node)
    b = data.blocks
    ls = node.logic_scale
    m = chip.matrix
    active = m.num_cores
    on_die = max(sil.num_cores_on_die or active, active)
    spare_factor = on_die / active

    macs = m.peak_flops_per_s["bf16"] / (2.0 * m.clock_hz) * spare_factor
    matrix = macs * data.wafer.mac_area_um2 * 1e-6 * matrix_format_factor(chip, data) * ls
    lanes = chip.vector_flops_per_s / (2.0 * m.clock_hz) * spare_factor
    vector = lanes * b.vector_lane_um2 * 1e-6 * ls
    control = on_die * b.core_control_mm2.get(chip.kind, b.core_control_mm2["asic"]) * ls

    bits = 8.0 * (sil.sram_total_bytes if sil.sram_total_bytes is not None
                  else chip.sram.capacity_bytes + chip.sram.per_core_bytes * on_die)
    sram = bits / (node.sram_mbit_per_mm2 * MIBIT) * b.sram_array_overhead

    gen = chip.hbm.generation.lower()
    data.hbm_generation(gen)  # raises UnknownNameError with the known generations
    sites = sil.hbm_phys if sil.hbm_phys is not None else chip.hbm.num_stacks
    memory = sites * (b.memory_phy_mm2[gen] + b.memory_controller_mm2 * ls)

    serdes_lanes = math.ceil(chip.links.bw_per_direction_bytes_per_s * 8.0 / (b.serdes_gbps_per_lane * 1e9) - 1e-9)
    serdes = serdes_lanes * b.serdes_lane_mm2
    io = b.io_control_mm2.get(chip.kind, b.io_control_mm2["asic"])
    blocks = {"matrix": matrix, "vector": vector, "core_control": control, "sram": sram, "memory_phy": memory,
              "serdes": serdes, "io_control": io}
    blocks["noc"] = b.noc_fraction.get(chip.kind, b.noc_fraction["asic"]) * sum(blocks.values())
    n = sil.num_dies
    blocks["die_to_die"] = b.d2d_mm2_per_die * n if n > 1 else 0.0
    total = sum(blocks.values())
    return DieArea(blocks_mm2=blocks, total_mm2=total, num_dies=n, die_mm2=total / n,
                   repairable_mm2=(matrix + vector + control) / n, cores_on_die=on_die // n if on_die >= n else 1,
                   spare_cores=(on_die - active) // n, num_macs=macs, sram_bits=bits, serdes_lanes=serdes_lanes)


__all__ = ["DieArea", "die_area", "matrix_format_factor"]
