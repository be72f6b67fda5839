"""The chip catalog: YAML files shipped with the package, or a user's own YAML path."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import yaml
from pydantic import ValidationError

from ..errors import SpecError, UnknownNameError, one_line, validation_line
from ..yamlio import safe_load
from .spec import ChipSpec

CATALOG_DIR = Path(__file__).parent / "catalog"


def catalog_ids() -> list[str]:
    return sorted(p.stem for p in CATALOG_DIR.glob("*.yaml"))


def _read_yaml(path: Path, what: str) -> dict:
    from ..outputs import read_text
    try:
        data = safe_load(read_text(path, what))
    except yaml.YAMLError as e:
        raise SpecError(f"{what} {str(path)!r} is not valid YAML: {one_line(e)}") from None
    if not isinstance(data, dict):
        got = "an empty file" if data is None else f"a YAML {type(data).__name__}"
        raise SpecError(f"{what} {str(path)!r} must be a YAML mapping of fields (see `seedchip chips --template`), "
                        f"got {got}")
    return data


def chip_from_dict(data: dict, origin: str = "<dict>") -> ChipSpec:
    try:
        return ChipSpec.model_validate(data)
    except ValidationError as e:
        raise SpecError(validation_line(e, f"chip {origin}")) from None


@lru_cache(maxsize=256)
def _load_path(path: str) -> ChipSpec:
    return chip_from_dict(_read_yaml(Path(path), "chip file"), origin=repr(path))


def load_chip(name_or_path: str | ChipSpec) -> ChipSpec:
    """A catalog id (``h200-sxm``) or a path to a chip YAML file."""
    if isinstance(name_or_path, ChipSpec):
        return name_or_path
    name = str(name_or_path)
    p = Path(name)
    if p.is_dir():
        raise SpecError(f"chip {name!r} is a folder; give a catalog id ({', '.join(catalog_ids())}) or a chip YAML file")
    if name.endswith((".yaml", ".yml")) or p.is_file():
        if not p.is_file():
            raise SpecError(f"chip file {name!r} does not exist; give a catalog id ({', '.join(catalog_ids())}) or a YAML path")
        return _load_path(str(p.resolve()))
    key = name.strip().lower()
    f = CATALOG_DIR / f"{key}.yaml"
    if not f.is_file():
        raise UnknownNameError("chip", name, catalog_ids())
    return _load_path(str(f))


def list_chips() -> list[ChipSpec]:
    return [load_chip(i) for i in catalog_ids()]
