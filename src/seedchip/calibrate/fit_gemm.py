"""GEMM calibration from measured GEMM latencies (the aiconfigurator "gemm" table).

The table's ``fp8`` (per-tensor) and ``fp8_block`` rows are TensorRT-LLM's fp8
``Linear.forward`` on a bf16 input: the activations are quantized inside the timed call
(per-tensor with a dynamic scale: zero the scale, an amax pass, a quantize pass;
1x128 block scales: one per-token-group pass) before the fp8 GEMM. Each such row is
priced as :func:`ops.act_quant_model` (vector kernels with the vector overhead) + the fp8
GEMM (:func:`ops.gemm_model`), so the GEMM parameters describe the GEMM kernel alone and
the vector-kernel overhead is fitted jointly from the difference (per-tensor rows pay
three kernels, block rows one, bf16 rows none).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..formats import get_format
from ..hardware.spec import ChipSpec
from ..perf import ops
from ..perf.calibration import Calibration, GemmCal, VectorCal
from .common import error_stats, lsq, subsample
from .tables import columns, read_csv

GEMM_DTYPES = {"bfloat16": "bf16", "fp8": "fp8", "fp8_block": "fp8-block"}
# x: compute eff bf16, fp8, fp8-block; memory eff bf16, fp8; overlap p; overhead bf16, fp8; vector overhead
GEMM_X0 = np.array([0.8, 0.7, 0.55, 0.8, 0.8, 3.0, 3e-6, 3e-6, 3e-6])
GEMM_LO = np.array([0.05, 0.05, 0.05, 0.05, 0.05, 1.0, 0.0, 0.0, 0.0])
GEMM_HI = np.array([1.0, 1.0, 1.0, 1.0, 1.0, 20.0, 50e-6, 50e-6, 20e-6])
GEMM_SCALE = np.array([0.1, 0.1, 0.1, 0.1, 0.1, 1.0, 1e-6, 1e-6, 1e-6])


@dataclass
class GemmData:
    m: np.ndarray
    n: np.ndarray
    k: np.ndarray
    fmt: np.ndarray
    t: np.ndarray


def load_gemm(folder: Path) -> GemmData:
    rows = read_csv(Path(folder) / "gemm.csv.gz")
    c = columns(rows, {"gemm_dtype": str, "m": float, "n": float, "k": float, "latency_s": float})
    return GemmData(c["m"], c["n"], c["k"], np.array([GEMM_DTYPES.get(d, d) for d in c["gemm_dtype"]]),
                    c["latency_s"])


def gemm_params(cal: Calibration) -> np.ndarray:
    """The fitted GEMM parameters of a calibration, as the vector :func:`with_gemm` takes."""
    return np.array([cal.gemm_efficiency("bf16"), cal.gemm_efficiency("fp8"), cal.gemm_efficiency("fp8-block"),
                     cal.gemm_memory_efficiency("bf16"), cal.gemm_memory_efficiency("fp8"), cal.gemm.overlap_p,
                     cal.gemm_overhead("bf16"), cal.gemm_overhead("fp8"), cal.vector.overhead_s])


def with_gemm(base: Calibration, x, block: bool = True) -> Calibration:
    """``base`` with GEMM parameters ``x`` (:data:`GEMM_X0` order); ``block``: fp8-block
    GEMMs carry their own compute efficiency (else they take fp8's)."""
    eff = {"bf16": float(x[0]), "fp8": float(x[1])}
    if block:
        eff["fp8-block"] = float(x[2])
    g = GemmCal(compute_efficiency=eff, memory_efficiency={"bf16": float(x[3]), "fp8": float(x[4])},
                overlap_p=float(x[5]), overhead_s={"bf16": float(x[6]), "fp8": float(x[7])},
                min_tile=base.gemm.min_tile)
    vec = VectorCal(memory_efficiency=base.vector.memory_efficiency, overhead_s=float(x[8]))
    return base.model_copy(update={"gemm": g, "vector": vec})


def gemm_predict(chip: ChipSpec, cal: Calibration, d: GemmData, sel: np.ndarray,
                 quantize_activations: bool = True) -> np.ndarray:
    """Predicted time of the selected rows. ``quantize_activations``: a narrow-format row
    also quantizes its m x k bf16 input inside the timed call (the TensorRT-LLM tables);
    False for rows timed on operands already in the narrow format (``torch._scaled_mm``)."""
    out = np.empty(int(sel.sum()))
    idx = np.flatnonzero(sel)
    bf16 = get_format("bf16")
    for f in np.unique(d.fmt[idx]):
        fm = get_format(f)
        j = d.fmt[idx] == f
        m, n, k = d.m[idx][j], d.n[idx][j], d.k[idx][j]
        t = ops.gemm_model(chip, cal, m, n, k, fm, fm, bf16)["time_s"]
        if quantize_activations and fm.bits < 16:
            t = t + ops.act_quant_model(chip, cal, m * k, fm, dynamic=True)["time_s"]
        out[j] = t
    return out


def gemm_report(chip: ChipSpec, cal: Calibration, d: GemmData, train: np.ndarray) -> dict:
    report = {}
    for f in ("bf16", "fp8", "fp8-block"):
        for label, mask in (("train", train), ("holdout", ~train)):
            sel = mask & (d.fmt == f)
            if sel.any():
                report[f"gemm_{f}_{label}"] = error_stats(gemm_predict(chip, cal, d, sel), d.t[sel])
    return report


def fit_gemm(chip: ChipSpec, base: Calibration, d: GemmData, train: np.ndarray,
             fit_vector_overhead: bool = True) -> tuple[Calibration, dict]:
    """Least squares on log(predicted / measured) over (at most 30,000 of) the training
    rows, in three steps: (1) all formats together, which identifies the vector-kernel
    overhead (the per-tensor fp8 rows run three quantization kernels, the block rows
    one, bf16 none); (2) with it fixed, the GEMM parameters from the bf16 and fp8 rows;
    (3) the block-scaled kernel's compute efficiency from its rows. The block kernel's
    rows do not pull the shared overlap p and efficiencies toward its own (slower,
    per-block promotion) behaviour. ``fit_vector_overhead`` False keeps ``base``'s."""
    has_block = bool((train & (d.fmt == "fp8-block")).any())
    x0 = GEMM_X0.copy()
    x0[8] = base.vector.overhead_s

    def step(x, fmts, free, seed):
        sub = subsample(train & np.isin(d.fmt, fmts), 30000, seed)
        if not sub.any():
            return x
        return lsq(lambda x: np.log(gemm_predict(chip, with_gemm(base, x, has_block), d, sub) / d.t[sub]),
                   x, GEMM_LO, GEMM_HI, GEMM_SCALE, free)

    gemm_free = np.array([True, True, False, True, True, True, True, True, False])
    x = x0
    if fit_vector_overhead and has_block:
        x = step(x, ["bf16", "fp8", "fp8-block"], gemm_free | np.array([0, 0, 1, 0, 0, 0, 0, 0, 1], bool), 0)
    x = step(x, ["bf16", "fp8"], gemm_free, 1)
    if has_block:
        x = step(x, ["fp8-block"], np.arange(9) == 2, 2)
    cal = with_gemm(base, x, has_block)
    return cal, gemm_report(chip, cal, d, train)
