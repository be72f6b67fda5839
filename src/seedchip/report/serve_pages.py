"""Pages for ``simulate`` (latency CDFs, the timeline of batch, KV, queue, preemptions,
throughput and power, SLO lines) and ``capacity`` (SLO percentiles and completions against
the offered rate, the binding limit, the chosen rate with its interval)."""

from __future__ import annotations

from .page import PALETTE, Page, plotly, show

LATENCIES = (("ttft_s", "TTFT"), ("tpot_s", "TPOT"), ("e2e_s", "end-to-end"))
SUMMARY = ("mean", "p50", "p90", "p99", "max")


def where(i: dict) -> str:
    """The chips a serving run used, from its inputs: '8 x h200-sxm', '2 replicas of 4 x
    h200-sxm', or the disaggregated pools (the CLI's titles say it the same way)."""
    if i.get("disaggregate"):
        return f"disaggregated {i['disaggregate']}"
    replicas = i.get("replicas") or 1
    per = f"{(i.get('num_chips') or 1) // replicas} x {i.get('chip')}"
    return per if replicas == 1 else f"{replicas} replicas of {per}"


def requests_text(i: dict) -> str:
    """What was sent: the trace, the workload, or the fixed lengths and their range."""
    if i.get("trace") or i.get("workload"):
        return str(i.get("trace") or i.get("workload"))
    out = f"{i.get('input_len')} in / {i.get('output_len')} out"
    if (i.get("range_ratio") or 1.0) < 1.0:
        out += f" at most, each uniform from {i['range_ratio']:g} x that"
    return out


def load_text(i: dict) -> str:
    """How it was sent: all at once, at a rate, at the trace's times (each under a cap on
    requests in flight when --max-concurrency is given), or by closed-loop clients."""
    cap = i.get("max_concurrency")
    capped = f", at most {cap} in flight" if cap else ""
    if i.get("offline"):
        return "offline (all requests at once)"
    if i.get("qps"):
        return f"{i['qps']:.4g} req/s, {i['arrival']} arrivals{capped}"
    if i.get("trace"):
        return f"the trace's arrival times{capped}"
    return f"{cap} closed-loop clients"


def _deployment(i: dict) -> str:
    engine = f" (engine {i['engine']})" if i.get("engine") else ""
    return f"{i.get('model')} on {where(i)}{engine}"


def _workload(i: dict) -> str:
    return f"{requests_text(i)}; {load_text(i)}; {i.get('num_requests')} requests, seed {i.get('seed')}"


def slo_of(d: dict) -> dict:
    """{'ttft_s': limit, 'tpot_s': limit} from a simulate or capacity result."""
    slo, i = d.get("slo") or {}, d.get("inputs") or {}
    out = {"ttft_s": slo.get("ttft_p99_s", i.get("slo_ttft_p99_s")),
           "tpot_s": slo.get("tpot_p99_s", i.get("slo_tpot_p99_s"))}
    return {k: v for k, v in out.items() if v is not None}


def _cdf_points(d: dict, key: str) -> tuple[list, list, str]:
    """(x, probability, how): the stored quantiles, else the percentiles of the summary."""
    c = (d.get("cdf") or {}).get(key)
    if c:
        n = len(c)
        return c, [i / (n - 1) for i in range(n)], "lines"
    s = d.get(key) or {}
    pts = [(s.get(k), p) for k, p in (("p50", 0.5), ("p90", 0.9), ("p99", 0.99), ("max", 1.0)) if s.get(k) is not None]
    return [x for x, _ in pts], [p for _, p in pts], "lines+markers"


