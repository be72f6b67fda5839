"""`seedchip`: a thin Typer CLI over the public API (seedchip.api). Every command that
computes takes --json and then prints exactly ``result.to_dict()``. User mistakes exit
with code 2 and one line on stderr."""

from __future__ import annotations

import json
import os
import sys
import warnings
from pathlib import Path
from typing import Optional

import typer
from pydantic import ValidationError

from .. import api, headline
from . import calib_cmds, emulate_cmds, explore_cmds, plan_cmds, report_cmds, serve_cmds
from ..errors import SeedChipError, one_line, validation_line

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="SeedChip: price LLM inference on chips that exist and chips that don't.")
op_app = typer.Typer(no_args_is_help=True, help="Price one op on a chip: gemm, attention or a collective.")
calibrate_app = typer.Typer(no_args_is_help=True, help="Fit calibration layers from measured microbenchmarks.")
app.add_typer(op_app, name="op")


def _version(value: bool) -> None:
    if value:
        from ..version import __version__, code_hash
        sys.stdout.write(f"seedchip {__version__} (code {code_hash()})\n")
        raise typer.Exit(0)


@app.callback()
def _main(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                       help="print the version and exit")) -> None:
    """SeedChip: price LLM inference on chips that exist and chips that don't."""
app.add_typer(calibrate_app, name="calibrate")
calib_cmds.register(app, calibrate_app)   # calibrate fit MEASURED.csv, validate MEASURED.csv
explore_cmds.register(app)                # silicon, explore
plan_cmds.register(app)                   # plan SCENARIO.yaml [--what-if K=V ...]
emulate_cmds.register(app)                # emulate (needs the torch extra)
serve_cmds.register(app)                  # simulate, capacity
report_cmds.register(app)                 # report SOURCE --out FILE.html
report_cmds.add_report_option(app)        # --report FILE.html on silicon, explore, plan

from .common import JSON, emit
from ..formats import FORMATS as _FORMATS

FORMATS = ", ".join(sorted(_FORMATS))


@app.command()
def chips(as_json: bool = JSON,
          sources: bool = typer.Option(False, "--sources", help="list every chip's sources"),
          template: bool = typer.Option(False, "--template", help="print a commented chip YAML to start your own "
                                        "from (seedchip chips --template > mine.yaml; then --chip mine.yaml)")) -> None:
    """The chip catalog, with key figures and sources."""
    if template:
        from ..hardware.template import chip_template
        sys.stdout.write(chip_template())
        return
    rows = api.chips()
    if as_json:
        emit(rows)
    else:
        from .render import chips_table, console, sources_table
        console.print(chips_table(rows))
        if sources:
            console.print(sources_table(rows))
        else:
            console.print("Sources per figure: seedchip chips --sources (or --json).")


@app.command()
def engines(as_json: bool = JSON,
            chip: str = typer.Option("h200-sxm", "--chip", help="resolve chip-dependent values for this chip"),
            tp: int = typer.Option(1, "--tp", help="resolve tp-dependent values for this tensor-parallel size")) -> None:
    """The serving-engine profiles (vLLM, TensorRT-LLM, SGLang) with their sources."""
    rows = api.engines(chip=chip, tp=tp)
    if as_json:
        emit(rows)
    else:
        from .render import console, engines_table
        console.print(engines_table(rows))


@app.command()
def models(as_json: bool = JSON) -> None:
    """The model zoo, with parameter counts."""
    rows = api.models()
    if as_json:
        emit(rows)
    else:
        from .render import console, models_table
        console.print(models_table(rows))


@op_app.callback()
def op_main(ctx: typer.Context,
            chip: Optional[str] = typer.Option(None, "--chip", help="catalog id or chip YAML path (required; see "
                                               "`seedchip chips`)"),
            calibration: Optional[str] = typer.Option(None, "--calibration", help="calibration id, YAML path, or 'ideal'"),
            report: Optional[Path] = report_cmds.REPORT) -> None:
    ctx.obj = {"chip": chip, "calibration": calibration, "report": report}


