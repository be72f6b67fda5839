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

from pydantic import Field, ValidationError

from ..errors import SpecError, UnknownNameError, one_line
from ..hardware.spec import ChipSpec
from ..model.arch import ModelArch
from ..perf.deployment import Deployment, Layout, make_deployment
from ..perf.runtime import Runtime
from ..spec_base import FrozenSpec
from ..yamlio import safe_load

ENGINES_FILE = Path(__file__).parent / "engines.yaml"
DEFAULT_ENGINE = "vllm"
ADMISSIONS = ("on-demand", "reserve", "estimate")


class NewTokenRatio(FrozenSpec):
    init: float = Field(gt=0, le=1)
    min: float = Field(gt=0, le=1)
    decay_steps: int = Field(gt=0)


class BatchSizeTuning(FrozenSpec):
    """A runtime cap on the batch from the KV capacity (TensorRT-LLM's dynamic batch-size
    tuner): the requests of mean length that the KV blocks hold are looked up in
    ``table`` (the first row whose bound exceeds them gives the batch); above the table
    they are rounded down to a multiple of ``granularity_seqs`` when within
    ``threshold_seqs`` of it. ``table`` rows: (requests the KV holds, sequences)."""
    table: list[tuple[int, int]] = Field(min_length=1)
    granularity_seqs: int = Field(gt=0)
    threshold_seqs: int = Field(ge=0)

    def batch(self, capacity: int) -> int:
        """The runtime batch size for ``capacity`` requests in the KV cache."""
        for bound, size in self.table:
            if capacity < bound:
                return size
        floor = capacity // self.granularity_seqs * self.granularity_seqs
        return floor if capacity < floor + self.threshold_seqs else capacity


class MemoryReserve(FrozenSpec):
    """A memory fraction derived from what the engine keeps out of it, in MiB (SGLang's
    mem_fraction_static when not given): ``base`` + ``per_prefill_token`` x max(chunk,
    ``min_prefill_tokens``) + ``per_graph_seq`` x the largest CUDA-graph batch +
    ``per_8_ranks`` x tp x pp / 8, at least ``floor_mib`` on chips above ``floor_above_gib``;
    the fraction is (HBM - reserve) / HBM rounded to three decimals."""
    base_mib: float = Field(ge=0)
    per_prefill_token_mib: float = Field(ge=0)
    min_prefill_tokens: int = Field(ge=0)
    per_graph_seq_mib: float = Field(ge=0)
    per_8_ranks_mib: float = Field(ge=0)
    floor_mib: float = Field(ge=0)
    floor_above_gib: float = Field(ge=0)

    def fraction(self, hbm_bytes: float, chunk: int, graph_seqs: int, ranks: int) -> float:
        """The fraction; a typed error when the reserve leaves nothing (the engine would
        refuse to start: not enough memory)."""
        mem_mib = hbm_bytes / 2**20
        reserve_mib = (self.base_mib + self.per_prefill_token_mib * max(chunk, self.min_prefill_tokens)
                       + self.per_graph_seq_mib * graph_seqs + self.per_8_ranks_mib * ranks / 8)
        if mem_mib > self.floor_above_gib * 1024:
            reserve_mib = max(reserve_mib, self.floor_mib)
        f = round((mem_mib - reserve_mib) / mem_mib, 3)
        if f <= 0:
            raise SpecError(f"the engine keeps {reserve_mib:,.0f} MiB out of its memory share for a {chunk:,}-token "
                            f"chunk and {graph_seqs}-sequence CUDA graphs, more than the chip's {mem_mib:,.0f} MiB: "
                            "use a smaller --max-batched-tokens or give --kv-memory-fraction")
        return f


