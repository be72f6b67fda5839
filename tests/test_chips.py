"""Chip catalog, from the user's side: every shipped chip loads, carries its sources,
matches the public figures, and every mistake in a chip file is a SpecError that
names the bad field."""

from __future__ import annotations

import csv
import re
from pathlib import Path

import pytest
import yaml

from seedchip.errors import SpecError, UnknownNameError
from seedchip.hardware.catalog import CATALOG_DIR, catalog_ids, load_chip
from seedchip.hardware.spec import ChipSpec

T = 1e12  # TFLOP/s, TB/s
G = 1e9   # GB
GiB = 2.0**30

EXPECTED_IDS = {
    "h100-sxm", "h200-sxm", "b200", "mi300x", "mi325x", "tpu-v5e", "tpu-v6e",
    "trainium2", "gaudi3", "ascend-910b", "seedchip-ref",
}

# Public figures, taken from shared/data/hardware/specs.csv (row name in the first field).
# id: (specs.csv chip, bf16 FLOP/s, HBM bytes, HBM bytes/s, tolerance on the rates)
# HBM capacity is DRAM and DRAM "GB" is binary (JEDEC JESD100B.01 memory prefixes; NVML
# reports 81,559 MiB on an H100 80GB and 143,771 MiB on an H200 141GB, both in GiB range).
PUBLIC = {
    "h100-sxm": ("H100 SXM5 80GB", 989 * T, 80 * GiB, 3.35 * T, 0.005),
    "h200-sxm": ("H200 SXM 141GB", 989 * T, 141 * GiB, 4.8 * T, 0.005),
    "b200": ("B200 SXM", 2250 * T, 180 * GiB, 8.0 * T, 0.005),
    "mi300x": ("MI300X", 1307.4 * T, 192 * GiB, 5.3 * T, 0.005),
    "mi325x": ("MI325X", 1300 * T, 256 * GiB, 6.0 * T, 0.01),  # specs.csv rounds AMD's 1307.4
    "tpu-v5e": ("TPU v5e", 197 * T, 16 * GiB, 0.819 * T, 0.005),
    "tpu-v6e": ("TPU v6e (Trillium)", 918 * T, 32 * GiB, 1.638 * T, 0.005),
    "trainium2": ("Trainium2", 667 * T, 96 * GiB, 2.9 * T, 0.005),
    "gaudi3": ("Gaudi 3 (OAM HL-325L)", 1835 * T, 128 * GiB, 3.67 * T, 0.005),
}

# Other public peaks (dense) from specs.csv: id -> {class: FLOP/s}
PUBLIC_PEAKS = {
    "h100-sxm": {"fp8": 1979 * T, "int8": 1979 * T},
    "b200": {"fp8": 4500 * T, "int8": 4500 * T, "fp4": 9000 * T},
    "mi300x": {"fp8": 2610 * T},
    "tpu-v5e": {"int8": 394 * T},
    "tpu-v6e": {"int8": 1836 * T},
    "trainium2": {"fp8": 1299 * T},
    "gaudi3": {"fp8": 1835 * T},
}

# Formats a chip does not run natively: the catalog writes null.
NOT_NATIVE = [("h100-sxm", "fp4"), ("h200-sxm", "fp4"), ("mi300x", "fp4"), ("mi325x", "fp4"),
              ("tpu-v5e", "fp8"), ("ascend-910b", "fp8")]

SPECS_CSV = Path(__file__).resolve().parents[2] / "shared" / "data" / "hardware" / "specs.csv"
needs_specs_csv = pytest.mark.skipif(not SPECS_CSV.is_file(), reason="../shared/data/hardware/specs.csv not present")


def _raw(chip_id: str) -> dict:
    return yaml.safe_load((CATALOG_DIR / f"{chip_id}.yaml").read_text())


def _write(path: Path, data: dict) -> str:
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return str(path)


@pytest.mark.unit
def test_catalog_holds_every_expected_chip():
    assert EXPECTED_IDS <= set(catalog_ids())


@pytest.mark.unit
@pytest.mark.parametrize("chip_id", catalog_ids())
def test_every_catalog_id_loads(chip_id):
    chip = load_chip(chip_id)
    assert isinstance(chip, ChipSpec)
    assert chip.id == chip_id  # file name = id + .yaml
    assert load_chip(chip_id.upper()) is chip  # ids are looked up case-insensitively


@pytest.mark.unit
@pytest.mark.parametrize("chip_id", catalog_ids())
def test_ids_are_lower_case_with_dashes(chip_id):
    assert re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", chip_id), chip_id


@pytest.mark.unit
@pytest.mark.parametrize("chip_id", catalog_ids())
def test_each_chip_cites_sources_with_years(chip_id):
    chip = load_chip(chip_id)
    assert chip.sources
    for s in chip.sources:
        assert isinstance(s.year, int) and 1990 <= s.year <= 2100
        assert s.what.strip() and s.document.strip()


