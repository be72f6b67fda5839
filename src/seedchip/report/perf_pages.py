"""Pages for ``estimate`` (per-phase time by op class and bound, the memory plan), ``run``
(the chips side by side) and ``op`` (one op's time against its roofline terms)."""

from __future__ import annotations

from .page import PALETTE, Page, plotly, show

CLASS_COLORS = {"gemm": 0, "attention": 1, "vector": 2, "collective": 3, "moe": 4, "host": 5, "sampling": 6}


def _color(cls: str) -> str:
    """A fixed colour per op class (the same on every page)."""
    return PALETTE[CLASS_COLORS.get(cls, sum(map(ord, cls))) % len(PALETTE)]


def _phases(page: Page, d: dict) -> None:
    go = plotly()
    from plotly.subplots import make_subplots
    fig = make_subplots(rows=1, cols=2, subplot_titles=[f"{ph}: {show(d[ph]['time_s'], 's')} over {d[ph]['steps']} "
                                                        f"step(s)" for ph in ("prefill", "decode")])
    for col, ph in enumerate(("prefill", "decode"), start=1):
        items = sorted(d[ph]["by_class"].items(), key=lambda kv: -kv[1]["time_s"])
        fig.add_trace(go.Bar(x=[k for k, _ in items], y=[c["time_s"] for _, c in items],
                             marker_color=[_color(k) for k, _ in items], showlegend=False,
                             text=[f"{c['share_of_time']:.0%} · {c['bound']}" for _, c in items], textposition="auto",
                             hovertemplate="%{x}: %{y:.4g} s<extra></extra>"), row=1, col=col)
        fig.update_yaxes(title_text="seconds" if col == 1 else None, row=1, col=col)
    page.figure(fig, "Time by op class in each phase; the label gives the share of the phase and the resource "
                "that binds the class (compute, memory, communication, overhead or power).", height=360)


def _memory(page: Page, d: dict) -> None:
    go = plotly()
    m = d["memory"]
    parts = [("weights", m["weights_bytes"]), ("activations", m.get("activation_bytes", 0)),
             ("reserve", m.get("reserve_bytes", 0)), ("free for KV", m["free_bytes"]),
             ("outside the memory share", m["capacity_bytes"] - m.get("usable_bytes", m["capacity_bytes"]))]
    fig = go.Figure([go.Bar(y=["per chip"], x=[v], name=k, orientation="h", marker_color=PALETTE[i],
                            text=[show(v, "bytes")], textposition="inside",
                            hovertemplate=f"{k}: %{{x:.4s}}B<extra></extra>") for i, (k, v) in enumerate(parts) if v > 0])
    fig.update_layout(barmode="stack")
    fig.update_xaxes(title_text="bytes")
    page.figure(fig, f"Memory plan per chip ({show(m['capacity_bytes'], 'bytes')}): KV {show(m['kv_bytes_per_token'], 'bytes')}"
                f" per token, room for {m['max_kv_tokens_total']:,} KV tokens in all.", height=230)


def _class_table(page: Page, d: dict) -> None:
    rows = []
    for ph in ("prefill", "decode"):
        for cls, c in d[ph]["by_class"].items():
            rows.append([ph, cls, show(c["time_s"], "s"), show(c["share_of_time"], "pct"), c["bound"],
                         show(c["flops"], "flop"), show(c["hbm_bytes"], "bytes"), show(c["comm_bytes"], "bytes"),
                         show(c.get("energy_j"), "j")])
    page.table(["phase", "op class", "time", "share", "bound", "FLOP", "HBM bytes", "link bytes", "energy"], rows,
               numeric={2, 3, 5, 6, 7, 8})


def _interval(d: dict, key: str, dim: str) -> str:
    iv = (d.get("interval80") or {}).get(key)
    return f"80%: {show(iv[0], dim)}-{show(iv[1], dim)}" if iv else ""


def _estimate(d: dict) -> Page:
    i = d["inputs"]
    p = Page("estimate", f"{i['model']} on {i['num_chips']} x {i['chip']}",
             f"batch {i['batch']}, {i['input_len']} in / {i['output_len']} out; tp {i['tp']}, pp {i['pp']}, ep {i['ep']}; "
             f"weights {i['weight_format']}, KV {i['kv_format']}")
    p.kpi("TTFT", d["ttft_s"], "s", "ttft_s", _interval(d, "ttft_mean_s", "s"))
    p.kpi("TPOT", d["tpot_s"], "s", "tpot_s", _interval(d, "tpot_mean_s", "s"))
    p.kpi("end-to-end", d["e2e_s"], "s", "e2e_s")
    p.kpi("throughput", d["throughput_tokens_per_s"], "tok/s", "throughput_tokens_per_s",
          _interval(d, "throughput_tokens_per_s", "tok/s"))
    p.kpi("per chip", d["throughput_tokens_per_s_per_chip"], "tok/s", "throughput_tokens_per_s_per_chip")
    p.kpi("energy per output token", d["energy_per_output_token_j"], "j", "energy_per_output_token_j")
    p.kpi("power per chip", d["avg_power_w_per_chip"], "w", "avg_power_w_per_chip")
    p.facts("Inputs", i)
    e = d.get("engine") or {}
    p.facts("Provenance", {**(d.get("provenance") or {}), "engine": f"{e.get('name')} {e.get('version')}" if e else None})
    p.section("Where the time goes")
    _phases(p, d)
    _class_table(p, d)
    p.section("Memory")
    _memory(p, d)
    p.notes(d.get("notes"))
    return p


