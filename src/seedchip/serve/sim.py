"""The discrete-event serving simulator: a stream of requests, one or more engines
(replicas, or a prefill pool and a decode pool), a router, and a small deterministic
event kernel. Heap key: (time, priority, per-run counter) — ties break the same way
every run; arrivals come before step ends at the same instant."""

from __future__ import annotations

import heapq
import json
import math
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from ..errors import SpecError, UnknownNameError
from ..model.arch import ModelArch
from ..perf import ops
from ..perf.memory import kv_bytes_per_token_total
from ..perf.pricer import idle_energy_j
from .engine import Engine
from .metrics import CDF_POINTS, Collector, cdf, steady, summary
from .workload import Request, WorkloadSpec, requests

ARRIVAL, TRANSFER, STEP_END = 0, 1, 2
ROUTERS = ("round-robin", "least-work", "prefix-aware")
MAX_TRACE_EVENTS = 200_000


@dataclass(frozen=True)
class Slo:
    ttft_p99_s: float | None = None
    tpot_p99_s: float | None = None

    def met_by(self, ttft: np.ndarray, tpot: np.ndarray) -> np.ndarray:
        ok = np.ones(len(ttft), dtype=bool)
        if self.ttft_p99_s is not None:
            ok &= ttft <= self.ttft_p99_s
        if self.tpot_p99_s is not None:
            ok &= np.nan_to_num(tpot, nan=0.0) <= self.tpot_p99_s
        return ok

    def satisfied(self, d: dict) -> bool:
        return ((self.ttft_p99_s is None or (d["ttft_s"]["p99"] is not None and d["ttft_s"]["p99"] <= self.ttft_p99_s))
                and (self.tpot_p99_s is None or d["tpot_s"]["p99"] is None or d["tpot_s"]["p99"] <= self.tpot_p99_s))

    def any(self) -> bool:
        return self.ttft_p99_s is not None or self.tpot_p99_s is not None


@dataclass(frozen=True)
class SimResult:
    """A run's figures (``metrics``, as the simulation measured them) and what the serving
    layer adds: the engine profile, the inputs, the 80% intervals, the tuned limits. Frozen:
    the additions are new results (``with_``), and ``to_dict`` is the JSON contract (the
    same inputs and seed give the same JSON: the wall time is kept out of it)."""
    metrics: dict
    chrome_trace: dict | None = field(default=None, repr=False)
    wall_s: float = field(default=0.0, compare=False)   # how long the simulation took: not in the JSON
    engine: dict | None = None
    inputs: dict | None = None
    tuned: dict | None = None
    interval80: dict | None = None
    notes: tuple[str, ...] = ()          # accepted, but worth knowing (refused requests, weight-only storage)

    def with_(self, **parts) -> "SimResult":
        return replace(self, **parts)

    def to_dict(self) -> dict:
        out = dict(self.metrics)
        for k in ("engine", "inputs", "tuned", "interval80"):
            v = getattr(self, k)
            if v is not None:
                out[k] = v
        out["notes"] = list(self.notes)
        return out

    def __getitem__(self, key):
        return self.to_dict()[key]


