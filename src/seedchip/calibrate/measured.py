"""Fit and validate a calibration from one GPU's measurements (``calibration/gpu_microbench.py``).

The CSV (format: ``calibration/README.md``) holds op rows (GEMM, prefill and decode
attention, copy / elementwise / norm kernels, launch overhead) and whole-model rows (one
decoder layer, one whole step of a Llama-architecture model).

**Split.** Every ``layer`` and ``step`` row is held out (they are the targets), and so
are 20% of the op shapes, chosen by a hash of (op, m, n, k, batch, seq_len, context,
num_heads, num_kv_heads, head_dim, elements) with :func:`tables.holdout_mask` — a shape
is never on both sides, and the bf16 and fp8 rows of one GEMM shape go together.
``rmsnorm`` and ``silu_mul`` rows are never fitted either (plain PyTorch runs them as
several kernels where a serving engine fuses one): they test the vector model.

**Fit.** Starting from the shipped calibration, each op class is fitted by least squares
on log(predicted / measured) with the oracle's own equations, as
:mod:`seedchip.calibrate.fit` does: GEMM per-class compute and memory efficiencies,
overlap p and per-kernel overheads (:func:`ops.gemm_model`; the fp8 rows are
``torch._scaled_mm`` on operands already in fp8, so no activation quantization is
priced); the attention parameters of the kernels measured (:mod:`seedchip.perf.attention`
via :mod:`seedchip.calibrate.fit_attention`: bf16 prefill and decode, so the fp8,
sliding-window and 8-bit-KV figures keep their start values); the vector kernels' HBM
efficiency and per-kernel overhead
(:func:`ops.vector`) from copy, add and the in-graph launch rows (an empty kernel is a
vector op of 0 bytes). Parameters of a class with no training rows keep their start
values; collectives are kept (one GPU measures none).

**Validate.** Per op class and shape region, median and worst absolute % error on the
held-out rows with the shipped and with the fitted calibration; layer and step rows are
priced with :func:`seedchip.perf.step.step_cost` on one chip (tp = 1, bf16 weights and
KV). A ``layer`` row is priced honestly as a one-layer model
(``model.replace(num_layers=1, ...)``) less its head ops (embedding, final norm, LM head,
sampling), which the measured layer does not run; dividing a whole step by the number of
layers would charge each layer a share of the LM head.
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from ..errors import SeedChipError, SpecError
from ..formats import get_format
from ..hardware.catalog import load_chip
from ..hardware.spec import ChipSpec
from ..model.arch import ModelArch
from ..model.hf import arch_from_hf_config
from ..model.zoo import load_model
from ..perf import graph, ops
from ..perf.calibration import DEFAULT_CALIBRATION, Calibration, VectorCal, check_id, load_calibration
from ..perf.deployment import make_deployment
from ..perf.step import normalize_step, step_cost
from . import fit_attention as fa
from . import fit_gemm
from .common import error_stats, lsq
from .tables import holdout_mask

OP_CLASS = {"gemm": "gemm", "attention_prefill": "attention_prefill", "attention_decode": "attention_decode",
            "copy": "vector", "elementwise_add": "vector", "rmsnorm": "vector", "silu_mul": "vector",
            "launch": "vector", "layer": "layer", "step": "step"}
OP_CODE = {op: i + 1 for i, op in enumerate(OP_CLASS)}
NUMERIC = ("time_s", "flops", "bytes", "m", "n", "k", "batch", "seq_len", "context", "new_tokens", "num_heads",
           "num_kv_heads", "head_dim", "window", "elements", "num_layers")
TEXT = ("op", "format", "mode", "model")
OPTIONAL_NUMERIC = ("window",)
FITTED_VECTOR_OPS = ("copy", "elementwise_add", "launch")
INFO_MODES = ("eager_wall", "graph_replay_wall")     # CPU-side launch figures: reported, never priced
SPLIT_RULE = ("held out: every layer and step row, and 20% of op shapes by a hash of (op, m, n, k, batch, "
              "seq_len, context, num_heads, num_kv_heads, head_dim, elements) (seedchip.calibrate.tables."
              "holdout_mask; bf16 and fp8 of one shape together); rmsnorm and silu_mul rows are never fitted")


# ----------------------------------------------------------------------------- reading

@dataclass(frozen=True)
class Measured:
    """A measurement CSV as columns (NumPy arrays), with its provenance header."""
    path: str
    provenance: dict[str, str]
    model_configs: dict[str, dict]
    cols: dict[str, np.ndarray]
    line: np.ndarray                 # file line number of each row

    def __len__(self) -> int:
        return len(self.line)

    @property
    def op(self) -> np.ndarray:
        return self.cols["op"]

    @property
    def op_class(self) -> np.ndarray:
        return np.array([OP_CLASS[o] for o in self.op], dtype=object)

    @property
    def info(self) -> np.ndarray:
        """Rows that are reported but never priced (CPU-side launch wall times)."""
        return np.isin(self.cols["mode"], INFO_MODES)

    def holdout(self) -> np.ndarray:
        c = self.cols
        code = np.array([OP_CODE[o] for o in self.op], dtype=float)
        shape = holdout_mask(code, c["m"], c["n"], c["k"], c["batch"], c["seq_len"], c["context"], c["num_heads"],
                             c["num_kv_heads"], c["head_dim"], c["elements"])
        return shape | np.isin(self.op, ("layer", "step", "rmsnorm", "silu_mul"))


def _fail(path, lineno: int, msg: str) -> SpecError:
    return SpecError(f"{path}:{lineno}: {msg}")


def read_measured(path: str | Path) -> Measured:
    """Read a gpu_microbench CSV. Malformed rows raise SpecError naming file and line."""
    from ..outputs import read_text
    p = Path(path)
    text = read_text(p, "measurement file")
    prov: dict[str, str] = {}
    configs: dict[str, dict] = {}
    header: list[str] | None = None
    rows: list[tuple[int, list[str]]] = []
    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line:
            continue
        if line.startswith("#"):
            body = line[1:].strip()
            if body.startswith("model_config "):
                parts = body.split(" ", 2)
                try:
                    configs[parts[1]] = json.loads(parts[2])
                except (IndexError, json.JSONDecodeError) as e:
                    raise _fail(p, lineno, f"model_config line is not '<id> <json>': {e}") from None
            elif ":" in body:
                k, v = body.split(":", 1)
                prov.setdefault(k.strip(), v.strip())
            continue
        fields = next(csv.reader([raw]))
        if header is None:
            header = [f.strip() for f in fields]
            missing = [c for c in (*TEXT, *NUMERIC) if c not in header and c not in OPTIONAL_NUMERIC]
            if missing:
                raise _fail(p, lineno, f"header lacks column(s) {', '.join(missing)}; is this a gpu_microbench CSV "
                                       "(calibration/README.md)?")
            continue
        if len(fields) != len(header):
            raise _fail(p, lineno, f"{len(fields)} fields where the header has {len(header)}")
        rows.append((lineno, fields))
    if header is None:
        raise SpecError(f"measurement file {str(p)!r} has no header row")
    if not rows:
        raise SpecError(f"measurement file {str(p)!r} has no data rows")
    idx = {c: i for i, c in enumerate(header)}
    cols: dict[str, list] = {c: [] for c in (*TEXT, *NUMERIC)}
    for lineno, f in rows:
        rec = {c: f[idx[c]].strip() if c in idx else "" for c in TEXT}
        if rec["op"] not in OP_CLASS:
            raise _fail(p, lineno, f"unknown op {rec['op']!r}; known: {', '.join(OP_CLASS)}")
        for c in NUMERIC:
            v = f[idx[c]].strip() if c in idx else "0"
            try:
                x = float(v) if v else 0.0
            except ValueError:
                raise _fail(p, lineno, f"column {c!r} = {v!r} is not a number") from None
            if not math.isfinite(x) or x < 0:
                raise _fail(p, lineno, f"column {c!r} = {v!r} must be a finite number >= 0")
            rec[c] = x
        _check_row(p, lineno, rec)
        for c in cols:
            cols[c].append(rec[c])
    arrays = {c: np.array(v, dtype=object if c in TEXT else float) for c, v in cols.items()}
    for c in TEXT:
        arrays[c] = arrays[c].astype(str)
    return Measured(str(p), prov, configs, arrays, np.array([r[0] for r in rows]))


def _check_row(p, lineno: int, r: dict) -> None:
    op = r["op"]
    if r["time_s"] <= 0:
        raise _fail(p, lineno, f"time_s = {r['time_s']!r} must be > 0")
    need: tuple[str, ...] = ()
    if op == "gemm":
        need = ("m", "n", "k")
    elif op == "attention_prefill":
        need = ("batch", "seq_len", "num_heads", "num_kv_heads", "head_dim")
    elif op == "attention_decode":
        need = ("batch", "context", "num_heads", "num_kv_heads", "head_dim")
    elif op in ("layer", "step"):
        need = ("batch", "new_tokens", "num_layers")
        if not r["model"]:
            raise _fail(p, lineno, f"a {op} row needs the model id in column 'model'")
    for c in need:
        if r[c] <= 0:
            raise _fail(p, lineno, f"{op} row needs {c} > 0, got {r[c]!r}")
    if op in ("attention_prefill", "attention_decode") and r["num_heads"] % r["num_kv_heads"]:
        raise _fail(p, lineno, f"num_heads {r['num_heads']:.0f} is not a multiple of num_kv_heads {r['num_kv_heads']:.0f}")
    if op in ("gemm", "attention_prefill", "attention_decode"):
        try:
            get_format(r["format"])
        except SeedChipError as e:
            raise _fail(p, lineno, str(e)) from None


# ----------------------------------------------------------------------------- prediction

def _gemm_data(m: Measured) -> fit_gemm.GemmData:
    c = m.cols
    return fit_gemm.GemmData(c["m"], c["n"], c["k"], c["format"], c["time_s"])


def _attn_cols(m: Measured) -> dict[str, np.ndarray]:
    """The measured columns under the aiconfigurator names fit.py's predictors read.
    ``step`` is the cached context before the new token (our ``context`` counts the keys)."""
    c = m.cols
    return {"batch_size": c["batch"], "isl": c["seq_len"], "num_heads": c["num_heads"],
            "num_key_value_heads": c["num_kv_heads"], "head_dim": c["head_dim"], "window_size": c["window"],
            "attn_dtype": c["format"], "kv_cache_dtype": c["format"], "step": c["context"] - 1.0,
            "latency_s": c["time_s"]}


def _vector_predict(chip: ChipSpec, cal: Calibration, m: Measured, sel: np.ndarray) -> np.ndarray:
    c = m.cols
    return np.array([ops.vector(chip, cal, float(f), float(b), "vector").time_s
                     for f, b in zip(c["flops"][sel], c["bytes"][sel])])


def _model_arch(m: Measured, model_id: str) -> ModelArch:
    cfg = m.model_configs.get(model_id)
    if cfg is not None:
        return arch_from_hf_config(cfg, model_id, source=f"{m.path} header")
    return load_model(model_id)


def _model_predict(chip: ChipSpec, cal: Calibration, m: Measured, sel: np.ndarray) -> np.ndarray:
    c = m.cols
    dep = make_deployment(chip, num_chips=1, tp=1, weight_format="bf16", kv_format="bf16", calibration=cal)
    out = []
    for i in np.flatnonzero(sel):
        model = _model_arch(m, c["model"][i])
        step = normalize_step([(int(c["new_tokens"][i]), int(c["context"][i]))] * int(c["batch"][i]))
        if c["op"][i] == "step":
            out.append(step_cost(model, dep, step).time_s)
        else:  # one layer: a one-layer model less the head ops the measured layer does not run
            one = model.replace(num_layers=1, layer_windows=model.layer_windows[:1],
                                layer_is_moe=model.layer_is_moe[:1])
            head = graph.head_ops(one, dep, graph.ReplicaBatch.from_seqs(step))
            out.append(step_cost(one, dep, step).time_s - sum(o.time_s * o.count for o in head))
    return np.array(out, dtype=float)


def predict(chip: ChipSpec, cal: Calibration, m: Measured, sel: np.ndarray | None = None) -> np.ndarray:
    """The oracle's time for each selected row (NaN for info rows)."""
    sel = np.ones(len(m), bool) if sel is None else sel
    out = np.full(len(m), np.nan)
    cls = m.op_class
    priced = sel & ~m.info
    for name, fn in (("gemm", lambda s: fit_gemm.gemm_predict(chip, cal, _gemm_data(m), s, False)),
                     ("attention_prefill", lambda s: fa.prefill_predict(chip, cal, _attn_cols(m), s)),
                     ("attention_decode", lambda s: fa.decode_predict(chip, cal, _attn_cols(m), s)),
                     ("vector", lambda s: _vector_predict(chip, cal, m, s))):
        s = priced & (cls == name)
        if s.any():
            out[s] = fn(s)
    s = priced & np.isin(cls, ("layer", "step"))
    if s.any():
        out[s] = _model_predict(chip, cal, m, s)
    return out


