#!/usr/bin/env python3
"""Measure one GPU for SeedChip's calibration layer: GEMM, attention, memory bandwidth,
launch overhead, one Llama decoder layer and one whole Llama model step.

Needs only PyTorch and NumPy (it never imports seedchip, so it runs on a bare GPU box).
Writes one CSV (format: calibration/README.md) with a ``#`` provenance header, and a log.

    python calibration/gpu_microbench.py --device cuda --budget-s 420 --out $OUT/h200.csv
    python calibration/gpu_microbench.py --device cpu --tiny --out /tmp/smoke.csv   # seconds

How it times (CUDA): warm-up calls, then each sample replays a CUDA graph of ``inner``
calls (eager calls between CUDA events when capture fails; the ``mode`` column says
which) and divides by ``inner``; the row is the median of ``repeats`` samples. Inputs are
random normal values (never zeros: zeros draw less power and run faster), and inputs
smaller than the L2 are rotated over enough copies (4 x L2 in all) that no call finds its
operands in cache. On the CPU (``--device cpu``) the same code runs with
``time.perf_counter`` around eager calls. The sweep is ordered so the most valuable rows
come first and stops cleanly before ``--budget-s`` (counted from the script's start).
"""

from __future__ import annotations

import time

T_START = time.perf_counter()

import argparse  # noqa: E402
import csv  # noqa: E402
import datetime  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import platform  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Callable  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from llama_torch import TorchLlama, sdpa, tiny_config  # noqa: E402

FORMAT_VERSION = 1
DEFAULT_CONFIG = Path(__file__).resolve().parent.parent / "src/seedchip/model/configs/llama-3.1-8b.json"
COLUMNS = ["op", "phase", "shape", "format", "impl", "mode", "time_s", "time_min_s", "repeats", "inner",
           "flops", "bytes", "achieved_flops_per_s", "achieved_bytes_per_s",
           "m", "n", "k", "batch", "seq_len", "context", "new_tokens", "num_heads", "num_kv_heads", "head_dim",
           "window", "elements", "hidden", "num_layers", "model", "tier", "note"]
BF16 = torch.bfloat16


# ----------------------------------------------------------------------------- shapes

# (n, k, where it comes from): weight shapes of real layers at tp=1 unless said
GEMM_NK = [
    (6144, 4096, "llama-3.1-8b qkv_proj"), (4096, 4096, "llama-3.1-8b o_proj"),
    (28672, 4096, "llama-3.1-8b gate_up / mixtral-8x7b expert w1+w3"),
    (4096, 14336, "llama-3.1-8b down / mixtral-8x7b expert w2"), (128256, 4096, "llama-3.1-8b lm_head"),
    (10240, 8192, "llama-3.1-70b qkv_proj"), (8192, 8192, "llama-3.1-70b o_proj"),
    (57344, 8192, "llama-3.1-70b gate_up"), (8192, 28672, "llama-3.1-70b down"),
    (1280, 8192, "llama-3.1-70b qkv_proj tp8"), (7168, 8192, "llama-3.1-70b gate_up tp8"),
    (8192, 3584, "llama-3.1-70b down tp8"), (8192, 1024, "llama-3.1-70b o_proj tp8"),
    (1536, 7168, "deepseek-v3 q_a_proj"), (24576, 1536, "deepseek-v3 q_b_proj"), (576, 7168, "deepseek-v3 kv_a_proj"),
    (32768, 512, "deepseek-v3 kv_b_proj"), (7168, 16384, "deepseek-v3 o_proj"),
    (4096, 7168, "deepseek-v3 expert gate_up"), (7168, 2048, "deepseek-v3 expert down"),
    (36864, 7168, "deepseek-v3 dense gate_up"), (7168, 18432, "deepseek-v3 dense down"),
]
GEMM_POW2 = [(s, s, "power of two") for s in (1024, 2048, 4096, 8192, 16384)] + \
            [(16384, 4096, "power of two"), (4096, 16384, "power of two")]
M_COARSE = [1, 16, 128, 1024, 4096, 16384]
M_FINE = [2, 4, 8, 32, 64, 256, 512, 2048, 8192]
# (query heads, KV heads, head dim, where it comes from)
ATTN_HEADS = [(32, 8, 128, "llama-3.1-8b"), (64, 8, 128, "llama-3.1-70b"), (8, 1, 128, "llama-3.1-70b tp8"),
              (32, 32, 128, "llama-2-7b MHA")]
PREFILL_LENS = [512, 1024, 2048, 4096, 8192, 16384, 32768]
DECODE_BATCH = [1, 4, 16, 64, 256]
DECODE_CTX = [512, 2048, 8192, 32768]
COPY_BYTES = [2**20, 2**22, 2**24, 2**26, 2**28, 2**30, 2**32]
ADD_ELEMS = [2**16, 2**20, 2**24, 2**27]
NORM_TOKENS = [1, 16, 256, 4096, 16384]
MODEL_DECODE = [(b, c) for c in (1024, 4096) for b in (1, 8, 32, 128)]
MODEL_PREFILL = [512, 2048, 8192]

