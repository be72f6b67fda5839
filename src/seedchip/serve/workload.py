"""Workloads: request streams from traces (any path) or from built-in synthetic
distributions. Streams are generators, so a million-request run holds only the
requests in flight."""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime
from enum import Enum
from functools import lru_cache
from pathlib import Path

import numpy as np

from ..errors import SpecError, UnknownNameError
from ..yamlio import safe_load

WORKLOADS_FILE = Path(__file__).parent / "workloads.yaml"
MOONCAKE_BLOCK_TOKENS = 512   # tokens per hash_ids block in the Mooncake traces


class RequestStatus(Enum):
    WAITING = "waiting"
    FINISHED = "finished"
    REJECTED = "rejected"        # its prompt and output exceed the engine's KV cache or the context window


@dataclass(slots=True, eq=False)
class Request:
    """A request is token counters: ``known`` = prompt + generated tokens, of which
    ``computed`` have KV in cache. A step computes some of the rest; when all known
    tokens are computed the request emits its next token."""
    id: int
    arrival_s: float
    input_len: int
    output_len: int
    hash_ids: tuple[int, ...] | None = None
    computed: int = 0
    generated: int = 0
    blocks: int = 0                 # KV blocks held privately
    shared_blocks: int = 0          # KV blocks shared through the prefix cache
    cached_hashes: tuple[int, ...] = ()
    prefix_hit_tokens: int = 0
    first_scheduled_s: float = -1.0
    first_token_s: float = -1.0
    finish_s: float = -1.0
    preemptions: int = 0
    engine: int = -1
    status: RequestStatus = RequestStatus.WAITING

    @property
    def known(self) -> int:
        return self.input_len + self.generated


@dataclass(frozen=True)
class TraceRow:
    arrival_s: float
    input_len: int
    output_len: int
    hash_ids: tuple[int, ...] | None = None


def _bad(path: Path, line: int, msg: str) -> SpecError:
    return SpecError(f"{path}:{line}: {msg}")


def _count(path: Path, line: int, name: str, v, minimum: int) -> int:
    try:
        x = float(v)
    except (TypeError, ValueError):
        raise _bad(path, line, f"{name} = {v!r} is not a number") from None
    if not math.isfinite(x) or x < minimum or x != int(x):
        raise _bad(path, line, f"{name} = {v!r} must be a whole number >= {minimum}")
    return int(x)


def _azure_seconds(stamp: str) -> float | None:
    """'2023-11-16 18:15:46.6805900' -> seconds (naive, UTC-free: only differences matter)."""
    head, _, frac = stamp.partition(".")
    try:
        if len(head) == 19 and head[4] == "-" and head[7] == "-" and head[10] == " ":
            day = date(int(head[0:4]), int(head[5:7]), int(head[8:10])).toordinal()
            sec = int(head[11:13]) * 3600 + int(head[14:16]) * 60 + int(head[17:19])
        else:
            d = datetime.strptime(head, "%Y-%m-%d %H:%M:%S")
            day, sec = d.toordinal(), d.hour * 3600 + d.minute * 60 + d.second
        return day * 86400.0 + sec + (float("0." + frac) if frac else 0.0)
    except ValueError:
        return None


