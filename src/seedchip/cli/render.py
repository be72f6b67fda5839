"""Rich rendering of results for humans. JSON output never passes through here."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from ..report.serve_pages import load_text, requests_text, where
from ..units import fmt

console = Console()
if not console.is_terminal:          # piped or captured: do not squeeze tables to 80 columns
    console = Console(width=160)


def _fixed(value: float | None, scale: float) -> str:
    """``value / scale`` with 3 significant digits (a column whose header carries the unit)."""
    if value is None:
        return "—"
    v = value / scale
    return f"{v:,.0f}" if v >= 100 else f"{v:.3g}"


def chips_table(rows: list[dict]) -> Table:
    """The catalog in ~100 columns: each header carries its unit, decimal prefixes throughout."""
    t = Table(title="Chip catalog (dense peaks; * = some figures are estimates; decimal units: 1 GB = 10^9 bytes)",
              header_style="bold")
    cols = ("chip", "year", "bf16 TFLOP/s", "fp8 TFLOP/s", "fp4 TFLOP/s", "HBM GB", "HBM TB/s", "SRAM MB",
            "link GB/s", "TDP W", "sources")
    for col in cols:
        t.add_column(col, justify="left" if col in ("chip", "sources") else "right")
    for r in rows:
        n_est = sum(1 for s in r["sources"] if s["estimate"])
        t.add_row(r["id"] + ("*" if r["has_estimates"] else ""), str(r["year"]),
                  *(_fixed(r[f"{f}_flops_per_s"], 1e12) for f in ("bf16", "fp8", "fp4")),
                  _fixed(r["hbm_capacity_bytes"], 1e9), _fixed(r["hbm_bw_bytes_per_s"], 1e12),
                  _fixed(r["sram_bytes"], 1e6), _fixed(r["link_bw_per_direction_bytes_per_s"], 1e9),
                  _fixed(r["tdp_w"], 1.0), f"{len(r['sources'])}" + (f" ({n_est} est.)" if n_est else ""))
    return t


def sources_table(rows: list[dict]) -> Table:
    t = Table(title="Chip sources (what each supports; ESTIMATE = not a published fact)", header_style="bold",
              show_lines=True)
    for col in ("id", "what", "document", "year"):
        t.add_column(col)
    for r in rows:
        for s in r["sources"]:
            t.add_row(r["id"], s["what"], ("ESTIMATE: " if s["estimate"] and "ESTIMATE" not in s["document"] else "")
                      + s["document"], str(s["year"]))
    return t


def models_table(rows: list[dict]) -> Table:
    t = Table(title="Model zoo", header_style="bold")
    for col in ("id", "architecture", "attention", "layers", "hidden", "heads/kv", "experts", "total params",
                "active params"):
        t.add_column(col, justify="left" if col in ("id", "architecture", "attention") else "right")
    for r in rows:
        experts = f"{r['num_experts_per_tok']}/{r['num_experts']}" if r["num_experts"] else "—"
        attn = r["attention"] + (f" +{r['sliding_window_layers']} windowed" if r["sliding_window_layers"] else "")
        t.add_row(r["id"], r["architecture"], attn, str(r["num_layers"]), str(r["hidden_size"]),
                  f"{r['num_heads']}/{r['num_kv_heads']}", experts, f"{r['total_params'] / 1e9:.2f} B",
                  f"{r['active_params'] / 1e9:.2f} B")
    return t


def op_table(d: dict) -> Table:
    t = Table(title=f"{d['op']} on {d['chip']} (calibration {d['calibration']})", show_header=False)
    t.add_column("", style="bold")
    t.add_column("", justify="right")
    t.add_row("inputs", ", ".join(f"{k}={v}" for k, v in d["inputs"].items()))
    t.add_row("time", fmt(d["time_s"], "s"))
    t.add_row("bound", d["bound"])
    t.add_row("alone: compute / memory / comm / overhead",
              " / ".join(fmt(d[k], "s") for k in ("compute_s", "memory_s", "comm_s", "overhead_s")))
    t.add_row("", "[dim]each term by itself; they overlap and tiles add fixed costs, so they do not sum "
              "to the time[/dim]")
    t.add_row("work", f"{fmt(d['flops'], 'flop')}, {fmt(d['bytes'], 'bytes')} HBM"
              + (f", {fmt(d['comm_bytes'], 'bytes')} on links" if d["comm_bytes"] else ""))
    if d["flops"]:
        t.add_row("achieved", fmt(d["achieved_flops_per_s"], "flop/s"))
    if d["bytes"]:
        t.add_row("achieved HBM", fmt(d["achieved_bytes_per_s"], "bytes/s"))
    t.add_row("energy", fmt(d["energy_j"], "j"))
    return t


def estimate_tables(d: dict) -> list[Table]:
    i = d["inputs"]
    head = Table(title=(f"{i['model']} on {i['num_chips']} x {i['chip']} (tp {i['tp']}, pp {i['pp']}, ep {i['ep']}, "
                        f"dp {i['dp']}; weights {i['weight_format']}, act {i['act_format']}, KV {i['kv_format']}; "
                        f"calibration {i['calibration']})"), show_header=False)
    head.add_column("", style="bold")
    head.add_column("", justify="right")
    head.add_row("workload", f"batch {i['batch']}, input {i['input_len']}, output {i['output_len']}")
    head.add_row("TTFT", fmt(d["ttft_s"], "s"))
    head.add_row("TPOT", fmt(d["tpot_s"], "s"))
    head.add_row("end-to-end", fmt(d["e2e_s"], "s"))
    head.add_row("throughput", f"{d['throughput_tokens_per_s']:,.0f} tok/s "
                 f"({d['throughput_tokens_per_s_per_chip']:,.0f} per chip)")
    head.add_row("energy", f"{d['energy_per_output_token_j']:.3g} J per output token, "
                 f"{d['avg_power_w_per_chip']:.0f} W per chip on average")
    m = d["memory"]
    head.add_row("memory per chip", f"weights {fmt(m['weights_bytes'], 'bytes')}, KV {fmt(m['kv_bytes_per_token'], 'bytes')}"
                 f"/token, free {fmt(m['free_bytes'], 'bytes')} of {fmt(m['capacity_bytes'], 'bytes')} "
                 f"({m['max_kv_tokens_total']:,} KV tokens)")
    out = [head]
    for phase in ("prefill", "decode"):
        p = d[phase]
        t = Table(title=f"{phase}: {fmt(p['time_s'], 's')} over {p['steps']} step(s)", header_style="bold")
        for col in ("op class", "time", "share", "bound", "FLOP", "HBM bytes", "link bytes"):
            t.add_column(col, justify="left" if col in ("op class", "bound") else "right")
        for cls, c in p["by_class"].items():
            t.add_row(cls, fmt(c["time_s"], "s"), f"{c['share_of_time']:.0%}", c["bound"], fmt(c["flops"], "flop"),
                      fmt(c["hbm_bytes"], "bytes"), fmt(c["comm_bytes"], "bytes"))
        out.append(t)
    return out


def headline_table(d: dict) -> Table:
    i = d["inputs"]
    t = Table(title=(f"SeedChip headline: {i['model']} on {i['num_chips']} chips (tp {i['tp']}, {i['weight_format']} "
                     f"weights, {i['kv_format']} KV), batch {i['batch']}, {i['input_len']} in / {i['output_len']} out"),
              header_style="bold")
    for col in ("chip", "throughput", "per chip", "TTFT", "TPOT", "tok/J", "W/chip", "decode bound"):
        t.add_column(col, justify="left" if col in ("chip", "decode bound") else "right")
    for r in d["rows"]:
        iv = r.get("interval80") or {}
        tput = iv.get("throughput_tokens_per_s")
        t.add_row(r["chip"], f"{r['throughput_tokens_per_s']:,.0f} tok/s"
                  + (f"\n[dim]{tput[0]:,.0f}-{tput[1]:,.0f}[/dim]" if tput else ""),
                  f"{r['tokens_per_s_per_chip']:,.0f} tok/s", fmt(r["ttft_s"], "s"), fmt(r["tpot_s"], "s"),
                  f"{r['tokens_per_joule']:.2f}", f"{r['avg_power_w_per_chip']:.0f}",
                  f"{r['decode_top_class']} ({r['decode_bound']})")

    def x(ratio: dict, k: str) -> str:
        band = ratio.get(f"{k}_interval80")
        return f"{ratio[k]:.2f}x" + (f"\n[dim]{band[0]:.2f}-{band[1]:.2f}x[/dim]" if band else "")
    for name, ratio in d["ratios"].items():
        t.add_row(name.replace("_vs_", " / "), x(ratio, "throughput"), "", x(ratio, "ttft"), x(ratio, "tpot"),
                  x(ratio, "tokens_per_joule"), "", "", style="italic")
    t.caption = ("80% intervals under each figure: the calibration's held-out errors and the engine model's "
                 "residual, propagated (ratios: kernel errors drawn per chip, the engine's shared)")
    return t


def _pct(d: dict | None, dim: str = "s") -> str:
    if not d or d.get("p50") is None:
        return "—"
    return " / ".join(fmt(d[k], dim) for k in ("mean", "p50", "p90", "p99"))


def _sim_title(d: dict) -> str:
    """What ran, as a benchmark report states it: the model on its chips, the engine, the
    requests (trace, workload or lengths with their range) and how they arrived."""
    i = d["inputs"]
    engine = f"engine {i['engine']}, " if i.get("engine") else ""
    return (f"{i['model']} on {where(i)} ({engine}{i['scheduler']}, calibration {i['calibration']}): "
            f"{requests_text(i)}; {load_text(i)}")


def sim_tables(d: dict) -> list[Table]:
    head = Table(title=_sim_title(d), show_header=False)
    head.add_column("", style="bold")
    head.add_column("", justify="right")
    head.add_row("requests", f"{d['num_completed']:,} completed of {d['num_requests']:,}"
                 + (f", {d['num_rejected']} refused (too long for the KV cache)" if d["num_rejected"] else ""))
    head.add_row("makespan", fmt(d["makespan_s"], "s"))
    head.add_row("throughput", f"{d['throughput_tokens_per_s']:,.0f} output tok/s, {d['input_tokens_per_s']:,.0f} "
                 f"input tok/s, {d['requests_per_s']:.3g} req/s")
    head.add_row("TTFT mean / p50 / p90 / p99", _pct(d["ttft_s"]))
    head.add_row("TPOT mean / p50 / p90 / p99", _pct(d["tpot_s"]))
    head.add_row("ITL mean / p50 / p90 / p99", _pct(d["itl_s"]))
    head.add_row("end-to-end mean / p50 / p90 / p99", _pct(d["e2e_s"]))
    head.add_row("queueing mean / p50 / p90 / p99", _pct(d["queue_s"]))
    head.add_row("preemptions", f"{d['num_preemptions']:,}")
    head.add_row("prefix hit rate", f"{d['prefix_hit_rate']:.1%}")
    head.add_row("utilisation", f"compute {d['compute_utilization']:.1%}, HBM bandwidth {d['bandwidth_utilization']:.1%}")
    if d["energy_j_per_token"] is not None:
        head.add_row("energy", f"{d['energy_j_per_token']:.3g} J per output token")
    if d.get("slo"):
        s = d["slo"]
        head.add_row("SLO", f"{'met' if s['met'] else 'missed'}; {s['good_fraction']:.1%} of requests within it, "
                     f"goodput {s['goodput_requests_per_s']:.3g} req/s")
    eng = Table(title="engines", header_style="bold")
    for col in ("#", "role", "chips", "plan", "busy", "steps", "macro steps", "preemptions", "KV tokens"):
        eng.add_column(col, justify="left" if col in ("role", "plan") else "right")
    for e in d["engines"]:
        eng.add_row(str(e["index"]), e["role"], f"{e['num_chips']} x {e['chip']}",
                    f"tp {e['tp']} pp {e['pp']} ep {e['ep']} dp {e['dp']}", f"{e['busy_fraction']:.0%}",
                    f"{e['steps']:,}", f"{e['macro_steps']:,}", str(e["preemptions"]), f"{e['kv_tokens']:,}")
    return [head, eng]


def _length_note(c: dict) -> str:
    """' (+-1.2%, 5 streams)' after a run length's answer: its sampling error and the
    request streams pooled for it, whichever it has."""
    parts = ([f"+-{c['sampling_error_fraction']:.1%}"] if c.get("sampling_error_fraction") else []) \
        + ([f"{len(c['sampling_shares']) + 1} streams"] if c.get("sampling_shares") else [])
    return f" ({', '.join(parts)})" if parts else ""


def capacity_tables(d: dict) -> list[Table]:
    i = d["inputs"]
    t = Table(title=(f"capacity of {i['model']} on {where(i)} (engine {i['engine']}, {requests_text(i)}) within "
                     f"TTFT p99 <= {fmt(i['slo_ttft_p99_s'], 's')}, TPOT p99 <= {fmt(i['slo_tpot_p99_s'], 's')}"),
              show_header=False)
    t.add_column("", style="bold")
    t.add_column("", justify="right")
    t.add_row("max rate", f"{d['max_qps']:.4g} req/s ({d['max_qps_per_chip']:.4g} per chip"
              + (f", {d['max_qps_per_dollar_hour']:.4g} per $/h" if d["max_qps_per_dollar_hour"] else "") + ")")
    if d.get("max_qps_interval80"):
        lo, hi = d["max_qps_interval80"]
        t.add_row("80% interval", f"{lo:.4g} - {hi:.4g} req/s")
    t.add_row("binding limit", d["binding"] or "-")
    t.add_row("throughput there", f"{d['throughput_tokens_per_s']:,.0f} output tok/s")
    m = d["metrics"]["steady"]
    at = d["metrics"]["inputs"].get("qps")
    t.add_row(f"TTFT / TPOT p99 at {at:.4g} req/s (steady)" if at else "TTFT / TPOT p99 (steady)",
              f"{fmt(m['ttft_s']['p99'], 's')} / {fmt(m['tpot_s']['p99'], 's')}")
    t.add_row("saturated rate", f"{d['saturated_requests_per_s']:.4g} req/s")
    t.add_row("run length", " -> ".join(f"{c['num_requests']:,}: {c['max_qps']:.4g}" + _length_note(c)
                                        for c in d["convergence"])
              + ("" if d.get("converged") else " [yellow](not converged: raise --max-requests)[/yellow]"))
    s = Table(title="search", header_style="bold")
    for col in ("rate (req/s)", "TTFT p99", "TPOT p99", "met"):
        s.add_column(col, justify="right")
    for row in d["search"]:
        s.add_row(f"{row['qps']:.4g}", fmt(row["ttft_p99_s"], "s"), fmt(row["tpot_p99_s"], "s"),
                  "yes" if row["met"] else "no")
    return [t, s]


def engines_table(rows: list[dict]) -> Table:
    t = Table(title="serving-engine profiles (--engine)", header_style="bold")
    t.caption = "sources and assumptions: seedchip engines --json"
    for col in ("engine", "admission", "max seqs", "tokens/step", "memory", "prefix cache", "runtime"):
        t.add_column(col, justify="left")
    for r in rows:
        rt = r["runtime"]
        fused = [k.removeprefix("fuse_") for k in ("fuse_gated_act", "fuse_rotary") if rt[k]]
        fused += [f"{s} quant" for s in ("norm", "act", "attn") if s not in rt["quant_kernels"]]
        graphs = "compiled" if rt["graph_max_tokens"] >= 10**8 else (
            f"graphs <= {rt['graph_max_tokens']} tok" + (" (decode)" if rt["graph_decode_only"] else ""))
        off = r.get("offline") or {}
        t.add_row(f"{r['id']}\n{r['name']} {r['version']}", r["admission"],
                  (f"{kv['min_requests']}-{kv['max_requests']} by KV" if (kv := r.get("max_num_seqs_from_kv"))
                   else f"{r['max_num_seqs']}")
                  + (f" ({off['max_num_seqs']} offline)" if "max_num_seqs" in off else ""),
                  f"{r['max_batched_tokens']}" + (f" ({off['max_batched_tokens']} offline)"
                                                  if "max_batched_tokens" in off else ""),
                  f"{r['memory_fraction']:.1%} " + BASIS_WORDS.get(r["memory_basis"], r["memory_basis"]),
                  "on" if r["prefix_caching"] else "off",
                  f"fused: {', '.join(fused) or 'none'}; {graphs}; host {fmt(rt['host_step_s'], 's')}/step"
                  + (" overlapped" if rt["overlap_host"] else ""))
    return t


BASIS_WORDS = {"total": "of total", "free": "of free", "static": "of total: weights + KV"}


def e2e_tables(r: dict) -> list[Table]:
    t = Table(title=f"{r['inputs']['table']}: simulated as run ({r['inputs']['num_cases']} rows)", header_style="bold")
    bands = r["inputs"].get("interval")
    cols = ("line", "case", "engine", "metric", "measured", "simulated", "error") + (("80% interval",) if bands else ()) \
        + ("limits", "note")
    for col in cols:
        t.add_column(col, justify="right" if col in ("line", "measured", "simulated", "error") else "left")
    for x in r["rows"]:
        err = f"{x['error']:+.1%}" if x["error"] is not None else "-"
        pred = f"{x['predicted']:,.4g}" if x["predicted"] is not None else "-"
        lim = f"{x['max_num_seqs']} seqs, {x['max_batched_tokens']} tok" if x["max_num_seqs"] else ""
        band = ([f"{x['interval80'][0]:,.4g}-{x['interval80'][1]:,.4g}" + ("" if x["inside_interval80"] else " (out)")
                 if x.get("interval80") else "-"] if bands else [])
        t.add_row(str(x["line"]), x["case"], x["engine"], x["metric"], f"{x['measured']:,.4g}", pred, err, *band, lim,
                  (x["note"] or "")[:60])
    s = Table(title="error", header_style="bold")
    for col in ("figure", "rows", "median |err|", "p90 |err|", "mean err"):
        s.add_column(col, justify="left" if col == "figure" else "right")
    s.add_row("all", str(r["num_rows"]), _pct1(r["median_abs_err"]), _pct1(r["p90_abs_err"]), _pct1(r["mean_err"]))
    for k, v in r["by_metric"].items():
        s.add_row(k, str(v["n"]), _pct1(v["median_abs_err"]), _pct1(v["p90_abs_err"]), _pct1(v["mean_err"]))
    notes = []
    if "interval80_coverage" in r:
        notes.append(f"measurements inside their 80% interval: {r['interval80_coverage']:.0%} "
                     f"of {r['interval80_rows']}")
    if r["num_failed"]:
        notes.append(f"{r['num_failed']} row(s) could not be simulated (see note)")
    s.caption = "; ".join(notes) or None
    return [t, s]


def _pct1(x) -> str:
    return "-" if x is None else f"{x:.1%}"


def print_notes(d: dict) -> None:
    """A result's notes (what it accepted but a reader should know), one per line."""
    from rich.markup import escape
    for n in d.get("notes") or []:
        console.print(f"[yellow]note:[/yellow] {escape(n)}")
