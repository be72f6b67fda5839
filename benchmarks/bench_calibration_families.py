"""Leave-one-shape-family-out errors of the table calibration (seedchip.calibrate.families).

For each family of shapes (a head size, a GQA ratio, long contexts, big batches, sliding
windows, fp8 KV; for GEMMs skinny or huge m, wide n, deep or shallow k) the op class is
re-fitted on the H100 tables without that family and priced on it. Prints a table and,
with --json, writes the rows. A few minutes on two cores.

    python benchmarks/bench_calibration_families.py [--ops gemm,prefill,decode] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from seedchip.calibrate.families import format_table, leave_one_family_out
from seedchip.hardware.catalog import load_chip
from seedchip.perf.calibration import load_calibration

TABLES = Path(__file__).resolve().parents[2] / "shared" / "data" / "calibration" / "h100_sxm"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tables", type=Path, default=TABLES)
    p.add_argument("--ops", default="gemm,prefill,decode")
    p.add_argument("--calibration", default="h100-sxm")
    p.add_argument("--json", type=Path)
    a = p.parse_args(argv)
    t0 = time.perf_counter()
    rows = leave_one_family_out(a.tables, load_chip("h100-sxm"), load_calibration(a.calibration),
                                tuple(a.ops.split(",")))
    print(format_table(rows))
    print(f"({time.perf_counter() - t0:.0f} s)")
    if a.json:
        a.json.write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
