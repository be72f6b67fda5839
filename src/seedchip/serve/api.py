"""simulate() and capacity(): the serving layer's public functions (mirrored by the
`seedchip simulate` and `seedchip capacity` commands)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from .. import units
from ..errors import SpecError
from ..model.arch import ModelArch
from ..model.zoo import load_model
from ..perf.deployment import make_deployment
from .engine import Engine, SchedulerConfig
from .sim import Simulation, SimResult, Slo, parse_pools, write_chrome_trace
from .workload import WorkloadSpec


KEEP_UP = 0.8     # completions per second must reach 80% of the offered rate


def _seconds(v, what: str) -> float | None:
    if v is None:
        return None
    s = units.parse(v, "s", what=what)
    if s <= 0:
        raise SpecError(f"{what} {v!r} must be positive")
    return s


def _build(*, chip, model, num_chips, tp, pp, ep, weight_format, act_format, kv_format, calibration, scheduler,
           max_num_seqs, max_batched_tokens, block_size, kv_memory_fraction, prefix_caching, replicas, disaggregate):
    arch = model if isinstance(model, ModelArch) else load_model(model)
    cfg = SchedulerConfig(scheduler, max_num_seqs, max_batched_tokens, block_size, kv_memory_fraction,
                          prefix_caching).validate()
    if not isinstance(replicas, int) or replicas <= 0:
        raise SpecError(f"--replicas {replicas!r} must be a positive integer")

    def dep(c, n, tp_, pp_, ep_):
        d = make_deployment(c, num_chips=n, tp=tp_, pp=pp_, ep=ep_, weight_format=weight_format,
                            act_format=act_format, kv_format=kv_format, calibration=calibration,
                            memory_fraction=kv_memory_fraction, max_batched_tokens=max_batched_tokens)
        d.check_model(arch)
        return d

    if disaggregate:
        pools = parse_pools(disaggregate)
        engines = []
        for i, role in enumerate(("prefill", "decode")):
            n, c = pools[role]
            use_ep = ep > 1 and arch.is_moe
            engines.append(Engine(i, arch, dep(c, n, None if not use_ep else 1, 1, n if use_ep else 1), cfg, role))
        return arch, engines
    d = dep(chip, num_chips, tp, pp, ep)
    return arch, [Engine(i, arch, d, cfg) for i in range(replicas)]


def simulate(*, chip: str = "h200-sxm", model: str | ModelArch = "llama-3.1-8b", num_chips: int = 1,
             tp: int | None = None, pp: int = 1, ep: int = 1, weight_format: str = "bf16",
             act_format: str | None = None, kv_format: str = "bf16", calibration: str | None = None,
             trace: str | None = None, workload: str | None = None, input_len: int | None = None,
             output_len: int | None = None, qps: float | None = None, num_requests: int | None = None,
             offline: bool = False, arrival: str = "poisson", burstiness: float = 1.0, seed: int = 0,
             scheduler: str = "chunked-prefill", max_num_seqs: int = 256, max_batched_tokens: int = 8192,
             block_size: int = 16, kv_memory_fraction: float = 0.9, prefix_caching: bool = False,
             replicas: int = 1, router: str = "least-work", disaggregate: str | None = None,
             slo_ttft_p99: str | float | None = None, slo_tpot_p99: str | float | None = None,
             trace_out: str | None = None) -> SimResult:
    """Simulate serving a request stream; see `seedchip simulate --help`."""
    spec = WorkloadSpec(trace=trace, workload=workload, input_len=input_len, output_len=output_len, qps=qps,
                        num_requests=num_requests, offline=offline, arrival=arrival, burstiness=burstiness,
                        seed=seed).validate()
    arch, engines = _build(chip=chip, model=model, num_chips=num_chips, tp=tp, pp=pp, ep=ep,
                           weight_format=weight_format, act_format=act_format, kv_format=kv_format,
                           calibration=calibration, scheduler=scheduler, max_num_seqs=max_num_seqs,
                           max_batched_tokens=max_batched_tokens, block_size=block_size,
                           kv_memory_fraction=kv_memory_fraction, prefix_caching=prefix_caching,
                           replicas=replicas, disaggregate=disaggregate)
    slo = Slo(_seconds(slo_ttft_p99, "--slo-ttft-p99"), _seconds(slo_tpot_p99, "--slo-tpot-p99"))
    sim = Simulation(arch, engines, spec, router=router, slo=slo, trace_out=trace_out is not None,
                     disaggregated=bool(disaggregate))
    res = sim.run()
    res.data["inputs"] = {
        "model": arch.id, "chip": chip if not disaggregate else None, "num_chips": sum(e.dep.num_chips for e in engines),
        "replicas": replicas if not disaggregate else None, "disaggregate": disaggregate, "router": router,
        "scheduler": scheduler, "max_num_seqs": max_num_seqs, "max_batched_tokens": max_batched_tokens,
        "block_size": block_size, "kv_memory_fraction": kv_memory_fraction, "prefix_caching": prefix_caching,
        "weight_format": weight_format, "kv_format": kv_format, "calibration": engines[0].dep.calibration.id,
        "trace": trace, "workload": workload, "input_len": input_len, "output_len": output_len, "qps": qps,
        "num_requests": num_requests, "offline": offline, "arrival": arrival, "burstiness": burstiness,
        "seed": seed}
    if trace_out and res.chrome_trace is not None:
        write_chrome_trace(res.chrome_trace, trace_out)
    return res


@dataclass(frozen=True)
class CapacityResult:
    max_qps: float
    metrics: dict
    search: list
    inputs: dict

    def to_dict(self) -> dict:
        n = self.inputs["num_chips"]
        price = self.inputs.get("price_per_chip_hour")
        return {"max_qps": self.max_qps, "max_qps_per_chip": self.max_qps / n,
                "max_qps_per_dollar_hour": self.max_qps / (n * price) if price else None,
                "throughput_tokens_per_s": self.metrics["throughput_tokens_per_s"],
                "metrics": self.metrics, "search": self.search, "inputs": self.inputs}


def capacity(*, slo_ttft_p99: str | float | None = None, slo_tpot_p99: str | float | None = None,
             num_requests: int | None = 1000, price_per_chip_hour: float | None = None, tolerance: float = 0.02,
             **kw) -> CapacityResult:
    """The highest arrival rate at which the deployment meets the SLO percentiles:
    bisection over the rate, each point a full simulation of the same request stream
    (same seed) rescaled in time. The upper bound is the offline (saturated)
    request rate; a rate counts only when the run completes at least 80% of the
    offered requests per second (it keeps up)."""
    slo = Slo(_seconds(slo_ttft_p99, "--slo-ttft-p99"), _seconds(slo_tpot_p99, "--slo-tpot-p99"))
    if not slo.any():
        raise SpecError("capacity needs at least one SLO: --slo-ttft-p99 and/or --slo-tpot-p99")
    if price_per_chip_hour is not None and not price_per_chip_hour > 0:
        raise SpecError(f"--price-per-chip-hour {price_per_chip_hour!r} must be positive")
    kw.pop("qps", None)
    kw.pop("offline", None)
    kw.pop("trace_out", None)
    if kw.get("trace") is None and kw.get("workload") is None and kw.get("input_len") is None:
        kw["workload"] = "chat"
    base = dict(kw, num_requests=num_requests, slo_ttft_p99=slo.ttft_p99_s, slo_tpot_p99=slo.tpot_p99_s)
    sat = simulate(**base, offline=True).to_dict()
    hi = sat["requests_per_s"] * 1.05
    search = []

    def run(q: float) -> dict:
        d = simulate(**base, qps=q).to_dict()
        # a rate counts only if the run keeps up with it (a short run can meet latency
        # percentiles while its queue is still growing)
        keeps_up = d["requests_per_s"] >= KEEP_UP * q
        ok = slo.satisfied(d) and keeps_up
        d["_ok"] = ok
        search.append({"qps": q, "ttft_p99_s": d["ttft_s"]["p99"], "tpot_p99_s": d["tpot_s"]["p99"],
                       "completed_per_s": d["requests_per_s"], "keeps_up": keeps_up, "met": ok})
        return d

    lo = hi / 64
    low = run(lo)
    if not low["_ok"]:
        raise SpecError(
            f"no rate meets the SLO (ttft p99 <= {slo.ttft_p99_s}, tpot p99 <= {slo.tpot_p99_s}): even at "
            f"{lo:.3g} req/s the best reached is ttft p99 {low['ttft_s']['p99']:.3g} s, tpot p99 "
            f"{(low['tpot_s']['p99'] or 0):.3g} s; relax the SLO or use a faster deployment")
    best, best_d = lo, low
    top = run(hi)
    if top["_ok"]:
        best, best_d = hi, top
    else:
        a, b = lo, hi
        while (b - a) / b > tolerance:
            mid = math.sqrt(a * b) if b / a > 4 else (a + b) / 2
            d = run(mid)
            if d["_ok"]:
                a, best, best_d = mid, mid, d
            else:
                b = mid
    best_d.pop("_ok", None)
    for d in (low, top):
        d.pop("_ok", None)
    inputs = dict(best_d["inputs"], slo_ttft_p99_s=slo.ttft_p99_s, slo_tpot_p99_s=slo.tpot_p99_s,
                  price_per_chip_hour=price_per_chip_hour, saturated_requests_per_s=sat["requests_per_s"])
    return CapacityResult(max_qps=best, metrics=best_d, search=search, inputs=inputs)
