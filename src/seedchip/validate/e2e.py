"""Validation as a feature: replay a table of measured end-to-end results and compare.

A row names a model, a chip (or the system it sat in), a tensor-parallel size, fixed
prompt / output lengths, formats and a measured figure; it may name the engine, the
number of requests, and a load (``qps`` or ``max_concurrency``; none: offline, every
request at once, as trtllm-bench and vLLM's throughput benchmark run). Each row is
simulated as it was run and every measured figure it has is compared:

===================  =====================================  ==========================
column (any of)      figure                                 simulated as
===================  =====================================  ==========================
out_tok_s            output tokens / s of the whole group   throughput_tokens_per_s
req_s                completed requests / s                 requests_per_s
ttft_mean_ms         mean time to first token               ttft_s.mean
itl_mean_ms          mean inter-token latency               itl_s.mean
tpot_mean_ms         mean time per output token             tpot_s.mean
===================  =====================================  ==========================

Rows without an ``engine`` column are run with ``--engine`` (default: TensorRT-LLM),
rows without ``num_requests`` with the request counts trtllm-bench's published runs
used for that ISL/OSL (NVIDIA/TensorRT-LLM docs/source/performance/perf-overview.md,
2025) or 1,000. Names are matched to the catalog loosely ("LLaMA v3.1 8B" is
llama-3.1-8b, "Azure ND H100 v5 (8x H100 80GB HBM3 SXM)" is h100-sxm); a name that
matches nothing is an error that lists what exists.
"""

from __future__ import annotations

import csv
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import SpecError
from ..hardware.catalog import list_chips
from ..model.zoo import zoo_ids

METRICS = {"out_tok_s": ("throughput_tokens_per_s", 1.0), "req_s": ("requests_per_s", 1.0),
           "ttft_mean_ms": ("ttft_s.mean", 1e-3), "itl_mean_ms": ("itl_s.mean", 1e-3),
           "tpot_mean_ms": ("tpot_s.mean", 1e-3)}
ENGINES = {"tensorrt-llm": "trtllm", "trt-llm": "trtllm", "trtllm": "trtllm", "vllm": "vllm", "sglang": "sglang"}
# trtllm-bench's published runs: requests per (ISL, OSL) (perf-overview.md, "Preparing a Dataset")
BENCH_REQUESTS = {(128, 128): 30000, (128, 2048): 3000, (128, 4096): 1500, (1000, 2000): 1500,
                  (2048, 128): 3000, (2048, 2048): 1500, (5000, 500): 1500, (1000, 1000): 3000,
                  (500, 2000): 3000, (20000, 2000): 1000}
DEFAULT_REQUESTS = 1000


def _tokens(text: str) -> list[str]:
    return [t.removeprefix("v") if re.fullmatch(r"v\d+(\.\d+)*", t) else t
            for t in re.split(r"[^a-z0-9.]+", text.lower()) if t]


def match_model(name: str) -> str:
    """The zoo id a published model name means: same family word, same size, and a
    version the name's version is a prefix of ("Llama 3 405B" is llama-3.1-405b)."""
    toks = _tokens(name.replace("-", " "))
    best = []
    for zid in zoo_ids():
        z = _tokens(zid.replace("-", " "))
        words = [t for t in z if not re.fullmatch(r"[\d.]+", t)]
        nums = [t for t in z if re.fullmatch(r"[\d.]+", t)]
        if not all(any(t == w or t.startswith(w) for t in toks) for w in words):
            continue
        if not all(any(n == t or n.startswith(t + ".") for t in toks) for n in nums):
            continue
        best.append((len(z), zid))
    if not best:
        raise SpecError(f"model {name!r} matches no zoo model: known: {', '.join(zoo_ids())}")
    return max(best)[1]


def match_chip(name: str) -> str:
    """The catalog chip a published chip or system name means (its id's first word)."""
    toks = set(_tokens(name))
    hits = [c.id for c in list_chips() if c.id.split("-")[0] in toks]
    if len(set(hits)) != 1:
        raise SpecError(f"chip {name!r} matches {'no' if not hits else 'several'} catalog chips"
                        f"{': ' + ', '.join(hits) if hits else ''}; known: {', '.join(c.id for c in list_chips())}")
    return hits[0]


