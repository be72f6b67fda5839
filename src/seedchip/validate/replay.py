"""``validate_e2e``: replay a measured end-to-end table through the simulator
(``seedchip validate e2e CSV``) and report the error of every figure."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ..errors import SeedChipError, one_line
from ..hardware.catalog import load_chip
from ..model.zoo import load_model
from ..serve.api import simulate
from ..serve.tuning import trtllm_bench_limits
from .e2e import METRICS, Case, error_table, pick, read_cases


@dataclass(frozen=True)
class E2EResult:
    rows: list
    stats: dict
    inputs: dict

    def to_dict(self) -> dict:
        s = self.stats["all"]
        out = {"median_abs_err": s["median_abs_err"], "p90_abs_err": s["p90_abs_err"], "num_rows": s["n"],
               "mean_err": s["mean_err"], "by_metric": {k: v for k, v in self.stats.items() if k != "all" and v["n"]},
               "num_failed": sum(1 for r in self.rows if r["error"] is None), "rows": self.rows,
               "inputs": self.inputs}
        inside = [r["inside_interval80"] for r in self.rows if r.get("inside_interval80") is not None]
        if inside:
            out["interval80_coverage"] = sum(inside) / len(inside)
            out["interval80_rows"] = len(inside)
        return out


def run_case(c: Case, calibration: str | None, kv_memory_fraction: float | None,
             limits: tuple[int, int] | None = None, interval: bool = False) -> dict:
    """The simulation of one row, as it was run (``limits``: batch limits an engine was
    built with, when they did not come from this row)."""
    closed = c.max_concurrency is not None
    seqs, tokens = limits or (None, None)
    return simulate(chip=c.chip, model=c.model, num_chips=c.tp, tp=c.tp, weight_format=c.weight_format,
                    kv_format=c.kv_format, calibration=calibration, engine=c.engine, input_len=c.isl,
                    output_len=c.osl, num_requests=c.num_requests, offline=c.qps is None and not closed,
                    qps=c.qps, max_concurrency=c.max_concurrency, kv_memory_fraction=kv_memory_fraction,
                    max_num_seqs=seqs, max_batched_tokens=tokens, interval=interval).to_dict()


def largest_build(cases: list[Case]) -> dict:
    """Batch limits per (model, chip, tp) when one engine was built for the table's
    largest ISL + OSL of that model and reused for every row (as Azure's benchmarking
    guide runs trtllm-bench: Benchmarks/NVIDIA/LLMBenchmark.py, 2025)."""
    out = {}
    for key in {(c.model, c.chip, c.tp) for c in cases}:
        c = max((x for x in cases if (x.model, x.chip, x.tp) == key), key=lambda x: (x.isl + x.osl, x.line))
        out[key] = trtllm_bench_limits(load_model(c.model), load_chip(c.chip).hbm_capacity_bytes, c.tp, 1,
                                       c.weight_format, c.kv_format, c.isl, c.osl)
    return out


INTERVAL_KEYS = {"out_tok_s": "throughput_tokens_per_s", "ttft_mean_ms": "ttft_mean_s", "tpot_mean_ms": "tpot_mean_s",
                 "itl_mean_ms": "tpot_mean_s"}


def _band(sim: dict | None, metric: str, pred: float | None) -> list | None:
    """A row's 80% interval, when the run has one (requests/s moves with tokens/s)."""
    iv = (sim or {}).get("interval80")
    if not iv or pred is None:
        return None
    if metric == "req_s":
        lo, hi = iv["throughput_tokens_per_s"]
        nominal = sim["throughput_tokens_per_s"]
        return [pred * lo / nominal, pred * hi / nominal] if nominal else None
    return iv.get(INTERVAL_KEYS.get(metric, ""))


def _rows(c: Case, sim: dict | None, why: str | None) -> list[dict]:
    out = []
    for metric, value in c.measured.items():
        pred = pick(sim, METRICS[metric][0]) if sim else None
        band = _band(sim, metric, pred)
        out.append({"line": c.line, "case": c.label(), "model": c.model, "chip": c.chip, "tp": c.tp, "isl": c.isl,
                    "osl": c.osl, "engine": c.engine, "num_requests": c.num_requests, "qps": c.qps,
                    "max_concurrency": c.max_concurrency, "metric": metric, "measured": value, "predicted": pred,
                    "error": (pred / value - 1.0) if pred else None,
                    "num_preemptions": sim["num_preemptions"] if sim else None,
                    "max_num_seqs": sim["inputs"]["max_num_seqs"] if sim else None,
                    "max_batched_tokens": sim["inputs"]["max_batched_tokens"] if sim else None,
                    "interval80": band, "inside_interval80": (band[0] <= value <= band[1]) if band else None,
                    "note": why})
    return out


def validate_e2e(table: str, *, engine: str = "trtllm", calibration: str | None = None,
                 kv_memory_fraction: float | None = None, build_for_largest: bool = False,
                 interval: bool = False, progress: Callable[[int, int, str], None] | None = None) -> E2EResult:
    """Simulate every row of a measured end-to-end table and compare (see
    :mod:`seedchip.validate.e2e` for the columns). A row whose deployment cannot run
    (it does not fit, say) is reported with its reason and counted as failed.
    ``interval``: each row also gets its 80% interval (perturbed runs, several times
    slower) and the result the share of measurements inside (``interval80_coverage``)."""
    cases = read_cases(table, engine)
    limits = largest_build(cases) if build_for_largest else {}
    rows: list[dict] = []
    for i, c in enumerate(cases):
        if progress:
            progress(i, len(cases), c.label())
        try:
            rows += _rows(c, run_case(c, calibration, kv_memory_fraction, limits.get((c.model, c.chip, c.tp)),
                                      interval), None)
        except SeedChipError as e:
            rows += _rows(c, None, one_line(e))
    if progress:
        progress(len(cases), len(cases), "done")
    inputs = {"table": str(table), "engine": engine, "calibration": calibration,
              "kv_memory_fraction": kv_memory_fraction, "build_for_largest": build_for_largest,
              "interval": interval, "num_cases": len(cases)}
    return E2EResult(rows=rows, stats=error_table(rows), inputs=inputs)


__all__ = ["validate_e2e", "E2EResult", "run_case"]