# ----------------------------------------------------------------------------- fitting

def _fit_gemm(chip, base: Calibration, m: Measured, train: np.ndarray) -> Calibration:
    """GEMM efficiencies, overlap p and overheads of the formats measured. The kit times
    ``torch._scaled_mm`` on operands already in fp8, so no activation quantization is
    priced (unlike the TensorRT-LLM tables, :mod:`seedchip.calibrate.fit_gemm`)."""
    d = _gemm_data(m)
    sel = train & (m.op == "gemm") & np.isin(d.fmt, ["bf16", "fp8"])
    has_bf16, has_fp8 = (sel & (d.fmt == "bf16")).any(), (sel & (d.fmt == "fp8")).any()
    free = np.array([has_bf16, has_fp8, False, has_bf16, has_fp8, sel.any(), has_bf16, has_fp8, False])
    block = "fp8-block" in base.gemm.compute_efficiency
    x = lsq(lambda x: np.log(fit_gemm.gemm_predict(chip, fit_gemm.with_gemm(base, x, block), d, sel, False)
                             / d.t[sel]),
            fit_gemm.gemm_params(base), fit_gemm.GEMM_LO, fit_gemm.GEMM_HI, fit_gemm.GEMM_SCALE, free)
    return fit_gemm.with_gemm(base, x, block) if free.any() else base


