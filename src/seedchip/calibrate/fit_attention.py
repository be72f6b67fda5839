"""Attention calibration from measured prefill (context) and decode (generation)
attention latencies, with the oracle's own equations (:mod:`seedchip.perf.attention`).

Prefill and decode are fitted separately (they share no parameter), each by soft-L1
least squares on log(predicted / measured) over (at most 20,000 of) the training rows.
Parameters are named by their field in :class:`AttentionCal` (``field`` or
``field.key`` for a per-kernel or per-class table), so a caller can free a subset
(:mod:`seedchip.calibrate.measured` does).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..formats import get_format
from ..hardware.spec import ChipSpec
from ..perf import kernels, ops
from ..perf.attention import decode_attention_model, prefill_attention_model
from ..perf.calibration import AttentionCal, Calibration
from .common import error_stats, lsq, subsample
from .tables import columns, holdout_mask, read_csv

# (name, start, lower, upper, scale); a kernel or class starts where its sibling does (no prior
# from a fit), so a family left out of a fit (seedchip.calibrate.families) takes a neutral value
PREFILL_PARAMS = (
    ("prefill_compute_efficiency.bf16", 0.6, 0.05, 1.0, 0.1),
    ("prefill_compute_efficiency.fp8", 0.6, 0.05, 1.0, 0.1),
    ("softmax_flops_per_pair", 10.0, 0.0, 200.0, 1.0),
    ("softmax_overlap_p", 2.0, 1.0, 50.0, 1.0),
    ("prefill_memory_efficiency", 0.6, 0.05, 1.0, 0.1),
    ("prefill_unit_s", 2e-6, 0.0, 50e-6, 1e-6),
    ("prefill_window_unit_s", 2e-6, 0.0, 50e-6, 1e-6),
    ("prefill_overhead_s", 10e-6, 0.0, 50e-6, 1e-6),
    ("overlap_p", 2.0, 1.0, 50.0, 1.0),
)
DECODE_PARAMS = (
    ("core_stream_per_sram_byte", 1.1e5, 1e3, 1e8, 1e4),
    ("l2_reread_speedup", 2.0, 1.0, 20.0, 1.0),
    ("decode_compute_efficiency", 0.5, 0.01, 1.0, 0.1),
    ("decode_unit_s.per_head", 2e-6, 0.0, 30e-6, 1e-6),
    ("decode_unit_s.grouped_16bit", 2e-6, 0.0, 30e-6, 1e-6),
    ("decode_unit_s.grouped_8bit", 2e-6, 0.0, 30e-6, 1e-6),
    ("decode_unit_s_per_head_dim", 0.1e-6, 0.0, 5e-6, 1e-7),
    ("decode_overhead_s.per_head", 6e-6, 0.0, 30e-6, 1e-6),
    ("decode_overhead_s.grouped_16bit", 6e-6, 0.0, 30e-6, 1e-6),
    ("decode_overhead_s.grouped_8bit", 6e-6, 0.0, 30e-6, 1e-6),
    ("decode_overlap_p", 3.0, 1.0, 50.0, 1.0),
)


def get_params(a: AttentionCal, spec) -> np.ndarray:
    out = []
    for name, x0, *_ in spec:
        field, _, key = name.partition(".")
        v = getattr(a, field)
        v = (v.get(key, x0) if isinstance(v, dict) else v) if v is not None else x0
        out.append(float(v))
    return np.array(out)


def set_params(cal: Calibration, spec, x) -> Calibration:
    """``cal`` with the named attention parameters set to ``x``."""
    data = cal.attention.model_dump()
    for (name, *_), v in zip(spec, x):
        field, _, key = name.partition(".")
        if key:
            data[field] = {**(data.get(field) or {}), key: float(v)}
        else:
            data[field] = float(v)
    return cal.model_copy(update={"attention": AttentionCal.model_validate(data)})


def attn_cols(rows):
    return columns(rows, {"batch_size": float, "isl": float, "num_heads": float, "num_key_value_heads": float,
                          "head_dim": float, "window_size": float, "attn_dtype": str, "kv_cache_dtype": str,
                          "step": float, "latency_s": float})


def _fmt(dtype: str) -> str:
    return {"bfloat16": "bf16", "fp8": "fp8", "float16": "fp16"}.get(dtype, dtype)


def prefill_predict(chip: ChipSpec, cal: Calibration, c: dict, sel: np.ndarray) -> np.ndarray:
    """Predicted prefill attention time of the selected rows (``batch_size`` sequences of
    ``isl`` new tokens each, no cached context). With an 8-bit KV cache the kernel runs
    in fp8 (:func:`ops.prefill_matrix_class`)."""
    out = np.empty(int(sel.sum()))
    idx = np.flatnonzero(sel)
    kvf = np.array([get_format(_fmt(x)) for x in c["kv_cache_dtype"][idx]])
    af = np.array([get_format(_fmt(x)) for x in c["attn_dtype"][idx]])
    cls = np.array([ops.prefill_matrix_class(a, k) for a, k in zip(af, kvf)])
    for mc in np.unique(cls):
        j = cls == mc
        ii = idx[j]
        b, s, h, kv, hd, w = (c[x][ii] for x in ("batch_size", "isl", "num_heads", "num_key_value_heads", "head_dim",
                                                 "window_size"))
        kvb = np.array([f.bytes_per_element for f in kvf[j]])
        r = prefill_attention_model(
            chip, cal, pairs=b * kernels.tiled_pairs(s, 0.0, w), q_tokens=b * s, kv_tokens=b * s,
            max_keys=kernels.last_tile_keys(s, 0.0, w), heads=h, kv_heads=kv, qk_dim=hd, v_dim=hd,
            kv_elems_per_token=2 * kv * hd, act_bytes=2.0, kv_bytes=kvb, matrix_class=str(mc),
            num_q_tiles=b * np.ceil(s / kernels.ATTN_Q_TILE), window_tiles=b * kernels.window_tiles(s, 0.0, w))
        out[j] = r["time_s"]
    return out


def decode_predict(chip: ChipSpec, cal: Calibration, c: dict, sel: np.ndarray) -> np.ndarray:
    """Predicted decode attention time of the selected rows (``batch_size`` sequences of
    ``step`` cached tokens plus the new one)."""
    idx = np.flatnonzero(sel)
    b, step, h, kv, hd, w = (c[x][idx] for x in ("batch_size", "step", "num_heads", "num_key_value_heads",
                                               "head_dim", "window_size"))
    kvb = np.array([get_format(_fmt(x)).bytes_per_element for x in c["kv_cache_dtype"][idx]])
    ctx = step + 1.0
    ctx_eff = np.where(w > 0, np.minimum(w, ctx), ctx)
    r = decode_attention_model(chip, cal, num_seqs=b, context_tokens=b * ctx_eff, heads=h, kv_heads=kv,
                               flops_per_pair_per_head=4.0 * hd, kv_elems_per_token=2 * kv * hd, act_bytes=2.0,
                               kv_bytes=kvb, q_elems_per_head=hd, max_context_tokens=ctx, window=w)
    return np.asarray(r["time_s"], float) * np.ones(len(idx))


def prefill_split(c: dict) -> np.ndarray:
    return ~holdout_mask(c["batch_size"], c["isl"], c["num_heads"], c["num_key_value_heads"], c["head_dim"])


def decode_split(c: dict) -> np.ndarray:
    return ~holdout_mask(c["batch_size"], c["step"], c["num_heads"], c["num_key_value_heads"], c["head_dim"])


def fit_part(chip: ChipSpec, base: Calibration, spec, predict, c: dict, train: np.ndarray, seed: int,
             free=None) -> Calibration:
    """Fit the parameters ``spec`` of one attention phase on (at most 20,000 of) ``train``."""
    sub = subsample(train, 20000, seed)
    t = c["latency_s"][sub]
    x0 = get_params(base.attention, spec)
    lo, hi, scale = (np.array([p[i] for p in spec]) for i in (2, 3, 4))
    x = lsq(lambda x: np.log(predict(chip, set_params(base, spec, x), c, sub) / t), x0, lo, hi, scale, free)
    return set_params(base, spec, x)


def load_attention(folder: str | Path) -> tuple[dict, dict]:
    folder = Path(folder)
    return (attn_cols(read_csv(folder / "context_attention.csv.gz")),
            attn_cols(read_csv(folder / "generation_attention.csv.gz")))


def attention_report(chip: ChipSpec, cal: Calibration, pc: dict, dc: dict) -> dict:
    """Train / held-out error of prefill and decode attention (hash split by shape)."""
    report = {}
    for phase, c, train, pred in (("prefill", pc, prefill_split(pc), prefill_predict),
                                  ("decode", dc, decode_split(dc), decode_predict)):
        for label, mask in (("train", train), ("holdout", ~train)):
            report[f"attention_{phase}_{label}"] = error_stats(pred(chip, cal, c, mask), c["latency_s"][mask])
    return report


def fit_attention(chip: ChipSpec, base: Calibration, folder: str | Path) -> tuple[Calibration, dict]:
    """Prefill, then decode parameters, on the training split of the two tables."""
    pc, dc = load_attention(folder)
    cal = fit_part(chip, base, PREFILL_PARAMS, prefill_predict, pc, prefill_split(pc), 1)
    cal = fit_part(chip, cal, DECODE_PARAMS, decode_predict, dc, decode_split(dc), 2)
    return cal, attention_report(chip, cal, pc, dc)
