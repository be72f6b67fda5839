"""Design points per minute of `seedchip explore` on a static-batch objective over two models,
with 1 and 2 local workers (and Ray, when installed and --ray is given).

    .venv/bin/python benchmarks/bench_explore.py            # full run, ~1 minute on 2 cores
    .venv/bin/python benchmarks/bench_explore.py --quick    # 4x fewer points
    .venv/bin/python benchmarks/bench_explore.py --ray      # also a local Ray cluster

Workload (every point): llama-3.1-70b (fp8, the first of tp 2 / 4 / 8 that fits) and
qwen3-235b-a22b (fp8, ep 4 / 8), each one static batch of 64 requests x 1024 input and 256
output tokens; objectives tokens/$ of TCO, tokens/J, tokens/s per chip. Points: random
draws over bf16 FLOP/s (500-1500 TFLOP/s), SRAM, HBM stacks and generation, link bandwidth
and process node, on seedchip-ref. Rows:

  example    the example sweep, examples/explore/inference_asic.yaml, its whole grid (432 points
             at full fidelity: every deployment, a batch search per scenario, 4,096-token decode),
             run as `seedchip explore ... --search grid --workers N` in a fresh process
  estimate   the workload above at seedchip.estimate's fidelity: 8 prefill steps + every one of
             the 255 decode steps
  sampled-9  the same prefill steps + decode at 9 contexts (trapezoid), ~1% from estimate

Each row is one sweep into a fresh directory, timed from the first point to the last stored
(pool start-up included); points/min = stored points / that time x 60.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time

for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS",
            "VECLIB_MAXIMUM_THREADS"):
    os.environ.setdefault(var, "1")

SPACE = """\
name: bench-explore
base_chip: seedchip-ref
baseline: null
axes:
  bf16_flops_per_s: {{low: 500 TFLOP/s, high: 1500 TFLOP/s}}
  sram_mb: [64, 128, 256]
  hbm_stacks: [4, 6, 8]
  hbm_generation: [hbm3e, hbm4]
  link_bw_per_direction: [400 GB/s, 800 GB/s]
  process_node: [tsmc-n4, tsmc-n3]
workload:
  - model: llama-3.1-70b
    weight_format: fp8
    kv_format: fp8
    deployments: [{{num_chips: 2, tp: 2}}, {{num_chips: 4, tp: 4}}, {{num_chips: 8, tp: 8}}]
    scenarios: [{{name: chat, batch: 64, input_len: 1024, output_len: 256}}]
  - model: qwen3-235b-a22b
    weight_format: fp8
    kv_format: fp8
    deployments: [{{num_chips: 4, tp: 4, ep: 4}}, {{num_chips: 8, tp: 8, ep: 8}}]
    scenarios: [{{name: chat, batch: 64, input_len: 1024, output_len: 256}}]
search: {{method: random, seed: {seed}}}
fidelity: {{decode_samples: {samples}}}
"""


EXAMPLE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "examples", "explore", "inference_asic.yaml")


def run_example(workers: int) -> dict:
    """The README's example sweep, its whole grid (432 points, full fidelity), run as a user
    runs it: `seedchip explore` in a fresh process (its own set-up overlaps the pool's
    start-up, as it does from the command line)."""
    out = tempfile.mkdtemp(prefix="bench-explore-")
    try:
        cmd = [sys.executable, "-m", "seedchip.cli.main", "explore", EXAMPLE, "--out", os.path.join(out, "run"),
               "--search", "grid", "--workers", str(workers), "--no-plot", "--json"]
        d = json.loads(subprocess.run(cmd, capture_output=True, text=True, check=True).stdout)
        return {"points": d["num_new"], "feasible": d["num_feasible"], "s": d["eval_s"],
                "per_min": d["num_new"] / d["eval_s"] * 60.0, "backend": d["backend"]}
    finally:
        shutil.rmtree(out, ignore_errors=True)


def run(samples, points: int, workers: int, use_ray: bool, seed: int) -> dict:
    from seedchip.explore import explore, parse_space
    space = parse_space(SPACE.format(samples="null" if samples is None else samples, seed=seed), "bench")
    out = tempfile.mkdtemp(prefix="bench-explore-")
    try:
        r = explore(space, out=out, trials=points, workers=workers, use_ray=use_ray, plot=False)
        d = r.to_dict()
        return {"points": d["num_new"], "feasible": d["num_feasible"], "s": r.eval_s,
                "per_min": d["num_new"] / r.eval_s * 60.0, "backend": r.backend}
    finally:
        shutil.rmtree(out, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="4x fewer points")
    ap.add_argument("--ray", action="store_true", help="also run on a local Ray cluster (needs ray)")
    args = ap.parse_args()
    scale = 4 if args.quick else 1
    cpus = os.cpu_count()
    print(f"{time.strftime('%Y-%m-%d')}  {platform.machine()}  {cpus} logical CPUs  CPython {platform.python_version()}")
    rows = []
    for workers in (1, 2):
        r = run_example(workers)
        rows.append(("example", f"{workers} worker{'s' if workers > 1 else ''} ({r['backend']})", r))
    for label, samples, n in (("estimate", None, 1600 // scale), ("sampled-9", 9, 1600 // scale)):
        # different seeds per row: every row prices fresh chips (the oracle's caches are per process)
        for i, workers in enumerate((1, 2)):
            r = run(samples, n, workers, False, seed=10 * i + (0 if samples is None else 1))
            rows.append((label, f"{workers} worker{'s' if workers > 1 else ''} ({r['backend']})", r))
        if args.ray:
            r = run(samples, n, 1, True, seed=99)
            rows.append((label, f"ray ({r['backend']})", r))
    print(f"{'fidelity':10s} {'backend':26s} {'points':>7s} {'feasible':>8s} {'seconds':>8s} {'points/min':>11s} {'speed-up':>8s}")
    base = {}
    for label, backend, r in rows:
        base.setdefault(label, r["per_min"])
        print(f"{label:10s} {backend:26s} {r['points']:7d} {r['feasible']:8d} {r['s']:8.1f} {r['per_min']:11,.0f} "
              f"{r['per_min'] / base[label]:7.2f}x")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
