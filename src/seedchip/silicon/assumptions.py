"""The figures a silicon report's cost stands on, each with its unit and source.

``assumptions(...)`` lists {name, value, unit, source} for every coefficient the area, yield
and cost use, in a fixed order. A source is the first entry of the figure's section in
nodes.yaml (the node, wafer, blocks, hbm or packaging ``sources``) whose ``what`` names it,
written "document (year)", with ", ESTIMATE" where the entry says so.
"""

from __future__ import annotations

from ..hardware.spec import Source
from .cost import HbmCost
from .data import ProcessNode, SiliconData

OVERRIDE = "given by the caller (silicon_report(defect_density_per_cm2=...))"


def cite(sources: list[Source], *keys: str) -> str:
    """The first source whose ``what`` mentions one of ``keys`` (in order of the keys), as one line."""
    for k in keys:
        for s in sources:
            if k.lower() in s.what.lower():
                est = ", ESTIMATE" if s.estimate and "ESTIMATE" not in s.document else ""
                return f"{s.document} ({s.year}){est}"
    return ""


def _node_rows(name: str, node: ProcessNode, d0: float, d0_given: bool) -> list[tuple]:
    src = node.sources
    every = "every figure"
    return [
        (f"{name}.wafer_usd", node.wafer_usd, "usd/wafer", cite(src, "wafer_usd", every)),
        (f"{name}.wafer_usd_low", node.wafer_usd_at("low"), "usd/wafer", cite(src, "wafer_usd", every)),
        (f"{name}.wafer_usd_high", node.wafer_usd_at("high"), "usd/wafer", cite(src, "wafer_usd", every)),
        (f"{name}.defect_density_per_cm2", d0, "1/cm2",
         OVERRIDE if d0_given else cite(src, "defect density", "D0", every)),
        (f"{name}.logic_scale", node.logic_scale, "x tsmc-n4 area", cite(src, "logic_scale", every)),
        (f"{name}.sram_mbit_per_mm2", node.sram_mbit_per_mm2, "Mibit/mm2", cite(src, "SRAM", every)),
    ]


def _wafer_rows(d: SiliconData) -> list[tuple]:
    w, src = d.wafer, d.wafer.sources
    return [
        ("wafer.diameter_mm", w.diameter_mm, "mm", cite(src, "gross dies per wafer")),
        ("wafer.edge_exclusion_mm", w.edge_exclusion_mm, "mm", cite(src, "edge exclusion")),
        ("wafer.scribe_mm", w.scribe_mm, "mm", cite(src, "scribe")),
        ("wafer.reticle_mm2", w.reticle_mm2, "mm2", cite(src, "reticle")),
        ("wafer.mac_area_um2", w.mac_area_um2, "um2 at tsmc-n4",
         "FITTED to the H100's published 814 mm2 (nodes.yaml header; python -m seedchip.silicon.calibrate)"),
    ]


def _hbm_rows(d: SiliconData, hbm: HbmCost) -> list[tuple]:
    gen = d.hbm_generation(hbm.generation)
    src = d.hbm.sources
    g = hbm.generation.upper()
    price = cite(src, f"{g} (", f"{g} ")
    return [
        (f"hbm.{hbm.generation}.usd_per_gbyte", gen.usd_per_gbyte, "usd/GB", price),
        (f"hbm.{hbm.generation}.usd_per_gbyte_low", gen.usd_per_gbyte_low, "usd/GB", price),
        (f"hbm.{hbm.generation}.usd_per_gbyte_high", gen.usd_per_gbyte_high, "usd/GB", price),
        (f"hbm.{hbm.generation}.die_gbit", gen.die_gbit, "Gibit", cite(src, "die densities")),
        (f"hbm.height_premium.{hbm.height}", hbm.height_premium, "fraction", cite(src, "height premium")),
        (f"hbm.{hbm.generation}.phy_edge_mm", gen.phy_edge_mm, "mm", cite(src, "phy_edge_mm")),
    ]


def _package_rows(d: SiliconData) -> list[tuple]:
    pk, src = d.packaging, d.packaging.sources
    test = cite(src, "wafer sort")
    return [
        ("packaging.interposer_usd_per_mm2", pk.interposer_usd_per_mm2, "usd/mm2", cite(src, "interposer_usd_per_mm2")),
        ("packaging.interposer_fill", pk.interposer_fill, "interposer / (dies + HBM)", cite(src, "interposer_fill")),
        ("packaging.interposer_defect_density_per_cm2", pk.interposer_defect_density_per_cm2, "1/cm2",
         cite(src, "interposer defect density")),
        ("packaging.substrate_usd_per_mm2", pk.substrate_usd_per_mm2, "usd/mm2", cite(src, "substrate_usd_per_mm2")),
        ("packaging.assembly_usd", pk.assembly_usd, "usd", cite(src, "assembly $")),
        ("packaging.bond_yield", pk.bond_yield, "per die or stack", test),
        ("packaging.wafer_sort_usd_per_die", pk.wafer_sort_usd_per_die, "usd/die", test),
        ("packaging.final_test_usd", pk.final_test_usd, "usd", test),
        ("packaging.burn_in_usd", pk.burn_in_usd, "usd", test),
        ("packaging.final_test_yield", pk.final_test_yield, "fraction", test),
        ("packaging.board_usd", pk.board_usd, "usd", test),
    ]


def _shoreline_rows(d: SiliconData) -> list[tuple]:
    b, src = d.blocks, d.blocks.sources
    s = cite(src, "shoreline")
    return [
        ("blocks.serdes_edge_mm_per_lane", b.serdes_edge_mm_per_lane, "mm/lane", s),
        ("blocks.d2d_edge_mm_per_die", b.d2d_edge_mm_per_die, "mm", s),
        ("blocks.io_edge_mm", b.io_edge_mm, "mm", s),
        ("blocks.die_aspect_ratio", b.die_aspect_ratio, "long / short side", s),
    ]


def assumptions(node_name: str, node: ProcessNode, d0: float, d0_given: bool, d: SiliconData,
                hbm: HbmCost) -> list[dict]:
    """Every figure the report's cost uses: [{name, value, unit, source}]."""
    rows = (_node_rows(node_name, node, d0, d0_given) + _wafer_rows(d) + _hbm_rows(d, hbm) + _package_rows(d)
            + _shoreline_rows(d))
    return [{"name": n, "value": v, "unit": u, "source": s} for n, v, u, s in rows]


__all__ = ["assumptions", "cite"]