def _run(d: dict) -> Page:
    go = plotly()
    from plotly.subplots import make_subplots
    i, rows = d["inputs"], d["rows"]
    p = Page("run", f"{i['model']}: {' vs '.join(r['chip'] for r in rows)}",
             f"{i['num_chips']} chips each, tp {i['tp']}, weights {i['weight_format']}, KV {i['kv_format']}; batch "
             f"{i['batch']}, {i['input_len']} in / {i['output_len']} out")
    for name, r in d.get("ratios", {}).items():
        for k, label in (("throughput", "throughput"), ("tokens_per_joule", "tokens per joule")):
            iv = r.get(f"{k}_interval80")
            p.kpi(f"{label}: {name.replace('_vs_', ' / ')}", r[k], "x", f"ratios.{name}.{k}",
                  f"80%: {iv[0]:.3g}-{iv[1]:.3g}x" if iv else "")
    for j, r in enumerate(rows):
        p.kpi(f"{r['chip']} throughput", r["throughput_tokens_per_s"], "tok/s", f"rows.{j}.throughput_tokens_per_s",
              f"TPOT {show(r['tpot_s'], 's')}")
    p.facts("Inputs", i)
    p.facts("Provenance", {"calibration": rows[0].get("calibration") if rows else None})
    metrics = (("throughput_tokens_per_s", "throughput (tok/s)", "throughput_tokens_per_s"),
               ("ttft_s", "TTFT (s)", "ttft_mean_s"), ("tpot_s", "TPOT (s)", "tpot_mean_s"),
               ("tokens_per_joule", "tokens per joule", None))
    fig = make_subplots(rows=1, cols=4, subplot_titles=[t for _, t, _ in metrics], horizontal_spacing=0.07)
    for col, (key, _, ivk) in enumerate(metrics, start=1):
        err = None
        if ivk and all((r.get("interval80") or {}).get(ivk) for r in rows):
            err = dict(type="data", symmetric=False, array=[r["interval80"][ivk][1] - r[key] for r in rows],
                       arrayminus=[r[key] - r["interval80"][ivk][0] for r in rows], color="#1d2731")
        fig.add_trace(go.Bar(x=[r["chip"] for r in rows], y=[r[key] for r in rows], error_y=err, showlegend=False,
                             marker_color=[PALETTE[j % len(PALETTE)] for j in range(len(rows))]), row=1, col=col)
    p.section("The chips side by side")
    p.figure(fig, "Bars: the estimate; whiskers: the 80% interval from perturbed calibrations.", height=340)
    p.table(["chip", "throughput", "per chip", "TTFT", "TPOT", "tok/J", "W per chip", "decode bound", "top class"],
            [[r["chip"], show(r["throughput_tokens_per_s"], "tok/s"), show(r["tokens_per_s_per_chip"], "tok/s"),
              show(r["ttft_s"], "s"), show(r["tpot_s"], "s"), show(r["tokens_per_joule"]),
              show(r["avg_power_w_per_chip"], "w"), r.get("decode_bound", ""), r.get("decode_top_class", "")]
             for r in rows], numeric={1, 2, 3, 4, 5, 6})
    return p


def _op(d: dict) -> Page:
    go = plotly()
    p = Page("op", f"{d['op']} on {d['chip']}", d.get("detail", ""))
    p.kpi("time", d["time_s"], "s", "time_s")
    p.kpi("bound", d["bound"], "", "bound")
    p.kpi("energy", d["energy_j"], "j", "energy_j")
    if d.get("flops"):
        p.kpi("achieved", d["achieved_flops_per_s"], "flop/s", "achieved_flops_per_s")
    if d.get("bytes"):
        p.kpi("achieved HBM", d["achieved_bytes_per_s"], "bytes/s", "achieved_bytes_per_s")
    p.facts("Inputs", d.get("inputs") or {})
    p.facts("Provenance", {"calibration": d.get("calibration"), **(d.get("provenance") or {})})
    terms = [("compute", d["compute_s"]), ("memory", d["memory_s"]), ("communication", d["comm_s"]),
             ("overhead", d["overhead_s"]), ("time", d["time_s"])]
    fig = go.Figure(go.Bar(x=[k for k, _ in terms], y=[v for _, v in terms], text=[show(v, "s") for _, v in terms],
                           textposition="auto", marker_color=[PALETTE[j] for j in range(4)] + ["#1d2731"]))
    fig.update_yaxes(title_text="seconds")
    p.section("Time against its terms")
    p.figure(fig, "Each term alone (the work over that resource's calibrated rate) and the op's time. The terms "
             "overlap, so they do not add up to the time: compute and memory are joined by a fitted p-norm, "
             "then the fixed overhead is added.", height=320)
    return p


def build(kind: str, d: dict) -> Page:
    return {"estimate": _estimate, "run": _run, "op": _op}[kind](d)