def latency_cdfs(page: Page, d: dict) -> None:
    go = plotly()
    from plotly.subplots import make_subplots
    fig = make_subplots(rows=1, cols=3, subplot_titles=[n for _, n in LATENCIES], horizontal_spacing=0.07)
    slo = slo_of(d)
    for col, (key, name) in enumerate(LATENCIES, start=1):
        xs, ps, mode = _cdf_points(d, key)
        fig.add_trace(go.Scatter(x=xs, y=ps, mode=mode, name=name, line=dict(color=PALETTE[col - 1], shape="hv"),
                                 hovertemplate="%{x:.4g} s: %{y:.0%} of requests<extra>" + name + "</extra>",
                                 showlegend=False), row=1, col=col)
        fig.update_xaxes(title_text="seconds", type="log", row=1, col=col)
        if key in slo:
            fig.add_vline(x=slo[key], line=dict(color="#b8354a", dash="dash"), row=1, col=col,
                          annotation_text=f"SLO p99 {show(slo[key], 's')}", annotation_position="top left")
    fig.update_yaxes(tickformat=".0%", range=[0, 1.02])
    fig.update_yaxes(title_text="share of requests", row=1, col=1)
    how = "from 101 stored quantiles" if d.get("cdf") else "from the stored percentiles only"
    page.figure(fig, f"Cumulative distributions over completed requests ({how}); dashed: the SLO's p99 limit.",
                height=340)


def percentile_table(page: Page, d: dict) -> None:
    rows = []
    for key, name in (*LATENCIES, ("itl_s", "inter-token"), ("queue_s", "queueing")):
        s = d.get(key) or {}
        rows.append([name, *(show(s.get(k), "s") for k in SUMMARY)])
    page.table(["latency", *SUMMARY], rows, "Over every completed request (the steady window is in the JSON).")


MAX_BINS = 500        # a timeline drawn with at most this many points (the page stays small)
MEAN_SERIES = ("output_tokens_per_s", "step_power_w")


