"""CLI command ``seedchip emulate``: run a real PyTorch model on the virtual chip.

    seedchip emulate --model ID_OR_DIR [--layers N] --chip C [--format fp8] [--kv-format F]
                     [--prompt-len N] [--max-new-tokens N] [--prompt TEXT] [--text FILE] [--json]

A thin wrapper over :func:`seedchip.emulate.emulate`; ``--json`` prints exactly the
result's ``to_dict()``. ``register(app)`` adds the command to the main Typer app.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ..units import fmt
from . import report_cmds
from .common import JSON, emit


def _fmt_s(t: float) -> str:
    return fmt(t, "s", 4)


def render(d: dict) -> None:
    from rich.console import Console
    from rich.table import Table
    console = Console()
    weights = "random weights" if d["random_weights"] else "its own weights"
    console.print(f"[bold]{d['model']}[/bold] ({d['architecture']}, {d['num_layers']} layers, {weights}) on "
                  f"[bold]{d['chip']}[/bold] ({d['calibration']} calibration), formats: "
                  f"W {d['formats']['weights']} / A {d['formats']['activations']} / KV {d['formats']['kv']}")
    if d.get("text") is not None:
        console.print(f"generated: {d['text']!r}")
    else:
        console.print(f"generated token ids: {d['generated_ids']}")
    t = Table(show_header=False)
    t.add_column("", style="bold")
    t.add_column("", justify="right")
    t.add_row("aten ops captured", str(d["num_ops_captured"]))
    t.add_row(f"prefill ({d['prompt_len']} tokens)", f"{_fmt_s(d['prefill_time_s'])}, {d['prefill_energy_j']:.3g} J")
    t.add_row("decode, per token", f"{_fmt_s(d['decode_time_s_per_token'])}, {d['decode_energy_j_per_token']:.3g} J")
    cp = d.get("config_path")
    if cp:
        t.add_row("config path (step_cost)", f"prefill {_fmt_s(cp['prefill_time_s'])} ({cp['prefill_ratio']:.3f}x), "
                  f"decode {_fmt_s(cp['decode_time_s'])} ({cp['decode_ratio']:.3f}x)")
    n = d["numerics"]
    t.add_row("top-1 agreement", f"{n['top1_agreement']:.4f} over {n['num_positions']} positions")
    t.add_row("KL(full || chip)", f"{n['kl_divergence']:.3e} nats")
    if "perplexity" in n:
        t.add_row("perplexity", f"{n['perplexity']:.3f} vs {n['perplexity_ref']:.3f} ({n['perplexity_delta']:+.3f})")
    t.add_row("unpriced ops", ", ".join(d["unpriced_ops"]) or "none")
    console.print(t)
    top = Table(title="Top ops (prefill + all decode steps)", header_style="bold")
    for c, j in (("op", "left"), ("kind", "left"), ("count", "right"), ("time", "right"), ("bound", "left")):
        top.add_column(c, justify=j)
    for r in d["top_ops"]:
        top.add_row(r["name"], r["kind"], str(r["count"]), _fmt_s(r["time_s"]), r["bound"])
    console.print(top)
    for note in d.get("notes", []):
        console.print(f"note: {note}")


def register(app: typer.Typer) -> None:
    @app.command()
    def emulate(model: str = typer.Option(..., "--model", help="zoo id or a Hugging Face model directory"),
                chip: str = typer.Option("seedchip-ref", "--chip", help="catalog id or chip YAML path"),
                layers: Optional[int] = typer.Option(None, "--layers", help="keep only the first N decoder layers"),
                format: Optional[str] = typer.Option(None, "--format",
                                                     help="weight format: fp8, fp8-e5m2, fp8-tensor, fp8-block, int8, mxfp4, nvfp4, bf16 (default: full precision)"),
                act_format: Optional[str] = typer.Option(None, "--act-format", help="GEMM activation format (default: like the weights for 8/4-bit, else bf16)"),
                kv_format: Optional[str] = typer.Option(None, "--kv-format", help="KV cache format (default: --format when it is fp8, else full precision)"),
                prompt_len: int = typer.Option(128, "--prompt-len", help="random prompt length when there is no --prompt"),
                max_new_tokens: int = typer.Option(16, "--max-new-tokens", help="tokens to generate (decode steps)"),
                prompt: Optional[str] = typer.Option(None, "--prompt", help="text prompt (needs a tokenizer in the model directory)"),
                text: Optional[Path] = typer.Option(None, "--text", help="text file for a perplexity comparison"),
                calibration: Optional[str] = typer.Option(None, "--calibration", help="calibration id, YAML path, or 'ideal'"),
                dtype: str = typer.Option("float32", "--dtype", help="host dtype: float32, bfloat16 or float16 (less memory)"),
                seed: int = typer.Option(0, "--seed", help="random seed for weights and prompt, >= 0"),
                report: Optional[Path] = report_cmds.REPORT, as_json: bool = JSON) -> None:
        """Run a real PyTorch model on the virtual chip: per-op time and numerics."""
        from ..errors import SpecError
        report_cmds.check(report)
        from .. import emulate as emu
        for opt, v in (("--format", format), ("--act-format", act_format), ("--kv-format", kv_format)):
            if v is not None and not v.strip():
                raise SpecError(f"{opt} '' is empty: give a format, or leave it out for the default")
        formats = {"weights": format or "fp32"}
        if act_format is not None:
            formats["activations"] = act_format
        kv = kv_format if kv_format is not None else (format if format and format.startswith("fp8") else None)
        if kv:
            formats["kv"] = kv
        r = emu.emulate(model, chip=chip, formats=formats, layers=layers, prompt_len=prompt_len,
                        max_new_tokens=max_new_tokens, prompt=prompt, text_file=text, calibration=calibration,
                        seed=seed, dtype=dtype)
        d = r.to_dict()
        if as_json:
            emit(d)
        else:
            render(d)
        report_cmds.write(report, d, as_json)
