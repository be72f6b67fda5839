"""The headline comparison `seedchip run` prints: our reference ASIC against the H200
on one model and workload, with the same deployment on each."""

from __future__ import annotations

from dataclasses import dataclass

from .api import estimate

DEFAULTS = {"model": "llama-3.1-70b", "chips": ("seedchip-ref", "h200-sxm"), "num_chips": 8, "tp": 8,
            "weight_format": "fp8", "kv_format": "fp8", "batch": 64, "input_len": 2048, "output_len": 256}


@dataclass(frozen=True)
class HeadlineResult:
    rows: list[dict]
    inputs: dict

    def to_dict(self) -> dict:
        base = self.rows[-1]
        ratios = {}
        for r in self.rows[:-1]:
            ratios[f"{r['chip']}_vs_{base['chip']}"] = {
                "throughput": r["throughput_tokens_per_s"] / base["throughput_tokens_per_s"],
                "ttft": r["ttft_s"] / base["ttft_s"],
                "tpot": r["tpot_s"] / base["tpot_s"],
                "tokens_per_joule": r["tokens_per_joule"] / base["tokens_per_joule"],
            }
        return {"inputs": self.inputs, "rows": self.rows, "ratios": ratios}


def run(*, model: str = DEFAULTS["model"], chips: tuple[str, ...] = DEFAULTS["chips"],
        num_chips: int = DEFAULTS["num_chips"], tp: int | None = DEFAULTS["tp"],
        weight_format: str = DEFAULTS["weight_format"], kv_format: str = DEFAULTS["kv_format"],
        batch: int = DEFAULTS["batch"], input_len: int = DEFAULTS["input_len"],
        output_len: int = DEFAULTS["output_len"], calibration: str | None = None) -> HeadlineResult:
    rows = []
    for chip in chips:
        r = estimate(chip=chip, model=model, num_chips=num_chips, tp=tp, weight_format=weight_format,
                     kv_format=kv_format, batch=batch, input_len=input_len, output_len=output_len,
                     calibration=calibration).to_dict()
        out_tokens = batch * output_len
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
        })
    inputs = {"model": model, "chips": list(chips), "num_chips": num_chips, "tp": tp, "weight_format": weight_format,
              "kv_format": kv_format, "batch": batch, "input_len": input_len, "output_len": output_len}
    return HeadlineResult(rows=rows, inputs=inputs)
