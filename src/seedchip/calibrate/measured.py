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
overlap p and per-kernel overheads (:func:`ops.gemm_model`); attention prefill and
decode parameters (:func:`ops.prefill_attention_model`, :func:`ops.decode_attention_model`,
:func:`kernels.tiled_pairs`); the vector kernels' HBM efficiency and per-kernel overhead
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
from scipy.optimize import least_squares

from ..errors import SeedChipError, SpecError
from ..formats import get_format
from ..hardware.catalog import load_chip
from ..hardware.spec import ChipSpec
from ..model.arch import ModelArch
from ..model.hf import arch_from_hf_config
from ..model.zoo import load_model
from ..perf import graph, ops
from ..perf.calibration import DEFAULT_CALIBRATION, AttentionCal, Calibration, VectorCal, load_calibration
from ..perf.deployment import make_deployment
from ..perf.step import normalize_step, step_cost
from . import fit as tfit
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
    p = Path(path)
    if not p.is_file():
        raise SpecError(f"measurement file {str(p)!r} does not exist")
    try:
        text = p.read_text()
    except (OSError, UnicodeDecodeError) as e:
        raise SpecError(f"cannot read measurement file {str(p)!r}: {e}") from None
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

def _gemm_data(m: Measured) -> tfit.GemmData:
    c = m.cols
    return tfit.GemmData(c["m"], c["n"], c["k"], c["format"], c["time_s"])


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
    for name, fn in (("gemm", lambda s: tfit.gemm_predict(chip, cal, _gemm_data(m), s)),
                     ("attention_prefill", lambda s: tfit.prefill_predict(chip, cal, _attn_cols(m), s)),
                     ("attention_decode", lambda s: tfit.decode_predict(chip, cal, _attn_cols(m), s)),
                     ("vector", lambda s: _vector_predict(chip, cal, m, s))):
        s = priced & (cls == name)
        if s.any():
            out[s] = fn(s)
    s = priced & np.isin(cls, ("layer", "step"))
    if s.any():
        out[s] = _model_predict(chip, cal, m, s)
    return out


# ----------------------------------------------------------------------------- fitting

def _lsq(resid, x0, lo, hi, free, x_scale):
    """least_squares over the free parameters (the rest stay at x0), as fit.py does."""
    x0 = np.clip(np.asarray(x0, float), lo, hi)
    if not free.any():
        return x0
    def r(xf):
        x = x0.copy()
        x[free] = xf
        return resid(x)
    res = least_squares(r, x0[free], bounds=(lo[free], hi[free]), loss="soft_l1", f_scale=0.1,
                        x_scale=np.asarray(x_scale, float)[free])
    x = x0.copy()
    x[free] = res.x
    return x


def _fit_gemm(chip, base: Calibration, m: Measured, train: np.ndarray) -> Calibration:
    d = _gemm_data(m)
    sel = train & (m.op == "gemm") & np.isin(d.fmt, ["bf16", "fp8"])
    g = base.gemm
    x0 = [base.gemm_efficiency("bf16"), base.gemm_efficiency("fp8"), base.gemm_memory_efficiency("bf16"),
          base.gemm_memory_efficiency("fp8"), g.overlap_p, base.gemm_overhead("bf16"), base.gemm_overhead("fp8")]
    has_bf16, has_fp8 = (sel & (d.fmt == "bf16")).any(), (sel & (d.fmt == "fp8")).any()
    free = np.array([has_bf16, has_fp8, has_bf16, has_fp8, sel.any(), has_bf16, has_fp8])
    lo = np.array([0.05, 0.05, 0.05, 0.05, 1.0, 0.0, 0.0])
    hi = np.array([1.0, 1.0, 1.0, 1.0, 20.0, 50e-6, 50e-6])
    x = _lsq(lambda x: np.log(tfit.gemm_predict(chip, tfit._with_gemm(base, x), d, sel) / d.t[sel]),
             x0, lo, hi, free, [0.1, 0.1, 0.1, 0.1, 1, 1e-6, 1e-6])
    return tfit._with_gemm(base, x) if free.any() else base


