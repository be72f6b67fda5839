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
from . import calib_cmds, emulate_cmds, explore_cmds, plan_cmds, serve_cmds
from ..errors import SeedChipError, one_line, validation_line

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="SeedChip: price LLM inference on chips that exist and chips that don't.")
op_app = typer.Typer(no_args_is_help=True, help="Price one op on a chip: gemm, attention or a collective.")
calibrate_app = typer.Typer(no_args_is_help=True, help="Fit calibration layers from measured microbenchmarks.")
app.add_typer(op_app, name="op")
app.add_typer(calibrate_app, name="calibrate")
calib_cmds.register(app, calibrate_app)   # calibrate fit MEASURED.csv, validate MEASURED.csv
explore_cmds.register(app)                # silicon, explore
plan_cmds.register(app)                   # plan SCENARIO.yaml [--what-if K=V ...]
emulate_cmds.register(app)                # emulate (needs the torch extra)
serve_cmds.register(app)                  # simulate, capacity

from .common import JSON, emit


@app.command()
def chips(as_json: bool = JSON,
          sources: bool = typer.Option(False, "--sources", help="list every chip's sources")) -> None:
    """The chip catalog, with key figures and sources."""
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
            chip: str = typer.Option(..., "--chip", help="catalog id or chip YAML path"),
            calibration: Optional[str] = typer.Option(None, "--calibration", help="calibration id, YAML path, or 'ideal'")) -> None:
    ctx.obj = {"chip": chip, "calibration": calibration}


def _op_out(result, as_json: bool) -> None:
    if as_json:
        emit(result.to_dict())
    else:
        from .render import console, op_table
        console.print(op_table(result.to_dict()))


@op_app.command()
def gemm(ctx: typer.Context, m: int = typer.Option(..., "--m"), n: int = typer.Option(..., "--n"),
         k: int = typer.Option(..., "--k"), format: str = typer.Option("bf16", "--format", help="operand format"),
         weight_format: Optional[str] = typer.Option(None, "--weight-format", help="B operand format (default: --format)"),
         out_format: str = typer.Option("bf16", "--out-format"), as_json: bool = JSON) -> None:
    """C[m,n] = A[m,k] . B[k,n]."""
    _op_out(api.op("gemm", **ctx.obj, m=m, n=n, k=k, format=format, weight_format=weight_format,
                   out_format=out_format), as_json)


@op_app.command()
def attention(ctx: typer.Context, phase: str = typer.Option("prefill", "--phase", help="prefill or decode"),
              batch: int = typer.Option(..., "--batch"),
              seq_len: int = typer.Option(..., "--seq-len", help="prompt length (prefill) or context length (decode)"),
              num_heads: int = typer.Option(..., "--num-heads"),
              num_kv_heads: Optional[int] = typer.Option(None, "--num-kv-heads"),
              head_dim: int = typer.Option(128, "--head-dim"), format: str = typer.Option("bf16", "--format"),
              kv_format: str = typer.Option("bf16", "--kv-format"),
              window: int = typer.Option(0, "--window", help="sliding window (0: none)"), as_json: bool = JSON) -> None:
    """Flash-attention prefill or decode attention."""
    _op_out(api.op("attention", **ctx.obj, phase=phase, batch=batch, seq_len=seq_len, num_heads=num_heads,
                   num_kv_heads=num_kv_heads, head_dim=head_dim, format=format, kv_format=kv_format, window=window),
            as_json)


def _collective(kind: str):
    def command(ctx: typer.Context, size: float = typer.Option(..., "--bytes", help="full buffer size in bytes"),
                num_chips: int = typer.Option(..., "--num-chips"), as_json: bool = JSON) -> None:
        _op_out(api.op(kind, **ctx.obj, bytes=size, num_chips=num_chips), as_json)
    command.__doc__ = f"{kind} of --bytes over --num-chips chips."
    return command


for _kind in ("allreduce", "allgather", "reducescatter", "alltoall"):
    op_app.command(name=_kind)(_collective(_kind))


@app.command()
def estimate(chip: str = typer.Option(..., "--chip", help="catalog id or chip YAML path"),
             model: str = typer.Option(..., "--model", help="zoo id or path to a config.json"),
             num_chips: int = typer.Option(1, "--num-chips"), tp: Optional[int] = typer.Option(None, "--tp"),
             pp: int = typer.Option(1, "--pp"), ep: int = typer.Option(1, "--ep"),
             weight_format: str = typer.Option("bf16", "--weight-format"),
             act_format: Optional[str] = typer.Option(None, "--act-format"),
             kv_format: str = typer.Option("bf16", "--kv-format"), batch: int = typer.Option(1, "--batch"),
             input_len: int = typer.Option(1024, "--input-len"), output_len: int = typer.Option(128, "--output-len"),
             calibration: Optional[str] = typer.Option(None, "--calibration"),
             engine: str = typer.Option("vllm", "--engine", help="serving engine whose runtime costs and limits "
                                        "apply: vllm, trtllm or sglang"),
             max_batched_tokens: Optional[int] = typer.Option(None, "--max-batched-tokens",
                                                              help="prefill tokens per step (default: the engine's)"),
             memory_fraction: Optional[float] = typer.Option(None, "--memory-fraction",
                                                             help="memory share (default: the engine's)"),
             as_json: bool = JSON) -> None:
    """Static-batch estimate: TTFT, TPOT, end-to-end latency, throughput, memory."""
    r = api.estimate(chip=chip, model=model, num_chips=num_chips, tp=tp, pp=pp, ep=ep, weight_format=weight_format,
                     act_format=act_format, kv_format=kv_format, batch=batch, input_len=input_len,
                     output_len=output_len, calibration=calibration, engine=engine,
                     max_batched_tokens=max_batched_tokens, memory_fraction=memory_fraction)
    if as_json:
        emit(r.to_dict())
    else:
        from .render import console, estimate_tables, print_notes
        for t in estimate_tables(r.to_dict()):
            console.print(t)
        print_notes(r.to_dict())


@app.command()
def run(model: str = typer.Option(headline.DEFAULTS["model"], "--model"),
        out: Path = typer.Option(Path("seedchip-run.json"), "--out", help="where to write the JSON result"),
        calibration: Optional[str] = typer.Option(None, "--calibration"), as_json: bool = JSON) -> None:
    """The headline: seedchip-ref against h200-sxm on a default model and workload."""
    from ..outputs import probe, write_text
    probe(out)                               # before the work: an unwritable place loses nothing
    r = headline.run(model=model, calibration=calibration).to_dict()
    write_text(out, json.dumps(r, indent=2) + "\n")
    if as_json:
        emit(r)
    else:
        from .render import console, headline_table
        console.print(headline_table(r))
        console.print(f"JSON written to {out}")


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