def _op(ctx: typer.Context, kind: str, as_json: bool, **kw) -> None:
    from ..errors import SpecError
    o = dict(ctx.obj)
    report = o.pop("report")
    if o["chip"] is None:
        raise SpecError(f"give the chip before the op: seedchip op --chip h200-sxm {kind} ...")
    report_cmds.check(report)
    d = api.op(kind, **o, **kw).to_dict()
    if as_json:
        emit(d)
    else:
        from .render import console, op_table
        console.print(op_table(d))
    report_cmds.write(report, d, as_json)


@op_app.command()
def gemm(ctx: typer.Context, m: int = typer.Option(..., "--m", help="rows of A and C (tokens)"),
         n: int = typer.Option(..., "--n", help="columns of B and C (output features)"),
         k: int = typer.Option(..., "--k", help="the reduced dimension (input features)"),
         format: str = typer.Option("bf16", "--format", help=f"operand format: {FORMATS}"),
         weight_format: Optional[str] = typer.Option(None, "--weight-format", help="B operand format (default: --format)"),
         out_format: str = typer.Option("bf16", "--out-format", help="C's format: bf16, fp16 or fp32"),
         as_json: bool = JSON) -> None:
    """C (m x n) = A (m x k) . B (k x n)."""
    _op(ctx, "gemm", as_json, m=m, n=n, k=k, format=format, weight_format=weight_format, out_format=out_format)


@op_app.command()
def attention(ctx: typer.Context, phase: str = typer.Option("prefill", "--phase", help="prefill or decode"),
              batch: int = typer.Option(..., "--batch", help="sequences"),
              seq_len: int = typer.Option(..., "--seq-len", help="prompt length (prefill) or context length (decode)"),
              num_heads: int = typer.Option(..., "--num-heads", help="query heads"),
              num_kv_heads: Optional[int] = typer.Option(None, "--num-kv-heads", help="KV heads (default: --num-heads)"),
              head_dim: int = typer.Option(128, "--head-dim", help="elements per head"),
              format: str = typer.Option("bf16", "--format", help=f"activation format: {FORMATS}"),
              kv_format: str = typer.Option("bf16", "--kv-format", help="KV-cache format: bf16, fp8 or fp4"),
              window: int = typer.Option(0, "--window", help="sliding window (0: none)"), as_json: bool = JSON) -> None:
    """Flash-attention prefill or decode attention."""
    _op(ctx, "attention", as_json, phase=phase, batch=batch, seq_len=seq_len, num_heads=num_heads,
        num_kv_heads=num_kv_heads, head_dim=head_dim, format=format, kv_format=kv_format, window=window)


def _collective(kind: str):
    def command(ctx: typer.Context, size: float = typer.Option(..., "--bytes", help="full buffer size in bytes"),
                num_chips: int = typer.Option(..., "--num-chips", help="chips taking part (>= 2)"),
                as_json: bool = JSON) -> None:
        _op(ctx, kind, as_json, bytes=size, num_chips=num_chips)
    command.__doc__ = f"{kind} of --bytes over --num-chips chips."
    return command


for _kind in ("allreduce", "allgather", "reducescatter", "alltoall"):
    op_app.command(name=_kind)(_collective(_kind))


