"""Reading a scenario: the YAML schema (:mod:`.scenario`) checked against the catalogs
(chips, models, workloads), each deployment's parallel plan and each device's unit cost.
Errors name the field and, for YAML, the line."""

from __future__ import annotations

from pathlib import Path

from pydantic import ValidationError

from ..errors import SeedChipError, SpecError, UnknownNameError, one_line
from ..hardware.catalog import load_chip
from ..model.zoo import load_model
from ..serve.workload import synthetic_specs
from ..yamlio import load_marked, validation_error, where
from .costs import unit_cost
from .scenario import Scenario


def _check_catalog(s: Scenario, marks: dict, origin: str) -> None:
    """Names that need the catalogs (chips, models) and each deployment's parallel plan."""
    def fail(loc: tuple, msg: str):
        raise SpecError(f"{where(origin, marks, loc)}: {msg}")

    models = {}
    for name, d in s.demand.items():
        try:
            models[name] = load_model(d.model)
        except SeedChipError as e:
            fail(("demand", name, "model"), one_line(e))
        if d.workload is not None:
            if d.workload not in synthetic_specs():
                fail(("demand", name, "workload"), str(UnknownNameError("workload", d.workload, synthetic_specs())))
    for name, dev in s.devices.items():
        try:
            chip = load_chip(dev.chip)
        except SeedChipError as e:
            fail(("devices", name, "chip"), one_line(e))
        try:
            unit_cost(name, dev.kind, dev.chip, dev.unit_cost_usd)
        except SpecError as e:
            fail(("devices", name, "unit_cost_usd"), str(e).split("unit_cost_usd: ", 1)[1])
        for cls, dep in dev.deployments.items():
            if isinstance(dep, list) or dep.disaggregate:
                # candidates (and pools) that do not fit are reported by the capacity search, not rejected here
                continue
            try:
                dep.build(chip, models[cls], s.demand[cls].engine, s.calibration)
            except SeedChipError as e:
                fail(("devices", name, "deployments", cls), one_line(e))


def parse_scenario(source: str | dict, origin: str = "<scenario>", *, check_catalog: bool = True) -> Scenario:
    """A Scenario from YAML text or a dict; errors name the field and (for YAML) the line."""
    if isinstance(source, dict):
        data, marks = source, {}
    else:
        data, marks = load_marked(source, origin)
    if not isinstance(data, dict):
        raise SpecError(f"{origin}: a scenario must be a YAML mapping (horizon_quarters, demand, devices, ...)")
    try:
        s = Scenario.model_validate(data)
    except ValidationError as e:
        raise validation_error(e, origin, marks) from None
    if check_catalog:
        _check_catalog(s, marks, origin)
    return s


def load_scenario(path: str | Path) -> Scenario:
    from ..outputs import read_text
    return parse_scenario(read_text(path, "scenario"), origin=str(path))


__all__ = ["parse_scenario", "load_scenario"]