TINY = dict(
    gemm_nk=[(96, 64, "tiny qkv"), (64, 64, "tiny o_proj"), (256, 64, "tiny gate_up"), (64, 128, "tiny down")],
    gemm_pow2=[(128, 128, "power of two")], m_coarse=[1, 16, 64], m_fine=[4, 32],
    attn_heads=[(4, 2, 32, "tiny gqa"), (4, 4, 32, "tiny mha")], prefill_lens=[32, 64, 128],
    decode_batch=[1, 4], decode_ctx=[32, 128], copy_bytes=[2**12, 2**16, 2**18], add_elems=[2**10, 2**14],
    norm_tokens=[1, 16], model_decode=[(1, 16), (2, 16), (1, 64), (2, 64)], model_prefill=[16, 64],
)


# ----------------------------------------------------------------------------- logging

class Log:
    def __init__(self, path: Path | None, quiet: bool = False):
        self.f = open(path, "w") if path else None
        self.quiet = quiet

    def __call__(self, msg: str) -> None:
        line = f"[{time.perf_counter() - T_START:7.1f}s] {msg}"
        if not self.quiet:
            print(line, flush=True)
        if self.f:
            self.f.write(line + "\n")
            self.f.flush()


# ----------------------------------------------------------------------------- timing

class Timer:
    """Median time of one call. CUDA: graph replay (or eager calls) between events;
    CPU: perf_counter around eager calls. ``fns`` are the same op on rotating buffers."""

    def __init__(self, device: torch.device, log: Log, repeats: int, warmup: int, target_s: float,
                 max_inner: int, graphs: bool):
        self.device, self.log = device, log
        self.repeats, self.warmup, self.target_s, self.max_inner, self.graphs = repeats, warmup, target_s, max_inner, graphs

    def measure(self, fns: list[Callable], graphs: bool | None = None) -> dict:
        use_graph = self.graphs if graphs is None else graphs
        return self._cuda(fns, use_graph) if self.device.type == "cuda" else self._cpu(fns)

    def _inner(self, probe_s: float, n: int) -> int:
        inner = int(min(self.max_inner, max(1, math.ceil(self.target_s / max(probe_s, 1e-7)))))
        return max(inner, min(n, self.max_inner))

    def _cpu(self, fns: list[Callable]) -> dict:
        n = len(fns)
        for i in range(max(self.warmup, n)):
            fns[i % n]()
        t0 = time.perf_counter()
        fns[0]()
        inner = self._inner(time.perf_counter() - t0, n)
        times = []
        for _ in range(self.repeats):
            t0 = time.perf_counter()
            for i in range(inner):
                fns[i % n]()
            times.append((time.perf_counter() - t0) / inner)
        return {"time_s": float(np.median(times)), "time_min_s": float(min(times)), "repeats": self.repeats,
                "inner": inner, "mode": "cpu_wall"}

    def _cuda(self, fns: list[Callable], use_graph: bool) -> dict:
        n = len(fns)
        for i in range(max(self.warmup, n)):
            fns[i % n]()
        torch.cuda.synchronize()
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fns[0]()
        end.record()
        end.synchronize()
        inner = self._inner(start.elapsed_time(end) / 1e3, n)
        graph, mode = None, "cuda_events"
        if use_graph:
            try:
                side = torch.cuda.Stream()
                side.wait_stream(torch.cuda.current_stream())
                with torch.cuda.stream(side):
                    for i in range(n):
                        fns[i]()
                torch.cuda.current_stream().wait_stream(side)
                graph = torch.cuda.CUDAGraph()
                with torch.cuda.graph(graph):
                    for i in range(inner):
                        fns[i % n]()
                graph.replay()
                torch.cuda.synchronize()
                mode = "cuda_graph"
            except Exception as e:  # capture is not always possible: fall back to eager calls
                self.log(f"  graph capture failed ({type(e).__name__}: {str(e).splitlines()[0][:120]}); timing eager calls")
                graph = None
                torch.cuda.synchronize()

        def run():
            if graph is not None:
                graph.replay()
            else:
                for i in range(inner):
                    fns[i % n]()

        times = []
        for _ in range(self.repeats):
            start.record()
            run()
            end.record()
            end.synchronize()
            times.append(start.elapsed_time(end) / 1e3 / inner)
        return {"time_s": float(np.median(times)), "time_min_s": float(min(times)), "repeats": self.repeats,
                "inner": inner, "mode": mode}


# ----------------------------------------------------------------------------- the bench

@dataclass
class Task:
    tier: int
    label: str
    est_s: float
    run: Callable[[], list[dict]]
    order: int = 0


@dataclass
class Bench:
    device: torch.device
    log: Log
    timer: Timer
    gen: torch.Generator
    rotate_bytes: float
    max_sets: int
    mem_cap_bytes: float
    flops_per_s: float          # nominal rates, only to estimate a task's duration
    bytes_per_s: float
    fp8_ok: bool = False
    gqa_ok: bool = False

    def randn(self, *shape, dtype=BF16, std: float = 1.0) -> torch.Tensor:
        t = torch.randn(*shape, generator=self.gen, device=self.device, dtype=torch.float32 if dtype != BF16 else BF16)
        if std != 1.0:
            t.mul_(std)
        return t if t.dtype == dtype else t.to(dtype)

    def sets(self, set_bytes: float) -> int:
        """Copies of the inputs so that rotating through them exceeds the L2 several times."""
        return int(min(self.max_sets, max(1, math.ceil(self.rotate_bytes / max(set_bytes, 1.0)))))

    def fits(self, total_bytes: float, label: str) -> bool:
        cap = self.mem_cap_bytes
        if self.device.type == "cuda":
            cap = min(cap, 0.9 * torch.cuda.mem_get_info(self.device)[0])
        if total_bytes > cap:
            self.log(f"  skip {label}: needs {total_bytes / 1e9:.1f} GB > {cap / 1e9:.1f} GB free")
            return False
        return True

    def est(self, flops: float, nbytes: float, calls: int = 16, setup: float = 0.05) -> float:
        return setup + calls * max(flops / self.flops_per_s, nbytes / self.bytes_per_s, 5e-6)