class SeqsFromKV(FrozenSpec):
    """A batch limit derived from the KV pool (SGLang's request pool when
    max_running_requests is not given): ``requests_per_context`` requests per context
    length of KV tokens, within ``min_requests``..``max_requests``, and at most one request
    per ``kv_tokens_per_request`` KV tokens; per data-parallel replica."""
    requests_per_context: float = Field(gt=0)
    min_requests: int = Field(gt=0)
    max_requests: int = Field(gt=0)
    kv_tokens_per_request: int = Field(gt=0)

    def seqs(self, kv_tokens: int, context_len: int) -> int:
        pool = min(max(int(kv_tokens / context_len * self.requests_per_context), self.min_requests),
                   self.max_requests)
        return max(1, min(pool, kv_tokens // self.kv_tokens_per_request))


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
    max_num_seqs_from_kv: SeqsFromKV | None = Field(
        None, description="max_num_seqs derived from the KV pool and the model's context length unless given")
    max_batched_tokens: int = Field(gt=0)
    memory_fraction: float = Field(gt=0, le=1)
    memory_basis: Literal["total", "free", "static"]
    memory_reserve: MemoryReserve | None = Field(
        None, description="memory_fraction derived from the memory the engine keeps out of it (its chunk size, "
                          "CUDA-graph batch and ranks) unless given")
    mixed_batches: bool = Field(True, description="prefill chunks and decodes share a step (False: separate steps)")
    offline_limits: Literal["profile", "trtllm-bench"] = Field(
        "profile", description="offline runs take the profile's limits, or derive them from the workload's mean "
                               "lengths as trtllm-bench's build heuristic does")
    sliding_window: Literal["model", "ignored"] = Field(
        "model", description="model: sliding-window layers keep and read only their window; ignored: the engine "
                             "runs them as full attention unless told otherwise (its default setting)")
    new_token_ratio: NewTokenRatio | None = None
    batch_size_tuning: BatchSizeTuning | None = Field(
        None, description="a runtime cap on the batch from the KV capacity at the workload's mean lengths")
    step_sigma: float = Field(ge=0, description="log-spread of what the engine model misses per step, from "
                                                 "measured end-to-end results (for the 80% intervals)")
    runtime: Runtime
    sources: list[EngineSource] = Field(min_length=1)
    assumed: str = ""

    def fraction_for(self, chip: ChipSpec, tp: int, pp: int, max_batched_tokens: int | None) -> float:
        """The memory fraction of this deployment: derived when the profile says how
        (``memory_reserve``, from the token budget in force), else the profile's."""
        if self.memory_reserve is None:
            return self.memory_fraction
        return self.memory_reserve.fraction(chip.hbm_capacity_bytes, max_batched_tokens or self.max_batched_tokens,
                                            self.runtime.graph_max_tokens, tp * pp)

    def summary(self) -> dict:
        """What the JSON of a run reports under ``engine``."""
        d = self.model_dump(mode="json", exclude={"sources", "assumed", "runtime"}
                            | ({"batch_size_tuning"} if self.batch_size_tuning is None else set())
                            | ({"memory_reserve"} if self.memory_reserve is None else set())
                            | ({"max_num_seqs_from_kv"} if self.max_num_seqs_from_kv is None else set()))
        d["runtime"] = self.runtime.model_dump(mode="json")
        d["sources"] = [f"{s.document} ({s.year})" for s in self.sources]
        d["assumed"] = " ".join(self.assumed.split())
        return d


class EngineLimits(FrozenSpec):
    """The engine knobs a user may set (None: the engine profile's value)."""
    max_num_seqs: int | None = Field(None, gt=0, description="most sequences in a step")
    max_batched_tokens: int | None = Field(None, gt=0, description="token budget of a step")
    block_size: int | None = Field(None, gt=0, description="KV-cache block, tokens")
    kv_memory_fraction: float | None = Field(None, gt=0, le=1, description="share of memory the engine may use")
    prefix_caching: bool | None = None

    @classmethod
    def checked(cls, **kw) -> "EngineLimits":
        """From CLI/API values, with the option's name in every error."""
        for name in ("max_num_seqs", "max_batched_tokens", "block_size"):
            v = kw.get(name)
            if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v <= 0):
                raise SpecError(f"--{name.replace('_', '-')} = {v!r} must be a positive integer")
        f = kw.get("kv_memory_fraction")
        if f is not None and (isinstance(f, bool) or not isinstance(f, (int, float)) or not 0 < f <= 1):
            raise SpecError(f"--kv-memory-fraction {f!r} must be a number in (0, 1]")
        return cls(**kw)

    def limit_kwargs(self) -> dict:
        return {k: getattr(self, k) for k in type(self).model_fields}


class ServingDeployment(Layout, EngineLimits):
    """One deployment as served: parallelism, formats and the engine knobs the user set
    (the spec the fleet and the explorer hand to ``simulate``/``capacity``)."""
    disaggregate: str | None = Field(None, description="prefill/decode pools, 'prefill=NxCHIP,decode=NxCHIP' "
                                                       "(num_chips is their total)")

    def build(self, chip: ChipSpec, model: ModelArch, engine: str | None = None, calibration=None,
              offline: bool = False) -> tuple[ModelArch, Deployment]:
        """The model as the engine runs it and the deployment (checked against the model),
        for a plain (not disaggregated) deployment."""
        tp = self.tp if self.tp is not None else max(1, self.num_chips // self.pp)
        profile = resolve_engine(engine or DEFAULT_ENGINE, chip, tp, offline, self.pp)
        dep = engine_deployment(profile, chip, **self.layout_kwargs(), calibration=calibration,
                                max_batched_tokens=self.max_batched_tokens, memory_fraction=self.kv_memory_fraction)
        arch = engine_model(profile, model)
        dep.check_model(arch)
        return arch, dep

    def serve_kwargs(self) -> dict:
        kw = dict(self.layout_kwargs(), **self.limit_kwargs())
        if self.disaggregate:          # only when set, so plain deployments keep their keys
            kw["disaggregate"] = self.disaggregate
        return kw


@lru_cache(maxsize=1)
def _raw() -> dict:
    return safe_load(ENGINES_FILE.read_text())


def engine_ids() -> list[str]:
    return sorted(_raw())


def _pick(value: Any, hbm_gib: float, tp: int, usage: str) -> Any:
    """A value, or a rule table keyed by usage (offline/server), chip HBM or tp (a rule's
    value may be a rule table itself)."""
    if not isinstance(value, dict):
        return value
    if "offline" in value or "server" in value:
        return _pick(value[usage], hbm_gib, tp, usage)
    if "by_hbm" in value:
        return _pick(next(r["value"] for r in value["by_hbm"] if hbm_gib >= r["min_hbm_gib"]), hbm_gib, tp, usage)
    if "by_tp" in value:
        return _pick(next(r["value"] for r in value["by_tp"] if tp >= r["min_tp"]), hbm_gib, tp, usage)
    return {k: _pick(v, hbm_gib, tp, usage) for k, v in value.items()}


def resolve_engine(name: str, chip: ChipSpec, tp: int = 1, offline: bool = False, pp: int = 1) -> EngineProfile:
    """The named profile with its chip-, tp- and usage-dependent values resolved (a
    derived memory fraction from the profile's own token budget)."""
    raw = _raw()
    key = (DEFAULT_ENGINE if name is None else name).strip().lower()
    if key not in raw:
        raise UnknownNameError("engine", name, raw)
    hbm_gib = chip.hbm_capacity_bytes / 2**30
    data = {k: _pick(v, hbm_gib, tp, "offline" if offline else "server") for k, v in raw[key].items()}
    data["runtime"] = dict(data.get("runtime") or {}, id=key)
    try:
        profile = EngineProfile(id=key, **data)
        if profile.memory_reserve is not None:
            profile = profile.model_copy(update={"memory_fraction": profile.fraction_for(chip, tp, pp, None)})
        return profile
    except ValidationError as e:   # the shipped file is tested; a broken edit says where
        raise SpecError(f"engine profile {key!r} in {ENGINES_FILE.name} is not valid: {one_line(e)[:300]}") from None


def engine_model(profile: EngineProfile, arch: ModelArch) -> ModelArch:
    """The model as this engine runs it: an engine that ignores sliding windows by
    default keeps and reads every layer's whole context."""
    if profile.sliding_window == "model" or all(w is None for w in arch.layer_windows):
        return arch
    return arch.replace(layer_windows=tuple(None for _ in arch.layer_windows))


def engine_deployment(profile: EngineProfile, chip: ChipSpec, *, num_chips: int = 1, tp: int | None = None,
                      pp: int = 1, ep: int = 1, weight_format: str = "bf16", act_format: str | None = None,
                      kv_format: str = "bf16", calibration=None, max_batched_tokens: int | None = None,
                      memory_fraction: float | None = None, perturbation=None) -> Deployment:
    """A deployment run by this engine: its runtime costs, memory share and basis and
    token budget (the last two unless given)."""
    if memory_fraction is None:
        memory_fraction = profile.fraction_for(chip, tp if tp is not None else max(1, num_chips // pp), pp,
                                               max_batched_tokens)
    return make_deployment(chip, num_chips=num_chips, tp=tp, pp=pp, ep=ep, weight_format=weight_format,
                           act_format=act_format, kv_format=kv_format, calibration=calibration,
                           max_batched_tokens=profile.max_batched_tokens if max_batched_tokens is None
                           else max_batched_tokens,
                           memory_fraction=memory_fraction,
                           memory_basis=profile.memory_basis, runtime=profile.runtime, perturbation=perturbation)


__all__ = ["EngineProfile", "EngineLimits", "ServingDeployment", "resolve_engine", "engine_ids", "engine_deployment", "engine_model", "DEFAULT_ENGINE", "ADMISSIONS"]
