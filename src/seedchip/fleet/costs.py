"""The one unit-cost rule of a device: the price the scenario gives, or for our own chips
the silicon model's unit cost; a GPU must be given its purchase price."""

from __future__ import annotations

from functools import lru_cache

from ..errors import SeedChipError, SpecError
from ..silicon import silicon_report


@lru_cache(maxsize=64)
def silicon_unit_cost(chip: str) -> tuple[float | None, str]:
    """(unit cost, "silicon model") of a chip, or (None, why it cannot be costed)."""
    try:
        return float(silicon_report(chip).to_dict()["unit_cost_usd"]), "silicon model"
    except SeedChipError as e:
        return None, f"the silicon model cannot cost {chip!r}: {e}"


def unit_cost(name: str, kind: str, chip: str, given: float | None) -> tuple[float, str]:
    """(US dollars per chip, where the figure comes from) for device ``name``; a SpecError
    that names the field when there is none."""
    if given is not None:
        return given, "given"
    if kind == "gpu":
        raise SpecError(f"devices.{name}.unit_cost_usd: required for a GPU (its purchase price per chip)")
    uc, why = silicon_unit_cost(str(chip))
    if uc is None:
        raise SpecError(f"devices.{name}.unit_cost_usd: required ({why})")
    return uc, why


__all__ = ["unit_cost", "silicon_unit_cost"]