def _fit_attention(chip, base: Calibration, m: Measured, train: np.ndarray) -> Calibration:
    c = _attn_cols(m)
    ps, ds = train & (m.op == "attention_prefill"), train & (m.op == "attention_decode")
    a = base.attention
    x0 = [a.prefill_compute_efficiency, a.prefill_overhead_s, a.decode_memory_efficiency, a.decode_overhead_s,
          a.overlap_p, a.softmax_flops_per_pair, a.decode_block_s]
    hp, hd = ps.any(), ds.any()
    free = np.array([hp, hp, hd, hd, hp or hd, hp, hd])

    def make(x):
        return base.model_copy(update={"attention": AttentionCal(
            prefill_compute_efficiency=float(x[0]), prefill_overhead_s=float(x[1]),
            decode_memory_efficiency=float(x[2]), decode_overhead_s=float(x[3]), overlap_p=float(x[4]),
            softmax_flops_per_pair=float(x[5]), decode_block_s=float(x[6]))})

    def resid(x):
        cal = make(x)
        parts = []
        if hp:
            parts.append(np.log(tfit.prefill_predict(chip, cal, c, ps) / c["latency_s"][ps]))
        if hd:
            parts.append(np.log(tfit.decode_predict(chip, cal, c, ds) / c["latency_s"][ds]))
        return np.concatenate(parts)

    lo = np.array([0.05, 0.0, 0.05, 0.0, 1.0, 0.0, 0.0])
    hi = np.array([1.0, 50e-6, 1.0, 50e-6, 20.0, 200.0, 20e-6])
    x = _lsq(resid, x0, lo, hi, free, [0.1, 1e-6, 0.1, 1e-6, 1.0, 1.0, 1e-7])
    return make(x) if free.any() else base


def _fit_vector(chip, base: Calibration, m: Measured, train: np.ndarray) -> Calibration:
    sel = train & np.isin(m.op, FITTED_VECTOR_OPS) & ~m.info
    if not sel.any():
        return base
    t = m.cols["time_s"][sel]

    def make(x):
        return base.model_copy(update={"vector": VectorCal(memory_efficiency=float(x[0]), overhead_s=float(x[1]))})

    lo, hi = np.array([0.05, 0.0]), np.array([1.0, 50e-6])
    x = _lsq(lambda x: np.log(_vector_predict(chip, make(x), m, sel) / t),
             [base.vector.memory_efficiency, base.vector.overhead_s], lo, hi, np.array([True, True]), [0.1, 1e-6])
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
                 cal_id: str | None = None) -> FitResult:
    """Fit a calibration on the training split of a gpu_microbench CSV (module doc).
    ``chip``: the chip that was measured; ``start``: the calibration to start from
    (default: the shipped one)."""
    m = measured if isinstance(measured, Measured) else read_measured(measured)
    chip = load_chip(chip)
    start_cal = load_calibration(start or DEFAULT_CALIBRATION)
    # the new id from the start: the oracle treats a calibration named "ideal" differently
    base = start_cal.model_copy(update={"id": cal_id or f"{chip.id}-measured"})
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
                report[f"{k}_{label}"] = tfit.error_stats(pred[side], m.cols["time_s"][side])
    cal = cal.model_copy(update={
        "description": f"achievable efficiency fitted on {gpu} microbenchmarks (calibration/gpu_microbench.py); "
                       f"collectives kept from {start_cal.id}",
        "fitted_on": f"{Path(m.path).name}: {gpu}, {m.provenance.get('date', 'undated')}, torch "
                     f"{m.provenance.get('torch', '?')}; start {start_cal.id}; 80/20 split by shape hash",
        "holdout_error": report})
    return FitResult(calibration=cal, start=start_cal.id, csv=m.path, split=split_summary(m, hold), report=report,
                     provenance=dict(m.provenance))


# ----------------------------------------------------------------------------- validating

def _regions(m: Measured) -> list[tuple[str, str, np.ndarray]]:
    c, cls, op = m.cols, m.op_class, m.op
    mm, fmt = c["m"], c["format"]
    out = []
    for f in ("bf16", "fp8"):
        g = (cls == "gemm") & (fmt == f)
        out += [(f"gemm_{f}", "M<=16", g & (mm <= 16)), (f"gemm_{f}", "M 17-512", g & (mm > 16) & (mm <= 512)),
                (f"gemm_{f}", "M>512", g & (mm > 512))]
    p, d = cls == "attention_prefill", cls == "attention_decode"
    out += [("attention_prefill", "seq<=4096", p & (c["seq_len"] <= 4096)),
            ("attention_prefill", "seq>4096", p & (c["seq_len"] > 4096)),
            ("attention_decode", "batch<=4", d & (c["batch"] <= 4)), ("attention_decode", "batch>4", d & (c["batch"] > 4)),
            ("vector", "copy", op == "copy"), ("vector", "elementwise", np.isin(op, ("elementwise_add", "rmsnorm",
                                                                                   "silu_mul"))),
            ("vector", "launch", op == "launch")]
    for kind in ("layer", "step"):
        out += [(kind, "decode", (cls == kind) & (c["new_tokens"] == 1)),
                (kind, "prefill", (cls == kind) & (c["new_tokens"] > 1))]
    return [(k, r, s & ~m.info) for k, r, s in out]