@pytest.mark.unit
@pytest.mark.parametrize("chip_id", sorted(PUBLIC))
def test_key_figures_equal_the_public_ones(chip_id):
    _, bf16, capacity, bw, tol = PUBLIC[chip_id]
    chip = load_chip(chip_id)
    peak, used = chip.peak_flops("bf16")
    assert used == "bf16"
    assert peak == pytest.approx(bf16, rel=tol)
    assert chip.hbm_capacity_bytes == pytest.approx(capacity, rel=1e-9)
    assert chip.hbm_bw_bytes_per_s == pytest.approx(bw, rel=tol)
    for cls, want in PUBLIC_PEAKS.get(chip_id, {}).items():
        assert chip.matrix.peak_flops_per_s[cls] == pytest.approx(want, rel=0.005), cls


def _lead_number(cell: str) -> float:
    m = re.match(r"\s*~?\s*([0-9][0-9,]*(?:\.[0-9]+)?)", cell)
    assert m, cell
    return float(m.group(1).replace(",", ""))


@pytest.mark.unit
@needs_specs_csv
def test_expected_figures_are_the_specs_csv_ones():
    """The numbers above are the ones in specs.csv (bf16, memory, bandwidth columns)."""
    rows = {r["chip"]: r for r in csv.DictReader(SPECS_CSV.open(newline=""))}
    for chip_id, (name, bf16, capacity, bw, _) in PUBLIC.items():
        r = rows[name]
        assert _lead_number(r["bf16_dense_tflops"]) * T == pytest.approx(bf16, rel=1e-6), name
        assert _lead_number(r["mem_gb"]) * GiB == pytest.approx(capacity, rel=1e-6), name
        assert _lead_number(r["mem_bw_tbs"]) * T == pytest.approx(bw, rel=1e-6), name
    assert _lead_number(rows["B200 SXM"]["fp4_dense_tflops"]) * T == PUBLIC_PEAKS["b200"]["fp4"]


@pytest.mark.unit
@pytest.mark.parametrize("chip_id", catalog_ids())
def test_hbm_totals_equal_stacks_times_per_stack(chip_id):
    from seedchip.units import parse
    raw = _raw(chip_id)["hbm"]
    chip = load_chip(chip_id)
    per_cap = parse(raw["capacity_per_stack_bytes"], "bytes")
    per_bw = parse(raw["bw_per_stack_bytes_per_s"], "bytes/s")
    assert chip.hbm_capacity_bytes == pytest.approx(raw["num_stacks"] * per_cap, rel=1e-12)
    assert chip.hbm_bw_bytes_per_s == pytest.approx(raw["num_stacks"] * per_bw, rel=1e-12)


@pytest.mark.unit
def test_fp4_on_h100_falls_back_to_fp8():
    chip = load_chip("h100-sxm")
    assert chip.matrix.peak_flops_per_s["fp4"] is None
    peak, used = chip.peak_flops("fp4")
    assert used == "fp8"
    assert peak == chip.matrix.peak_flops_per_s["fp8"]


@pytest.mark.unit
@pytest.mark.parametrize("chip_id, cls", NOT_NATIVE)
def test_formats_that_are_not_native_are_null_and_fall_back(chip_id, cls):
    chip = load_chip(chip_id)
    assert chip.matrix.peak_flops_per_s[cls] is None
    _, used = chip.peak_flops(cls)
    assert used != cls


@pytest.mark.unit
@pytest.mark.parametrize("chip_id", catalog_ids())
def test_estimates_are_marked_visibly(chip_id):
    chip = load_chip(chip_id)
    text = (CATALOG_DIR / f"{chip_id}.yaml").read_text()
    estimated = [s for s in chip.sources if s.estimate]
    if estimated:
        assert "ESTIMATE" in text or "estimate: true" in text
    for s in estimated:
        assert "ESTIMATE" in s.document, f"{chip_id}: estimate source does not say so: {s.document!r}"


@pytest.mark.unit
@pytest.mark.parametrize("chip_id", catalog_ids())
def test_geometry_reproduces_the_bf16_peak(chip_id):
    """Catalog convention: the clock is the one the datasheet peak implies (tighter than the 20% the validator allows)."""
    m = load_chip(chip_id).matrix
    geo = m.num_cores * m.array_rows * m.array_cols * 2 * m.clock_hz
    assert geo == pytest.approx(m.peak_flops_per_s["bf16"], rel=0.01)


@pytest.mark.unit
@pytest.mark.parametrize("chip_id", catalog_ids())
def test_narrow_formats_are_not_slower_and_energy_is_sane(chip_id):
    chip = load_chip(chip_id)
    p = chip.matrix.peak_flops_per_s
    for cls in ("fp8", "int8", "fp4"):
        if p[cls] is not None:
            assert p[cls] >= p["bf16"]
    assert 0 < chip.energy.idle_w < chip.tdp_w
    for cls, e in chip.energy.matrix_j_per_flop.items():
        # H100 dense bf16 at 0.125 pJ/FLOP is fitted to measured power; narrow formats and
        # newer nodes go lower, nothing credible is under 0.01 pJ or over 5 pJ.
        assert 0.01e-12 < e < 5e-12, (cls, e)
        if cls != "bf16" and p.get(cls) is not None:
            assert e <= chip.energy.matrix_j_per_flop["bf16"] * 1.0001, (cls, e)


