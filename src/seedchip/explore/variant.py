"""A design point -> a ChipSpec: the base chip with the axes applied.

Rules (each documented where a user sets the axis, space.AXES):
- bf16_flops_per_s: fp8 / int8 / fp4 peaks keep their ratio to bf16; the core count follows
  (cores = peak / (rows x cols x 2 x clock), arrays halved when fewer than 4 cores would do);
- clock_hz: same FLOP/s at another clock (more or fewer MACs);
- hbm_generation / hbm_height: per-stack bandwidth, capacity and pJ/bit from nodes.yaml;
- process_node: matrix, vector and SRAM energy scale with the node's energy_scale;
- idle (static) power scales with the silicon model's leakage estimate (area x W/mm2 + HBM
  standby) relative to the base chip's, so a bigger die leaks more;
- tdp_w: the power the design needs (silicon model) unless the axis sets a cap.

A point that cannot be built (a stack height the generation does not offer) raises
VariantError: the point is stored as infeasible with that reason.
"""

from __future__ import annotations

import hashlib
import json
import math

from ..hardware.spec import ChipSpec
from ..silicon.area import die_area
from ..silicon.data import ChipSilicon, SiliconData, chip_silicon
from ..silicon.power import leakage_w, power_report


class VariantError(ValueError):
    """This point cannot be built; the message is the reason."""


def _geometry(m: dict, bf16: float, clock: float) -> None:
    rows, cols = m["array_rows"], m["array_cols"]
    cores = bf16 / (rows * cols * 2.0 * clock)
    while cores < 4 and rows * cols > 64:
        if rows >= cols:
            rows //= 2
        else:
            cols //= 2
        cores = bf16 / (rows * cols * 2.0 * clock)
    m.update(array_rows=rows, array_cols=cols, num_cores=max(1, round(cores)), clock_hz=clock)
    geo = m["num_cores"] * rows * cols * 2.0 * clock
    if not 0.8 <= geo / bf16 <= 1.25:
        raise VariantError(f"bf16 {bf16 / 1e12:.0f} TFLOP/s at {clock / 1e9:.2f} GHz is below one "
                           f"{rows} x {cols} core; raise the FLOP/s or lower the clock")


def _apply_compute(d: dict, params: dict) -> None:
    """bf16 FLOP/s (other formats keep their ratio to bf16; fp4 on or off), clock and the core
    geometry that gives them, vector FLOP/s and SRAM."""
    m = d["matrix"]
    peaks = dict(m["peak_flops_per_s"])
    bf16 = params.get("bf16_flops_per_s", peaks["bf16"])
    clock = params.get("clock_hz", m["clock_hz"])
    ratio = bf16 / peaks["bf16"]
    new_peaks = {k: (v * ratio if v else None) for k, v in peaks.items()}
    new_peaks["bf16"] = bf16
    if "fp4" in params:
        if params["fp4"]:
            new_peaks["fp4"] = new_peaks.get("fp4") or 4.0 * bf16
        else:
            new_peaks["fp4"] = None
    m["peak_flops_per_s"] = new_peaks
    _geometry(m, bf16, clock)
    if "vector_flops_per_s" in params:
        d["vector_flops_per_s"] = params["vector_flops_per_s"]
    if "sram_mb" in params:
        d["sram"]["capacity_bytes"] = params["sram_mb"] * 1e6


def _apply_hbm(d: dict, params: dict, data: SiliconData) -> None:
    """HBM generation and stack height (per-stack bandwidth, capacity and pJ/bit from nodes.yaml;
    without a height, the lowest that holds the base's capacity per stack), the number of stacks
    and the link bandwidth."""
    hbm = d["hbm"]
    gen_name = params.get("hbm_generation", hbm["generation"]).lower()
    if "hbm_generation" in params or "hbm_height" in params:
        gen = data.hbm_generation(gen_name)
        if "hbm_height" in params:
            height = params["hbm_height"]
            if height not in gen.heights:
                raise VariantError(f"{gen_name} offers no {height}-Hi stack (heights {gen.heights})")
        else:
            per_die = gen.die_gbit / 8.0 * 1e9
            height = next((h for h in sorted(gen.heights) if h * per_die >= hbm["capacity_per_stack_bytes"] - 1),
                          max(gen.heights))
        hbm.update(generation=gen_name, capacity_per_stack_bytes=height * gen.die_gbit / 8.0 * 1e9,
                   bw_per_stack_bytes_per_s=gen.bw_per_stack_bytes_per_s)
        d["energy"]["hbm_j_per_byte"] = gen.pj_per_bit * 8e-12
    if "hbm_stacks" in params:
        hbm["num_stacks"] = params["hbm_stacks"]
    if "link_bw_per_direction" in params:
        d["links"]["bw_per_direction_bytes_per_s"] = params["link_bw_per_direction"]


