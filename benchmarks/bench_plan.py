"""Planner benchmark: how long the procurement MILP takes on a plan of 12 quarters x 6 devices
x 6 model classes (the issue's target: "solves in seconds").

    .venv/bin/python benchmarks/bench_plan.py            # the rows below, best of 3
    .venv/bin/python benchmarks/bench_plan.py --repeat 5 --large

The scenario is synthetic but shaped like examples/plan/two_year_plan.yaml: three generations
of our chip (available from quarter 0, 4 and 8, production ramps), three GPUs (one with a lead
time), an installed base, HBM supply, power and budget limits that bind, and demand growing 12%
a quarter. Capacities are given as overrides (deterministic numbers from a seeded generator), so
the timing is the planner's alone: no simulation. Every row is timed with time.perf_counter.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_v, "1")

import numpy as np  # noqa: E402

MODELS = ["llama-3.1-8b", "llama-3.1-70b", "qwen3-32b", "mixtral-8x7b", "qwen3-235b-a22b", "deepseek-v3",
          "llama-3.1-405b", "gpt-oss-120b", "qwen3-30b-a3b", "mistral-7b"]
GPUS = [("h200-sxm", 30000, 6, 0), ("b200", 40000, 8, 1), ("mi325x", 22000, 8, 0), ("h100-sxm", 25000, 5, 0),
        ("mi300x", 18000, 8, 0), ("gaudi3", 15625, 8, 0), ("trainium2", 12000, 4, 0)]


def synthetic(quarters: int, num_devices: int, num_models: int, seed: int = 0, hbm_scale: float = 1.0) -> dict:
    rng = np.random.default_rng(seed)
    num_own = num_devices // 2
    devs = {}
    for g in range(num_own):
        start = min(4 * g, quarters - 1)
        ramp = [0.0] * start + [float(min(20000 * (i + 1), 90000)) for i in range(quarters - start)]
        devs[f"gen{g + 1}"] = {"kind": "own", "chip": "seedchip-ref", "unit_cost_usd": 7000 + 1500 * g,
                               "system_cost_usd_per_chip": 4000, "available_from": start,
                               "production_cap_chips": ramp, "purchase_unit_chips": 16, "host_power_w_per_chip": 300}
    for chip, price, stacks, lead in GPUS[: num_devices - num_own]:
        devs[chip] = {"kind": "gpu", "chip": chip, "unit_cost_usd": price, "system_cost_usd_per_chip": 4000,
                      "lead_time_quarters": lead, "production_cap_chips": 80000, "purchase_unit_chips": 8,
                      "host_power_w_per_chip": 400}
    demand = {}
    for m in range(num_models):
        demand[f"class{m + 1}"] = {"model": MODELS[m % len(MODELS)], "workload": "chat",
                                   "slo": {"ttft_p99": "2s", "tpot_p99": "100ms"}, "peak_to_average": 1.5,
                                   "tokens_per_day": {"start": float(rng.uniform(1e11, 6e11)),
                                                      "growth_per_quarter": 0.12}}
    overrides = []
    for d, spec in devs.items():
        speed = 1.25 + 0.15 * int(d[3:]) if spec["kind"] == "own" else float(rng.uniform(0.6, 1.4))
        for m in demand:
            overrides.append({"device": d, "demand": m, "num_chips": 8,
                              "tokens_per_s": float(rng.uniform(300, 3000) * speed),
                              "energy_j_per_token": float(rng.uniform(0.2, 2.0) / speed)})
    return {"name": f"bench-{quarters}q-{num_devices}d-{num_models}m", "start": "2027Q1",
            "horizon_quarters": quarters, "capacity_derate": 0.8, "discount_rate_per_year": 0.08,
            "datacenter": {"power_mw": {"start": 80.0 * num_models, "growth_per_quarter": 0.1}, "pue": 1.25,
                           "usd_per_kwh": 0.08},
            "budget": {"capex_usd_per_year": 20e9},
            "hbm": {"supply_stacks": {"start": 100000 * hbm_scale, "growth_per_quarter": 0.15}},
            "demand": demand, "devices": devs,
            "installed_base": [{"device": GPUS[0][0], "chips": 60000, "age_quarters": 4}],
            "capacity_override": overrides}


def timed(fn, repeat: int) -> tuple[float, object]:
    best, out = float("inf"), None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--large", action="store_true", help="also 20 quarters x 10 devices x 10 classes")
    args = ap.parse_args(argv)
    if sys.platform.startswith("linux"):
        try:
            os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
        except OSError:
            pass
    from seedchip.fleet import apply_what_ifs, build_problem, parse_scenario, plan, resolve_capacities, solve_problem
    import scipy

    sizes = [(12, 6, 6)] + ([(20, 10, 10)] if args.large else [])
    print(f"{platform.python_implementation()} {platform.python_version()}, NumPy {np.__version__}, "
          f"SciPy {scipy.__version__}, {os.cpu_count()} logical CPUs, pinned to one; best of {args.repeat}")
    print(f"{'row':52s} {'status':>10s} {'vars':>6s} {'int':>5s} {'rows':>5s} {'best s':>8s}")
    for q, d, m in sizes:
        s = synthetic(q, d, m)
        sc = parse_scenario(s)
        p = build_problem(sc, resolve_capacities(sc))
        tag = f"{q}q x {d} devices x {m} classes"
        rows = [
            (f"plan() end to end, {tag}", lambda: plan(s).to_dict()),
            (f"solve (MILP + LP duals), {tag}", lambda: solve_problem(p).to_dict()),
            (f"what-if hbm_supply=-30%, {tag}",
             lambda: solve_problem(apply_what_ifs(p, ["hbm_supply=-30%"])[0]).to_dict()),
            (f"infeasible (explain + best effort), {tag}",
             lambda: solve_problem(apply_what_ifs(p, ["power=-60%"])[0]).to_dict()),
        ]
        for name, fn in rows:
            t, out = timed(fn, args.repeat)
            i = out["inputs"]
            print(f"{name:52s} {out['status']:>10s} {i['num_variables']:>6d} {i['num_integer']:>5d} "
                  f"{i['num_constraints']:>5d} {t:>8.3f}")


if __name__ == "__main__":
    main()
