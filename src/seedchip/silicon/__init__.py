"""silicon/: what a chip COSTS. Area from blocks, yield, wafer / HBM / package cost, power
(TDP check) and total cost of ownership per token.

    from seedchip.silicon import silicon_report
    r = silicon_report("seedchip-ref")
    r.die_area_mm2, r.die_yield, r.unit_cost_usd, r.tdp_w
    r.to_dict()        # == `seedchip silicon --chip seedchip-ref --json`
    silicon_report("seedchip-ref", node="samsung-sf4x", defect_density_per_cm2=0.2)   # another node, another D0
    r.to_dict()["assumptions"]     # every figure the cost uses, with its source

Coefficients and their sources: nodes.yaml (per node, HBM generation, packaging, power,
TCO) and chips.yaml (catalog chips as built, purchase prices).
"""

from .area import DieArea, die_area
from .cost import YIELD_MODELS, die_yield, gross_dies_per_wafer, spare_yield
from .data import ChipSilicon, SiliconData, chip_silicon, load_silicon_data
from .report import SiliconReport, on_node, silicon_report
from .tco import TcoInputs, TokenCost, tco_inputs, tco_per_token, token_cost

__all__ = ["SiliconReport", "silicon_report", "on_node", "ChipSilicon", "SiliconData", "load_silicon_data", "chip_silicon",
           "DieArea", "die_area", "die_yield", "gross_dies_per_wafer", "spare_yield", "YIELD_MODELS",
           "TcoInputs", "TokenCost", "tco_inputs", "tco_per_token", "token_cost"]