def coarser(s: dict, limit: int = MAX_BINS) -> dict:
    """The series with groups of k bins merged so at most ``limit`` remain: the largest value of
    the *_max series, the sum of preemptions, the mean of the rates."""
    t = s.get("t_s") or []
    k = -(-len(t) // limit)
    if k <= 1:
        return s
    out = {"bin_s": s.get("bin_s", 0) * k, "t_s": t[::k]}
    for key, v in s.items():
        if isinstance(v, list) and len(v) == len(t) and key != "t_s":
            groups = [v[i:i + k] for i in range(0, len(v), k)]
            merge = (lambda g: sum(g) / len(g)) if key in MEAN_SERIES else (sum if key == "preemptions" else max)
            out[key] = [merge(g) for g in groups]
    return out


def timeline(page: Page, d: dict) -> None:
    s = coarser(d.get("series") or {})
    t = s.get("t_s") or []
    if not t:
        page.note("This result holds no time series.")
        return
    go = plotly()
    from plotly.subplots import make_subplots
    panels = [("requests", [("running_max", "running (batch)", 0), ("waiting_max", "waiting (queue)", 1)]),
              ("KV used", [("kv_used_max", "KV blocks used", 2)])]
    if any(s.get("preemptions") or []):
        panels.append(("preemptions", [("preemptions", "preemptions", 3)]))
    if "output_tokens_per_s" in s:
        panels += [("output tok/s", [("output_tokens_per_s", "output tokens/s", 4)]),
                   ("step power W", [("step_power_w", "power while stepping (W)", 5)])]
    fig = make_subplots(rows=len(panels), cols=1, shared_xaxes=True, vertical_spacing=0.03)
    for row, (title, traces) in enumerate(panels, start=1):
        for key, name, c in traces:
            kind = go.Bar if key == "preemptions" else go.Scatter
            extra = {} if key == "preemptions" else dict(mode="lines", line=dict(shape="hv", width=1.5))
            fig.add_trace(kind(x=t, y=s[key], name=name, marker_color=PALETTE[c], **extra), row=row, col=1)
        fig.update_yaxes(title_text=title, row=row, col=1, tickformat=".0%" if title == "KV used" else None)
    w = (d.get("steady") or {}).get("window_s")
    if w and len(w) == 2 and w[1] > w[0]:
        fig.add_vrect(x0=w[0], x1=w[1], fillcolor="#2f9e5b", opacity=0.07, line_width=0)
    fig.update_xaxes(title_text="simulated time (s)", row=len(panels), col=1)
    page.figure(fig, f"Per {show(s.get('bin_s'), 's')} bin: the largest batch, queue and KV use, the preemptions, "
                "output tokens per second and the power of the steps (idle gaps excluded). Shaded: the steady "
                "window the capacity search judges.", height=150 * len(panels) + 90)


def _engines_table(page: Page, d: dict) -> None:
    eng = d.get("engines") or []
    if eng:
        page.table(["engine", "role", "chip", "chips", "busy", "steps", "tokens out", "preemptions", "KV tokens"],
                   [[e.get("index"), e.get("role"), e.get("chip"), e.get("num_chips"), show(e.get("busy_fraction"), "pct"),
                     show(e.get("steps"), "int"), show(e.get("tokens_out"), "int"), show(e.get("preemptions"), "int"),
                     show(e.get("kv_tokens"), "int")] for e in eng], "Engines", numeric={3, 4, 5, 6, 7, 8})


def _provenance(page: Page, d: dict) -> None:
    i, e = d.get("inputs") or {}, d.get("engine") or {}
    page.facts("Inputs", i)
    page.facts("Provenance", {"engine profile": f"{e.get('name')} {e.get('version')}" if e else None,
                              "calibration": i.get("calibration"), **(d.get("provenance") or {})})


def _build_simulate(d: dict) -> Page:
    i = d.get("inputs") or {}
    p = Page("simulate", f"Serving {_deployment(i)}", _workload(i))
    p.kpi("output throughput", d["throughput_tokens_per_s"], "tok/s", "throughput_tokens_per_s")
    p.kpi("completed", d["requests_per_s"], "req/s", "requests_per_s", f"{d['num_completed']} requests")
    for key, name in LATENCIES:
        p.kpi(f"{name} p99", d[key]["p99"], "s", f"{key}.p99", f"p50 {show(d[key]['p50'], 's')}")
    p.kpi("energy per output token", d.get("energy_j_per_token"), "j", "energy_j_per_token")
    p.kpi("preemptions", d["num_preemptions"], "int", "num_preemptions")
    if d.get("slo"):
        p.kpi("SLO met", d["slo"]["met"], "", "slo.met", f"{show(d['slo']['good_fraction'], 'pct')} of requests")
    _provenance(p, d)
    p.section("Latency")
    latency_cdfs(p, d)
    percentile_table(p, d)
    p.section("Over time")
    timeline(p, d)
    _engines_table(p, d)
    p.notes(d.get("notes"))
    return p


def _search_figure(page: Page, d: dict) -> None:
    go = plotly()
    from plotly.subplots import make_subplots
    pts = sorted(d.get("search") or [], key=lambda x: (x["qps"], x["num_requests"]))
    slo = slo_of(d)
    fig = make_subplots(rows=1, cols=3, subplot_titles=["TTFT p99", "TPOT p99", "completions vs offered"],
                        horizontal_spacing=0.08)
    for met, color, sym in ((True, "#2f9e5b", "circle"), (False, "#b8354a", "x")):
        sel = [x for x in pts if bool(x["met"]) is met]
        hover = [f"{x['qps']:.4g} req/s, {x['num_requests']} requests" + ("" if met else f": fails {', '.join(x['failed'])}")
                 for x in sel]
        for col, key in ((1, "ttft_p99_s"), (2, "tpot_p99_s"), (3, "completed_per_s")):
            fig.add_trace(go.Scatter(x=[x["qps"] for x in sel], y=[x[key] for x in sel], mode="markers",
                                     name="meets the SLOs" if met else "fails", showlegend=col == 1, text=hover,
                                     hovertemplate="%{text}<br>%{y:.4g}<extra></extra>",
                                     marker=dict(color=color, symbol=sym, size=8)), row=1, col=col)
    for col, key in ((1, "ttft_s"), (2, "tpot_s")):
        if key in slo:
            fig.add_hline(y=slo[key], line=dict(color="#b8354a", dash="dash"), row=1, col=col)
    top = max([x["qps"] for x in pts] + [d["max_qps"]])
    fig.add_trace(go.Scatter(x=[0, top], y=[0, top], mode="lines", name="completions = arrivals",
                             line=dict(color="#9aa5ae", dash="dot")), row=1, col=3)
    iv = d.get("max_qps_interval80")
    for col in (1, 2, 3):
        if iv:
            fig.add_vrect(x0=iv[0], x1=iv[1], fillcolor="#1f5fa8", opacity=0.08, line_width=0, row=1, col=col)
        fig.add_vline(x=d["max_qps"], line=dict(color="#1f5fa8"), row=1, col=col)
        fig.update_xaxes(title_text="offered rate (req/s)", row=1, col=col)
    fig.update_yaxes(title_text="seconds", type="log", row=1, col=1)
    fig.update_yaxes(type="log", row=1, col=2)
    fig.update_yaxes(title_text="req/s", row=1, col=3)
    page.figure(fig, "Every rate the search ran (steady window of each run). Blue line: the chosen rate; shaded: its "
                "80% interval; dashed: the SLO limits.", height=380)


def _build_capacity(d: dict) -> Page:
    i = d.get("inputs") or {}
    p = Page("capacity", f"Capacity of {_deployment(i)}", f"{_workload(i)}; SLO: "
             + (", ".join(f"{k[:-2].upper()} p99 <= {show(v, 's')}" for k, v in slo_of(d).items()) or "none"))
    iv = d.get("max_qps_interval80")
    p.kpi("highest steady rate", d["max_qps"], "req/s", "max_qps",
          f"80%: {show(iv[0])}-{show(iv[1])} req/s" if iv else "")
    p.kpi("per chip", d["max_qps_per_chip"], "req/s", "max_qps_per_chip")
    p.kpi("output throughput there", d["throughput_tokens_per_s"], "tok/s", "throughput_tokens_per_s")
    p.kpi("binding limit", d["binding"], "", "binding")
    p.kpi("saturated rate", d["saturated_requests_per_s"], "req/s", "saturated_requests_per_s")
    p.kpi("converged", d["converged"], "", "converged")
    _provenance(p, d)
    p.section("The search", f"Binding limit just above the answer: {d['binding']}.")
    _search_figure(p, d)
    conv = d.get("convergence") or []
    if conv:
        p.table(["run length (requests)", "highest rate (req/s)", "bisection (req/s)", "streams", "sampling error"],
                [[show(c["num_requests"], "int"), show(c["max_qps"]), show(c.get("search_qps") or c["max_qps"]),
                  show(len(c.get("sampling_shares") or ()) + 1, "int"),
                  f"{c['sampling_error_fraction']:.1%}" if c.get("sampling_error_fraction") else "-"] for c in conv],
                "Convergence: at each run length the rate is bisected on one request stream; independent "
                "streams run at that rate and 4% faster, and the answer is where their pooled share of requests "
                "over the binding limit meets it (along the slope the paired runs measure). The run length "
                "doubles until two answers agree (within 1.5%, or within twice their sampling errors, at most "
                "3%), the last one's sampling error is at most 1% and its streams pooled 48,000 requests.",
                numeric={0, 1, 2, 3, 4})
    m = d.get("metrics")
    if isinstance(m, dict) and "series" in m:
        at = (m.get("inputs") or {}).get("qps")
        p.section(f"The search's run at {show(at)} req/s" if at else "The run at the chosen rate")
        latency_cdfs(p, m)
        timeline(p, m)
    p.notes((m or {}).get("notes"))
    return p


def build(kind: str, d: dict) -> Page:
    return _build_simulate(d) if kind == "simulate" else _build_capacity(d)
