"""Serving-simulator speed: simulated requests per second of wall time, on one core.

    python benchmarks/bench_serve.py            # Azure conversation trace (cold + warm) and 100k synthetic
    python benchmarks/bench_serve.py --million  # also the 1,000,000-request synthetic run (minutes)

Each case runs in a fresh process (so "cold" includes filling the oracle's caches);
peak memory is the process's maximum resident set size.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[var] = "1"

ROOT = Path(__file__).resolve().parent.parent
TRACE = ROOT.parent / "shared" / "data" / "traces" / "azure_llm_2023_conv.csv"

CASES = {
    "azure-conv 70b tp8": dict(chip="h200-sxm", model="llama-3.1-70b", num_chips=8, tp=8, weight_format="fp8",
                               kv_format="fp8", trace=str(TRACE)),
    "chat 100k 8b": dict(chip="h200-sxm", model="llama-3.1-8b", workload="chat", qps=8.0, num_requests=100_000,
                         seed=1),
    "chat 1M 8b": dict(chip="h200-sxm", model="llama-3.1-8b", workload="chat", qps=8.0, num_requests=1_000_000,
                       seed=1),
}


def child(name: str) -> None:
    import resource

    import seedchip
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {0})
    kw = dict(CASES[name], interval=False)   # the simulation itself (intervals add 8 short perturbed runs)
    t0 = time.perf_counter()
    r = seedchip.simulate(**kw).to_dict()
    cold = time.perf_counter() - t0
    warm = None
    if r["num_requests"] <= 20_000:
        t0 = time.perf_counter()
        seedchip.simulate(**kw)
        warm = time.perf_counter() - t0
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    steps = sum(e["steps"] for e in r["engines"])
    macro = sum(e["macro_steps"] for e in r["engines"])
    print(json.dumps({"case": name, "requests": r["num_requests"], "cold_s": cold, "warm_s": warm,
                      "steps": steps, "macro_steps": macro, "peak_rss_mb": rss,
                      "simulated_s": r["makespan_s"], "json_kb": len(json.dumps(r)) / 1024}))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--million", action="store_true")
    ap.add_argument("--child")
    a = ap.parse_args()
    if a.child:
        child(a.child)
        return
    names = ["azure-conv 70b tp8", "chat 100k 8b"] + (["chat 1M 8b"] if a.million else [])
    print(f"seedchip serving benchmark, {time.strftime('%Y-%m-%d')}, python {platform.python_version()}, "
          f"{os.cpu_count()} logical CPUs, one pinned")
    print(f"{'case':22s} {'requests':>10s} {'steps':>10s} {'macro':>9s} {'cold s':>8s} {'warm s':>8s} "
          f"{'req/s (cold)':>13s} {'peak MB':>8s} {'JSON kB':>8s}")
    for name in names:
        out = subprocess.run([sys.executable, __file__, "--child", name], capture_output=True, text=True,
                             check=True).stdout
        d = json.loads(out.strip().splitlines()[-1])
        warm = f"{d['warm_s']:.2f}" if d["warm_s"] is not None else "—"
        print(f"{name:22s} {d['requests']:>10,} {d['steps']:>10,} {d['macro_steps']:>9,} {d['cold_s']:>8.2f} "
              f"{warm:>8s} {d['requests'] / d['cold_s']:>13,.0f} {d['peak_rss_mb']:>8.0f} {d['json_kb']:>8.0f}")


if __name__ == "__main__":
    main()
