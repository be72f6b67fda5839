"""Engine profiles: vLLM, TensorRT-LLM and SGLang as sourced data (``engines.yaml``).

A profile says what an engine admits (on-demand allocation with preemption, a full
reservation, or SGLang's estimated reservation), its batch limits and memory share by
chip and usage, and how it runs kernels (:class:`seedchip.perf.runtime.Runtime`). A
profile is *resolved* for one deployment (chip, tensor-parallel size, offline or
server usage) into concrete values; the user's explicit options override them.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field, ValidationError

from ..errors import SpecError, UnknownNameError, one_line
from ..hardware.spec import ChipSpec
from ..perf.runtime import Runtime
from ..spec_base import FrozenSpec

ENGINES_FILE = Path(__file__).parent / "engines.yaml"
DEFAULT_ENGINE = "vllm"
ADMISSIONS = ("on-demand", "reserve", "estimate")


class NewTokenRatio(FrozenSpec):
    init: float = Field(gt=0, le=1)
    min: float = Field(gt=0, le=1)
    decay_steps: int = Field(gt=0)


class EngineSource(FrozenSpec):
    what: str
    document: str
    year: int


class EngineProfile(FrozenSpec):
    """One engine's behaviour, resolved for a deployment (every value concrete)."""
    id: str
    name: str
    version: str
    admission: Literal["on-demand", "reserve", "estimate"]
    prefix_caching: bool
    block_size: int = Field(gt=0)
    max_num_seqs: int = Field(gt=0)
    max_batched_tokens: int = Field(gt=0)
    memory_fraction: float = Field(gt=0, le=1)
    memory_basis: Literal["total", "free"]
    mixed_batches: bool = Field(True, description="prefill chunks and decodes share a step (False: separate steps)")
    offline_limits: Literal["profile", "trtllm-bench"] = Field(
        "profile", description="offline runs take the profile's limits, or derive them from the workload's mean "
                               "lengths as trtllm-bench's build heuristic does")
    new_token_ratio: NewTokenRatio | None = None
    runtime: Runtime
    sources: list[EngineSource] = Field(min_length=1)
    assumed: str = ""

    def summary(self) -> dict:
        """What the JSON of a run reports under ``engine``."""
        d = self.model_dump(mode="json", exclude={"sources", "assumed", "runtime"})
        d["runtime"] = self.runtime.model_dump(mode="json")
        d["sources"] = [f"{s.document} ({s.year})" for s in self.sources]
        d["assumed"] = " ".join(self.assumed.split())
        return d


@lru_cache(maxsize=1)
def _raw() -> dict:
    return yaml.safe_load(ENGINES_FILE.read_text())


def engine_ids() -> list[str]:
    return sorted(_raw())


def _pick(value: Any, hbm_gib: float, tp: int, usage: str) -> Any:
    """A value, or a rule table keyed by usage (offline/server), chip HBM or tp."""
    if not isinstance(value, dict):
        return value
    if "offline" in value or "server" in value:
        return _pick(value[usage], hbm_gib, tp, usage)
    if "by_hbm" in value:
        return next(r["value"] for r in value["by_hbm"] if hbm_gib >= r["min_hbm_gib"])
    if "by_tp" in value:
        return next(r["value"] for r in value["by_tp"] if tp >= r["min_tp"])
    return {k: _pick(v, hbm_gib, tp, usage) for k, v in value.items()}


def resolve_engine(name: str, chip: ChipSpec, tp: int = 1, offline: bool = False) -> EngineProfile:
    """The named profile with its chip-, tp- and usage-dependent values resolved."""
    raw = _raw()
    key = (name or DEFAULT_ENGINE).strip().lower()
    if key not in raw:
        raise UnknownNameError("engine", name, raw)
    hbm_gib = chip.hbm_capacity_bytes / 2**30
    data = {k: _pick(v, hbm_gib, tp, "offline" if offline else "server") for k, v in raw[key].items()}
    data["runtime"] = dict(data.get("runtime") or {}, id=key)
    try:
        return EngineProfile(id=key, **data)
    except ValidationError as e:   # the shipped file is tested; a broken edit says where
        raise SpecError(f"engine profile {key!r} in {ENGINES_FILE.name} is not valid: {one_line(e)[:300]}") from None


__all__ = ["EngineProfile", "resolve_engine", "engine_ids", "DEFAULT_ENGINE", "ADMISSIONS"]
