"""simulate(): the serving layer's public function (mirrored by `seedchip simulate`).

A run is a deployment (chips, parallelism, formats) served by one engine profile
(``engine=``: vllm, trtllm or sglang; its limits, admission and runtime costs as sourced
data), fed a workload (a trace, a built-in distribution, fixed or ranged lengths,
open-loop arrivals or closed-loop clients). Explicit scheduler options override the
profile's values.
"""

from __future__ import annotations

from dataclasses import replace

from .. import units
from ..errors import SpecError
from ..gc_tuning import relaxed_gc
from ..hardware.catalog import load_chip
from ..model.arch import ModelArch
from ..model.zoo import load_model
from ..perf.calibration import load_calibration
from ..perf.deployment import MAX_CHIPS, Deployment, Parallelism
from ..perf.estimate import check_context
from ..perf.memory import memory_plan
from ..perf.uncertainty import Perturbation, draws, interval80
from .engine import Engine
from .profiles import DEFAULT_ENGINE, EngineLimits, EngineProfile, engine_deployment, engine_model, resolve_engine
from .scheduler import SchedulerConfig
from .sim import Simulation, SimResult, Slo, parse_pools, write_chrome_trace
from .tuning import best_limits, mean_lengths, runtime_max_seqs, trtllm_bench_limits
from .workload import WorkloadSpec


def seconds(v, what: str) -> float | None:
    """An SLO: a duration with its unit ('2s', '100ms'); a bare number is refused."""
    if v is None:
        return None
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        s = float(v)              # the API takes SI seconds as numbers
    else:
        text = str(v).strip()
        try:
            float(text)
        except ValueError:
            s = units.parse(v, "s", what=what)
        else:
            raise SpecError(f"{what} {v!r} has no unit: write e.g. {text}s or {text}ms")
    if not s > 0 or s == float("inf"):
        raise SpecError(f"{what} {v!r} must be a positive duration")
    return s


def scheduler_config(profile: EngineProfile, o: EngineLimits, policy: str) -> SchedulerConfig:
    """The scheduler's knobs from a profile and the user's overrides."""
    return SchedulerConfig(policy=policy, admission=profile.admission,
                           max_num_seqs=o.max_num_seqs or profile.max_num_seqs,
                           block_size=o.block_size or profile.block_size,
                           prefix_caching=profile.prefix_caching if o.prefix_caching is None else o.prefix_caching,
                           mixed_batches=profile.mixed_batches, new_token_ratio=profile.new_token_ratio).validate()


def bench_overrides(profile: EngineProfile, o: EngineLimits, arch: ModelArch, spec, tp: int, pp: int, weight_format: str,
                    kv_format: str, workload: WorkloadSpec) -> EngineLimits:
    """Offline runs of an engine whose benchmark derives its batch limits from the
    dataset (trtllm-bench): those limits, unless the user gave them."""
    if profile.offline_limits != "trtllm-bench" or (o.max_num_seqs and o.max_batched_tokens):
        return o
    isl, osl = mean_lengths(workload)
    seqs, tokens = trtllm_bench_limits(arch, spec.hbm_capacity_bytes, tp, pp, weight_format, kv_format, isl, osl)
    return o.model_copy(update={"max_num_seqs": o.max_num_seqs or seqs,
                                "max_batched_tokens": o.max_batched_tokens or tokens})


