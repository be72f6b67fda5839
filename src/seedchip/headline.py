"""The headline comparison `seedchip run` prints: our reference ASIC against the H200
on one model and workload, with the same deployment on each, and 80% intervals on each
chip's figures and on the ratios. For the ratios, each chip draws its own kernel-class
errors (a chip that does not exist need not share the calibration's errors with the one
it was fitted near) while the engine model's error (host time, the whole step) is shared:
the same engine runs on both."""

from __future__ import annotations

from dataclasses import dataclass

from .api import estimate
from .perf.calibration import load_calibration
from .perf.uncertainty import draws, interval80
from .serve.profiles import DEFAULT_ENGINE, resolve_engine
from .hardware.catalog import load_chip

DEFAULTS = {"model": "llama-3.1-70b", "chips": ("seedchip-ref", "h200-sxm"), "num_chips": 8, "tp": 8,
            "weight_format": "fp8", "kv_format": "fp8", "batch": 64, "input_len": 2048, "output_len": 256}


@dataclass(frozen=True)
class HeadlineResult:
    rows: list[dict]
    inputs: dict
    perturbed: dict          # chip -> its figures under each of its own draws

    def to_dict(self) -> dict:
        base = self.rows[-1]
        ratios = {}
        for r in self.rows[:-1]:
            ratio = {k: r[key] / base[key] for k, key in RATIOS.items()}
            for k, key in RATIOS.items():
                ratio[f"{k}_interval80"] = interval80(ratio[k], [
                    a[key] / b[key] for a, b in zip(self.perturbed[r["chip"]], self.perturbed[base["chip"]])])
            ratios[f"{r['chip']}_vs_{base['chip']}"] = ratio
        return {"inputs": self.inputs, "rows": self.rows, "ratios": ratios}


RATIOS = {"throughput": "throughput_tokens_per_s", "ttft": "ttft_s", "tpot": "tpot_s",
          "tokens_per_joule": "tokens_per_joule"}


def _figures(r: dict, out_tokens: int) -> dict:
    return {"ttft_s": r["ttft_s"], "tpot_s": r["tpot_s"], "throughput_tokens_per_s": r["throughput_tokens_per_s"],
            "tokens_per_joule": out_tokens / r["energy_j"]}


def run(*, model: str = DEFAULTS["model"], chips: tuple[str, ...] = DEFAULTS["chips"],
        num_chips: int = DEFAULTS["num_chips"], tp: int | None = DEFAULTS["tp"],
        weight_format: str = DEFAULTS["weight_format"], kv_format: str = DEFAULTS["kv_format"],
        batch: int = DEFAULTS["batch"], input_len: int = DEFAULTS["input_len"],
        output_len: int = DEFAULTS["output_len"], calibration: str | None = None) -> HeadlineResult:
    rows, perturbed = [], {}
    kw = dict(model=model, num_chips=num_chips, tp=tp, weight_format=weight_format, kv_format=kv_format,
              batch=batch, input_len=input_len, output_len=output_len, calibration=calibration)
    out_tokens = batch * output_len
    sigma = resolve_engine(DEFAULT_ENGINE, load_chip(chips[-1]), tp or num_chips, offline=True).step_sigma
    cal = load_calibration(calibration)
    engine_draws = draws(cal, sigma)
    for i, chip in enumerate(chips):
        r = estimate(chip=chip, **kw).to_dict()
        own = [k.replace(host=e.host, step=e.step) for k, e in zip(draws(cal, sigma, seed=i + 1), engine_draws)]
        perturbed[chip] = [_figures(estimate(chip=chip, perturbation=p, **kw).to_dict(), out_tokens) for p in own]
        rows.append({
            "chip": chip, "ttft_s": r["ttft_s"], "tpot_s": r["tpot_s"], "e2e_s": r["e2e_s"],
            "throughput_tokens_per_s": r["throughput_tokens_per_s"],
            "tokens_per_s_per_chip": r["throughput_tokens_per_s_per_chip"],
            "avg_power_w_per_chip": r["avg_power_w_per_chip"],
            "tokens_per_joule": out_tokens / r["energy_j"],
            "decode_bound": next(iter(r["decode"]["by_class"].values()))["bound"],
            "decode_top_class": next(iter(r["decode"]["by_class"])),
            "kv_tokens_free": r["memory"]["max_kv_tokens_total"],
            "calibration": r["inputs"]["calibration"],
            "interval80": r["interval80"],
        })
    inputs = {"model": model, "chips": list(chips), "num_chips": num_chips, "tp": tp, "weight_format": weight_format,
              "kv_format": kv_format, "batch": batch, "input_len": input_len, "output_len": output_len}
    return HeadlineResult(rows=rows, inputs=inputs, perturbed=perturbed)