@app.command()
def estimate(chip: str = typer.Option(..., "--chip", help="catalog id or chip YAML path (see `seedchip chips`)"),
             model: str = typer.Option(..., "--model", help="zoo id or path to a config.json (see `seedchip models`)"),
             num_chips: int = typer.Option(1, "--num-chips", help="chips of the deployment (dp x tp x pp)"),
             tp: Optional[int] = typer.Option(None, "--tp", help="tensor-parallel size (default: num-chips / pp)"),
             pp: int = typer.Option(1, "--pp", help="pipeline stages"),
             ep: int = typer.Option(1, "--ep", help="expert-parallel size (MoE)"),
             weight_format: str = typer.Option("bf16", "--weight-format", help=f"weight format: {FORMATS}"),
             act_format: Optional[str] = typer.Option(None, "--act-format", help="activation (compute) format "
                                                      "(default: fp8/int8/fp4 with such weights, else bf16)"),
             kv_format: str = typer.Option("bf16", "--kv-format", help="KV-cache format: bf16, fp8 or fp4"),
             batch: int = typer.Option(1, "--batch", help="sequences in the static batch"),
             input_len: int = typer.Option(1024, "--input-len", help="prompt tokens per sequence"),
             output_len: int = typer.Option(128, "--output-len", help="generated tokens per sequence"),
             calibration: Optional[str] = typer.Option(None, "--calibration", help="calibration id, YAML path, or "
                                                       "'ideal' (default: h100-sxm)"),
             engine: str = typer.Option("vllm", "--engine", help="serving engine whose runtime costs and limits "
                                        "apply: vllm, trtllm or sglang"),
             max_batched_tokens: Optional[int] = typer.Option(None, "--max-batched-tokens",
                                                              help="prefill tokens per step (default: the engine's)"),
             memory_fraction: Optional[float] = typer.Option(None, "--memory-fraction",
                                                             help="memory share, in (0, 1] (default: the engine's)"),
             report: Optional[Path] = report_cmds.REPORT, as_json: bool = JSON) -> None:
    """Static-batch estimate: TTFT, TPOT, end-to-end latency, throughput, memory."""
    report_cmds.check(report)
    r = api.estimate(chip=chip, model=model, num_chips=num_chips, tp=tp, pp=pp, ep=ep, weight_format=weight_format,
                     act_format=act_format, kv_format=kv_format, batch=batch, input_len=input_len,
                     output_len=output_len, calibration=calibration, engine=engine,
                     max_batched_tokens=max_batched_tokens, memory_fraction=memory_fraction)
    d = r.to_dict()
    if as_json:
        emit(d)
    else:
        from .render import console, estimate_tables, print_notes
        for t in estimate_tables(d):
            console.print(t)
        print_notes(d)
    report_cmds.write(report, d, as_json)


@app.command()
def run(model: str = typer.Option(headline.DEFAULTS["model"], "--model", help="zoo id or path to a config.json"),
        out: Path = typer.Option(Path("seedchip-run.json"), "--out", help="where to write the JSON result"),
        calibration: Optional[str] = typer.Option(None, "--calibration", help="calibration id, YAML path, or 'ideal'"),
        report: Optional[Path] = report_cmds.REPORT, as_json: bool = JSON) -> None:
    """The headline: seedchip-ref against h200-sxm on a default model and workload."""
    from ..outputs import probe, write_text
    probe(out)                               # before the work: an unwritable place loses nothing
    report_cmds.check(report)
    r = headline.run(model=model, calibration=calibration).to_dict()
    write_text(out, json.dumps(r, indent=2) + "\n")
    if as_json:
        emit(r)
    else:
        from .render import console, headline_table
        console.print(headline_table(r))
        console.print(f"JSON written to {out}")
    report_cmds.write(report, r, as_json)


