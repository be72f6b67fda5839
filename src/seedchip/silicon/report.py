"""silicon_report(chip) -> SiliconReport: area, yield, unit cost, power of one chip.

The report joins area.py (blocks -> mm2), cost.py (wafer, yield, HBM, package, test),
shoreline.py (die edge) and power.py (TDP) with the coefficients of nodes.yaml. A die over
the reticle, interfaces that do not fit along the die edge or an interposer over the largest
one is ``feasible = False`` with the reason; the numbers are still computed so a user sees by
how much. ``assumptions`` lists every figure the cost uses with its source; ``cost_range_usd``
is the unit cost with the wafer and HBM prices at the low and high ends of their estimates.
"""

from __future__ import annotations

import math

from dataclasses import dataclass, field

from ..errors import SpecError
from ..hardware.catalog import load_chip
from ..hardware.spec import ChipSpec
from .area import DieArea, die_area
from .cost import (YIELD_MODELS, HbmCost, die_yield, gross_dies_per_wafer, hbm_cost, interposer_area_mm2,
                   spare_yield)
from .assumptions import assumptions
from .data import ChipSilicon, ProcessNode, SiliconData, chip_silicon, load_silicon_data
from .power import PowerReport, power_report
from .shoreline import Shoreline, shoreline, shoreline_reason


@dataclass(frozen=True)
class SiliconReport:
    chip: ChipSpec
    silicon: ChipSilicon
    area: DieArea
    yield_model: str
    die_yield: float
    gross_dies_per_wafer: int
    wafer_usd: float
    kgd_usd: float                     # one known-good die
    hbm: HbmCost
    interposer_mm2: float
    interposer_yield: float
    assembly_yield: float
    cost_breakdown_usd: dict[str, float]
    cost_range_usd: dict[str, float]   # low, high: every price at that end of its estimates
    power: PowerReport
    shoreline: Shoreline
    node: ProcessNode
    assumptions: tuple[dict, ...]      # {name, value, unit, source} of every figure the cost uses
    reasons: tuple[str, ...] = ()
    provenance: dict = field(default_factory=dict)

    @property
    def feasible(self) -> bool:
        return not self.reasons

    @property
    def die_area_mm2(self) -> float:
        return self.area.total_mm2

    @property
    def unit_cost_usd(self) -> float:
        return sum(self.cost_breakdown_usd.values())

    @property
    def tdp_w(self) -> float:
        return self.power.tdp_w

    def to_dict(self) -> dict:
        a, p = self.area, self.power
        return {
            "chip": self.chip.id,
            "process_node": self.chip.process_node,
            "feasible": self.feasible,
            "infeasible_reasons": list(self.reasons),
            "die_area_mm2": a.total_mm2,
            "num_dies": a.num_dies,
            "die_area_per_die_mm2": a.die_mm2,
            "reticle_mm2": self.provenance["reticle_mm2"],
            "area_breakdown_mm2": dict(a.blocks_mm2),
            "num_macs": a.num_macs,
            "sram_bits": a.sram_bits,
            "serdes_lanes": a.serdes_lanes,
            "cores_per_die": a.cores_on_die,
            "spare_cores_per_die": a.spare_cores,
            "yield": self.die_yield,
            "yield_model": self.yield_model,
            "gross_dies_per_wafer": self.gross_dies_per_wafer,
            "good_dies_per_wafer": self.gross_dies_per_wafer * self.die_yield,
            "wafer_usd": self.wafer_usd,
            "known_good_die_usd": self.kgd_usd,
            "hbm": {"generation": self.hbm.generation, "num_stacks": self.hbm.num_stacks, "height": self.hbm.height,
                    "stack_gbyte": self.hbm.stack_gbyte, "usd_per_stack": self.hbm.usd_per_stack},
            "interposer_mm2": self.interposer_mm2,
            "interposer_yield": self.interposer_yield,
            "assembly_yield": self.assembly_yield,
            "unit_cost_usd": self.unit_cost_usd,
            "cost_breakdown_usd": dict(self.cost_breakdown_usd),
            "cost_range_usd": dict(self.cost_range_usd),
            "node_available_from": self.node.available_from,
            "foundry": self.node.foundry,
            "shoreline": self.shoreline.to_dict(),
            "tdp_w": p.tdp_w,
            "tdp_spec_w": p.tdp_spec_w,
            "tdp_ok": p.tdp_ok,
            "power_breakdown_w": {"static": p.static_w, **p.dynamic_w},
            "tdp_matrix_format": p.matrix_format,
            "leakage_model_w": p.leakage_model_w,
            "purchase_price_usd": self.silicon.purchase_price_usd,
            "assumptions": [dict(a) for a in self.assumptions],
            "provenance": dict(self.provenance),
        }


def _resolve_silicon(chip: ChipSpec, silicon: ChipSilicon | dict | None) -> ChipSilicon:
    if silicon is None:
        return chip_silicon(chip.id)
    if isinstance(silicon, dict):
        return ChipSilicon.model_validate(silicon)
    return silicon