def build_engines(arch: ModelArch, *, chip, num_chips, tp, pp, ep, weight_format, act_format, kv_format, calibration,
                  engine, overrides: EngineLimits, scheduler, replicas, disaggregate, workload: WorkloadSpec,
                  perturbation=None) -> list[Engine]:
    """The engines of a run: ``replicas`` copies of one deployment, or a prefill pool and a
    decode pool (``disaggregate``)."""
    Parallelism.checked(num_chips=num_chips, tp=tp, pp=pp, ep=ep)
    if not isinstance(replicas, int) or isinstance(replicas, bool) or not 0 < replicas <= MAX_CHIPS // num_chips:
        raise SpecError(f"--replicas {replicas!r} must be a whole number in 1..{MAX_CHIPS // num_chips:,} (at most "
                        f"{MAX_CHIPS:,} chips in all)")
    if disaggregate is not None and not str(disaggregate).strip():
        raise SpecError("--disaggregate '' is empty: give the pools (prefill=NxCHIP,decode=NxCHIP) or leave it out")

    def one(c, n, tp_, pp_, ep_) -> tuple[ModelArch, Deployment, SchedulerConfig]:
        spec = load_chip(c)
        probe_tp = tp_ if tp_ is not None else max(1, n // pp_)
        profile = resolve_engine(engine, spec, probe_tp, workload.offline, pp_)
        m = engine_model(profile, arch)
        o = bench_overrides(profile, overrides, m, spec, probe_tp, pp_, weight_format, kv_format, workload) \
            if workload.offline else overrides
        d = engine_deployment(profile, spec, num_chips=n, tp=tp_, pp=pp_, ep=ep_, weight_format=weight_format,
                              act_format=act_format, kv_format=kv_format, calibration=calibration,
                              max_batched_tokens=o.max_batched_tokens, memory_fraction=o.kv_memory_fraction,
                              perturbation=perturbation)
        d.check_model(m)
        cfg = scheduler_config(profile, o, scheduler)
        rule, ctx, tuning = profile.max_num_seqs_from_kv, m.max_position_embeddings, profile.batch_size_tuning
        kv_tokens = memory_plan(m, d).max_kv_tokens if (rule and ctx) or tuning else 0    # per replica
        if rule is not None and o.max_num_seqs is None and ctx:       # the engine sizes its request pool
            cfg = replace(cfg, max_num_seqs=rule.seqs(kv_tokens, ctx) * d.dp)
        if tuning is not None:                                        # resolved for offline use only
            tuned = runtime_max_seqs(tuning, cfg.max_num_seqs, kv_tokens, cfg.block_size, *mean_lengths(workload))
            cfg = replace(cfg, max_num_seqs=tuned["runtime_max_num_seqs"], batch_tuning=tuned)
        return m, d, cfg

    if disaggregate:
        pools = parse_pools(disaggregate)
        out = []
        for i, role in enumerate(("prefill", "decode")):
            n, c = pools[role]
            use_ep = ep > 1 and arch.is_moe
            m, d, cfg = one(c, n, None if not use_ep else 1, 1, n if use_ep else 1)
            out.append(Engine(i, m, d, cfg, role))
        return out
    m, d, cfg = one(chip, num_chips, tp, pp, ep)
    return [Engine(i, m, d, cfg) for i in range(replicas)]


def simulate(*, chip: str = "h200-sxm", model: str | ModelArch = "llama-3.1-8b", num_chips: int = 1,
             tp: int | None = None, pp: int = 1, ep: int = 1, weight_format: str = "bf16",
             act_format: str | None = None, kv_format: str = "bf16", calibration: str | None = None,
             engine: str = DEFAULT_ENGINE, trace: str | None = None, workload: str | None = None,
             input_len: int | None = None, output_len: int | None = None, range_ratio: float = 1.0,
             qps: float | None = None, num_requests: int | None = None, offline: bool = False,
             max_concurrency: int | None = None, arrival: str = "poisson", burstiness: float = 1.0, seed: int = 0,
             scheduler: str = "chunked-prefill", max_num_seqs: int | None = None,
             max_batched_tokens: int | None = None, block_size: int | None = None,
             kv_memory_fraction: float | None = None, prefix_caching: bool | None = None,
             replicas: int = 1, router: str = "least-work", disaggregate: str | None = None,
             slo_ttft_p99: str | float | None = None, slo_tpot_p99: str | float | None = None,
             trace_out: str | None = None, max_throughput: bool = False, interval: bool = True,
             perturbation: Perturbation | None = None, progress=None) -> SimResult:
    """Simulate serving a request stream; see `seedchip simulate --help`. ``max_throughput``
    (offline only): search the engine's batch limits for the most output tokens/s and
    report the run with the best ones (and the search, under ``tuned``). ``interval``: add
    80% intervals on throughput, mean TTFT and mean TPOT from perturbed runs.
    ``perturbation``: run with one draw of the model's error (how intervals are made).
    ``progress``: called as ``progress(done, total, label)`` while the run goes (a progress bar)."""
    kw = {k: v for k, v in locals().items() if k not in ("max_throughput", "interval", "perturbation", "progress")}
    with relaxed_gc():
        res = (_max_throughput(kw) if max_throughput
               else _simulate(**kw, perturbation=perturbation, progress=progress))
        if interval and perturbation is None:
            res = res.with_(interval80=_interval(kw, res))
    return res


INTERVAL_REQUESTS = 1000   # the perturbed runs replay at most this many requests


def _interval(kw: dict, res: SimResult) -> dict:
    """80% intervals: the perturbed runs (shorter: the spread, not the level, is what they
    give) relative to an unperturbed run of the same length, applied to this run."""
    d = res.to_dict()
    n = min(d["num_requests"], INTERVAL_REQUESTS)
    small = dict(kw, num_requests=n, trace_out=None, max_num_seqs=d["inputs"]["max_num_seqs"],
                 max_batched_tokens=d["inputs"]["max_batched_tokens"])
    base = d if n == d["num_requests"] else _simulate(**small).to_dict()
    cal = load_calibration(kw["calibration"])
    runs = [_simulate(**small, perturbation=p).to_dict() for p in draws(cal, d["engine"]["step_sigma"])]
    out = {}
    for key, path in (("throughput_tokens_per_s", "throughput_tokens_per_s"), ("ttft_mean_s", "ttft_s.mean"),
                      ("tpot_mean_s", "tpot_s.mean")):
        nominal, b = _get(d, path), _get(base, path)
        out[key] = interval80(nominal, [nominal * _get(r, path) / b for r in runs if b and _get(r, path)])
    out["draws"], out["num_requests"] = len(runs), n
    return out


def _get(d: dict, path: str):
    for k in path.split("."):
        d = d.get(k) if isinstance(d, dict) else None
    return d


def _max_throughput(kw: dict) -> SimResult:
    if not kw["offline"]:
        raise SpecError("--max-throughput tunes an offline run: add --offline (every request at t = 0)")
    for k in ("max_num_seqs", "max_batched_tokens"):
        if kw[k] is not None:
            raise SpecError(f"--max-throughput searches --{k.replace('_', '-')} itself: drop it")
    first = _simulate(**kw)
    d = first.to_dict()
    tuner = d["inputs"].get("batch_size_tuning")        # the engine's own limit, which a runtime tuner may cap
    start = (tuner["engine_max_num_seqs"] if tuner else d["inputs"]["max_num_seqs"], d["inputs"]["max_batched_tokens"])
    isl, osl = mean_lengths(WorkloadSpec(**{k: kw[k] for k in WORKLOAD_KEYS}))
    most = max(e["kv_tokens"] for e in d["engines"]) // max(1, round(isl + osl))
    runs = {start: first}

    def run(seqs: int, tokens: int) -> dict:
        if (seqs, tokens) not in runs:
            runs[(seqs, tokens)] = _simulate(**dict(kw, max_num_seqs=seqs, max_batched_tokens=tokens))
        return runs[(seqs, tokens)].to_dict()

    best, search = best_limits(run, start, most)
    chosen = runs[(search["max_num_seqs"], search["max_batched_tokens"])]
    return chosen.with_(tuned=search)


WORKLOAD_KEYS = ("trace", "workload", "input_len", "output_len", "range_ratio", "qps", "num_requests", "offline",
                 "max_concurrency", "arrival", "burstiness", "seed")


def _simulate(*, chip, model, num_chips, tp, pp, ep, weight_format, act_format, kv_format, calibration, engine, trace,
              workload, input_len, output_len, range_ratio, qps, num_requests, offline, max_concurrency, arrival,
              burstiness, seed, scheduler, max_num_seqs, max_batched_tokens, block_size, kv_memory_fraction,
              prefix_caching, replicas, router, disaggregate, slo_ttft_p99, slo_tpot_p99, trace_out,
              perturbation=None, progress=None) -> SimResult:
    spec = WorkloadSpec(trace=trace, workload=workload, input_len=input_len, output_len=output_len,
                        range_ratio=range_ratio, qps=qps, num_requests=num_requests, offline=offline,
                        max_concurrency=max_concurrency, arrival=arrival, burstiness=burstiness, seed=seed).validate()
    if trace_out is not None:
        from ..outputs import probe
        probe(trace_out, "--trace-out")     # before the run: an unwritable place loses nothing
    if disaggregate and (tp is not None or pp != 1):
        raise SpecError("--disaggregate lays each pool out itself (tensor parallel over the pool's chips, or expert "
                        "parallel with --ep): drop --tp/--pp")
    if disaggregate and replicas != 1:
        raise SpecError("--replicas applies to one pool of identical engines; with --disaggregate size the pools "
                        "in it (prefill=NxCHIP,decode=NxCHIP) and drop --replicas")
    overrides = EngineLimits.checked(max_num_seqs=max_num_seqs, max_batched_tokens=max_batched_tokens,
                                     block_size=block_size, kv_memory_fraction=kv_memory_fraction,
                                     prefix_caching=prefix_caching)
    slo = Slo(seconds(slo_ttft_p99, "--slo-ttft-p99"), seconds(slo_tpot_p99, "--slo-tpot-p99"))
    arch = model if isinstance(model, ModelArch) else load_model(model)
    if spec.input_len is not None:
        check_context(arch, spec.input_len + spec.output_len)
    engines = build_engines(arch, chip=chip, num_chips=num_chips, tp=tp, pp=pp, ep=ep, weight_format=weight_format,
                            act_format=act_format, kv_format=kv_format, calibration=calibration, engine=engine,
                            overrides=overrides, scheduler=scheduler, replicas=replicas, disaggregate=disaggregate,
                            workload=spec, perturbation=perturbation)
    sim = Simulation(arch, engines, spec, router=router, slo=slo, trace_out=trace_out is not None,
                     disaggregated=bool(disaggregate), progress=progress)
    res = sim.run()
    e0 = engines[0]
    profile = resolve_engine(engine, e0.dep.chip, e0.dep.tp, offline, e0.dep.pp).summary()
    inputs = {
        "model": arch.id, "chip": chip if not disaggregate else None,
        "num_chips": sum(e.dep.num_chips for e in engines), "replicas": replicas if not disaggregate else None,
        "disaggregate": disaggregate, "router": router, "engine": profile["id"],
        "scheduler": scheduler, "admission": e0.cfg.admission, "max_num_seqs": e0.cfg.max_num_seqs,
        **({"batch_size_tuning": e0.cfg.batch_tuning} if e0.cfg.batch_tuning else {}),
        "max_batched_tokens": e0.dep.max_batched_tokens, "block_size": e0.cfg.block_size,
        "kv_memory_fraction": e0.dep.memory_fraction, "memory_basis": e0.dep.memory_basis,
        "prefix_caching": e0.cfg.prefix_caching, "weight_format": weight_format, "kv_format": kv_format,
        "calibration": e0.dep.calibration.id, "trace": trace, "workload": workload, "input_len": input_len,
        "output_len": output_len, "range_ratio": range_ratio, "qps": qps, "num_requests": num_requests,
        "offline": offline, "max_concurrency": max_concurrency, "arrival": arrival, "burstiness": burstiness,
        "seed": seed}
    if trace_out and res.chrome_trace is not None:
        write_chrome_trace(res.chrome_trace, trace_out)
    notes = list(dict.fromkeys(n for e in engines for n in e.dep.notes))
    if res.metrics["num_rejected"]:
        ctx = arch.max_position_embeddings
        limit = f"the KV cache or {arch.id}'s context window ({ctx:,} tokens)" if ctx else "the KV cache"
        notes.append(f"{res.metrics['num_rejected']} requests were refused, as an engine would: their prompt and "
                     f"output exceed {limit}; they count in num_rejected, not in the latencies")
    return res.with_(engine=profile, inputs=inputs, notes=tuple(notes))
