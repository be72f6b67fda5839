"""Fit the one fitted coefficient, ``wafer.mac_area_um2``, so the model gives the H100
(GH100 as built: 144 SMs, 60 MB L2, six HBM PHYs) its published 814 mm2.

    python -m seedchip.silicon.calibrate          # prints the value for nodes.yaml

Die area is linear in the MAC area, so two evaluations give the exact fit.
"""

from __future__ import annotations

from .area import die_area
from .data import chip_silicon, load_silicon_data


def fit_mac_area(chip_id: str = "h100-sxm", target_mm2: float | None = None) -> float:
    from ..hardware.catalog import load_chip
    data = load_silicon_data()
    target = target_mm2 or float(data.reference["h100_die_mm2"])
    chip, sil = load_chip(chip_id), chip_silicon(chip_id)

    def area(a: float) -> float:
        d = data.model_copy(update={"wafer": data.wafer.model_copy(update={"mac_area_um2": a})})
        return die_area(chip, sil, d).die_mm2

    a0, a1 = 100.0, 1000.0
    y0, y1 = area(a0), area(a1)
    return a0 + (target - y0) * (a1 - a0) / (y1 - y0)


if __name__ == "__main__":  # pragma: no cover
    a = fit_mac_area()
    print(f"wafer.mac_area_um2: {a:.1f}   # FITTED to H100 = 814 mm2")