@dataclass(frozen=True)
class Case:
    line: int
    model: str
    chip: str
    tp: int
    isl: int
    osl: int
    weight_format: str
    kv_format: str
    engine: str
    num_requests: int
    qps: float | None = None
    max_concurrency: int | None = None
    measured: dict = field(default_factory=dict)     # metric -> value in SI

    def label(self) -> str:
        load = (f" @ {self.qps:g} req/s" if self.qps else "") + (
            f" x{self.max_concurrency} clients" if self.max_concurrency else "")
        return f"{self.model} tp{self.tp} {self.isl}/{self.osl}{load}"


def _num(row: dict, key: str, path: Path, line: int, kind=float):
    v = row.get(key)
    if v is None or str(v).strip() == "":
        return None
    try:
        x = kind(float(v)) if kind is int else kind(v)
    except ValueError:
        raise SpecError(f"{path}:{line}: {key} = {v!r} is not a number") from None
    if not math.isfinite(x) or x <= 0:
        raise SpecError(f"{path}:{line}: {key} = {v!r} must be a positive number")
    return x


def _case(row: dict, path: Path, line: int, engine: str) -> Case:
    name = row.get("model")
    where = row.get("chip") or row.get("system")
    if not name or not where:
        raise SpecError(f"{path}:{line}: a row needs a model and a chip (or system) column")
    tp, isl, osl = (_num(row, k, path, line, int) for k in ("tp", "isl", "osl"))
    if None in (tp, isl, osl):
        raise SpecError(f"{path}:{line}: tp, isl and osl are required")
    fmt = row.get("format")
    wf = (row.get("weight_format") or fmt or "bf16").strip().lower()
    kf = (row.get("kv_format") or fmt or "bf16").strip().lower()
    eng = ENGINES.get((row.get("engine") or engine).strip().lower())
    if eng is None:
        raise SpecError(f"{path}:{line}: engine {row.get('engine')!r}: use TensorRT-LLM, vLLM or SGLang")
    measured = {}
    for col, (_, scale) in METRICS.items():
        v = _num(row, col, path, line)
        if v is not None:
            measured[col] = v * scale
    if not measured:
        raise SpecError(f"{path}:{line}: no measured figure: give one of {', '.join(METRICS)}")
    n = _num(row, "num_requests", path, line, int) or BENCH_REQUESTS.get((isl, osl), DEFAULT_REQUESTS)
    return Case(line, match_model(name), match_chip(where), tp, isl, osl, wf, kf, eng, n,
                _num(row, "qps", path, line), _num(row, "max_concurrency", path, line, int), measured)


def read_cases(path: str | Path, engine: str = "trtllm") -> list[Case]:
    p = Path(path)
    if not p.is_file():
        raise SpecError(f"e2e table {str(p)!r} does not exist (or is not a file)")
    try:
        with p.open(newline="") as f:
            rows = list(csv.DictReader(f))
    except UnicodeDecodeError:
        raise SpecError(f"e2e table {str(p)!r} is not a text CSV") from None
    if not rows:
        raise SpecError(f"e2e table {str(p)!r} has no rows")
    return [_case({(k or "").strip().lower(): v for k, v in r.items()}, p, i, engine) for i, r in enumerate(rows, 2)]


def pick(d: dict, dotted: str) -> float | None:
    for k in dotted.split("."):
        d = d.get(k) if isinstance(d, dict) else None
    return d


def error_table(rows: list[dict]) -> dict:
    """Median and p90 absolute error per metric and over all figures."""
    def stats(errs):
        a = np.abs(np.array(errs, dtype=float))
        return {"median_abs_err": float(np.median(a)), "p90_abs_err": float(np.percentile(a, 90)),
                "mean_err": float(np.mean(np.array(errs, dtype=float))), "n": len(a)} \
            if len(a) else {"median_abs_err": None, "p90_abs_err": None, "mean_err": None, "n": 0}
    errs = [r["error"] for r in rows if r["error"] is not None]
    out = {"all": stats(errs)}
    for m in METRICS:
        out[m] = stats([r["error"] for r in rows if r["metric"] == m and r["error"] is not None])
    return out


__all__ = ["Case", "read_cases", "match_model", "match_chip", "error_table", "METRICS", "pick"]
