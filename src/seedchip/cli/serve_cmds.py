"""`seedchip simulate` and `seedchip capacity`: thin wrappers over seedchip.simulate and
seedchip.capacity. Their shared options (deployment, engine, workload, scheduler) are
written once here and added to both commands' signatures."""

from __future__ import annotations

import functools
import inspect
from pathlib import Path
from typing import Optional

import typer

from .. import api
from . import report_cmds
from .common import ADDRESS, JSON, RAY, emit

# (parameter, annotation, typer option): shared by simulate and capacity, in this order
DEPLOYMENT = [
    ("chip", str, typer.Option("h200-sxm", "--chip", help="catalog id or chip YAML path")),
    ("model", str, typer.Option(..., "--model", help="zoo id or path to a config.json")),
    ("num_chips", int, typer.Option(1, "--num-chips", help="chips of one engine (dp x tp x pp)")),
    ("tp", Optional[int], typer.Option(None, "--tp", help="tensor-parallel size (default: num-chips / pp)")),
    ("pp", int, typer.Option(1, "--pp", help="pipeline stages")),
    ("ep", int, typer.Option(1, "--ep", help="expert-parallel size (MoE)")),
    ("weight_format", str, typer.Option("bf16", "--weight-format", help="bf16, fp8, fp8-block, int8, fp4, mxfp4")),
    ("act_format", Optional[str], typer.Option(None, "--act-format", help="default: fp8/int8/fp4 with such weights")),
    ("kv_format", str, typer.Option("bf16", "--kv-format", help="KV-cache format: bf16, fp8, fp4")),
    ("calibration", Optional[str], typer.Option(None, "--calibration", help="calibration id, YAML path, or 'ideal'")),
    ("engine", str, typer.Option("vllm", "--engine", help="serving-engine profile: vllm, trtllm or sglang (its "
                                 "limits, admission and per-step costs; see `seedchip engines`)")),
]
WORKLOAD = [
    ("trace", Optional[str], typer.Option(None, "--trace", help="Azure CSV, Mooncake JSONL or "
                                          "arrival_s,input_len,output_len CSV")),
    ("workload", Optional[str], typer.Option(None, "--workload", help="chat, code, summarize or reasoning")),
    ("input_len", Optional[int], typer.Option(None, "--input-len", help="prompt length (tokens)")),
    ("output_len", Optional[int], typer.Option(None, "--output-len", help="output length (tokens)")),
    ("range_ratio", float, typer.Option(1.0, "--range-ratio", help="fixed lengths drawn uniformly in "
                                        "[R x L, L] (SGLang's random dataset; 1: exactly L)")),
    ("arrival", str, typer.Option("poisson", "--arrival", help="poisson or gamma")),
    ("burstiness", float, typer.Option(1.0, "--burstiness", help="gamma arrivals: CV of the gaps")),
    ("seed", int, typer.Option(0, "--seed", help="random seed (>= 0)")),
]
SCHEDULER = [
    ("scheduler", str, typer.Option("chunked-prefill", "--scheduler", help="chunked-prefill or static")),
    ("max_num_seqs", Optional[int], typer.Option(None, "--max-num-seqs", help="requests running at once "
                                                 "(default: the engine's)")),
    ("max_batched_tokens", Optional[int], typer.Option(None, "--max-batched-tokens", help="tokens per step "
                                                       "(default: the engine's)")),
    ("block_size", Optional[int], typer.Option(None, "--block-size", help="KV block tokens (default: the engine's)")),
    ("kv_memory_fraction", Optional[float], typer.Option(None, "--kv-memory-fraction", help="memory share "
                                                         "(default: the engine's; see its memory basis)")),
    ("prefix_caching", Optional[bool], typer.Option(None, "--prefix-caching/--no-prefix-caching",
                                                    help="default: the engine's")),
    ("replicas", int, typer.Option(1, "--replicas", help="identical engines behind the router")),
    ("router", str, typer.Option("least-work", "--router", help="round-robin, least-work or prefix-aware")),
    ("disaggregate", Optional[str], typer.Option(None, "--disaggregate", help="prefill=NxCHIP,decode=NxCHIP")),
]
SLO = [
    ("slo_ttft_p99", Optional[str], typer.Option(None, "--slo-ttft-p99", help="with its unit, e.g. 2s")),
    ("slo_tpot_p99", Optional[str], typer.Option(None, "--slo-tpot-p99", help="with its unit, e.g. 100ms")),
]
SHARED = DEPLOYMENT + WORKLOAD + SCHEDULER + SLO


