"""StepPricer: the oracle's fast path for the serving simulator.

It prices a step from its aggregates (per replica: tokens, sampled sequences, decode
sequences and the keys they attend per window, prefill chunks) by summing the same
ops :func:`seedchip.perf.step.step_cost` builds, cached per part: the non-attention
part of a layer by token count, the head by (tokens, sampled), attention by its
aggregates. Attention keys and prefill pairs above 1,000 are rounded to the nearest
0.5% (log buckets) before pricing, so long runs hit the cache; the step time moves by
at most that rounding of the attention share. Totals agree with ``step_cost`` (tested).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..model.arch import ModelArch
from . import graph, ops
from .deployment import Deployment

EXACT_BELOW = 1000.0
BUCKET = 0.005
_LOG_STEP = math.log1p(BUCKET)


def bucket(x: float) -> float:
    """x rounded to the nearest 0.5% log bucket (exact below 1,000)."""
    if x < EXACT_BELOW:
        return x
    return math.exp(round(math.log(x) / _LOG_STEP) * _LOG_STEP)


@dataclass(frozen=True)
class Priced:
    time_s: float
    energy_j: float        # all chips, idle power included
    flops: float           # all chips
    hbm_bytes: float       # all chips


@dataclass(frozen=True)
class ReplicaBatch:
    """One replica's share of a step. ``decode_keys[i]`` = keys the decode sequences
    attend in a layer of window ``windows[i]`` (sum over sequences of min(context + 1,
    window)); ``prefill`` = (new tokens, cached context) chunks."""
    num_tokens: int
    num_logits: int
    num_decode: int
    decode_keys: tuple[float, ...]
    prefill: tuple[tuple[int, int], ...] = ()


def _sum(op_list, idle_w: float) -> tuple[float, float, float, float]:
    t = dyn = fl = by = 0.0
    for o in op_list:
        t += o.time_s * o.count
        dyn += (o.energy_j - idle_w * o.time_s) * o.count
        fl += o.flops * o.count
        by += o.hbm_bytes * o.count
    return t, dyn, fl, by


class StepPricer:
    def __init__(self, model: ModelArch, dep: Deployment):
        dep.check_model(model)
        self.model, self.dep = model, dep
        self.kinds = sorted(graph.layer_kinds(model).items())
        self.windows = tuple(sorted({w for (_, w), _ in self.kinds}))
        self._widx = {w: i for i, w in enumerate(self.windows)}
        self.idle_w = dep.chip.energy.idle_w
        self._dense: dict = {}
        self._head: dict = {}
        self._dec: dict = {}
        self._pre: dict = {}
        self._p2p: dict = {}

    # ---- cached parts -------------------------------------------------------
    def _dense_part(self, moe: bool, t: int, t_all: int):
        key = (moe, t, t_all)
        v = self._dense.get(key)
        if v is None:
            m, d = self.model, self.dep
            o = graph.qkv_ops(m, d, t) + graph.out_proj_ops(m, d, t)
            o += graph.moe_ops(m, d, t, t_all) if moe else graph.dense_mlp_ops(m, d, t, m.intermediate_size, d.tp)
            v = self._dense[key] = _sum(o, self.idle_w)
        return v

    def _head_part(self, t: int, logits: int):
        """Embedding (by tokens) plus final norm, LM head and sampling (by sampled sequences)."""
        e = self._head.get(("t", t))
        if e is None:
            e = self._head[("t", t)] = _sum(graph.embedding_ops(self.model, self.dep, t), self.idle_w)
        g = self._head.get(("l", logits))
        if g is None:
            g = self._head[("l", logits)] = _sum(graph.logits_ops(self.model, self.dep, logits), self.idle_w)
        return e[0] + g[0], e[1] + g[1], e[2] + g[2], e[3] + g[3]

    def _decode_part(self, n: int, keys: float):
        kb = bucket(keys)
        key = (n, kb)
        v = self._dec.get(key)
        if v is None:
            v = self._dec[key] = _sum(graph.decode_attention_ops(self.model, self.dep, n, kb), self.idle_w)
        return v

    def _prefill_part(self, chunks: tuple[tuple[int, int], ...], window: int):
        q, pairs, kv, max_keys = graph.prefill_aggregates(chunks, window)
        key = (window, q, max_keys, bucket(pairs), bucket(kv))
        v = self._pre.get(key)
        if v is None:
            v = self._pre[key] = _sum(graph.prefill_attention_ops(self.model, self.dep, q, key[3], key[4],
                                                                  max_keys), self.idle_w)
        return v

    # ---- a whole step -------------------------------------------------------
    def price(self, replicas: list[ReplicaBatch]) -> Priced:
        dep = self.dep
        t_all = sum(r.num_tokens for r in replicas)
        time_s = dyn = flops = hbm = 0.0
        tp = dep.tp
        for (moe, window), count in self.kinds:
            wi = self._widx[window]
            worst = 0.0
            for r in replicas:
                lt, ld, lf, lb = self._dense_part(moe, r.num_tokens, t_all)
                if r.num_decode:
                    a = self._decode_part(r.num_decode, r.decode_keys[wi])
                    lt, ld, lf, lb = lt + a[0], ld + a[1], lf + a[2], lb + a[3]
                if r.prefill:
                    a = self._prefill_part(r.prefill, window)
                    lt, ld, lf, lb = lt + a[0], ld + a[1], lf + a[2], lb + a[3]
                if lt > worst:
                    worst = lt
                dyn += ld * count * tp
                flops += lf * count * tp
                hbm += lb * count * tp
            time_s += worst * count
        worst = 0.0
        for r in replicas:
            ht, hd, hf, hb = self._head_part(r.num_tokens, r.num_logits)
            worst = max(worst, ht)
            dyn += hd * tp
            flops += hf * tp
            hbm += hb * tp
        time_s += worst
        if dep.pp > 1:
            biggest = max(r.num_tokens for r in replicas)
            p = self._p2p.get(biggest)
            if p is None:
                o = ops.collective(dep.chip, dep.calibration, "p2p", biggest * self.model.hidden_size * 2.0, 2)
                p = self._p2p[biggest] = (o.time_s, o.energy_j - self.idle_w * o.time_s)
            time_s += p[0] * (dep.pp - 1)
            dyn += p[1] * (dep.pp - 1)
        energy = dyn + self.idle_w * dep.num_chips * time_s
        return Priced(time_s, energy, flops, hbm)

    def price_one(self, num_tokens: int, num_logits: int, num_decode: int, decode_keys: tuple[float, ...],
                  prefill: tuple[tuple[int, int], ...]) -> tuple[float, float, float, float]:
        """:meth:`price` of a single replica (dp = 1), without building objects:
        (time_s, energy_j, flops, hbm_bytes)."""
        if self.dep.dp != 1:
            p = self.price([ReplicaBatch(num_tokens, num_logits, num_decode, decode_keys, prefill)])
            return p.time_s, p.energy_j, p.flops, p.hbm_bytes
        time_s = dyn = flops = hbm = 0.0
        for (moe, window), count in self.kinds:
            lt, ld, lf, lb = self._dense_part(moe, num_tokens, num_tokens)
            if num_decode:
                a = self._decode_part(num_decode, decode_keys[self._widx[window]])
                lt, ld, lf, lb = lt + a[0], ld + a[1], lf + a[2], lb + a[3]
            if prefill:
                a = self._prefill_part(prefill, window)
                lt, ld, lf, lb = lt + a[0], ld + a[1], lf + a[2], lb + a[3]
            time_s += lt * count
            dyn += ld * count
            flops += lf * count
            hbm += lb * count
        ht, hd, hf, hb = self._head_part(num_tokens, num_logits)
        time_s += ht
        tp = self.dep.tp
        dyn = (dyn + hd) * tp
        flops = (flops + hf) * tp
        hbm = (hbm + hb) * tp
        if self.dep.pp > 1:
            p = self._p2p.get(num_tokens)
            if p is None:
                o = ops.collective(self.dep.chip, self.dep.calibration, "p2p",
                                   num_tokens * self.model.hidden_size * 2.0, 2)
                p = self._p2p[num_tokens] = (o.time_s, o.energy_j - self.idle_w * o.time_s)
            time_s += p[0] * (self.dep.pp - 1)
            dyn += p[1] * (self.dep.pp - 1)
        return time_s, dyn + self.idle_w * self.dep.num_chips * time_s, flops, hbm

    def batch_of(self, seqs: list[tuple[int, int, bool]]) -> list[ReplicaBatch]:
        """Aggregate per-sequence (new tokens, context, sampled) work the way step_cost
        deals it to replicas (by position)."""
        from .step import split_replicas
        out = []
        for rep in split_replicas(tuple(seqs), self.dep.dp):
            dec = [c + 1 for n, c, _ in rep if n == 1]
            keys = tuple(float(sum(min(x, w) if w else x for x in dec)) for w in self.windows)
            out.append(ReplicaBatch(num_tokens=sum(n for n, _, _ in rep), num_logits=sum(1 for *_, s in rep if s),
                                    num_decode=len(dec), decode_keys=keys,
                                    prefill=tuple((n, c) for n, c, _ in rep if n > 1)))
        return out
