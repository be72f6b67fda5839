"""Batch limits for offline throughput: the rule TensorRT-LLM's benchmark uses, and a
search for the best limits within memory (``--max-throughput``).

``trtllm_bench_limits`` restates trtllm-bench's build heuristic (NVIDIA/TensorRT-LLM
``tensorrt_llm/bench/build/tuning.py``, ``calc_engine_setting`` and
``finetune_setting``, 2025): the KV memory left after the weights (all GPUs of the
tensor x pipeline group, a fraction of it) divided by one request's KV (mean prompt +
mean output, KV heads at least tp) gives the requests that fit; the batch size is that
(at most 4,096, divided by pp), rounded up optimistically; the fraction is the build's
own 0.95, whatever fraction the benchmark then runs with; the token budget is batch x
(1 + ISL / OSL), at most 32,768, rounded up, at least 2,048.

``best_limits`` searches ``max_num_seqs`` (powers of two up to what memory holds, plus
the engine's own choice) and then ``max_batched_tokens`` for the highest offline output
tokens per second, as one tunes a throughput benchmark.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from itertools import islice

from ..formats import get_format
from ..model.arch import ModelArch
from ..model.params import count_params
from .workload import WorkloadSpec, requests

TOKEN_BUDGETS = (2048, 4096, 8192, 16384, 32768)
MAX_BENCH_BATCH = 4096          # trtllm-bench caps the batch size (decoder buffers)
MAX_BENCH_TOKENS = 32768        # and the token budget (activation buffers)
BUILD_KV_FRACTION = 0.95        # calc_engine_setting's default; `trtllm-bench build` has no option to change it,
                                # so the runtime's --kv_cache_free_gpu_mem_fraction does not reach the limits


def mean_lengths(spec: WorkloadSpec, sample: int = 2000) -> tuple[float, float]:
    """Mean prompt and output lengths of a workload (its first ``sample`` requests)."""
    reqs = list(islice(requests(spec), sample))
    return (sum(r.input_len for r in reqs) / len(reqs), sum(r.output_len for r in reqs) / len(reqs))


def _round_batch(raw: float) -> int:
    if raw < 256:
        return max(64, 32 * math.ceil(raw / 32))
    if raw < 1024:
        return 128 * math.ceil(raw / 128)
    return 256 * math.ceil(raw / 256)


def _round_tokens(raw: float) -> int:
    if raw < 4096:
        return max(2048, 256 * math.ceil(raw / 256))
    if raw < 8192:
        return 512 * math.ceil(raw / 512)
    return 1024 * math.ceil(raw / 1024)


def trtllm_bench_limits(model: ModelArch, chip_hbm_bytes: float, tp: int, pp: int, weight_format: str,
                        kv_format: str, isl: float, osl: float,
                        kv_fraction: float = BUILD_KV_FRACTION) -> tuple[int, int]:
    """(max_num_seqs, max_batched_tokens) as trtllm-bench's build heuristic sets them."""
    kv_bytes = get_format(kv_format).bytes_per_element
    if model.attention == "mla":
        per_layer = model.kv_latent_dim
    else:
        per_layer = 2 * max(tp, model.num_kv_heads) * model.head_dim
    per_token = model.num_layers * per_layer * kv_bytes
    engine = count_params(model).total * get_format(weight_format).bytes_per_element
    available = chip_hbm_bytes * tp * pp - engine
    requests_fit = max(available, 0.0) * kv_fraction / (per_token * (isl + osl))
    raw_bs = min(requests_fit, MAX_BENCH_BATCH) / pp
    raw_tokens = min(raw_bs * (1 + isl / osl), MAX_BENCH_TOKENS)
    return _round_batch(raw_bs), _round_tokens(raw_tokens)


def runtime_max_seqs(tuning, max_num_seqs: int, kv_tokens: int, block_size: int, isl: float,
                     osl: float) -> dict:
    """The batch limit a dynamic batch-size tuner sets at run time: the requests of the
    workload's mean lengths (truncated to whole tokens) whose blocks the KV cache holds
    (``kv_capacity_requests``), looked up in the tuner's table, and never above the
    engine's own ``max_num_seqs`` (``runtime_max_num_seqs``)."""
    per_request = max(math.ceil((int(isl) + int(osl)) / block_size), 1)
    capacity = (kv_tokens // block_size) // per_request
    return {"kv_capacity_requests": capacity, "engine_max_num_seqs": max_num_seqs,
            "runtime_max_num_seqs": min(max_num_seqs, tuning.batch(capacity))}


def best_limits(run: Callable[[int, int], dict], start: tuple[int, int], most_seqs: int) -> tuple[dict, dict]:
    """(best run, the search): ``run(max_num_seqs, max_batched_tokens)`` is an offline
    simulation; ``start`` the engine's own limits; ``most_seqs`` what memory can hold."""
    tried: dict[tuple[int, int], dict] = {}

    def score(seqs: int, tokens: int) -> float:
        if (seqs, tokens) not in tried:
            tried[(seqs, tokens)] = run(seqs, tokens)
        return tried[(seqs, tokens)]["throughput_tokens_per_s"]

    seqs_grid = sorted({start[0], *(2**i for i in range(4, 14) if 2**i <= max(16, most_seqs))})
    best_seqs = max(seqs_grid, key=lambda s: (score(s, start[1]), -s))
    best = max(sorted({start[1], *TOKEN_BUDGETS}), key=lambda t: (score(best_seqs, t), -t))
    chosen = tried[(best_seqs, best)]
    search = {"max_num_seqs": best_seqs, "max_batched_tokens": best,
              "engine_choice": {"max_num_seqs": start[0], "max_batched_tokens": start[1],
                                "throughput_tokens_per_s": tried[start]["throughput_tokens_per_s"]},
              "candidates": [{"max_num_seqs": s, "max_batched_tokens": t,
                              "throughput_tokens_per_s": d["throughput_tokens_per_s"]}
                             for (s, t), d in sorted(tried.items())]}
    return chosen, search


__all__ = ["trtllm_bench_limits", "best_limits", "mean_lengths", "runtime_max_seqs"]
