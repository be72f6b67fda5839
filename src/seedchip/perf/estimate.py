"""Static-batch estimate: TTFT, TPOT, end-to-end latency and throughput for a batch of
B requests of I input and O output tokens.

Prefill runs as the engine would: steps of at most ``max_batched_tokens`` tokens,
whole prompts packed together and long prompts chunked. Decode is priced step by step
as the context grows (O - 1 steps); past 256 steps (or when the caller asks for fewer
samples) the step time is evaluated at evenly spaced contexts and summed by the
trapezoid rule (the step time is smooth and nearly linear in context).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from functools import lru_cache

import numpy as np

from ..errors import SpecError
from ..model.arch import ModelArch
from .deployment import Deployment
from .memory import MemoryPlan, check_fits, memory_plan
from .pricer import pricer_for
from .step import StepCost, step_cost
from .uncertainty import Perturbation, interval80

EXACT_DECODE_STEPS = 256
DECODE_SAMPLES = 129


@lru_cache(maxsize=256)
def prefill_steps(batch: int, input_len: int, budget: int) -> tuple[tuple[tuple[int, int, bool], ...], ...]:
    """Pack ``batch`` prompts of ``input_len`` into steps of at most ``budget`` new
    tokens; a prompt is sampled in the step that finishes it (cached: a sweep asks for
    the same few shapes at every design point)."""
    steps: list[list[tuple[int, int, bool]]] = []
    cur: list[tuple[int, int, bool]] = []
    room = budget
    for _ in range(batch):
        done = 0
        while done < input_len:
            if room == 0:
                steps.append(cur)
                cur, room = [], budget
            n = min(input_len - done, room)
            cur.append((n, done, done + n == input_len))
            done += n
            room -= n
    if cur:
        steps.append(cur)
    return tuple(tuple(s) for s in steps)


def _phase(costs: list[tuple[StepCost, float]]) -> dict:
    """Sum of weighted step costs: time, energy and per-class time with bound."""
    out = {"time_s": 0.0, "energy_j": 0.0, "by_class": {}}
    bound_time: dict[str, dict[str, float]] = {}
    for sc, w in costs:
        out["time_s"] += sc.time_s * w
        out["energy_j"] += sc.energy_j * w
        for cls, d in sc.by_class().items():
            c = out["by_class"].setdefault(cls, {"time_s": 0.0, "energy_j": 0.0, "flops": 0.0, "hbm_bytes": 0.0,
                                                 "comm_bytes": 0.0})
            for key in c:
                c[key] += d[key] * w
            bt = bound_time.setdefault(cls, {})
            bt[d["bound"]] = bt.get(d["bound"], 0.0) + d["time_s"] * w
    for cls, c in out["by_class"].items():
        c["bound"] = max(bound_time[cls], key=bound_time[cls].get)
        c["share_of_time"] = c["time_s"] / out["time_s"] if out["time_s"] else 0.0
    out["by_class"] = dict(sorted(out["by_class"].items(), key=lambda kv: -kv[1]["time_s"]))
    return out


@dataclass(frozen=True)
class EstimateResult:
    ttft_s: float
    tpot_s: float
    e2e_s: float
    throughput_tokens_per_s: float
    prefill: dict
    decode: dict
    memory: MemoryPlan
    inputs: dict
    energy_j: float
    provenance: dict = field(default_factory=dict)
    engine: dict | None = None
    interval80: dict | None = None
    notes: tuple[str, ...] = ()          # accepted, but worth knowing (weight-only storage, ...)

    def to_dict(self) -> dict:
        n = self.inputs["num_chips"]
        out_tokens = self.inputs["batch"] * self.inputs["output_len"]
        avg_power = self.energy_j / self.e2e_s / n if self.e2e_s else 0.0
        return {
            "ttft_s": self.ttft_s,
            "tpot_s": self.tpot_s,
            "e2e_s": self.e2e_s,
            "throughput_tokens_per_s": self.throughput_tokens_per_s,
            "interval80": self.interval80,
            "throughput_tokens_per_s_per_chip": self.throughput_tokens_per_s / n,
            "decode_tokens_per_s": self.inputs["batch"] / self.tpot_s if self.tpot_s else None,
            "energy_j": self.energy_j,
            "energy_per_output_token_j": self.energy_j / out_tokens,
            "avg_power_w_per_chip": avg_power,
            "tokens_per_s_per_watt": self.throughput_tokens_per_s / (avg_power * n) if avg_power else None,
            "prefill": self.prefill,
            "decode": self.decode,
            "memory": self.memory.to_dict(),
            "inputs": self.inputs,
            "engine": self.engine,
            "provenance": self.provenance,
            "notes": list(self.notes),
        }


@lru_cache(maxsize=256)
def decode_contexts(n_dec: int, samples: int | None = None) -> tuple[tuple[int, float], ...]:
    """(decode step index, steps it stands for) to price ``n_dec`` decode steps: every
    step up to EXACT_DECODE_STEPS, else ``samples`` (default DECODE_SAMPLES) evenly
    spaced steps weighted by the trapezoid rule (exact when the step time is linear in
    the context). Cached, as :func:`prefill_steps`."""
    if n_dec <= 0:
        return ()
    if samples is None and n_dec <= EXACT_DECODE_STEPS:
        return tuple((j, 1.0) for j in range(n_dec))
    js = np.unique(np.linspace(0, n_dec - 1, min(samples or DECODE_SAMPLES, n_dec)).round().astype(int))
    w = np.zeros(len(js))
    for a in range(len(js) - 1):
        span = js[a + 1] - js[a]
        w[a] += span / 2.0
        w[a + 1] += span / 2.0
    w[0] += 0.5
    w[-1] += 0.5
    return tuple((int(j), float(wt)) for j, wt in zip(js, w))


def check_context(model: ModelArch, tokens: int, what: str = "--input-len + --output-len") -> None:
    """Refuse a sequence longer than the model's context window (``max_position_embeddings``
    in its config; 0 when the config gives none)."""
    ctx = model.max_position_embeddings
    if ctx and tokens > ctx:
        raise SpecError(f"{what} = {tokens:,} tokens exceeds {model.id}'s context window of {ctx:,} "
                        "(max_position_embeddings in its config): shorten the sequence or use a longer-context model")


def _checked_plan(model: ModelArch, dep: Deployment, batch: int, input_len: int, output_len: int) -> MemoryPlan:
    """The deployment's memory plan, once the batch is known to be valid and to fit."""
    for label, v in (("batch", batch), ("input_len", input_len), ("output_len", output_len)):
        if not isinstance(v, int) or isinstance(v, bool) or v <= 0:
            raise SpecError(f"{label} = {v!r} must be a positive integer")
    check_context(model, input_len + output_len)
    dep.check_model(model)
    plan = memory_plan(model, dep)
    per_replica = -(-batch // dep.dp)
    check_fits(model, dep, plan, per_replica * (input_len + output_len))
    return plan


def static_figures(model: ModelArch, dep: Deployment, batch: int, input_len: int, output_len: int,
                   decode_samples: int | None = None) -> dict:
    """:func:`static_estimate`'s time and energy figures (TTFT, TPOT, end-to-end time,
    throughput, energy) without its breakdowns: the same steps priced by the same pricer
    and summed in the same order, so the figures are equal; the explorer and the
    intervals' perturbed runs need no more."""
    _checked_plan(model, dep, batch, input_len, output_len)
    pricer = pricer_for(model, dep)
    ttft = pre_j = 0.0
    priced: dict = {}       # a static batch's prefill repeats a few distinct steps
    for s in prefill_steps(batch, input_len, dep.max_batched_tokens):
        p = priced.get(s)
        if p is None:
            p = priced[s] = pricer.price(s)
        ttft += p.time_s
        pre_j += p.energy_j
    n_dec = output_len - 1
    dec_s = dec_j = 0.0
    contexts = decode_contexts(n_dec, decode_samples)
    if contexts:       # every decode step at once, each equal to price_batches(uniform_decode(...))
        p = pricer.price_uniform_decode(batch, [input_len + j for j, _ in contexts])
        for t, e, (_, wt) in zip(p.time_s.tolist(), p.energy_j.tolist(), contexts):
            dec_s += t * wt
            dec_j += e * wt
    e2e = ttft + dec_s
    return {"ttft_s": ttft, "tpot_s": dec_s / n_dec if n_dec else 0.0, "e2e_s": e2e,
            "throughput_tokens_per_s": batch * output_len / e2e, "energy_j": pre_j + dec_j}


def static_estimate(model: ModelArch, dep: Deployment, batch: int, input_len: int, output_len: int,
                    decode_samples: int | None = None, engine: dict | None = None) -> EstimateResult:
    """``decode_samples``: price that many decode contexts instead of every step (see
    :func:`decode_contexts`); None is the default accuracy. ``engine``: the profile the
    deployment's runtime came from, reported as is."""
    plan = _checked_plan(model, dep, batch, input_len, output_len)
    pre = [(step_cost(model, dep, s), 1.0) for s in prefill_steps(batch, input_len, dep.max_batched_tokens)]
    prefill = _phase(pre)
    ttft = prefill["time_s"]

    n_dec = output_len - 1
    dec_costs = [(step_cost(model, dep, ((1, input_len + j, True),) * batch), wt)
                 for j, wt in decode_contexts(n_dec, decode_samples)]
    decode = _phase(dec_costs)
    decode["steps"] = n_dec
    prefill["steps"] = len(pre)
    tpot = decode["time_s"] / n_dec if n_dec else 0.0
    e2e = ttft + decode["time_s"]
    inputs = {"model": model.id, "chip": dep.chip.id, "num_chips": dep.num_chips, "tp": dep.tp, "pp": dep.pp,
              "ep": dep.ep, "dp": dep.dp, "weight_format": dep.weight_format, "act_format": dep.act,
              "kv_format": dep.kv_format, "batch": batch, "input_len": input_len, "output_len": output_len,
              "max_batched_tokens": dep.max_batched_tokens, "memory_fraction": dep.memory_fraction,
              "calibration": dep.calibration.id}
    prov = {"chip_hash": dep.chip.spec_hash(), "model_hash": model.spec_hash(),
            "calibration": dep.calibration.id, "calibration_hash": dep.calibration.spec_hash()}
    return EstimateResult(ttft_s=ttft, tpot_s=tpot, e2e_s=e2e, throughput_tokens_per_s=batch * output_len / e2e,
                          prefill=prefill, decode=decode, memory=plan, inputs=inputs,
                          energy_j=prefill["energy_j"] + decode["energy_j"], provenance=prov, engine=engine,
                          notes=tuple(dep.notes))


def with_interval(r: EstimateResult, model: ModelArch, dep: Deployment, perturbations: list[Perturbation],
                  decode_samples: int | None = DECODE_SAMPLES) -> EstimateResult:
    """``r`` with its 80% intervals on throughput, TTFT and TPOT, from the same estimate
    under each perturbation (see :mod:`seedchip.perf.uncertainty`). The perturbed runs
    sample the decode (``decode_samples``): the spread, not the level, is what they give."""
    i = r.inputs
    runs = [static_figures(model, dep.replace(perturbation=p), i["batch"], i["input_len"], i["output_len"],
                           decode_samples=decode_samples if i["output_len"] > decode_samples else None)
            for p in perturbations]
    iv = {"throughput_tokens_per_s": interval80(r.throughput_tokens_per_s, [x["throughput_tokens_per_s"] for x in runs]),
          "ttft_mean_s": interval80(r.ttft_s, [x["ttft_s"] for x in runs]),
          "tpot_mean_s": interval80(r.tpot_s, [x["tpot_s"] for x in runs]),
          "draws": len(runs)}
    return replace(r, interval80=iv)