def read_trace(path: str | Path) -> list[TraceRow]:
    """Read a trace in one of three formats, told apart by content: the Azure LLM CSV
    (TIMESTAMP, ContextTokens, GeneratedTokens), the Mooncake JSONL (timestamp ms,
    input_length, output_length, hash_ids) or a plain CSV arrival_s,input_len,output_len.
    Arrivals are returned in seconds from the first request, sorted."""
    from ..outputs import read_text
    p = Path(path)
    rows: list[TraceRow] = []
    with io.StringIO(read_text(p, "trace file"), newline="") as f:   # a folder, missing or binary: one line
        first = f.readline()
        f.seek(0)
        if first.lstrip().startswith("{"):
            for i, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    d = json.loads(line)
                    t, n_in, n_out = d["timestamp"], d["input_length"], d["output_length"]
                except (json.JSONDecodeError, KeyError, TypeError) as e:
                    raise _bad(p, i, f"not a Mooncake record with timestamp, input_length, output_length ({e})") from None
                hashes = d.get("hash_ids")
                rows.append(TraceRow(float(t) / 1000.0, _count(p, i, "input_length", n_in, 1),
                                     _count(p, i, "output_length", n_out, 0),
                                     tuple(int(h) for h in hashes) if hashes else None))
        else:
            reader = csv.reader(f)
            header = [h.strip() for h in next(reader, [])]
            if header[:3] == ["TIMESTAMP", "ContextTokens", "GeneratedTokens"]:
                kind = "azure"
            elif header[:3] == ["arrival_s", "input_len", "output_len"]:
                kind = "plain"
            else:
                raise _bad(p, 1, f"unknown trace header {header!r}: expected the Azure LLM CSV "
                                 "(TIMESTAMP,ContextTokens,GeneratedTokens), a plain CSV "
                                 "(arrival_s,input_len,output_len) or Mooncake JSONL")
            for i, rec in enumerate(reader, 2):
                if not rec or not "".join(rec).strip():
                    continue
                if len(rec) < 3:
                    raise _bad(p, i, f"expected 3 fields, got {len(rec)}")
                if kind == "azure":
                    t = _azure_seconds(rec[0].strip())
                    if t is None:
                        raise _bad(p, i, f"TIMESTAMP {rec[0]!r} is not 'YYYY-MM-DD HH:MM:SS.ffffff'")
                else:
                    try:
                        t = float(rec[0])
                    except ValueError:
                        raise _bad(p, i, f"arrival_s {rec[0]!r} is not a number") from None
                    if not math.isfinite(t) or t < 0:
                        raise _bad(p, i, f"arrival_s {rec[0]!r} must be a finite number >= 0")
                rows.append(TraceRow(t, _count(p, i, header[1], rec[1], 1),
                                     _count(p, i, header[2], rec[2], 0)))
    if not rows:
        raise SpecError(f"trace file {str(p)!r} has no requests")
    rows.sort(key=lambda r: r.arrival_s)
    t0 = rows[0].arrival_s
    return [TraceRow(r.arrival_s - t0, r.input_len, max(1, r.output_len), r.hash_ids) for r in rows]


@lru_cache(maxsize=1)
def synthetic_specs() -> dict:
    return safe_load(WORKLOADS_FILE.read_text())


def workload_names() -> list[str]:
    return sorted(synthetic_specs())


MAX_REQUESTS = 1_000_000    # one run simulates at most this many requests (~10 minutes, ~1 GB)


@dataclass(frozen=True)
class WorkloadSpec:
    """What requests a run gets. Exactly one source: ``trace`` (a path), ``workload``
    (a built-in synthetic name) or fixed lengths (``input_len`` and ``output_len``)."""
    trace: str | None = None
    workload: str | None = None
    input_len: int | None = None
    output_len: int | None = None
    range_ratio: float = 1.0          # fixed lengths: each drawn uniformly in [ratio x L, L] (1: exactly L)
    qps: float | None = None          # arrival rate; for traces: rescale to this mean rate
    num_requests: int | None = None   # first N (traces) or how many (synthetic / fixed)
    offline: bool = False             # every request arrives at t = 0
    max_concurrency: int | None = None  # closed loop: at most N requests in flight; the next is sent when one ends
    arrival: str = "poisson"          # poisson | gamma (synthetic and fixed lengths)
    burstiness: float = 1.0           # gamma shape = 1 / cv^2 ... given as cv
    seed: int = 0

    def validate(self) -> "WorkloadSpec":
        sources = [self.trace is not None, self.workload is not None, self.input_len is not None]
        if sum(sources) != 1:
            raise SpecError("give exactly one of --trace PATH, --workload NAME, or --input-len/--output-len")
        if self.input_len is None and self.output_len is not None:
            raise SpecError("--output-len sets fixed lengths with --input-len; the trace or workload has its own: "
                            "drop --output-len")
        if self.input_len is not None and (self.output_len is None or self.input_len <= 0 or self.output_len <= 0):
            raise SpecError(f"fixed lengths need --input-len and --output-len > 0, got {self.input_len}, {self.output_len}")
        if self.workload is not None and self.workload not in synthetic_specs():
            raise UnknownNameError("workload", self.workload, synthetic_specs())
        if self.qps is not None and not (self.qps > 0 and math.isfinite(self.qps)):
            raise SpecError(f"--qps {self.qps!r} must be a positive number")
        if self.num_requests is not None and (isinstance(self.num_requests, bool) or not isinstance(self.num_requests, int)
                                              or not 0 < self.num_requests <= MAX_REQUESTS):
            raise SpecError(f"--num-requests {self.num_requests!r} must be a whole number in 1..{MAX_REQUESTS:,} "
                            "(a run of more takes hours and its memory; steady-state figures converge long before)")
        if self.trace is None and not self.offline and self.qps is None and self.max_concurrency is None:
            raise SpecError("synthetic and fixed-length workloads need --qps, --max-concurrency or --offline")
        if self.max_concurrency is not None:
            if isinstance(self.max_concurrency, bool) or not isinstance(self.max_concurrency, int) \
                    or self.max_concurrency <= 0:
                raise SpecError(f"--max-concurrency {self.max_concurrency!r} must be a positive integer")
            if self.offline:
                raise SpecError("--max-concurrency N sends each request when a slot frees; --offline sends them all "
                                "at once: drop one of the two")
        if self.offline and self.qps is not None:
            raise SpecError("--offline sends every request at t = 0, so --qps has no effect: drop one of the two")
        if not (isinstance(self.range_ratio, (int, float)) and 0 < self.range_ratio <= 1):
            raise SpecError(f"--range-ratio {self.range_ratio!r} must be in (0, 1]: lengths are drawn in "
                            "[ratio x L, L]")
        if self.range_ratio != 1 and self.input_len is None:
            raise SpecError("--range-ratio applies to fixed lengths (--input-len/--output-len); drop it")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise SpecError(f"--seed {self.seed!r} must be a whole number >= 0")
        if self.arrival not in ("poisson", "gamma"):
            raise SpecError(f"arrival {self.arrival!r}: use poisson or gamma")
        if not (isinstance(self.burstiness, (int, float)) and 0 < self.burstiness < math.inf):
            raise SpecError(f"--burstiness {self.burstiness!r} must be a positive finite number (the coefficient of "
                            "variation of the gaps between arrivals)")
        if self.burstiness != 1.0 and self.arrival != "gamma":
            raise SpecError(f"--burstiness shapes gamma arrivals; --arrival {self.arrival} has none: add --arrival "
                            "gamma or drop --burstiness")
        return self

    def with_qps(self, qps: float) -> "WorkloadSpec":
        from dataclasses import replace
        return replace(self, qps=qps, offline=False)