def with_options(options):
    """Add ``options`` (name, annotation, typer.Option) in front of a command's own
    keyword parameters; the command receives them all as keyword arguments."""
    def deco(fn):
        own = [p for p in inspect.signature(fn).parameters.values() if p.kind is not p.VAR_KEYWORD]
        params = [inspect.Parameter(n, inspect.Parameter.KEYWORD_ONLY, default=o, annotation=a) for n, a, o in options]
        params += [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in own]

        @functools.wraps(fn)
        def command(**kw):
            return fn(**kw)
        command.__signature__ = inspect.Signature(params)
        return command
    return deco


def _show(result: dict, as_json: bool, tables) -> None:
    if as_json:
        emit(result)
        return
    from .render import console, print_notes
    for t in tables(result):
        console.print(t)
    print_notes(result)


@with_options(SHARED)
def simulate(qps: Optional[float] = typer.Option(None, "--qps", help="arrival rate (a trace is rescaled to it)"),
             num_requests: Optional[int] = typer.Option(None, "--num-requests", help="how many (a trace: its first N)"),
             offline: bool = typer.Option(False, "--offline", help="every request arrives at t = 0"),
             max_concurrency: Optional[int] = typer.Option(None, "--max-concurrency", help="closed loop: N clients, "
                                                           "each sends its next request when its last one ends; "
                                                           "with --qps or --trace: at most N requests in flight"),
             trace_out: Optional[str] = typer.Option(None, "--trace-out", help="write a Chrome/Perfetto trace JSON"),
             max_throughput: bool = typer.Option(False, "--max-throughput", help="offline: search the engine's batch "
                                                 "limits for the most output tokens/s (reported under 'tuned')"),
             interval: bool = typer.Option(True, "--interval/--no-interval", help="80%% intervals on throughput, "
                                           "mean TTFT and TPOT from perturbed runs (interval80)"),
             report: Optional[Path] = report_cmds.REPORT, as_json: bool = JSON, **kw) -> None:
    """Simulate serving a request stream (trace or synthetic) on a deployment."""
    from .render import sim_tables
    report_cmds.check(report)
    from .progress import progress_bar
    with progress_bar("simulating", enabled=not as_json) as tick:
        res = api.simulate(qps=qps, num_requests=num_requests, offline=offline, max_concurrency=max_concurrency,
                           trace_out=trace_out, max_throughput=max_throughput, interval=interval, progress=tick, **kw)
    d = res.to_dict()
    _show(d, as_json, sim_tables)
    if not as_json:
        from ..units import fmt
        from .render import console
        console.print(f"simulated in {fmt(res.wall_s, 's')} of wall time")
    report_cmds.write(report, d, as_json)


@with_options(SHARED)
def capacity(num_requests: Optional[int] = typer.Option(None, "--num-requests", help="first run length (default "
                                                        "4,000); it doubles until the answer is stable"),
             max_requests: int = typer.Option(64000, "--max-requests", help="the longest run the search may use"),
             price_per_chip_hour: Optional[float] = typer.Option(None, "--price-per-chip-hour", help="$ per chip-hour"),
             interval: bool = typer.Option(True, "--interval/--no-interval", help="max_qps_interval80 from the same "
                                           "search under perturbed models (several more runs)"),
             workers: int = typer.Option(1, "--workers", help="local worker processes: the search's next runs "
                                         "and the interval's searches side by side (the same JSON as with one)"),
             use_ray: bool = RAY, address: Optional[str] = ADDRESS,
             report: Optional[Path] = report_cmds.REPORT, as_json: bool = JSON, **kw) -> None:
    """The highest request rate the deployment sustains within the SLO percentiles, in steady state."""
    from .render import capacity_tables
    report_cmds.check(report)
    from .progress import progress_bar
    with progress_bar("capacity search", enabled=not as_json) as tick:
        r = api.capacity(num_requests=num_requests, max_requests=max_requests, price_per_chip_hour=price_per_chip_hour,
                         interval=interval, progress=tick, workers=workers, use_ray=use_ray, address=address,
                         **kw).to_dict()
    _show(r, as_json, capacity_tables)
    report_cmds.write(report, r, as_json)


def register(app: typer.Typer) -> None:
    app.command(name="simulate")(simulate)
    app.command(name="capacity")(capacity)
