"""Power: static power plus the chip's own energy coefficients at a TDP operating point.

tdp_w = idle_w (static: leakage and idle, the ChipSpec's figure)
      + u_matrix x max over native formats of (peak FLOP/s x J/FLOP)
      + u_sram x SRAM bytes/s x J/byte + u_hbm x HBM bytes/s x J/byte
      + u_links x 2 directions x link bytes/s x J/byte

The utilisations are a sustained large GEMM streaming its operands (nodes.yaml: power).
``leakage_model_w`` = die area x the node's W/mm2 + HBM standby per stack: the silicon
model's own static estimate, which design variants use to rescale a base chip's idle_w.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..hardware.spec import ChipSpec
from .data import SiliconData


@dataclass(frozen=True)
class PowerReport:
    tdp_w: float
    static_w: float
    dynamic_w: dict[str, float]
    matrix_format: str              # the format whose peak power sets the matrix term
    leakage_model_w: float
    tdp_spec_w: float

    @property
    def tdp_ok(self) -> bool:
        return self.tdp_w <= self.tdp_spec_w * (1.0 + 1e-9)


def leakage_w(die_total_mm2: float, num_stacks: int, chip: ChipSpec, data: SiliconData) -> float:
    node = data.node(chip.process_node)
    return die_total_mm2 * node.leakage_w_per_mm2 + num_stacks * data.hbm.standby_w_per_stack


def power_report(chip: ChipSpec, die_total_mm2: float, data: SiliconData) -> PowerReport:
    u = data.power.tdp_utilization
    e = chip.energy
    best, fmt_ = 0.0, "bf16"
    for cls, peak in chip.matrix.peak_flops_per_s.items():
        if peak:
            w = peak * e.matrix(cls)
            if w > best:
                best, fmt_ = w, cls
    dyn = {
        "active": e.active_w,          # every core busy at clock, whatever the work
        "matrix": u["matrix"] * best,
        "sram": u["sram"] * chip.sram.bw_bytes_per_s * e.sram_j_per_byte,
        "hbm": u["hbm"] * chip.hbm_bw_bytes_per_s * e.hbm_j_per_byte,
        "links": u["links"] * 2.0 * chip.links.bw_per_direction_bytes_per_s * e.link_j_per_byte,
    }
    static = e.idle_w
    return PowerReport(tdp_w=static + sum(dyn.values()), static_w=static, dynamic_w=dyn, matrix_format=fmt_,
                       leakage_model_w=leakage_w(die_total_mm2, chip.hbm.num_stacks, chip, data),
                       tdp_spec_w=chip.tdp_w)


__all__ = ["PowerReport", "power_report", "leakage_w"]