def _apply_process_node(d: dict, params: dict, base: ChipSpec, data: SiliconData) -> None:
    """Matrix, vector and SRAM energy scale with the node's energy_scale."""
    if "process_node" not in params:
        return
    energy = d["energy"]
    new, old = data.node(params["process_node"]), data.node(base.process_node)
    s = new.energy_scale / old.energy_scale
    energy["matrix_j_per_flop"] = {k: v * s for k, v in energy["matrix_j_per_flop"].items()}
    energy["vector_j_per_flop"] *= s
    energy["sram_j_per_byte"] *= s
    d["process_node"] = params["process_node"]


def _apply_power(d: dict, params: dict, base: ChipSpec, bsil: ChipSilicon, sil: ChipSilicon,
                 data: SiliconData) -> None:
    """Static power: the base's idle_w scaled by the silicon model's leakage (area and stacks);
    active power: the base's per core-hertz; TDP: the axis's cap, else the power the design
    needs (rounded up to a watt)."""
    d["tdp_w"] = max(d["tdp_w"], 1e6)          # provisional; set below
    chip = ChipSpec.model_validate(d)
    leak_base = leakage_w(die_area(base, bsil, data).total_mm2, base.hbm.num_stacks, base, data)
    leak = leakage_w(die_area(chip, sil, data).total_mm2, chip.hbm.num_stacks, chip, data)
    d["energy"]["idle_w"] = base.energy.idle_w * leak / leak_base
    # the active floor scales with the cores and the clock that toggle (per core-hertz, as the base's)
    m, bm = d["matrix"], base.matrix
    d["energy"]["active_w"] = base.energy.active_w * (m["num_cores"] * m["clock_hz"]) / (bm.num_cores * bm.clock_hz)
    chip = ChipSpec.model_validate(d)
    need = power_report(chip, 0.0, data).tdp_w
    d["tdp_w"] = float(params["tdp_w"]) if "tdp_w" in params else float(math.ceil(need))
    floor = d["energy"]["idle_w"] + d["energy"]["active_w"]
    if d["tdp_w"] <= floor:
        raise VariantError(f"tdp_w {d['tdp_w']:.0f} W is below the idle and active power {floor:.0f} W")


def make_variant(base: ChipSpec, params: dict, data: SiliconData, base_silicon: ChipSilicon | None = None
                 ) -> tuple[ChipSpec, ChipSilicon]:
    """(ChipSpec, ChipSilicon) of the point ``params`` applied to ``base``."""
    d = base.model_dump()
    _apply_compute(d, params)
    _apply_hbm(d, params, data)
    _apply_process_node(d, params, base, data)
    bsil = base_silicon if base_silicon is not None else chip_silicon(base.id)
    spares = int(params.get("spare_cores", 0))
    sil = ChipSilicon(num_cores_on_die=d["matrix"]["num_cores"] + spares, num_dies=bsil.num_dies)
    _apply_power(d, params, base, bsil, sil, data)
    # the id hashes the spec itself: points that differ only in silicon-only axes (spare
    # cores) get the same ChipSpec, so the oracle's caches answer the second one
    tag = hashlib.sha256(json.dumps({k: v for k, v in d.items() if k not in ("id", "name")}, sort_keys=True,
                                    default=str).encode()).hexdigest()[:10]
    d.update(id=f"{base.id}-x{tag}", name=f"{base.name} variant {tag}")
    return ChipSpec.model_validate(d), sil


__all__ = ["make_variant", "VariantError"]