def _present(spec, rows_by_key: dict[str, bool]) -> np.ndarray:
    """Free a parameter unless it belongs to a kernel or class with no training rows."""
    return np.array([rows_by_key.get(name.partition(".")[2] or name, True) for name, *_ in spec])


def _fit_attention(chip, base: Calibration, m: Measured, train: np.ndarray) -> Calibration:
    """Prefill and decode attention parameters of the kernels the CSV measured (bf16
    SDPA kernels: the fp8 and sliding-window figures keep their start values)."""
    c = _attn_cols(m)
    ps, ds = train & (m.op == "attention_prefill"), train & (m.op == "attention_decode")
    cal = base
    if ps.any():
        windowed = bool((c["window_size"][ps] > 0).any())
        free = _present(fa.PREFILL_PARAMS, {"fp8": False, "prefill_window_unit_s": windowed})
        cal = fa.fit_part(chip, cal, fa.PREFILL_PARAMS, fa.prefill_predict, c, ps, 1, free)
    if ds.any():
        ratio = c["num_heads"][ds] / c["num_key_value_heads"][ds]
        grouped = (ratio > 1) & (ratio <= cal.attention.decode_max_group_heads)
        has = {"per_head": bool((~grouped).any()), "grouped_16bit": bool(grouped.any()), "grouped_8bit": False,
               "decode_unit_s_per_head_dim": bool(grouped.any()),
               "l2_reread_speedup": bool((ratio > cal.attention.decode_max_group_heads).any())}
        cal = fa.fit_part(chip, cal, fa.DECODE_PARAMS, fa.decode_predict, c, ds, 2, _present(fa.DECODE_PARAMS, has))
    return cal