class Simulation:
    def __init__(self, model: ModelArch, engines: list[Engine], workload: WorkloadSpec, router: str = "least-work",
                 slo: Slo = Slo(), trace_out: bool = False, disaggregated: bool = False, stream=None, progress=None):
        """``stream``: the requests, in arrival order (default: those ``workload`` generates);
        ``progress(done, total, label)``: told the completed requests now and then (a progress bar)."""
        if router not in ROUTERS:
            raise UnknownNameError("router", router, ROUTERS)
        self.model, self.engines, self.workload, self.router = model, engines, workload.validate(), router
        self.slo, self.disagg = slo, disaggregated
        self.heap: list = []
        self.counter = 0
        self.version = [0] * len(engines)
        self.transfers: list[float] = []
        self.seen: dict[int, tuple[int, float]] = {}     # per engine: output tokens and step energy in the series
        self.progress = progress
        self.collector = Collector()
        self.rr = 0
        self.trace: list | None = [] if trace_out else None
        self.transfer_energy_j = 0.0
        self.transfer_s: list[float] = []
        self.num_requests = 0
        self.now = 0.0
        self.gate = self.workload.max_concurrency     # closed loop: requests in flight at most
        self.in_flight = 0
        self.arrival_pending = False
        self.next_arrival: Request | None = None
        self.stream = iter(stream) if stream is not None else None

    # -- event kernel -------------------------------------------------------------------
    def push(self, t: float, kind: int, payload) -> None:
        self.counter += 1
        heapq.heappush(self.heap, (t, kind, self.counter, payload))

    def horizon(self) -> float:
        h = self.next_arrival.arrival_s if self.next_arrival is not None and not self._gated() else math.inf
        if self.transfers:
            h = min(h, self.transfers[0])
        return h

    def start(self, e: Engine, now: float) -> None:
        if not e.idle() or not e.has_work():
            return
        end = e.start(now, self.horizon())
        self._drain_finished(e, now)     # requests refused while scheduling
        if end is not None:
            self.version[e.index] += 1
            self.push(end, STEP_END, (e.index, self.version[e.index]))

    def route(self, r: Request) -> Engine:
        cands = [e for e in self.engines if e.role != "decode"]
        if len(cands) == 1:
            return cands[0]
        if self.router == "round-robin":
            e = cands[self.rr % len(cands)]
            self.rr += 1
            return e
        if self.router == "prefix-aware" and r.hash_ids:
            def match(e: Engine) -> int:
                n = 0
                for h in r.hash_ids:
                    if h not in e.kv.cache:
                        break
                    n += 1
                return n
            return max(cands, key=lambda e: (match(e), -e.outstanding_tokens(), -e.index))
        return min(cands, key=lambda e: (e.outstanding_tokens(), e.index))

    # -- arrivals (open loop, or closed loop through the gate) ----------------------------
    def _gated(self) -> bool:
        return self.gate is not None and self.in_flight >= self.gate

    def _schedule_arrival(self, now: float) -> None:
        """Put the next request's arrival on the heap, unless the gate is closed (then a
        completion reopens it)."""
        if self.next_arrival is None or self.arrival_pending or self._gated():
            return
        self.arrival_pending = True
        self.push(max(self.next_arrival.arrival_s, now), ARRIVAL, None)

    def _arrive(self, t: float) -> None:
        r = self.next_arrival
        self.arrival_pending = False
        self.num_requests += 1
        self.next_arrival = next(self.stream, None)
        if self.gate is not None:
            r.arrival_s = t          # a client's clock starts when its request is sent
        self.in_flight += 1
        e = self.route(r)
        e.add(r)
        self._schedule_arrival(t)
        self.start(e, t)

    def _drain_finished(self, e: Engine, t: float) -> None:
        for r in e.finished:
            self.collector.request_done(r)
            self.in_flight -= 1
        if e.finished:
            e.finished.clear()
            self._schedule_arrival(t)

    def run(self) -> SimResult:
        wall0 = time.perf_counter()
        if self.stream is None:
            self.stream = requests(self.workload)
        self.next_arrival = next(self.stream, None)
        self._schedule_arrival(0.0)
        decode_pool = [e for e in self.engines if e.role == "decode"]
        total, events = self.workload.num_requests or 0, 0
        while self.heap:
            t, kind, _, payload = heapq.heappop(self.heap)
            self.now = t
            events += 1
            if self.progress is not None and events % 1024 == 0:
                self.progress(len(self.collector.id), total, f"{t:,.0f} s simulated")
            if kind == ARRIVAL:
                self._arrive(t)
            elif kind == TRANSFER:
                r, src = payload
                heapq.heappop(self.transfers)
                src_engine = self.engines[src]
                src_engine.kv.release(r)
                dst = min(decode_pool, key=lambda e: (e.outstanding_tokens(), e.index))
                dst.add(r)
                self.start(dst, t)
                self.start(src_engine, t)      # blocks came back
            else:
                idx, ver = payload
                if ver != self.version[idx]:
                    continue
                e = self.engines[idx]
                self._record_step(e)
                pre = e.stats.preemptions - e.preemptions_seen
                e.preemptions_seen = e.stats.preemptions
                tok0, en0 = self.seen.get(idx, (0, 0.0))
                e.finish(t)
                self._drain_finished(e, t)
                for r in e.handed_off:
                    self._transfer(e, r, t)
                e.handed_off.clear()
                self.collector.series.add(t, e.kv.used_fraction(), len(e.running), len(e.waiting), pre,
                                          e.stats.tokens_out - tok0, e.stats.energy_j - en0)
                self.seen[idx] = (e.stats.tokens_out, e.stats.energy_j)
                self.start(e, t)
        wall = time.perf_counter() - wall0
        return self._result(wall)

    def _transfer(self, src: Engine, r: Request, now: float) -> None:
        dst = next(e for e in self.engines if e.role == "decode")
        size = r.input_len * kv_bytes_per_token_total(self.model, dst.dep.kv_format)
        c = ops.kv_transfer(src.dep.chip, src.dep.num_chips, dst.dep.chip, dst.dep.num_chips, src.dep.calibration,
                            size)
        self.transfer_energy_j += c.energy_j - idle_energy_j(src.dep.chip, 1, c.time_s)   # idle is counted below
        self.transfer_s.append(c.time_s)
        done = now + c.time_s
        heapq.heappush(self.transfers, done)
        self.push(done, TRANSFER, (r, src.index))
        for d in self.engines:      # decode engines must see the request at the first step boundary after it lands
            if d.role == "decode":
                new_end = d.truncate(done)
                if new_end is not None:
                    self.version[d.index] += 1
                    self.push(new_end, STEP_END, (d.index, self.version[d.index]))

    def _record_step(self, e: Engine) -> None:
        s = e.current
        if self.trace is not None and len(self.trace) < MAX_TRACE_EVENTS:
            pre = sum(n for _, n in s.work if n > 1)
            self.trace.append({"name": "decode" if pre == 0 else ("prefill" if pre == s.num_tokens else "mixed"),
                               "ph": "X", "pid": e.index, "tid": 0, "ts": round(s.start_s * 1e6, 3),
                               "dur": round((s.end_s - s.start_s) * 1e6, 3),
                               "args": {"steps": s.k, "seqs": s.members + len(s.work), "tokens": s.num_tokens,
                                        "prefill_tokens": pre}})

    def _mode(self) -> str:
        w = self.workload
        if w.max_concurrency is not None:
            return "closed"
        return "offline" if w.offline else "open"

    # -- results --------------------------------------------------------------------------
    def _result(self, wall: float) -> SimResult:
        a = self.collector.arrays()
        n_done = len(a["finish"])
        out = a["output_len"].astype(float)
        ttft = a["first_token"] - a["arrival"]
        e2e = a["finish"] - a["arrival"]
        queue = a["first_scheduled"] - a["arrival"]
        with np.errstate(invalid="ignore", divide="ignore"):
            tpot = np.where(out > 1, (a["finish"] - a["first_token"]) / np.maximum(out - 1, 1), np.nan)
        makespan = float(a["finish"].max()) if n_done else 0.0
        out_tokens = float(out.sum())
        in_tokens = float(a["input_len"].sum())
        energy = self.transfer_energy_j
        flops = hbm = 0.0
        peak_flops = peak_bw = 0.0
        engines = []
        for e in self.engines:
            st = e.stats
            idle = max(0.0, makespan - st.busy_s)
            energy += st.energy_j + idle_energy_j(e.dep.chip, e.dep.num_chips, idle)
            flops += st.flops
            hbm += st.hbm_bytes
            pk, _ = e.dep.chip.peak_flops(_matrix_class(e.dep.act))
            peak_flops += pk * e.dep.num_chips
            peak_bw += e.dep.chip.hbm_bw_bytes_per_s * e.dep.num_chips
            engines.append({"index": e.index, "role": e.role, "chip": e.dep.chip.id, "num_chips": e.dep.num_chips,
                            "tp": e.dep.tp, "pp": e.dep.pp, "ep": e.dep.ep, "dp": e.dep.dp,
                            "busy_fraction": st.busy_s / makespan if makespan else 0.0, "steps": st.steps,
                            "macro_steps": st.macro_steps, "preemptions": st.preemptions, "tokens_out": st.tokens_out,
                            "kv_blocks": e.kv.total, "kv_tokens": e.kv.total * e.kv.block_size})
        for e in self.engines:
            self.collector.itl.merge(e.stats.itl)
        tpot_valid = tpot[~np.isnan(tpot)]
        data = {
            "num_requests": self.num_requests,
            "num_completed": n_done,
            "num_rejected": self.collector.rejected,
            "makespan_s": makespan,
            "throughput_tokens_per_s": out_tokens / makespan if makespan else 0.0,
            "input_tokens_per_s": in_tokens / makespan if makespan else 0.0,
            "requests_per_s": n_done / makespan if makespan else 0.0,
            "ttft_s": summary(ttft), "tpot_s": summary(tpot_valid), "itl_s": self.collector.itl.summary(),
            "e2e_s": summary(e2e), "queue_s": summary(queue),
            "num_preemptions": int(a["preemptions"].sum()),
            "prefix_hit_rate": float(a["prefix_hit"].sum() / in_tokens) if in_tokens else 0.0,
            "energy_j": energy,
            "energy_j_per_token": energy / out_tokens if out_tokens else None,
            "compute_utilization": flops / (peak_flops * makespan) if makespan else 0.0,
            "bandwidth_utilization": hbm / (peak_bw * makespan) if makespan else 0.0,
            "kv_transfer_s": summary(np.array(self.transfer_s)) if self.disagg else None,
            "steady": steady(a, self._mode(), {"ttft_p99": self.slo.ttft_p99_s, "tpot_p99": self.slo.tpot_p99_s}),
            "engines": engines,
            "series": self.collector.series.to_dict(),
            "cdf": {"quantiles": CDF_POINTS, "ttft_s": cdf(ttft), "tpot_s": cdf(tpot_valid), "e2e_s": cdf(e2e)},
        }
        if self.slo.any():
            ok = self.slo.met_by(ttft, tpot)
            data["slo"] = {"ttft_p99_s": self.slo.ttft_p99_s, "tpot_p99_s": self.slo.tpot_p99_s,
                           "met": self.slo.satisfied(data), "good_fraction": float(ok.mean()) if n_done else 0.0,
                           "goodput_requests_per_s": float(ok.sum()) / makespan if makespan else 0.0}
        trace = None
        if self.trace is not None:
            trace = {"traceEvents": self.trace, "displayTimeUnit": "ms"}
        return SimResult(data, trace, wall_s=wall)


def _matrix_class(fmt: str) -> str:
    from ..formats import get_format
    return get_format(fmt).matrix_class


def parse_pools(text: str) -> dict[str, tuple[int, str]]:
    """'prefill=4xh200-sxm,decode=4xseedchip-ref' -> {'prefill': (4, 'h200-sxm'), ...}."""
    pools = {}
    for part in text.split(","):
        role, _, spec = part.strip().partition("=")
        n, _, chip = spec.partition("x")
        if role not in ("prefill", "decode") or not n.isdigit() or not chip or int(n) <= 0:
            raise SpecError(f"--disaggregate {text!r}: write prefill=NxCHIP,decode=NxCHIP (e.g. "
                            "prefill=4xh200-sxm,decode=4xseedchip-ref)")
        pools[role] = (int(n), chip)
    if set(pools) != {"prefill", "decode"}:
        raise SpecError(f"--disaggregate {text!r} needs both a prefill and a decode pool")
    return pools


def write_chrome_trace(trace: dict, path: str | Path) -> None:
    from ..outputs import write_text
    write_text(path, json.dumps(trace), "--trace-out")