def _stats(pred: np.ndarray, meas: np.ndarray) -> dict | None:
    if not len(meas):
        return None
    s = tfit.error_stats(pred, meas)
    return {"median_abs_pct": s["median_abs_pct"], "worst_abs_pct": s["max_abs_pct"], "n": s["n"]}


@dataclass(frozen=True)
class ValidationReport:
    csv: str
    chip: str
    shipped: str
    fitted: str
    split: dict
    regions: list[dict]
    model_rows: list[dict]
    targets: list[dict]
    info: dict
    provenance: dict

    def to_dict(self) -> dict:
        return {"csv": self.csv, "chip": self.chip, "shipped_calibration": self.shipped,
                "fitted_calibration": self.fitted, "split": self.split, "regions": self.regions,
                "model_rows": self.model_rows, "targets": self.targets, "info": self.info,
                "provenance": self.provenance}


def validate_measured(measured: str | Path | Measured, chip: str | ChipSpec,
                      calibration: str | Calibration | None = None,
                      shipped: str | Calibration | None = None) -> ValidationReport:
    """The oracle's error on a gpu_microbench CSV, per op class and shape region, on the
    held-out rows: with the shipped calibration and with the fitted one (``calibration``;
    None: fit now on the training split). Layer and step rows are priced with step_cost."""
    m = measured if isinstance(measured, Measured) else read_measured(measured)
    chip = load_chip(chip)
    ship = load_calibration(shipped or DEFAULT_CALIBRATION)
    fitted = load_calibration(calibration) if calibration is not None else fit_measured(m, chip, ship).calibration
    hold = m.holdout()
    t = m.cols["time_s"]
    p_ship, p_fit = predict(chip, ship, m), predict(chip, fitted, m)
    regions = []
    for kind, region, sel in _regions(m):
        if not sel.any():
            continue
        h = sel & hold
        regions.append({"op_class": kind, "region": region, "n_train": int((sel & ~hold).sum()),
                        "n_holdout": int(h.sum()), "shipped": _stats(p_ship[h], t[h]),
                        "fitted": _stats(p_fit[h], t[h])})
    model_rows = []
    c = m.cols
    for i in np.flatnonzero(np.isin(m.op, ("layer", "step"))):
        model_rows.append({
            "op": str(c["op"][i]), "phase": "decode" if c["new_tokens"][i] == 1 else "prefill",
            "model": str(c["model"][i]), "batch": int(c["batch"][i]), "context": int(c["context"][i]),
            "new_tokens": int(c["new_tokens"][i]), "measured_s": float(t[i]), "shipped_s": float(p_ship[i]),
            "fitted_s": float(p_fit[i]), "shipped_error_pct": round(float((p_ship[i] / t[i] - 1) * 100), 2),
            "fitted_error_pct": round(float((p_fit[i] / t[i] - 1) * 100), 2), "line": int(m.line[i])})
    targets = []
    for what, kinds, region, stat in (("held-out GEMM median", ("gemm_bf16", "gemm_fp8"), None, "median"),
                                      ("held-out attention median", ("attention_prefill", "attention_decode"), None,
                                       "median"),
                                      ("decode step worst", ("step",), "decode", "worst"),
                                      ("prefill step worst", ("step",), "prefill", "worst")):
        sel = np.zeros(len(m), bool)
        for k, r, s in _regions(m):
            if k in kinds and (region is None or r == region):
                sel |= s
        sel &= hold
        if not sel.any():
            continue
        err = np.abs(p_fit[sel] / t[sel] - 1.0) * 100.0
        v = float(np.median(err) if stat == "median" else np.max(err))
        targets.append({"target": f"{what} abs error <= 10% (fitted)", "value_pct": round(v, 2), "met": v <= 10.0,
                        "n": int(sel.sum())})
    info = {f"launch_{c['mode'][i]}_s": float(t[i]) for i in np.flatnonzero(m.info)}
    return ValidationReport(csv=m.path, chip=chip.id, shipped=ship.id, fitted=fitted.id,
                            split=split_summary(m, hold), regions=regions, model_rows=model_rows, targets=targets,
                            info=info, provenance=dict(m.provenance))


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
