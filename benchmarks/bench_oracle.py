"""How fast the oracle answers, on one core.

    python benchmarks/bench_oracle.py            # full run (about a minute)
    python benchmarks/bench_oracle.py --quick    # fewer evaluations (a few seconds)
    python benchmarks/bench_oracle.py --profile  # also cProfile one cold uncached pass

Rows (each timed with time.perf_counter, best of 3 repeats):

  step cached          the same decode step priced again and again (the simulator's
                       steady state: the step cache answers); the step is passed as
                       the normalized tuple ``decode_step`` returns
  step cached (list)   the same, passed as a list of (new_tokens, context) pairs, so
                       every call normalizes the step before the cache lookup
  decode cold          distinct decode steps (context grows by one per call), every
                       cache cleared before the pass: all op caches start empty
  decode warm-op       the same distinct steps again with only the step cache cleared:
                       every op is answered from the op caches, the step is rebuilt
  mixed cold           distinct chunked-prefill steps (8 decode sequences + one
                       512-token chunk whose cached context grows per call), every
                       cache cleared before the pass
  mixed warm-op        the same steps, op caches warm, step cache cleared
  estimate cold        one seedchip.estimate of the headline workload, caches cleared
  estimate warm        the same estimate again, caches warm

Workload: Llama-3.1-70B on 8 x h200-sxm, tp 8, fp8 weights and KV cache, batch 64,
context 2048 (the headline deployment); the default calibration (h100-sxm).
"""

from __future__ import annotations

import os

# one core: no BLAS / OpenMP thread pools (set before numpy is imported)
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS",
             "VECLIB_MAXIMUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import cProfile  # noqa: E402
import datetime  # noqa: E402
import io  # noqa: E402
import platform  # noqa: E402
import pstats  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

import seedchip  # noqa: E402
from seedchip.perf import ops, step  # noqa: E402

MODEL = "llama-3.1-70b"
DEPLOYMENT = dict(chip="h200-sxm", num_chips=8, tp=8, weight_format="fp8", kv_format="fp8")
BATCH, CONTEXT = 64, 2048
HEADLINE = dict(model=MODEL, **DEPLOYMENT, batch=BATCH, input_len=2048, output_len=256)
REPEATS = 3
TARGET_CACHED_PER_S = 20_000

OP_CACHES = (ops.gemm, ops.prefill_attention, ops.decode_attention, ops.vector, ops.collective)


def clear_all() -> None:
    step._step_cost_cached.cache_clear()
    for f in OP_CACHES:
        f.cache_clear()


def clear_step() -> None:
    step._step_cost_cached.cache_clear()


def pin_one_core() -> str:
    """Pin the process to one CPU where the OS allows it; say which."""
    if hasattr(os, "sched_setaffinity"):
        try:
            cpu = min(os.sched_getaffinity(0))
            os.sched_setaffinity(0, {cpu})
            return f"pinned to CPU {cpu}"
        except OSError:
            pass
    return "not pinned (single-threaded)"


def cpu_name() -> str:
    """platform.processor(), or the model name Linux reports when that is empty."""
    name = platform.processor()
    if name and name not in ("x86_64", "aarch64", "arm64"):
        return name
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.lower().startswith(("model name", "hardware", "cpu model")):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return name or "(processor not reported)"