def row(op: str, timing: dict, flops: float, nbytes: float, **cols) -> dict:
    t = timing["time_s"]
    r = {c: 0 for c in COLUMNS}
    r.update({"phase": "", "shape": "", "format": "bf16", "impl": "", "model": "", "note": ""})
    r.update(op=op, flops=flops, bytes=nbytes, achieved_flops_per_s=flops / t if t > 0 else 0.0,
             achieved_bytes_per_s=nbytes / t if t > 0 else 0.0, **timing)
    r.update(cols)
    return r


# --- GEMM

def gemm_task(b: Bench, m: int, n: int, k: int, fmt: str, note: str, tier: int) -> Task:
    eb = 2 if fmt == "bf16" else 1
    nbytes = float(m * k * eb + n * k * eb + m * n * 2)  # each operand once, bf16 out
    flops = 2.0 * m * n * k

    def run() -> list[dict]:
        sets = b.sets(nbytes)
        if not b.fits(sets * nbytes * 1.5, f"gemm {m}x{n}x{k}"):
            return []
        fns = []
        if fmt == "bf16":
            for _ in range(sets):
                a, w = b.randn(m, k), b.randn(n, k, std=k ** -0.5)
                fns.append(lambda a=a, w=w: F.linear(a, w))
            impl = "F.linear"
        else:
            one = torch.ones((), device=b.device, dtype=torch.float32)
            for _ in range(sets):
                a = b.randn(m, k, dtype=torch.float8_e4m3fn)
                w = b.randn(n, k, dtype=torch.float8_e4m3fn)
                fns.append(lambda a=a, w=w: torch._scaled_mm(a, w.t(), scale_a=one, scale_b=one, out_dtype=BF16))
            impl = "torch._scaled_mm per-tensor"
        t = b.timer.measure(fns)
        return [row("gemm", t, flops, nbytes, shape=f"{m}x{n}x{k}", format=fmt, impl=impl, m=m, n=n, k=k,
                    note=note, tier=tier)]

    return Task(tier, f"gemm {fmt} {m}x{n}x{k}", b.est(flops / (1 if fmt == "bf16" else 2), nbytes), run)


# --- attention

