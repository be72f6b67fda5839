"""The silicon model's coefficients (``nodes.yaml``) and per-chip facts (``chips.yaml``),
as frozen, validated specs. Every coefficient carries its source; see the YAML files."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import yaml
from pydantic import Field, ValidationError, model_validator

from ..errors import SpecError, UnknownNameError, one_line, validation_line
from ..hardware.spec import Source
from ..spec_base import Bytes, FrozenSpec
from ..yamlio import safe_load

DATA_DIR = Path(__file__).parent


class Wafer(FrozenSpec):
    diameter_mm: float = Field(gt=0)
    edge_exclusion_mm: float = Field(ge=0)
    scribe_mm: float = Field(ge=0)
    reticle_mm2: float = Field(gt=0)
    mac_area_um2: float = Field(gt=0, description="one bf16-equivalent MAC at tsmc-n4 (FITTED to H100)")
    neg_binomial_alpha: float = Field(gt=0, description="clustering parameter of the negative binomial yield model")
    sources: list[Source]


QUARTER = r"^(19|20|21)[0-9]{2}Q[1-4]$"


def _check_range(low: float | None, point: float, high: float | None, what: str) -> None:
    if low is not None and low > point or high is not None and high < point:
        raise ValueError(f"{what}: the range [{low}, {high}] must hold the point value {point}")


class ProcessNode(FrozenSpec):
    foundry: str = Field(description="who makes it (tsmc, samsung, smic)")
    available_from: str = Field(pattern=QUARTER, description="first quarter of volume production, e.g. 2023Q4")
    wafer_usd: float = Field(gt=0)
    wafer_usd_low: float | None = Field(None, gt=0, description="low end of the wafer price estimates (default: the point)")
    wafer_usd_high: float | None = Field(None, gt=0, description="high end of the wafer price estimates (default: the point)")
    defect_density_per_cm2: float = Field(gt=0)
    sram_mbit_per_mm2: float = Field(gt=0, description="HD SRAM macro density, Mibit/mm2")
    logic_scale: float = Field(gt=0, description="logic area relative to tsmc-n4")
    energy_scale: float = Field(gt=0, description="dynamic energy per op relative to tsmc-n4")
    leakage_w_per_mm2: float = Field(ge=0)
    sources: list[Source]

    @model_validator(mode="after")
    def _ranges(self):
        _check_range(self.wafer_usd_low, self.wafer_usd, self.wafer_usd_high, "wafer_usd")
        return self

    def wafer_usd_at(self, end: str) -> float:
        """The wafer price at ``end`` (low, point or high) of its estimates."""
        v = {"low": self.wafer_usd_low, "high": self.wafer_usd_high}.get(end)
        return self.wafer_usd if v is None else v


class Blocks(FrozenSpec):
    format_overhead: dict[str, float]
    natural_rate: dict[str, float]
    vector_lane_um2: float = Field(gt=0)
    core_control_mm2: dict[str, float]
    sram_array_overhead: float = Field(ge=1)
    memory_phy_mm2: dict[str, float]
    memory_controller_mm2: float = Field(ge=0, description="per stack or channel group, logic (scales with the node)")
    serdes_gbps_per_lane: float = Field(gt=0)
    serdes_lane_mm2: float = Field(gt=0)
    io_control_mm2: dict[str, float]
    noc_fraction: dict[str, float]
    d2d_mm2_per_die: float = Field(ge=0)
    serdes_edge_mm_per_lane: float = Field(ge=0, description="die edge one SerDes lane (TX/RX pair) takes")
    d2d_edge_mm_per_die: float = Field(ge=0, description="die edge of the die-to-die interface, multi-die chips only")
    io_edge_mm: float = Field(ge=0, description="die edge of the host interface (PCIe) and other I/O, on one die")
    die_aspect_ratio: float = Field(1.0, ge=1, description="long / short side of the die for the perimeter")
    sources: list[Source]


class HbmGeneration(FrozenSpec):
    die_gbit: float = Field(gt=0, description="capacity of one DRAM die, Gibit (binary)")
    heights: list[int]
    pin_gbps: float = Field(gt=0)
    bus_bits: int = Field(gt=0)
    usd_per_gbyte: float = Field(gt=0)
    usd_per_gbyte_low: float = Field(gt=0, description="low end of the public price estimates")
    usd_per_gbyte_high: float = Field(gt=0, description="high end of the public price estimates")
    phy_edge_mm: float = Field(ge=0, description="die edge one stack's PHY takes (shoreline)")
    pj_per_bit: float = Field(gt=0)
    footprint_mm2: float = Field(ge=0, description="package footprint of one stack on the interposer")
    available_from: str = Field(pattern=QUARTER, description="first quarter of volume supply, e.g. 2024Q1")
    interposer: bool = Field(True, description="needs a 2.5D interposer (HBM) or sits on an organic package (LPDDR)")

    @model_validator(mode="after")
    def _ranges(self):
        _check_range(self.usd_per_gbyte_low, self.usd_per_gbyte, self.usd_per_gbyte_high, "usd_per_gbyte")
        return self

    def usd_per_gbyte_at(self, end: str) -> float:
        """The price per GB at ``end`` (low, point or high) of its estimates."""
        return {"low": self.usd_per_gbyte_low, "high": self.usd_per_gbyte_high}.get(end, self.usd_per_gbyte)

    @property
    def die_bytes(self) -> float:
        return self.die_gbit * 2.0**30 / 8.0

    @property
    def bw_per_stack_bytes_per_s(self) -> float:
        return self.pin_gbps * 1e9 * self.bus_bits / 8


class HbmData(FrozenSpec):
    generations: dict[str, HbmGeneration]
    height_premium: dict[int, float]
    standby_w_per_stack: float = Field(ge=0)
    sources: list[Source]


class Packaging(FrozenSpec):
    interposer_fill: float = Field(ge=1)
    interposer_usd_per_mm2: float = Field(ge=0)
    interposer_defect_density_per_cm2: float = Field(ge=0)
    max_interposer_mm2: float = Field(gt=0)
    substrate_usd_per_mm2: float = Field(ge=0)
    assembly_usd: float = Field(ge=0)
    bond_yield: float = Field(gt=0, le=1)
    wafer_sort_usd_per_die: float = Field(ge=0, description="probe test of every die on the wafer, good or bad")
    final_test_usd: float = Field(ge=0, description="package test on ATE and system-level test, per unit")
    burn_in_usd: float = Field(ge=0, description="burn-in at temperature and voltage, per unit")
    final_test_yield: float = Field(gt=0, le=1, description="units that pass final test and burn-in")
    board_usd: float = Field(ge=0)
    system_share_usd: float = Field(ge=0)
    sources: list[Source]


class Power(FrozenSpec):
    tdp_utilization: dict[str, float]
    sources: list[Source]


class TcoDefaults(FrozenSpec):
    lifetime_years: float = Field(gt=0)
    utilization: float = Field(gt=0, le=1)
    pue: float = Field(ge=1)
    usd_per_kwh: float = Field(ge=0)
    sources: list[Source]


class SiliconData(FrozenSpec):
    version: int
    wafer: Wafer
    nodes: dict[str, ProcessNode]
    blocks: Blocks
    hbm: HbmData
    packaging: Packaging
    power: Power
    tco: TcoDefaults
    reference: dict[str, float | list[Source]]

    def node(self, name: str) -> ProcessNode:
        try:
            return self.nodes[name]
        except KeyError:
            raise UnknownNameError("process node", name, self.nodes) from None

    def hbm_generation(self, name: str) -> HbmGeneration:
        try:
            return self.hbm.generations[name.lower()]
        except KeyError:
            raise UnknownNameError("HBM generation", name, self.hbm.generations) from None


class ChipSilicon(FrozenSpec):
    """Facts about a chip's silicon that its ChipSpec does not hold. Every field is
    optional: the default is the chip as drawn (one die, no spare cores)."""
    num_cores_on_die: int | None = Field(None, gt=0, description="matrix cores on the die(s), spares included")
    sram_total_bytes: Bytes | None = Field(None, gt=0, description="all on-die SRAM when the spec's levels overlap")
    hbm_phys: int | None = Field(None, ge=0, description="HBM PHY sites (default: the spec's stacks)")
    num_dies: int = Field(1, gt=0, description="equal logic dies sharing the chip's blocks")
    purchase_price_usd: float | None = Field(None, gt=0, description="what a buyer pays per chip (GPUs we buy)")
    usd_per_hour: float | None = Field(None, gt=0, description="rental price per chip-hour")
    published_die_mm2: float | None = Field(None, gt=0)
    sources: list[Source] = Field(default_factory=list)


def _read(path: Path) -> dict:
    try:
        data = safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as e:
        raise SpecError(f"cannot read silicon data {str(path)!r}: {one_line(e)}") from None
    if not isinstance(data, dict):
        raise SpecError(f"silicon data {str(path)!r} must be a YAML mapping")
    return data


def _validate(model, data: dict, origin: str):
    try:
        return model.model_validate(data)
    except ValidationError as e:
        raise SpecError(validation_line(e, f"silicon data {origin}")) from None


@lru_cache(maxsize=8)
def load_silicon_data(path: str | None = None) -> SiliconData:
    """The coefficients (the shipped ``nodes.yaml`` or a path to your own)."""
    p = Path(path) if path else DATA_DIR / "nodes.yaml"
    return _validate(SiliconData, _read(p), repr(str(p)))


@lru_cache(maxsize=1)
def _chip_table() -> dict[str, ChipSilicon]:
    raw = _read(DATA_DIR / "chips.yaml").get("chips") or {}
    return {k: _validate(ChipSilicon, v, f"chips.yaml:{k}") for k, v in raw.items()}


def chip_silicon(chip_id: str) -> ChipSilicon:
    """The silicon facts for a catalog chip, or the as-drawn default."""
    return _chip_table().get(chip_id, ChipSilicon())


__all__ = ["SiliconData", "ProcessNode", "HbmGeneration", "ChipSilicon", "load_silicon_data", "chip_silicon"]