def _fit_vector(chip, base: Calibration, m: Measured, train: np.ndarray) -> Calibration:
    sel = train & np.isin(m.op, FITTED_VECTOR_OPS) & ~m.info
    if not sel.any():
        return base
    t = m.cols["time_s"][sel]

    def make(x):
        return base.model_copy(update={"vector": VectorCal(memory_efficiency=float(x[0]), overhead_s=float(x[1]))})

    lo, hi = np.array([0.05, 0.0]), np.array([1.0, 50e-6])
    x = lsq(lambda x: np.log(_vector_predict(chip, make(x), m, sel) / t),
            [base.vector.memory_efficiency, base.vector.overhead_s], lo, hi, [0.1, 1e-6])
    return make(x)


@dataclass(frozen=True)
class FitResult:
    calibration: Calibration
    start: str
    csv: str
    split: dict
    report: dict
    provenance: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"csv": self.csv, "chip_measured": self.provenance.get("gpu", ""), "start": self.start,
                "split": self.split, "report": self.report, "calibration": self.calibration.model_dump(mode="json"),
                "provenance": self.provenance}


def _class_masks(m: Measured) -> dict[str, np.ndarray]:
    cls, fmt = m.op_class, m.cols["format"]
    out = {"gemm_bf16": (cls == "gemm") & (fmt == "bf16"), "gemm_fp8": (cls == "gemm") & (fmt == "fp8"),
           "attention_prefill": cls == "attention_prefill", "attention_decode": cls == "attention_decode",
           "vector": cls == "vector", "layer": cls == "layer", "step": cls == "step"}
    return {k: v & ~m.info for k, v in out.items()}


