"""The H100 end-to-end development set, replayed: the error table of `seedchip validate e2e`
per model, TP and ISL/OSL shape, and its wall time.

    .venv/bin/python benchmarks/bench_e2e.py                 # both tables in ../shared/data/e2e
    .venv/bin/python benchmarks/bench_e2e.py --quick         # every 4th row
    .venv/bin/python benchmarks/bench_e2e.py --json out.json # also write the rows
    .venv/bin/python benchmarks/bench_e2e.py --quick --interval   # and the 80% intervals' coverage
    .venv/bin/python benchmarks/bench_e2e.py --shares        # the NVIDIA rows' error against the
                                                             # all-reduce's share of a decode step
    .venv/bin/python benchmarks/bench_e2e.py --missing-time  # the time the NVIDIA runs took beyond the
                                                             # simulated ones, per step and per token

Each table is replayed as it was run: NVIDIA's with --kv_cache_free_gpu_mem_fraction 0.95
("in the majority of cases", perf-overview.md) and trtllm-bench's limits per row; Azure's
guide (Benchmarks/NVIDIA/LLMBenchmark.py) builds one engine per model for its largest
ISL + OSL and runs every row on it with --kv_cache_free_gpu_mem_fraction 0.83. Results are
recorded in benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from seedchip import api  # noqa: E402
from seedchip.validate.replay import validate_e2e  # noqa: E402

DATA = ROOT.parent / "shared" / "data" / "e2e"
TABLES = {"trtllm_v017_offline_h100.csv": (0.95, False), "azure_h100_trtllm_offline.csv": (0.83, True)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="every 4th row of each table")
    ap.add_argument("--json", type=Path, help="write every row here")
    ap.add_argument("--calibration", default=None)
    ap.add_argument("--interval", action="store_true", help="80%% intervals per row and their coverage (slower)")
    ap.add_argument("--shares", action="store_true", help="the NVIDIA rows' error against the all-reduce's share")
    ap.add_argument("--missing-time", action="store_true",
                    help="the NVIDIA rows' extra wall time per simulated step and per generated token")
    args = ap.parse_args()
    rows = []
    t0 = time.perf_counter()
    for name, (frac, largest) in TABLES.items():
        path = DATA / name
        if args.quick:
            lines = path.read_text().splitlines()
            tmp = Path(tempfile.mkdtemp()) / name
            tmp.write_text("\n".join([lines[0]] + lines[1::4]) + "\n")
            path = tmp
        r = validate_e2e(str(path), calibration=args.calibration, kv_memory_fraction=frac,
                         build_for_largest=largest, interval=args.interval).to_dict()
        for x in r["rows"]:
            x["table"] = name
        rows += r["rows"]
    wall = time.perf_counter() - t0
    print(f"{'table':10s} {'model':16s} {'tp':>2s} {'isl/osl':>11s} {'measured':>9s} {'sim':>9s} {'err':>7s} "
          f"{'seqs':>5s} {'tok':>6s} {'pre':>5s}")
    for x in rows:
        err = f"{x['error'] * 100:+6.1f}%" if x["error"] is not None else "  fail"
        pred = f"{x['predicted']:9.0f}" if x["predicted"] else "        -"
        print(f"{x['table'][:10]:10s} {x['model']:16s} {x['tp']:2d} {x['isl']:5d}/{x['osl']:<5d} "
              f"{x['measured']:9.0f} {pred} {err} {x['max_num_seqs'] or 0:5d} {x['max_batched_tokens'] or 0:6d} "
              f"{x['num_preemptions'] or 0:5d}" + (f"  {x['note'][:60]}" if x["note"] else ""))
    errs = np.array([x["error"] for x in rows if x["error"] is not None])
    print(f"\nrows {len(rows)}, failed {sum(x['error'] is None for x in rows)}, "
          f"median |err| {np.median(np.abs(errs)) * 100:.1f}%, p90 {np.percentile(np.abs(errs), 90) * 100:.1f}%, "
          f"mean err {errs.mean() * 100:+.1f}%, wall {wall:.0f} s")
    inside = [x["inside_interval80"] for x in rows if x.get("inside_interval80") is not None]
    if inside:
        print(f"measurements inside their 80% interval: {sum(inside)} of {len(inside)} ({np.mean(inside):.0%})")
    for key in ("model", "tp"):
        groups = sorted({x[key] for x in rows})
        for g in groups:
            e = np.array([x["error"] for x in rows if x[key] == g and x["error"] is not None])
            if len(e):
                print(f"  {key} {g!s:16s} n={len(e):3d} median |err| {np.median(np.abs(e)) * 100:5.1f}% "
                      f"mean {e.mean() * 100:+6.1f}%")
    shapes = sorted({(x["isl"], x["osl"]) for x in rows})
    for s in shapes:
        e = np.array([x["error"] for x in rows if (x["isl"], x["osl"]) == s and x["error"] is not None])
        if len(e):
            print(f"  shape {s[0]:5d}/{s[1]:<5d} n={len(e):3d} median |err| {np.median(np.abs(e)) * 100:5.1f}% "
                  f"mean {e.mean() * 100:+6.1f}%")
    if args.shares:
        shares([x for x in rows if x["table"].startswith("trtllm") and x["error"] is not None])
    if args.missing_time:
        missing_time(args.calibration)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


def decode_shares(x: dict) -> dict:
    """Each op class's share of a row's decode step: the batch its limits and memory allow,
    at its mid-run context (a static estimate with the row's chip, engine and table's memory
    fraction; the NVIDIA table's rows are all fp8 weights and KV)."""
    kw = dict(chip=x["chip"], model=x["model"], num_chips=x["tp"], tp=x["tp"], weight_format="fp8",
              kv_format="fp8", engine=x["engine"], memory_fraction=TABLES[x["table"]][0], interval=False)
    memory = api.estimate(**kw, batch=1, input_len=x["isl"], output_len=x["osl"]).to_dict()["memory"]
    kv_tokens = memory["max_kv_tokens"]
    batch = max(1, min(x["max_num_seqs"] or 1, kv_tokens // (x["isl"] + x["osl"])))
    step = api.estimate(**kw, batch=batch, input_len=x["isl"] + x["osl"] // 2, output_len=2).to_dict()["decode"]
    return {k: v["time_s"] / step["time_s"] for k, v in step["by_class"].items()}


def shares(rows: list[dict]) -> None:
    """Mean error per TP beside the all-reduce's mean share, and least-squares lines of the
    error on that share and on TP > 1 (where the TP bias sits; nothing here is fitted into
    the model)."""
    err = np.array([x["error"] * 100 for x in rows])
    coll = np.array([decode_shares(x).get("collective", 0.0) for x in rows])
    multi = np.array([1.0 if x["tp"] > 1 else 0.0 for x in rows])
    print("\nNVIDIA rows: error against the all-reduce's share of a decode step")
    for tp in sorted({x["tp"] for x in rows}):
        sel = np.array([x["tp"] == tp for x in rows])
        print(f"  TP {tp}: n={sel.sum():3d} mean err {err[sel].mean():+6.1f}%  all-reduce share {coll[sel].mean():.2f}")
    for label, cols in (("err ~ a + b x share", [coll]), ("err ~ a + c x [TP > 1]", [multi]),
                        ("err ~ a + b x share + c x [TP > 1]", [coll, multi])):
        design = np.column_stack([np.ones_like(err)] + cols)
        coef = np.linalg.lstsq(design, err, rcond=None)[0]
        rms = float(np.sqrt(np.mean((design @ coef - err) ** 2)))
        print(f"  {label:36s} coefficients {np.round(coef, 1)}  RMS residual {rms:.1f}%")
    low = (multi > 0) & (coll < 0.15)
    print(f"  TP > 1 with the all-reduce under 15% of the step: n={low.sum()} mean err {err[low].mean():+.1f}%")


def missing_time(calibration: str | None) -> None:
    """The wall time each NVIDIA run took beyond its simulation (error x the simulated
    makespan), per simulated step and per generated token, averaged by model and TP over
    the decode-heavy rows (output >= 1,000 tokens) and the prompt-heavy ones: which unit a
    missing cost scales with. A diagnostic: nothing here enters the model."""
    from seedchip.validate.e2e import read_cases
    from seedchip.validate.replay import run_case
    name = "trtllm_v017_offline_h100.csv"
    groups: dict = {}
    for c in read_cases(str(DATA / name), "trtllm"):
        sim = run_case(c, calibration, TABLES[name][0])
        extra = sim["makespan_s"] * (sim["throughput_tokens_per_s"] / c.measured["out_tok_s"] - 1.0)
        steps = sum(e["steps"] for e in sim["engines"])
        kind = "decode" if c.osl >= 1000 else "prompt"
        tokens = sim["num_requests"] * c.osl
        per = (extra / steps * 1e3, extra / tokens * 1e6, tokens / steps)
        groups.setdefault((c.model, c.tp, kind), []).append(per)
    print("\nNVIDIA rows: wall time beyond the simulation (means over the group's rows)")
    print(f"  {'model':16s} {'tp':>2s} {'rows':8s} {'n':>2s} {'ms / step':>10s} {'us / token':>11s} "
          f"{'seqs / step':>12s}")
    for (model, tp, kind), v in sorted(groups.items()):
        a = np.array(v)
        print(f"  {model:16s} {tp:2d} {kind:8s} {len(a):2d} {a[:, 0].mean():10.2f} {a[:, 1].mean():11.1f} "
              f"{a[:, 2].mean():12.0f}")


if __name__ == "__main__":
    main()
