"""Compare the oracle with the public microbenchmark CSV (``metric, hardware, model,
setting, value, units, source``) for one chip: GEMM throughput vs shape, STREAM-style
HBM bandwidth and NCCL all-reduce bus bandwidth vs message size.

These rows judge the model: the shipped calibration is fitted on H100 kernel tables,
so rows of other chips (H200, ...) test how the calibration carries through specs.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ..calibrate.tables import read_csv
from ..hardware.catalog import load_chip
from ..perf import ops
from ..perf.calibration import load_calibration

UNITS = {"TFLOPS": 1e12, "TB/s": 1e12, "GB/s": 1e9}
SIZE_UNITS = {"B": 1, "KB": 1e3, "MB": 1e6, "GB": 1e9}  # nccl-tests prints decimal-rounded sizes


@dataclass(frozen=True)
class Comparison:
    kind: str
    setting: str
    measured: float
    predicted: float
    units: str
    source: str

    @property
    def error_pct(self) -> float:
        return (self.predicted / self.measured - 1.0) * 100.0

    def to_dict(self) -> dict:
        return {**asdict(self), "error_pct": self.error_pct}


def _nccl_bytes(text: str) -> float:
    m = re.match(r"message size=([0-9.]+)([KMG]?B)", text)
    if not m:
        raise ValueError(text)
    v = float(m.group(1)) * SIZE_UNITS[m.group(2)]
    # nccl-tests sizes are powers of two printed in rounded decimal units: snap to 2^n
    return float(2 ** round(np.log2(v)))


def compare(csv_path: str | Path, hardware_contains: str, chip: str, calibration: str | None = None,
            min_gemm_dim: int = 2048, min_allreduce_bytes: float = 1e6) -> list[Comparison]:
    spec = load_chip(chip)
    cal = load_calibration(calibration)
    out: list[Comparison] = []
    for r in read_csv(csv_path):
        if hardware_contains not in r["hardware"]:
            continue
        metric, setting = r["metric"], r["setting"]
        value = float(r["value"]) * UNITS.get(r["units"], 1.0)
        if metric.startswith("GEMM achieved TFLOPS") and "FP8" in metric:
            m, n, k = (int(x) for x in re.findall(r"[MNK]=(\d+)", setting))
            if min(m, n, k) < min_gemm_dim:
                continue
            c = ops.gemm(spec, cal, m, n, k, "fp8", "fp8", "bf16")
            out.append(Comparison("gemm_fp8_flops_per_s", setting, value, c.flops / c.time_s, "FLOP/s", r["source"]))
        elif metric.startswith("HBM bandwidth (STREAM") and setting.split("=")[-1] in ("Copy", "Add", "Triad", "Mul"):
            size = 2.0 ** 31
            reads = 2 if setting.endswith(("Add", "Triad")) else 1
            c = ops.vector(spec, cal, 0.0, size * (reads + 1))
            out.append(Comparison("stream_bytes_per_s", setting, value, c.hbm_bytes / c.time_s, "B/s", r["source"]))
        elif metric.startswith("all-reduce bus bandwidth (nccl") and "8 GPUs" in metric:
            size = _nccl_bytes(setting)
            if size < min_allreduce_bytes:
                continue
            c = ops.collective(spec, cal, "allreduce", size, 8)
            busbw = 2 * 7 / 8 * size / c.time_s
            out.append(Comparison("allreduce_busbw_bytes_per_s", setting, value, busbw, "B/s", r["source"]))
    return out


def summary(rows: list[Comparison]) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for kind in sorted({r.kind for r in rows}):
        err = np.array([abs(r.error_pct) for r in rows if r.kind == kind])
        out[kind] = {"n": int(len(err)), "median_abs_pct": float(np.median(err)), "max_abs_pct": float(err.max())}
    return out