def split_summary(m: Measured, hold: np.ndarray) -> dict:
    return {"rule": SPLIT_RULE, "n_rows": int(len(m)), "n_info": int(m.info.sum()),
            "per_class": {k: {"train": int((v & ~hold).sum()), "holdout": int((v & hold).sum())}
                          for k, v in _class_masks(m).items()}}


def fit_measured(measured: str | Path | Measured, chip: str | ChipSpec, start: str | Calibration | None = None,
                 cal_id: str | None = None, allow_cpu: bool = False) -> FitResult:
    """Fit a calibration on the training split of a gpu_microbench CSV (module doc).
    ``chip``: the chip that was measured; ``start``: the calibration to start from
    (default: the shipped one). A file measured on a CPU (the kit's smoke test) is refused:
    its efficiencies say nothing about ``chip``; ``allow_cpu`` fits it anyway (tests of the
    kit itself)."""
    check_id(cal_id)
    m = measured if isinstance(measured, Measured) else read_measured(measured)
    if m.provenance.get("gpu", "").startswith("none") and not allow_cpu:
        raise SpecError(f"{m.path}: measured on a CPU (gpu: {m.provenance['gpu']!r}), a smoke "
                        "test of the kit: a calibration fitted on it would claim the chip runs at CPU speed; measure "
                        "on the chip, or add --allow-cpu to fit it anyway")
    chip = load_chip(chip)
    start_cal = load_calibration(DEFAULT_CALIBRATION if start is None else start)
    # fitted figures are real kernels, whatever the start was (a roofline start included)
    base = start_cal.model_copy(update={"id": cal_id or f"{chip.id}-measured", "roofline": False})
    hold = m.holdout()
    train = ~hold & ~m.info
    cal = _fit_gemm(chip, base, m, train)
    cal = _fit_attention(chip, cal, m, train)
    cal = _fit_vector(chip, cal, m, train)
    gpu = m.provenance.get("gpu", "unknown device")
    report = {}
    pred = predict(chip, cal, m, np.isin(m.op_class, ("gemm", "attention_prefill", "attention_decode", "vector")))
    for k, v in _class_masks(m).items():
        if k in ("layer", "step"):
            continue
        for label, side in (("train", v & train), ("holdout", v & hold)):
            if side.any():
                report[f"{k}_{label}"] = error_stats(pred[side], m.cols["time_s"][side])
    cal = cal.model_copy(update={
        "description": f"achievable efficiency fitted on {gpu} microbenchmarks (calibration/gpu_microbench.py); "
                       f"collectives kept from {start_cal.id}",
        "fitted_on": f"{Path(m.path).name}: {gpu}, {m.provenance.get('date', 'undated')}, torch "
                     f"{m.provenance.get('torch', '?')}; start {start_cal.id}; 80/20 split by shape hash",
        "holdout_error": report})
    return FitResult(calibration=cal, start=start_cal.id, csv=m.path, split=split_summary(m, hold), report=report,
                     provenance=dict(m.provenance))


def fit_header(result: FitResult, command: str) -> str:
    """The comment block written above a fitted calibration YAML."""
    p = result.provenance
    return "\n".join([
        f"# Calibration fitted by `{command}`",
        f"# on {p.get('gpu', 'unknown device')} (driver {p.get('driver', '?')}, CUDA {p.get('cuda', '?')}, "
        f"torch {p.get('torch', '?')}, measured {p.get('date', '?')}), starting from {result.start}.",
        f"# Split: {SPLIT_RULE}.",
        "# holdout_error: % error per op class on the training and held-out rows.",
    ])