def _die_yield(area: DieArea, d0: float, yield_model: str, alpha: float) -> float:
    """The non-repairable part of the die, times the cores with their spares."""
    fixed = area.die_mm2 - area.repairable_mm2
    y = die_yield(fixed, d0, yield_model, alpha)
    if area.cores_on_die:
        y *= spare_yield(area.cores_on_die, area.spare_cores, die_yield(area.core_mm2, d0, yield_model, alpha))
    return y


def _package(spec: ChipSpec, sil: ChipSilicon, area: DieArea, d: SiliconData, reasons: list[str]
             ) -> tuple[float, float, float, float]:
    """(interposer mm2, interposer yield, interposer $ per good one, substrate $): a 2.5D interposer
    under the dies and HBM sites when the HBM generation needs one, else an organic substrate of
    twice the die area. An interposer over the largest one adds a reason."""
    pk = d.packaging
    gen = d.hbm_generation(spec.hbm.generation)
    sites = sil.hbm_phys if sil.hbm_phys is not None else spec.hbm.num_stacks
    if not gen.interposer:
        return 0.0, 1.0, 0.0, area.total_mm2 * 2.0 * pk.substrate_usd_per_mm2
    inter = interposer_area_mm2(area.total_mm2, sites, gen.footprint_mm2, pk.interposer_fill)
    inter_y = die_yield(inter, pk.interposer_defect_density_per_cm2, "poisson")
    inter_usd = inter * pk.interposer_usd_per_mm2 / inter_y
    substrate = inter * pk.substrate_usd_per_mm2
    if inter > pk.max_interposer_mm2:
        reasons.append(f"interposer {inter:.0f} mm2 exceeds the largest 2.5D interposer ({pk.max_interposer_mm2:.0f} mm2): "
                       f"fewer HBM stacks or a smaller die")
    return inter, inter_y, inter_usd, substrate


def _cost_parts(kgd: float, y: float, area: DieArea, hbm_usd: float, inter_usd: float, substrate: float,
                asm_y: float, d: SiliconData) -> dict[str, float]:
    """The unit cost by part: logic dies, their wafer sort, HBM, interposer, substrate, assembly,
    what assembly yield loses of all of them, final test, burn-in, what final test yield loses of
    the tested unit, and the board."""
    pk = d.packaging
    parts = {"logic_dies": kgd * area.num_dies, "wafer_sort": pk.wafer_sort_usd_per_die / y * area.num_dies,
             "hbm": hbm_usd, "interposer": inter_usd, "substrate": substrate, "assembly": pk.assembly_usd}
    before = sum(parts.values())
    parts["assembly_yield_loss"] = before / asm_y - before
    parts["final_test"] = pk.final_test_usd
    parts["burn_in"] = pk.burn_in_usd
    tested = sum(parts.values())
    parts["test_yield_loss"] = tested / pk.final_test_yield - tested
    parts["board"] = pk.board_usd
    return parts


def _check_options(yield_model: str, alpha, d0) -> None:
    if yield_model not in YIELD_MODELS:
        raise SpecError(f"yield model {yield_model!r}: use {', '.join(YIELD_MODELS)}")
    if alpha is not None and not (isinstance(alpha, (int, float)) and 0 < alpha < math.inf):
        raise SpecError(f"--alpha {alpha!r} must be a positive finite number (the negative binomial's clustering)")
    if alpha is not None and yield_model != "negative-binomial":
        raise SpecError(f"--alpha sets the negative binomial's clustering; the {yield_model} yield model has none: "
                        "add --yield-model negative-binomial or drop --alpha")
    if d0 is not None and not (isinstance(d0, (int, float)) and not isinstance(d0, bool) and 0 < d0 <= 10):
        raise SpecError(f"defect density {d0!r} per cm2 must be a number in (0, 10] (mature nodes: ~0.05-0.2)")


def on_node(spec: ChipSpec, node: str, data: SiliconData) -> ChipSpec:
    """``spec`` made on process ``node``: the node's area, cost and leakage follow from nodes.yaml;
    matrix, vector and SRAM energy per operation scale by the nodes' energy_scale ratio."""
    if not isinstance(node, str):
        raise SpecError(f"process node {node!r} must be a name: one of {', '.join(sorted(data.nodes))}")
    to, base = data.node(node), data.node(spec.process_node)
    if node == spec.process_node:
        return spec
    s = to.energy_scale / base.energy_scale
    e = spec.energy
    energy = e.model_copy(update={"matrix_j_per_flop": {k: v * s for k, v in e.matrix_j_per_flop.items()},
                                  "vector_j_per_flop": e.vector_j_per_flop * s, "sram_j_per_byte": e.sram_j_per_byte * s})
    return type(spec).model_validate({**spec.model_dump(), "process_node": node, "energy": energy.model_dump()})