def best_of(run, n_evals: int, setup=None) -> float:
    """Best wall time of REPEATS runs of ``run`` (``setup`` before each, untimed)."""
    best = float("inf")
    for _ in range(REPEATS):
        if setup:
            setup()
        t0 = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - t0)
    return best


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer evaluations per row")
    ap.add_argument("--profile", action="store_true", help="cProfile one cold uncached decode pass")
    args = ap.parse_args(argv)

    n_cached = 20_000 if args.quick else 200_000
    n_uncached = 200 if args.quick else 2_000
    n_mixed = 100 if args.quick else 1_000

    pinned = pin_one_core()
    model = seedchip.load_model(MODEL)
    dep = seedchip.make_deployment(DEPLOYMENT["chip"], **{k: v for k, v in DEPLOYMENT.items() if k != "chip"})
    step_cost = seedchip.step_cost

    rows: list[tuple[str, int, float]] = []

    # (a) cached: the same decode step, again and again
    same = step.decode_step(BATCH, CONTEXT)
    same_list = [(1, CONTEXT)] * BATCH
    step_cost(model, dep, same)  # fill the cache

    def cached():
        for _ in range(n_cached):
            step_cost(model, dep, same)

    def cached_list():
        for _ in range(n_cached):
            step_cost(model, dep, same_list)

    rows.append(("step cached", n_cached, best_of(cached, n_cached)))
    rows.append(("step cached (list)", n_cached, best_of(cached_list, n_cached)))

    # (b) uncached: distinct decode steps (the context grows by one per call)
    decode_steps = [step.decode_step(BATCH, CONTEXT + i) for i in range(n_uncached)]

    def decode_pass():
        for s in decode_steps:
            step_cost(model, dep, s)

    rows.append(("decode cold", n_uncached, best_of(decode_pass, n_uncached, setup=clear_all)))
    rows.append(("decode warm-op", n_uncached, best_of(decode_pass, n_uncached, setup=clear_step)))

    # (c) mixed chunked prefill: 8 decode sequences + one 512-token chunk, all distinct
    mixed_steps = [tuple((1, CONTEXT + j, True) for j in range(8)) + ((512, 512 * (i + 1), i % 4 == 3),)
                   for i in range(n_mixed)]

    def mixed_pass():
        for s in mixed_steps:
            step_cost(model, dep, s)

    rows.append(("mixed cold", n_mixed, best_of(mixed_pass, n_mixed, setup=clear_all)))
    rows.append(("mixed warm-op", n_mixed, best_of(mixed_pass, n_mixed, setup=clear_step)))

    # (d) one estimate of the headline workload, end to end
    def one_estimate():
        seedchip.estimate(**HEADLINE)

    rows.append(("estimate cold", 1, best_of(one_estimate, 1, setup=clear_all)))
    rows.append(("estimate warm", 1, best_of(one_estimate, 1)))

    print(f"seedchip {seedchip.__version__} oracle benchmark, {datetime.date.today().isoformat()}")
    print(f"machine: {platform.machine()}, {cpu_name()} (platform.processor() = {platform.processor()!r}), "
          f"{os.cpu_count()} logical CPUs, {pinned}")
    print(f"python {platform.python_version()} ({platform.python_implementation()}), numpy {np.__version__}, "
          f"{platform.system()} {platform.release()}")
    print(f"workload: {MODEL} on {DEPLOYMENT['num_chips']} x {DEPLOYMENT['chip']} (tp {DEPLOYMENT['tp']}, "
          f"{DEPLOYMENT['weight_format']} weights, {DEPLOYMENT['kv_format']} KV), decode batch {BATCH}, "
          f"context {CONTEXT}; best of {REPEATS}{', --quick' if args.quick else ''}")
    print()
    print(f"{'row':<20} {'evaluations':>11} {'best s':>9} {'evals/s':>11} {'us/eval':>11}")
    for name, n, t in rows:
        print(f"{name:<20} {n:>11,} {t:>9.3f} {n / t:>11,.0f} {t / n * 1e6:>11,.1f}")
    cached_rate = rows[0][1] / rows[0][2]
    verdict = "met" if cached_rate >= TARGET_CACHED_PER_S else "NOT met"
    print()
    print(f"target >= {TARGET_CACHED_PER_S:,} cached step evaluations/s on one core: {verdict} "
          f"({cached_rate:,.0f}/s)")

    if args.profile:
        clear_all()
        prof = cProfile.Profile()
        prof.enable()
        decode_pass()
        prof.disable()
        out = io.StringIO()
        stats = pstats.Stats(prof, stream=out)
        print(f"\ncProfile, one cold pass of {n_uncached} distinct decode steps:")
        stats.sort_stats("tottime").print_stats(10)
        stats.sort_stats("cumulative").print_stats(15)
        print(out.getvalue())
    return 0


if __name__ == "__main__":
    sys.exit(main())