@calibrate_app.command("fit-tables")
def fit_tables_cmd(folder: Path = typer.Argument(..., help="folder with gemm/context_attention/generation_attention/nccl CSVs"),
                   chip: str = typer.Option(..., "--chip", help="the chip that was measured"),
                   out: Path = typer.Option(..., "--out", help="calibration YAML to write"),
                   cal_id: Optional[str] = typer.Option(None, "--id", help="calibration id (default: the chip id)"),
                   microbench: Optional[Path] = typer.Option(None, "--microbench",
                                                             help="microbench.csv for STREAM bandwidth (default: beside FOLDER)"),
                   stream_hardware: str = typer.Option("H100", "--stream-hardware", help="substring naming the chip in microbench.csv"),
                   as_json: bool = JSON) -> None:
    """Fit GEMM, attention and collective calibration from measured kernel tables."""
    from ..calibrate.fit import fit_tables, stream_efficiency, write_calibration
    from ..errors import SpecError
    from ..outputs import probe
    from ..perf.calibration import check_id
    if not folder.is_dir():
        raise SpecError(f"measurement folder {str(folder)!r} does not exist (or is not a folder); give the folder "
                        "holding the gemm / context_attention / generation_attention / nccl CSVs")
    probe(out)
    check_id(cal_id)
    spec = api.load_chip(chip)
    mb = microbench or folder.parent / "microbench.csv"
    eff, info = stream_efficiency(mb, stream_hardware, spec)
    cal = fit_tables(folder, spec, cal_id or spec.id, eff, 3e-6)     # the vector overhead's starting point
    header = (f"# Calibration fitted by `seedchip calibrate fit-tables {folder.name} --chip {chip}` on measured kernel\n"
              f"# latencies only (GEMM, attention, NCCL) plus STREAM bandwidth ({info['source']}).\n"
              f"# Vector-kernel overhead: {cal.vector.overhead_s * 1e6:.2f} us, fitted with the GEMMs (the fp8 rows "
              f"run activation-quantization kernels).\n"
              f"# holdout_error: % error on the 20% of shapes held out of the fit (split by a hash of the shape).")
    cal = cal.model_copy(update={"fitted_on": f"{folder.name}: measured {spec.name} kernel tables"})
    write_calibration(cal, out, header)
    if as_json:
        emit(cal.model_dump(mode="json"))
    else:
        from .render import console
        console.print(f"wrote {out}")
        for k, v in cal.holdout_error.items():
            console.print(f"  {k:40s} median {v['median_abs_pct']:6.2f}%  p90 {v['p90_abs_pct']:6.2f}%  n={int(v['n'])}")


def main(argv: list[str] | None = None) -> None:
    """Entry point: user mistakes exit 2 with one line; set SEEDCHIP_DEBUG=1 for tracebacks."""
    debug = os.environ.get("SEEDCHIP_DEBUG") == "1"
    if not debug:   # overflow in intermediate arithmetic is caught by the checks on what it feeds
        warnings.filterwarnings("ignore", category=RuntimeWarning, module=r"(numpy|seedchip)(\.|$)")
    try:
        app(args=argv, prog_name="seedchip", standalone_mode=False)
    except SeedChipError as e:
        if debug:
            raise
        sys.stderr.write(f"seedchip: error: {one_line(e)}\n")
        sys.exit(2)
    except ValidationError as e:
        if debug:
            raise
        sys.stderr.write(f"seedchip: error: {one_line(validation_line(e))[:400]}\n")
        sys.exit(2)
    except OSError as e:       # a path the system refuses (too long, no permission, a full disk)
        if debug:
            raise
        where = f"{e.filename!s:.120}: " if e.filename else ""
        sys.stderr.write(f"seedchip: error: {where}{e.strerror or one_line(e)}; check the path\n")
        sys.exit(2)
    except typer.Exit as e:
        sys.exit(e.exit_code)
    except (typer.Abort, KeyboardInterrupt):
        sys.stderr.write("seedchip: aborted\n")
        sys.exit(130)
    except typer.TyperException as e:  # usage errors: unknown option, bad type, missing value
        ctx = getattr(e, "ctx", None)
        path = getattr(ctx, "command_path", "seedchip") or "seedchip"
        sys.stderr.write(f"seedchip: error: {one_line(e.format_message())} (see '{path} --help')\n")
        sys.exit(2)
    except Exception as e:  # a bug, not a user mistake: say so in one line
        if debug:
            raise
        sys.stderr.write(f"seedchip: internal error: {type(e).__name__}: {one_line(e)[:300]} "
                         "(a bug; SEEDCHIP_DEBUG=1 shows the traceback)\n")
        sys.exit(1)


if __name__ == "__main__":  # pragma: no cover
    main()