def _cost_range(kgd: float, y: float, area: DieArea, spec: ChipSpec, node: ProcessNode, pkg: tuple,
                d: SiliconData) -> dict[str, float]:
    """Unit cost with every price at the low, then the high end of its estimates (wafer, HBM $/GB)."""
    out = {}
    for end in ("low", "high"):
        k = kgd * node.wafer_usd_at(end) / node.wafer_usd
        out[end] = sum(_cost_parts(k, y, area, hbm_cost(spec, d, end).usd, *pkg, d).values())
    return out


def _die_checks(area: DieArea, sil: ChipSilicon, spec: ChipSpec, d: SiliconData, reasons: list[str]) -> Shoreline:
    """The reticle and shoreline checks (reasons appended); the shoreline."""
    w = d.wafer
    if area.die_mm2 > w.reticle_mm2:
        more = f" split over {sil.num_dies} dies" if sil.num_dies > 1 else ""
        reasons.append(f"die area {area.die_mm2:.0f} mm2{more} exceeds the {w.reticle_mm2:.0f} mm2 reticle limit: "
                       f"use fewer MACs or less SRAM, a denser node, or more dies")
    sh = shoreline(spec, sil, area, d)
    why = shoreline_reason(sh, area.die_mm2, d.blocks.die_aspect_ratio)
    if why:
        reasons.append(why)
    return sh


def silicon_report(chip: str | ChipSpec, *, yield_model: str = "murphy", alpha: float | None = None,
                   silicon: ChipSilicon | dict | None = None, data: SiliconData | str | None = None,
                   node: str | None = None, defect_density_per_cm2: float | None = None) -> SiliconReport:
    """Area, yield, unit cost and power of ``chip`` (a catalog id, a YAML path or a ChipSpec).

    yield_model: murphy (default), negative-binomial (``alpha``, default from nodes.yaml) or poisson.
    silicon: facts beyond the spec (spare cores, dies, purchase price); default: chips.yaml for
    catalog chips, else the chip as drawn. data: a SiliconData or a path to your own nodes.yaml.
    node: re-cost the chip on another process node (see ``on_node``). defect_density_per_cm2:
    use this D0 instead of the node's (a yield learning curve).
    """
    d = data if isinstance(data, SiliconData) else load_silicon_data(data)
    _check_options(yield_model, alpha, defect_density_per_cm2)
    spec = load_chip(chip)
    if node is not None:
        spec = on_node(spec, node, d)
    al = alpha if alpha is not None else d.wafer.neg_binomial_alpha
    sil = _resolve_silicon(spec, silicon)
    pn = d.node(spec.process_node)
    area = die_area(spec, sil, d)
    reasons: list[str] = []
    sh = _die_checks(area, sil, spec, d, reasons)
    d0 = float(defect_density_per_cm2) if defect_density_per_cm2 is not None else pn.defect_density_per_cm2
    y = _die_yield(area, d0, yield_model, al)
    w = d.wafer
    gross = gross_dies_per_wafer(area.die_mm2, w.diameter_mm, w.edge_exclusion_mm, w.scribe_mm)
    if gross * y < 1.0:
        reasons.append(f"fewer than one good die per wafer ({gross} gross x {y:.3f} yield)")
    kgd = pn.wafer_usd / max(gross * y, 1e-9)
    hbm = hbm_cost(spec, d)
    gen = d.hbm_generation(spec.hbm.generation)
    if hbm.height < 0:
        reasons.append(f"{spec.hbm.capacity_per_stack_bytes / 1e9:.0f} GB per {hbm.generation} stack needs more than "
                       f"{max(gen.heights)} dies of {gen.die_gbit:g} Gbit (offered heights {gen.heights})")
    inter, inter_y, inter_usd, substrate = _package(spec, sil, area, d, reasons)
    asm_y = d.packaging.bond_yield ** (area.num_dies + spec.hbm.num_stacks)
    pkg = (inter_usd, substrate, asm_y)
    prov = {"chip_hash": spec.spec_hash(), "silicon_data_hash": d.spec_hash(), "silicon_hash": sil.spec_hash(),
            "reticle_mm2": w.reticle_mm2, "defect_density_per_cm2": d0, "alpha": al if yield_model == "negative-binomial" else None,
            "mac_area_um2_at_n4": w.mac_area_um2, "logic_scale": pn.logic_scale}
    return SiliconReport(chip=spec, silicon=sil, area=area, yield_model=yield_model, die_yield=y,
                         gross_dies_per_wafer=gross, wafer_usd=pn.wafer_usd, kgd_usd=kgd, hbm=hbm,
                         interposer_mm2=inter, interposer_yield=inter_y, assembly_yield=asm_y,
                         cost_breakdown_usd=_cost_parts(kgd, y, area, hbm.usd, *pkg, d),
                         cost_range_usd=_cost_range(kgd, y, area, spec, pn, pkg, d),
                         power=power_report(spec, area.total_mm2, d), shoreline=sh, node=pn,
                         assumptions=tuple(assumptions(spec.process_node, pn, d0, defect_density_per_cm2 is not None,
                                                       d, hbm)),
                         reasons=tuple(reasons), provenance=prov)


__all__ = ["SiliconReport", "silicon_report", "on_node"]
