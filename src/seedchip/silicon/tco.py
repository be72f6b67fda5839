"""Total cost of ownership per token.

A chip-second costs   capex / (lifetime_s x utilization)          (bought or built)
                   or usd_per_hour / 3600                         (rented)
capex = unit cost (our chip: the silicon model's manufacturing cost + NRE / volume;
        a chip we buy: its purchase price) + the system share per accelerator.
Per output token:  num_chips / tokens_per_s  chip-seconds  x  $/chip-second
                 + energy_usd(energy_j_per_token, pue, usd_per_kwh)  (not when a rental price includes power)

``energy_usd`` is the one formula for energy dollars in the package (joules at the IT load x PUE x
$/kWh / 3.6e6 J per kWh); the explorer and the fleet planner price energy through it too.

Time and energy per token come from the oracle (seedchip.estimate / simulate); this module
only prices them.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import Field

from ..spec_base import FrozenSpec
from .data import load_silicon_data

SECONDS_PER_YEAR = 365.25 * 24 * 3600
J_PER_KWH = 3.6e6


def energy_usd(energy_j, pue: float, usd_per_kwh: float):
    """Dollars of electricity for ``energy_j`` joules drawn by the IT load (a float or a NumPy
    array): the facility draws PUE times that, bought at ``usd_per_kwh``. Pass ``pue=1.0`` for
    energy already measured at the facility meter."""
    return energy_j * pue * usd_per_kwh / J_PER_KWH


class TcoInputs(FrozenSpec):
    """TCO assumptions; defaults from nodes.yaml (tco, packaging.system_share_usd)."""
    lifetime_years: float = Field(gt=0)
    utilization: float = Field(gt=0, le=1, description="share of the lifetime spent serving")
    pue: float = Field(ge=1)
    usd_per_kwh: float = Field(ge=0)
    system_share_usd: float = Field(ge=0, description="server, network and rack per accelerator")
    purchase_price_usd: float | None = Field(None, gt=0, description="a chip we buy: replaces the unit cost")
    usd_per_hour: float | None = Field(None, gt=0, description="a rented chip: replaces capex")
    hourly_includes_energy: bool = True
    nre_usd: float = Field(0.0, ge=0, description="design + masks, spread over volume_units")
    volume_units: float | None = Field(None, gt=0)


def tco_inputs(**overrides) -> TcoInputs:
    d = load_silicon_data()
    base = {"lifetime_years": d.tco.lifetime_years, "utilization": d.tco.utilization, "pue": d.tco.pue,
            "usd_per_kwh": d.tco.usd_per_kwh, "system_share_usd": d.packaging.system_share_usd}
    base.update({k: v for k, v in overrides.items() if v is not None})
    return TcoInputs.model_validate(base)


def capex_usd(unit_cost_usd: float, t: TcoInputs) -> float:
    chip = t.purchase_price_usd if t.purchase_price_usd is not None else unit_cost_usd
    nre = t.nre_usd / t.volume_units if (t.nre_usd and t.volume_units) else 0.0
    return chip + nre + t.system_share_usd


def usd_per_chip_s(unit_cost_usd: float, t: TcoInputs) -> float:
    if t.usd_per_hour is not None:
        return t.usd_per_hour / 3600.0
    return capex_usd(unit_cost_usd, t) / (t.lifetime_years * SECONDS_PER_YEAR * t.utilization)


def usd_per_joule(t: TcoInputs) -> float:
    if t.usd_per_hour is not None and t.hourly_includes_energy:
        return 0.0
    return energy_usd(1.0, t.pue, t.usd_per_kwh)


@dataclass(frozen=True)
class TokenCost:
    capex_usd_per_token: float
    energy_usd_per_token: float
    chip_s_per_token: float
    energy_j_per_token: float

    @property
    def usd_per_token(self) -> float:
        return self.capex_usd_per_token + self.energy_usd_per_token

    def to_dict(self) -> dict:
        return {"usd_per_token": self.usd_per_token, "usd_per_million_tokens": self.usd_per_token * 1e6,
                "tokens_per_usd": 1.0 / self.usd_per_token if self.usd_per_token else None,
                "capex_usd_per_token": self.capex_usd_per_token, "energy_usd_per_token": self.energy_usd_per_token,
                "chip_s_per_token": self.chip_s_per_token, "energy_j_per_token": self.energy_j_per_token}


def token_cost(*, num_chips: int, tokens_per_s: float, energy_j_per_token: float, unit_cost_usd: float,
               inputs: TcoInputs) -> TokenCost:
    chip_s = num_chips / tokens_per_s
    return TokenCost(capex_usd_per_token=chip_s * usd_per_chip_s(unit_cost_usd, inputs),
                     energy_usd_per_token=energy_j_per_token * usd_per_joule(inputs),
                     chip_s_per_token=chip_s, energy_j_per_token=energy_j_per_token)


def tco_per_token(chip, result, *, unit_cost_usd: float | None = None, **overrides) -> TokenCost:
    """TCO per output token of ``result`` (a ``seedchip.estimate`` result on ``chip``: a catalog
    id, YAML path or ChipSpec). The unit cost defaults to the chip's purchase price
    (chips.yaml) when it is one we buy, else the silicon model's manufacturing cost;
    ``overrides`` are TcoInputs fields (lifetime_years, utilization, pue, usd_per_kwh, ...)."""
    from ..hardware.catalog import load_chip
    from .data import chip_silicon
    from .report import silicon_report
    spec = load_chip(chip)
    d = result.to_dict()
    inp = d["inputs"]
    if unit_cost_usd is None and overrides.get("purchase_price_usd") is None and overrides.get("usd_per_hour") is None:
        price = chip_silicon(spec.id).purchase_price_usd
        if price is not None:
            overrides["purchase_price_usd"] = price
        else:
            unit_cost_usd = silicon_report(spec).unit_cost_usd
    t = tco_inputs(**overrides)
    out_tokens = inp["batch"] * inp["output_len"]
    return token_cost(num_chips=inp["num_chips"], tokens_per_s=d["throughput_tokens_per_s"],
                      energy_j_per_token=d["energy_j"] / out_tokens, unit_cost_usd=unit_cost_usd or 0.0, inputs=t)


__all__ = ["TcoInputs", "tco_inputs", "TokenCost", "token_cost", "tco_per_token", "capex_usd", "usd_per_chip_s",
           "usd_per_joule", "energy_usd", "J_PER_KWH"]