def _gaps(rng: np.random.Generator, spec: WorkloadSpec, n: int) -> np.ndarray:
    if spec.offline or spec.qps is None:     # all at once (offline, or clients sending as fast as slots free)
        return np.zeros(n)
    mean = 1.0 / spec.qps
    if spec.arrival == "poisson":
        return rng.exponential(mean, n)
    shape = 1.0 / spec.burstiness**2
    return rng.gamma(shape, mean / shape, n)


def _lengths(rng: np.random.Generator, d: dict, n: int) -> np.ndarray:
    x = np.exp(rng.normal(d["log_mean"], d["log_sd"], n))
    return np.clip(np.rint(x), 1, d["max"]).astype(np.int64)


def _ranged(rng: np.random.Generator, length: int, ratio: float, n: int) -> np.ndarray:
    """Lengths uniform in [ratio x L, L] (whole tokens, at least 1), as the random
    datasets of vLLM's and SGLang's serving benchmarks draw them; ratio 1 is exactly L."""
    if ratio >= 1:
        return np.full(n, length, dtype=np.int64)
    return rng.integers(max(1, int(length * ratio)), length + 1, n, dtype=np.int64)


def requests(spec: WorkloadSpec, chunk: int = 65536) -> Iterator[Request]:
    """The request stream, in arrival order, generated lazily in chunks."""
    spec.validate()
    if spec.trace is not None:
        rows = read_trace(spec.trace)
        if spec.num_requests is not None:
            rows = rows[: spec.num_requests]
        scale = 1.0
        if spec.qps is not None and len(rows) > 1 and rows[-1].arrival_s > 0:
            native = (len(rows) - 1) / rows[-1].arrival_s
            scale = native / spec.qps
        for i, r in enumerate(rows):
            t = 0.0 if spec.offline else r.arrival_s * scale
            yield Request(i, t, r.input_len, r.output_len, r.hash_ids)
        return
    ss = np.random.SeedSequence(spec.seed)
    # one generator per quantity, so the first N requests are the same whatever the run length
    arr_rng, in_rng, out_rng = (np.random.default_rng(s) for s in ss.spawn(3))
    total = spec.num_requests if spec.num_requests is not None else 1000
    t = 0.0
    made = 0
    syn = synthetic_specs().get(spec.workload) if spec.workload else None
    while made < total:
        n = min(chunk, total - made)
        gaps = _gaps(arr_rng, spec, n)
        if syn:
            ins, outs = _lengths(in_rng, syn["input"], n), _lengths(out_rng, syn["output"], n)
        else:
            ins = _ranged(in_rng, spec.input_len, spec.range_ratio, n)
            outs = _ranged(out_rng, spec.output_len, spec.range_ratio, n)
        for j in range(n):
            if made + j > 0:
                t += float(gaps[j])
            yield Request(made + j, t, int(ins[j]), int(outs[j]))
        made += n
