"""GPU power against public measurements: Llama-3.1-8B (bf16) on one H100 SXM under vLLM,
by batch size, against ML.ENERGY's leaderboard v3 figures (the only chip the power model
is fitted on; every other chip carries the fit through its spec).

    .venv/bin/python benchmarks/bench_power.py

Measured (ML.ENERGY, "LLM Inference Energy: A Longitudinal Analysis", 2026-02-09, figures
llama-power and llama-energy-per-token, ml-energy/blog commit b436eb50; values read off the
SVG markers, so about +-2%): average GPU power over the steady window and energy per output
token, vLLM 0.11.1, lm-arena-chat prompts. Lengths here: 634 in / 717 out, the means the
leaderboard reports for that task (an assumption: the runs sample real conversations).
Results are recorded in benchmarks/README.md.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

import seedchip  # noqa: E402

# max_num_seqs: (average GPU power W, J per output token)
MEASURED = {16: (513, 0.263), 32: (560, 0.165), 64: (610, 0.119), 96: (644, 0.103), 128: (669, 0.095),
            192: (688, 0.084), 256: (691, 0.077), 512: (688, 0.070)}


def main() -> None:
    t0 = time.perf_counter()
    print(f"{'batch':>5s} {'power W':>8s} {'meas':>5s} {'err':>5s} {'J/tok':>6s} {'meas':>6s} {'err':>5s} "
          f"{'tok/s':>6s} {'meas':>6s} {'err':>5s}")
    for b, (watts, jpt) in MEASURED.items():
        d = seedchip.simulate(chip="h100-sxm", model="llama-3.1-8b", engine="vllm", input_len=634, output_len=717,
                              num_requests=6 * b, offline=True, max_num_seqs=b, interval=False).to_dict()
        p = d["energy_j"] / d["makespan_s"]
        j = d["energy_j_per_token"]
        tps, meas_tps = d["throughput_tokens_per_s"], watts / jpt
        print(f"{b:5d} {p:8.0f} {watts:5d} {p / watts - 1:+5.0%} {j:6.3f} {jpt:6.3f} {j / jpt - 1:+5.0%} "
              f"{tps:6.0f} {meas_tps:6.0f} {tps / meas_tps - 1:+5.0%}")
    print(f"wall {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