def prefill_task(b: Bench, batch: int, s: int, h: int, kvh: int, d: int, note: str, tier: int) -> Task:
    pairs = batch * s * (s + 1) / 2.0
    flops = 4.0 * pairs * h * d
    nbytes = float(batch * s * d * 2 * (2 * h + 2 * kvh))  # read q, k, v; write o

    def run() -> list[dict]:
        sets = b.sets(nbytes)
        if not b.fits(sets * nbytes * 2, f"prefill b{batch} s{s}"):
            return []
        gqa = kvh != h and b.gqa_ok
        fns = []
        for _ in range(sets):
            q, k, v = b.randn(batch, h, s, d), b.randn(batch, kvh, s, d), b.randn(batch, kvh, s, d)
            if kvh != h and not gqa:  # expand K/V to every query head outside the timed call
                k, v = k.repeat_interleave(h // kvh, 1), v.repeat_interleave(h // kvh, 1)
            fns.append(lambda q=q, k=k, v=v: sdpa(q, k, v, True, gqa, b.device))
        t = b.timer.measure(fns)
        impl = "sdpa causal" + (" enable_gqa" if gqa else (" kv expanded" if kvh != h else ""))
        return [row("attention_prefill", t, flops, nbytes, phase="prefill", shape=f"b{batch} s{s} h{h}/{kvh} d{d}",
                    impl=impl, batch=batch, seq_len=s, new_tokens=s, num_heads=h, num_kv_heads=kvh, head_dim=d,
                    note=note, tier=tier)]

    return Task(tier, f"attention prefill b{batch} s{s} h{h}/{kvh}", b.est(flops / 0.5, nbytes), run)


def decode_task(b: Bench, batch: int, ctx: int, h: int, kvh: int, d: int, note: str, tier: int) -> Task:
    """One new token per sequence attending ``ctx`` keys (the KV length). The query
    heads of one KV head are the rows of one query block (exact for decode, and what
    decode kernels do), so no GQA support is needed and K/V are read once."""
    g = h // kvh
    flops = 4.0 * batch * h * ctx * d
    kv_bytes = float(batch * ctx * kvh * d * 2 * 2)
    nbytes = kv_bytes + batch * h * d * 2 * 2

    def run() -> list[dict]:
        sets = b.sets(nbytes)
        if not b.fits(sets * nbytes, f"decode b{batch} ctx{ctx}"):
            return []
        fns = []
        for _ in range(sets):
            q, k, v = b.randn(batch, kvh, g, d), b.randn(batch, kvh, ctx, d), b.randn(batch, kvh, ctx, d)
            fns.append(lambda q=q, k=k, v=v: sdpa(q, k, v, False, False, b.device))
        t = b.timer.measure(fns)
        return [row("attention_decode", t, flops, nbytes, phase="decode", shape=f"b{batch} ctx{ctx} h{h}/{kvh} d{d}",
                    impl="sdpa group-as-rows", batch=batch, seq_len=1, new_tokens=1, context=ctx, num_heads=h,
                    num_kv_heads=kvh, head_dim=d, note=note, tier=tier)]

    return Task(tier, f"attention decode b{batch} ctx{ctx} h{h}/{kvh}", b.est(flops, nbytes), run)


def varlen_tasks(b: Bench, tier: int, tiny: bool) -> list[Task]:
    """Packed variable-length prefill and paged decode through torch.nn.attention.varlen,
    when the installed PyTorch offers it (CUDA only)."""
    try:
        import inspect

        from torch.nn.attention.varlen import varlen_attn
        params = inspect.signature(varlen_attn).parameters
    except Exception as e:
        b.log(f"varlen/paged attention: not offered by torch {torch.__version__} ({type(e).__name__}); rows skipped")
        return []
    if b.device.type != "cuda":
        b.log("varlen/paged attention: CUDA only; rows skipped on this device")
        return []
    causal = {"is_causal": True} if "is_causal" in params else {"window_size": (-1, 0)}
    gqa = {"enable_gqa": True} if "enable_gqa" in params else {}
    tasks = []
    h, kvh, d = 32, 8, 128
    for nseq, s in ((4, 512), (8, 1024), (4, 4096)):
        def run(nseq=nseq, s=s) -> list[dict]:
            lens = [s] * nseq
            tot = sum(lens)
            cu = torch.tensor([0] + list(np.cumsum(lens)), device=b.device, dtype=torch.int32)
            q, k, v = b.randn(tot, h, d), b.randn(tot, kvh, d), b.randn(tot, kvh, d)
            fn = lambda: varlen_attn(q, k, v, cu, cu, s, s, **causal, **gqa)  # noqa: E731
            t = b.timer.measure([fn])
            pairs = nseq * s * (s + 1) / 2.0
            return [row("attention_prefill", t, 4.0 * pairs * h * d, float(tot * d * 2 * (2 * h + 2 * kvh)),
                        phase="prefill", shape=f"varlen {nseq}x{s} h{h}/{kvh} d{d}", impl="varlen_attn causal",
                        batch=nseq, seq_len=s, new_tokens=s, num_heads=h, num_kv_heads=kvh, head_dim=d,
                        note="packed varlen prefill", tier=tier)]
        tasks.append(Task(tier, f"varlen prefill {nseq}x{s}", 1.0, run))
    if "block_table" in params and "seqused_k" in params:
        for batch, ctx in ((16, 2048), (64, 8192)):
            def run(batch=batch, ctx=ctx) -> list[dict]:
                page = 256
                pages = math.ceil(ctx / page)
                kpool = b.randn(batch * pages, page, kvh, d)
                vpool = b.randn(batch * pages, page, kvh, d)
                perm = torch.randperm(batch * pages, generator=b.gen, device=b.device).to(torch.int32)
                table = perm.view(batch, pages)
                q = b.randn(batch, h, d)
                cuq = torch.arange(batch + 1, device=b.device, dtype=torch.int32)
                used = torch.full((batch,), ctx, device=b.device, dtype=torch.int32)
                fn = lambda: varlen_attn(q, kpool, vpool, cuq, None, 1, ctx, seqused_k=used,  # noqa: E731
                                         block_table=table, **gqa)
                t = b.timer.measure([fn])
                nbytes = float(batch * ctx * kvh * d * 4 + batch * h * d * 4)
                return [row("attention_decode", t, 4.0 * batch * h * ctx * d, nbytes, phase="decode",
                            shape=f"paged b{batch} ctx{ctx} h{h}/{kvh} d{d}", impl=f"varlen_attn paged {page}",
                            batch=batch, seq_len=1, new_tokens=1, context=ctx, num_heads=h, num_kv_heads=kvh,
                            head_dim=d, note="paged KV decode", tier=tier)]
            tasks.append(Task(tier, f"paged decode b{batch} ctx{ctx}", 1.0, run))
    else:
        b.log("paged decode: this torch's varlen_attn has no block_table; rows skipped")
    return tasks


# --- memory-bound kernels and launch overhead

def copy_task(b: Bench, size: int, tier: int) -> Task:
    elems = size // 2

    def run() -> list[dict]:
        sets = b.sets(2.0 * size)
        if not b.fits(sets * 2.0 * size, f"copy {size}"):
            return []
        fns = []
        for _ in range(sets):
            src, dst = b.randn(elems), torch.empty(elems, device=b.device, dtype=BF16)
            fns.append(lambda s=src, d=dst: d.copy_(s))
        t = b.timer.measure(fns)
        return [row("copy", t, 0.0, 2.0 * size, shape=f"{size} B", impl="Tensor.copy_", elements=elems,
                    note="bytes = read + write", tier=tier)]

    return Task(tier, f"copy {size} B", b.est(0, 2.0 * size), run)


def add_task(b: Bench, elems: int, tier: int) -> Task:
    nbytes = 6.0 * elems

    def run() -> list[dict]:
        sets = b.sets(nbytes)
        if not b.fits(sets * nbytes, f"add {elems}"):
            return []
        fns = []
        for _ in range(sets):
            x, y, o = b.randn(elems), b.randn(elems), torch.empty(elems, device=b.device, dtype=BF16)
            fns.append(lambda x=x, y=y, o=o: torch.add(x, y, out=o))
        t = b.timer.measure(fns)
        return [row("elementwise_add", t, float(elems), nbytes, shape=f"{elems} elems", impl="torch.add out=",
                    elements=elems, tier=tier)]

    return Task(tier, f"add {elems}", b.est(0, nbytes), run)


def rmsnorm_task(b: Bench, tokens: int, hidden: int, tier: int) -> Task:
    elems = tokens * hidden
    nbytes = 4.0 * elems + 2.0 * hidden
    fused = hasattr(F, "rms_norm")

    def run() -> list[dict]:
        sets = b.sets(nbytes)
        fns = []
        for _ in range(sets):
            x, w = b.randn(tokens, hidden), b.randn(hidden, std=0.1).add_(1.0)
            if fused:
                fns.append(lambda x=x, w=w: F.rms_norm(x, (hidden,), w, 1e-5))
            else:
                fns.append(lambda x=x, w=w: x * torch.rsqrt(x.float().pow(2).mean(-1, keepdim=True) + 1e-5).to(BF16) * w)
        t = b.timer.measure(fns)
        return [row("rmsnorm", t, 4.0 * elems, nbytes, shape=f"{tokens}x{hidden}",
                    impl="F.rms_norm" if fused else "rmsnorm composite", elements=elems, batch=tokens, hidden=hidden,
                    tier=tier)]

    return Task(tier, f"rmsnorm {tokens}x{hidden}", b.est(0, nbytes), run)


def silu_mul_task(b: Bench, tokens: int, width: int, tier: int) -> Task:
    elems = tokens * width
    nbytes = 6.0 * elems  # read gate and up, write out (bf16)

    def run() -> list[dict]:
        sets = b.sets(nbytes)
        fns = []
        for _ in range(sets):
            x = b.randn(tokens, 2 * width)
            fns.append(lambda x=x: F.silu(x[:, :width]) * x[:, width:])
        t = b.timer.measure(fns)
        return [row("silu_mul", t, 6.0 * elems, nbytes, shape=f"{tokens}x{width}", impl="F.silu(g) * u (2 kernels)",
                    elements=elems, batch=tokens, hidden=width, tier=tier)]

    return Task(tier, f"silu_mul {tokens}x{width}", b.est(0, nbytes), run)


def launch_tasks(b: Bench, tier: int) -> list[Task]:
    def tiny_kernel() -> list[dict]:
        x = b.randn(1)
        fn = lambda: x.add_(1.0)  # noqa: E731  (a one-element kernel: launch cost only)
        out = []
        t = b.timer.measure([fn])  # graph replay on CUDA: GPU time per kernel inside a graph
        out.append(row("launch", t, 0.0, 0.0, shape="1 elem", impl="x.add_(1)", elements=1, note="per kernel",
                       tier=tier))
        if b.device.type == "cuda":  # eager: CPU launch path (driver + PyTorch dispatch), wall clock
            n = 2000
            for _ in range(100):
                fn()
            torch.cuda.synchronize()
            times = []
            for _ in range(5):
                t0 = time.perf_counter()
                for _ in range(n):
                    fn()
                torch.cuda.synchronize()
                times.append((time.perf_counter() - t0) / n)
            out.append(row("launch", {"time_s": float(np.median(times)), "time_min_s": float(min(times)),
                                      "repeats": 5, "inner": n, "mode": "eager_wall"}, 0.0, 0.0, shape="1 elem",
                           impl="x.add_(1) eager", elements=1, note="wall time per eager launch", tier=tier))
            try:  # graph launch latency: replay a one-kernel graph and wait for it
                g = torch.cuda.CUDAGraph()
                s = torch.cuda.Stream()
                s.wait_stream(torch.cuda.current_stream())
                with torch.cuda.stream(s):
                    fn()
                torch.cuda.current_stream().wait_stream(s)
                with torch.cuda.graph(g):
                    fn()
                times = []
                for _ in range(200):
                    t0 = time.perf_counter()
                    g.replay()
                    torch.cuda.synchronize()
                    times.append(time.perf_counter() - t0)
                out.append(row("launch", {"time_s": float(np.median(times)), "time_min_s": float(min(times)),
                                          "repeats": 200, "inner": 1, "mode": "graph_replay_wall"}, 0.0, 0.0,
                               shape="1-kernel graph", impl="CUDAGraph.replay + synchronize", elements=1,
                               note="wall time of one graph replay", tier=tier))
            except Exception as e:
                b.log(f"  graph replay row skipped: {type(e).__name__}: {e}")
        return out

    return [Task(tier, "launch overhead", 2.0, tiny_kernel)]


# --- one decoder layer and one whole model step

def model_tasks(b: Bench, cfg: dict, model_id: str, decode: list, prefill: list, tier: int) -> list[Task]:
    """Rows for one decoder layer (num_layers = 1) and for a whole model step of a
    Llama-architecture model built from ``cfg`` with random bf16 weights. A decode row
    is ``batch`` sequences each computing 1 new token after ``context`` cached ones
    (the KV cache is preallocated and filled); a prefill row is one sequence of
    ``new_tokens`` with no context. Both are what seedchip's step oracle prices."""
    state: dict = {}
    L = int(cfg["num_hidden_layers"])

    def model() -> TorchLlama:
        if "m" not in state:
            t0 = time.perf_counter()
            state["m"] = TorchLlama(cfg, b.device, b.gen, gqa=b.gqa_ok)
            b.log(f"  built {model_id}: {state['m'].weight_bytes() / 1e9:.2f} GB of random bf16 weights "
                  f"in {time.perf_counter() - t0:.1f} s")
        return state["m"]

    def one(kind: str, batch: int, ctx: int, new: int, layers: int) -> list[dict]:
        m = model()
        kv_bytes = m.kv_bytes(layers, batch, ctx + new)
        if not b.fits(kv_bytes + m.activation_bytes(batch * new), f"{kind} b{batch} ctx{ctx} new{new}"):
            return []
        fn, cache = m.step_fn(batch, ctx, new, layers, head=(layers == L))
        t = b.timer.measure([fn])
        del fn, cache
        flops, nbytes = m.step_counts(batch, ctx, new, layers, head=(layers == L))
        op = "step" if layers == L else "layer"
        phase = "decode" if new == 1 else "prefill"
        return [row(op, t, flops, nbytes, phase=phase, shape=f"{model_id} {phase} b{batch} ctx{ctx} new{new}",
                    impl="plain torch (F.linear, F.rms_norm, sdpa, rope)" + ("" if b.gqa_ok or new == 1 or
                                                                             m.kv_heads == m.heads else " kv expanded"),
                    model=model_id, batch=batch,
                    context=ctx, new_tokens=new, seq_len=new, num_layers=layers, hidden=m.hidden,
                    num_heads=m.heads, num_kv_heads=m.kv_heads, head_dim=m.head_dim, tier=tier,
                    note="tp=1 bf16 weights and KV; flops/bytes are approximate (matmuls + weights + KV)")]

    tasks = []
    for layers in (1, L):
        for batch, ctx in decode:
            tasks.append(Task(tier, f"{'layer' if layers == 1 else 'step'} decode b{batch} ctx{ctx}",
                              2.0 if layers == 1 else 4.0, lambda batch=batch, ctx=ctx, layers=layers:
                              one("decode", batch, ctx, 1, layers)))
        for s in prefill:
            tasks.append(Task(tier, f"{'layer' if layers == 1 else 'step'} prefill {s}",
                              2.0 if layers == 1 else 6.0, lambda s=s, layers=layers: one("prefill", 1, 0, s, layers)))
    tasks[0].est_s += 20.0  # building the model

    def release() -> list[dict]:
        state.clear()       # give the weights' memory back to the sweeps that follow
        return []

    tasks.append(Task(tier, "release the model", 0.0, release))
    return tasks


# ----------------------------------------------------------------------------- plan

def plan(b: Bench, cfg: dict, model_id: str, tiny: bool, sections: set[str]) -> list[Task]:
    s = TINY if tiny else dict(gemm_nk=GEMM_NK, gemm_pow2=GEMM_POW2, m_coarse=M_COARSE, m_fine=M_FINE,
                               attn_heads=ATTN_HEADS, prefill_lens=PREFILL_LENS, decode_batch=DECODE_BATCH,
                               decode_ctx=DECODE_CTX, copy_bytes=COPY_BYTES, add_elems=ADD_ELEMS,
                               norm_tokens=NORM_TOKENS, model_decode=MODEL_DECODE, model_prefill=MODEL_PREFILL)
    hidden = int(cfg["hidden_size"])
    inter = int(cfg["intermediate_size"])
    tasks: list[Task] = []
    # tier 0: launch overhead and the bandwidth ceiling (seconds, and every later row leans on them)
    if "launch" in sections:
        tasks += launch_tasks(b, 0)
    if "memory" in sections:
        tasks += [copy_task(b, s["copy_bytes"][-2], 0), add_task(b, s["add_elems"][-1], 0)]
    # tier 1: the held-out targets: one decoder layer and whole model steps
    if "model" in sections:
        tasks += model_tasks(b, cfg, model_id, s["model_decode"], s["model_prefill"], 1)
    # tier 2: bf16 GEMMs of real layers on a coarse M grid; tier 3: attention core grid
    nk = s["gemm_nk"]
    if "gemm" in sections:
        tasks += [gemm_task(b, m, n, k, "bf16", note, 2) for (n, k, note) in nk for m in s["m_coarse"]]
    heads = s["attn_heads"]
    if "attention" in sections:
        for (h, kvh, d, note) in heads:
            tasks += [prefill_task(b, 1, L_, h, kvh, d, note, 3) for L_ in s["prefill_lens"]]
            tasks += [decode_task(b, bt, c, h, kvh, d, note, 3) for bt in s["decode_batch"] for c in s["decode_ctx"]]
    # tier 4: fp8 GEMMs (coarse), memory sweeps
    if "gemm" in sections and b.fp8_ok:
        tasks += [gemm_task(b, m, n, k, "fp8", note, 4) for (n, k, note) in nk for m in s["m_coarse"]]
    if "memory" in sections:
        tasks += [copy_task(b, x, 4) for x in s["copy_bytes"] if x != s["copy_bytes"][-2]]
        tasks += [add_task(b, x, 4) for x in s["add_elems"] if x != s["add_elems"][-1]]
        for hdim in sorted({hidden, 2 * hidden}):
            tasks += [rmsnorm_task(b, t, hdim, 4) for t in s["norm_tokens"]]
        tasks += [silu_mul_task(b, t, inter, 4) for t in s["norm_tokens"]]
    # tier 5: the fine M grid and powers of two; tier 6: more attention batches, varlen/paged
    if "gemm" in sections:
        for fmt in ("bf16", "fp8") if b.fp8_ok else ("bf16",):
            tasks += [gemm_task(b, m, n, k, fmt, note, 5) for (n, k, note) in nk for m in s["m_fine"]]
            tasks += [gemm_task(b, m, n, k, fmt, note, 5) for (n, k, note) in s["gemm_pow2"]
                      for m in s["m_coarse"] + s["m_fine"]]
    if "attention" in sections:
        for (h, kvh, d, note) in heads:
            for L_ in s["prefill_lens"][:3]:
                tasks += [prefill_task(b, bt, L_, h, kvh, d, note, 6) for bt in (2, 8)]
        tasks += varlen_tasks(b, 6, tiny)
    for i, t in enumerate(tasks):
        t.order = i
    return sorted(tasks, key=lambda t: (t.tier, t.order))


# ----------------------------------------------------------------------------- provenance

def provenance(device: torch.device, args, argv: list[str]) -> list[str]:
    lines = [f"seedchip gpu_microbench format {FORMAT_VERSION} (columns and units: calibration/README.md)"]
    if device.type == "cuda":
        p = torch.cuda.get_device_properties(device)
        driver = "unknown"
        try:
            driver = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                                    capture_output=True, text=True, timeout=20).stdout.strip().splitlines()[0]
        except Exception:
            pass
        lines += [f"gpu: {p.name}", f"driver: {driver}", f"cuda: {torch.version.cuda}",
                  f"sm_count: {p.multi_processor_count}", f"gpu_memory_bytes: {p.total_memory}",
                  f"l2_bytes: {getattr(p, 'L2_cache_size', 'unknown')}",
                  f"capability: {p.major}.{p.minor}"]
    else:
        lines += [f"gpu: none (CPU: {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)",
                  "driver: none", "cuda: none",
                  "NOTE: a CPU smoke run for tests only; NOT a GPU measurement, never fit a chip on it"]
    lines += [f"torch: {torch.__version__}", f"numpy: {np.__version__}", f"python: {platform.python_version()}",
              f"host: {platform.platform()}", f"date: {datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds')}",
              "command: " + " ".join(["python", *argv]), f"budget_s: {args.budget_s}", f"seed: {args.seed}",
              "timing: median of repeats; CUDA graph replay (mode cuda_graph) or eager calls between CUDA events "
              "(cuda_events), wall clock on CPU (cpu_wall); inputs random normal, rotated over >= 4 x L2"]
    return lines


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda", help="cuda (default) or cpu")
    ap.add_argument("--tiny", action="store_true", help="tiny shapes and a tiny Llama (seconds; for tests)")
    ap.add_argument("--budget-s", type=float, default=420.0, help="stop cleanly before this many seconds (default 420)")
    ap.add_argument("--out", type=Path, default=Path("microbench.csv"), help="CSV to write")
    ap.add_argument("--log", type=Path, default=None, help="log file (default: --out with .log)")
    ap.add_argument("--config", type=Path, default=DEFAULT_CONFIG,
                    help="Llama-architecture config.json for the layer/step rows (default: llama-3.1-8b)")
    ap.add_argument("--model-id", default=None, help="model id written in layer/step rows (default: config file stem)")
    ap.add_argument("--sections", default="launch,memory,model,gemm,attention",
                    help="comma list of: launch, memory, model, gemm, attention")
    ap.add_argument("--repeats", type=int, default=None, help="timed samples per row (default 7 on CUDA, 3 on CPU)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--plan-only", action="store_true", help="list the planned tasks with estimated seconds; run nothing")
    ap.add_argument("--quiet", action="store_true")
    args = ap.parse_args(argv)

    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available() and not args.plan_only:
        print("gpu_microbench: --device cuda but torch.cuda.is_available() is False (use --device cpu --tiny "
              "for a dry run)", file=sys.stderr)
        return 2
    sections = {x.strip() for x in args.sections.split(",") if x.strip()}
    bad = sections - {"launch", "memory", "model", "gemm", "attention"}
    if bad:
        print(f"gpu_microbench: unknown section(s) {sorted(bad)}", file=sys.stderr)
        return 2
    if not args.plan_only:
        args.out.parent.mkdir(parents=True, exist_ok=True)
    log = Log(None if args.plan_only else (args.log or args.out.with_suffix(".log")), args.quiet)
    on_gpu = device.type == "cuda"
    if on_gpu and not args.plan_only:
        if device.index is None:      # set_device and friends want an index
            device = torch.device("cuda", torch.cuda.current_device())
        torch.cuda.set_device(device)
        torch.backends.cuda.matmul.allow_tf32 = False
        p = torch.cuda.get_device_properties(device)
        l2 = float(getattr(p, "L2_cache_size", 50e6) or 50e6)
        free = float(torch.cuda.mem_get_info(device)[0])
    else:
        l2, free = 50e6, 140e9
    if on_gpu:
        timer = Timer(device, log, args.repeats or 7, 3, 1e-3, 256, True)
        bench_kw = dict(rotate_bytes=max(4 * l2, 200e6), max_sets=32, mem_cap_bytes=0.85 * free,
                        flops_per_s=6e14, bytes_per_s=3.5e12)
    else:
        timer = Timer(device, log, args.repeats or 3, 1, 2e-4, 4, False)
        bench_kw = dict(rotate_bytes=4e6, max_sets=2, mem_cap_bytes=4e9, flops_per_s=2e10, bytes_per_s=5e9)
        if args.tiny:
            torch.set_num_threads(1)   # tiny shapes gain nothing from threads, and spinning threads stall on busy CPUs
        else:
            log("warning: --device cpu without --tiny runs GPU-sized shapes on the CPU (hours)")
    gen = torch.Generator(device="cpu" if args.plan_only else device)
    gen.manual_seed(args.seed)
    b = Bench(device=device, log=log, timer=timer, gen=gen, **bench_kw)

    cfg = json.loads(args.config.read_text())
    model_id = args.model_id or args.config.stem
    if args.tiny:
        cfg, model_id = tiny_config(cfg), "tiny-llama"
    if args.plan_only:
        b.fp8_ok = b.gqa_ok = True
        tasks = plan(b, cfg, model_id, args.tiny, sections)
        for t in tasks:
            print(f"tier {t.tier}  {t.est_s:7.2f} s  {t.label}")
        print(f"{len(tasks)} tasks, estimated {sum(t.est_s for t in tasks):.0f} s before per-row overheads")
        return 0

    # capabilities, with a message when one is missing
    try:
        one = torch.ones((), device=device)
        a = torch.randn(16, 32, device=device).to(torch.float8_e4m3fn)
        torch._scaled_mm(a, a.t(), scale_a=one, scale_b=one, out_dtype=BF16)
        b.fp8_ok = True
    except Exception as e:
        log(f"fp8 GEMM: torch._scaled_mm is not supported here ({type(e).__name__}: {str(e).splitlines()[0][:160]}); "
            "fp8 rows skipped")
    try:
        q = torch.randn(1, 4, 16, 32, device=device, dtype=BF16)
        k = torch.randn(1, 2, 16, 32, device=device, dtype=BF16)
        sdpa(q, k, k, True, True, device)
        b.gqa_ok = True
    except Exception as e:
        log(f"GQA prefill: sdpa enable_gqa unavailable ({type(e).__name__}); K/V expanded to every query head instead")

    script = Path(sys.argv[0]).name if argv == sys.argv[1:] else "gpu_microbench.py"
    header = provenance(device, args, [f"calibration/{script}", *argv])
    header.append(f"model_config {model_id} {json.dumps(cfg, separators=(',', ':'))}")
    tasks = plan(b, cfg, model_id, args.tiny, sections)
    log(f"device {device}, torch {torch.__version__}; {len(tasks)} tasks planned; budget {args.budget_s:.0f} s")
    deadline = T_START + args.budget_s
    margin = 5.0 if on_gpu else 0.5
    n_rows, n_fail, n_done, not_run = 0, 0, 0, []
    with open(args.out, "w", newline="") as f:
        for line in header:
            f.write(f"# {line}\n")
        w = csv.DictWriter(f, fieldnames=COLUMNS, lineterminator="\n")
        w.writeheader()
        f.flush()
        for t in tasks:
            left = deadline - time.perf_counter()
            if left < t.est_s + margin:   # does not fit: skip it, a cheaper one later may
                not_run.append(t.label)
                continue
            try:
                rows = t.run()
                n_done += 1
            except Exception as e:  # one bad row must not cost the whole run
                n_fail += 1
                msg = str(e).splitlines()[0][:200] if str(e) else ""
                log(f"FAILED {t.label}: {type(e).__name__}: {msg}")
                if on_gpu:
                    torch.cuda.synchronize()
                    torch.cuda.empty_cache()
                continue
            for r in rows:
                w.writerow({c: (f"{v:.6g}" if isinstance(v, float) else v) for c, v in r.items()})
                n_rows += 1
                log(f"{r['op']:18s} {r['format']:5s} {r['shape']:38s} {r['time_s'] * 1e6:12.2f} us "
                    f"{r['achieved_flops_per_s'] / 1e12:9.2f} TFLOP/s {r['achieved_bytes_per_s'] / 1e9:9.1f} GB/s  {r['mode']}")
            f.flush()
            if on_gpu:
                torch.cuda.empty_cache()
        summary = (f"finished: {n_rows} rows from {n_done} tasks in {time.perf_counter() - T_START:.1f} s; "
                   f"{n_fail} failed; {len(not_run)} not run within the budget of {args.budget_s:.0f} s")
        f.write(f"# {summary}\n")
    log(summary)
    if not_run:
        log("not run (budget): " + "; ".join(not_run)[:3000])
    return 0


if __name__ == "__main__":
    sys.exit(main())