@pytest.mark.unit
def test_seedchip_ref_design_point():
    chip = load_chip("seedchip-ref")
    assert all(s.estimate for s in chip.sources)
    assert chip.kind == "asic" and chip.year == 2026 and chip.process_node == "tsmc-n4"
    bf16 = 28 * 128 * 128 * 2 * 1.4e9
    assert chip.peak_flops("bf16")[0] == pytest.approx(bf16, rel=1e-12)
    assert chip.peak_flops("fp8")[0] == pytest.approx(2 * bf16, rel=1e-12)
    assert chip.peak_flops("int8")[0] == pytest.approx(2 * bf16, rel=1e-12)
    assert chip.peak_flops("fp4")[0] == pytest.approx(4 * bf16, rel=1e-12)
    assert chip.hbm.num_stacks == 8
    assert chip.hbm_capacity_bytes == pytest.approx(288 * GiB)
    assert chip.hbm.bw_per_stack_bytes_per_s == pytest.approx(9.6e9 * 1024 / 8)
    assert chip.sram.per_core_bytes == 2 * 2**20
    intensity = chip.peak_flops("fp8")[0] / chip.hbm_bw_bytes_per_s  # FLOP per byte of HBM
    assert 240 <= intensity <= 270


# --- a user's own chip file ---------------------------------------------------------

@pytest.mark.unit
def test_user_yaml_file_loads_by_path(tmp_path):
    data = _raw("h200-sxm")
    data["id"] = "my-h200-variant"
    data["hbm"]["num_stacks"] = 8
    data["hbm"]["capacity_per_stack_bytes"] = "36 GB"
    data["tdp_w"] = "1000 W"
    path = _write(tmp_path / "my-h200-variant.yaml", data)
    chip = load_chip(path)
    assert chip.id == "my-h200-variant"
    assert chip.hbm_capacity_bytes == pytest.approx(288e9)
    assert chip.hbm_bw_bytes_per_s == pytest.approx(8 * 0.8e12)
    assert chip.tdp_w == 1000
    assert chip.peak_flops("bf16") == load_chip("h200-sxm").peak_flops("bf16")


@pytest.mark.unit
def test_missing_yaml_file_is_a_spec_error(tmp_path):
    with pytest.raises(SpecError, match="does not exist"):
        load_chip(str(tmp_path / "nope.yaml"))


@pytest.mark.unit
def test_malformed_yaml_is_a_spec_error(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("id: broken\nmatrix: [unclosed\n  num_cores: 1\n")
    with pytest.raises(SpecError) as e:
        load_chip(str(path))
    assert "not valid YAML" in str(e.value)
    assert "broken.yaml" in str(e.value)


@pytest.mark.unit
def test_unknown_field_is_a_spec_error_naming_it(tmp_path):
    data = _raw("h200-sxm")
    data["hbm"]["stacks"] = 6  # a typo for num_stacks must not be ignored
    with pytest.raises(SpecError) as e:
        load_chip(_write(tmp_path / "typo.yaml", data))
    assert "hbm.stacks" in str(e.value)


@pytest.mark.unit
def test_negative_bandwidth_is_a_spec_error_naming_it(tmp_path):
    data = _raw("h200-sxm")
    data["hbm"]["bw_per_stack_bytes_per_s"] = "-0.8 TB/s"
    with pytest.raises(SpecError) as e:
        load_chip(_write(tmp_path / "negative.yaml", data))
    assert "hbm.bw_per_stack_bytes_per_s" in str(e.value)


@pytest.mark.unit
def test_inconsistent_geometry_is_a_spec_error_naming_it(tmp_path):
    data = _raw("h200-sxm")
    data["matrix"]["num_cores"] = 13  # 10x too few SMs for the bf16 peak
    with pytest.raises(SpecError) as e:
        load_chip(_write(tmp_path / "geometry.yaml", data))
    msg = str(e.value)
    assert "geometry" in msg and "peak_flops_per_s.bf16" in msg


@pytest.mark.unit
def test_bad_unit_is_a_spec_error_naming_the_field(tmp_path):
    data = _raw("h200-sxm")
    data["tdp_w"] = "700 TB/s"
    with pytest.raises(SpecError) as e:
        load_chip(_write(tmp_path / "unit.yaml", data))
    assert "tdp_w" in str(e.value)


@pytest.mark.unit
def test_unknown_id_suggests_the_close_match():
    with pytest.raises(UnknownNameError) as e:
        load_chip("h200")
    assert "h200-sxm" in e.value.close
    assert "'h200-sxm'" in str(e.value)
