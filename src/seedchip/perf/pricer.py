"""StepPricer: the one function that sums a step.

A step is a tuple of sequences ``(new_tokens, cached_context, sampled)``. The pricer
deals them to the data-parallel replicas (:func:`graph.aggregate`), prices every layer
kind per replica from the op graph (:mod:`seedchip.perf.graph`), keeps the slowest
replica (the step waits for it), adds the head ops and the pipeline sends, turns
kernel time into step time through the deployment's runtime (launches, host work:
:class:`seedchip.perf.runtime.Runtime`) and prices the energy of every chip.

Parts are cached by the quantities they depend on: a layer's projections and
feed-forward by its token count, decode attention by (sequences, keys attended),
prefill attention by its aggregates, the head by (tokens, sampled sequences). In
``bucketed`` mode (the serving simulator's) attention keys and prefill pairs above
1,000 are rounded to the nearest 0.5% (log buckets) so that long runs hit the cache;
``step_cost`` uses the exact mode. Both run this same code. Whole steps (without the
``detail`` breakdown) are cached too, by the same quantities. The simulator's engines
share one pricer per (model, deployment) (:func:`pricer_for`), so the caches serve every
run of that deployment in a process (a capacity search). A part's ops do not depend on
the deployment's perturbation (one draw of the model's error, which scales their times
as they are summed), so the pricers of a deployment's draws (an interval's runs) share
the ops they build (:func:`_shared_ops`) and each sums them with its own factors.
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import NamedTuple

import numpy as np

from ..model.arch import ModelArch
from . import graph, ops
from .deployment import Deployment
from .ops import OpCost
from .uncertainty import Perturbation

EXACT_BELOW = 1000.0
BUCKET = 0.005
_LOG_STEP = math.log1p(BUCKET)
MAX_CACHED_PARTS = 200_000
MAX_CACHED_STEPS = 65_536     # whole steps: a few hundred bytes each


_BUCKETS: dict[float, float] = {}
MAX_BUCKETS = 1_000_000


def bucket(x: float) -> float:
    """x rounded to the nearest 0.5% log bucket (exact below 1,000); remembered (a step's
    keys recur from step to step, and a logarithm costs more than a lookup)."""
    if x < EXACT_BELOW:
        return x
    v = _BUCKETS.get(x)
    if v is None:
        if len(_BUCKETS) >= MAX_BUCKETS:
            _BUCKETS.clear()
        v = _BUCKETS[x] = math.exp(round(math.log(x) / _LOG_STEP) * _LOG_STEP)
    return v


class Part(NamedTuple):
    """Summed cost of a list of ops on one chip: kernel time, dynamic energy (no idle
    power), work, kernel launches, and the ops themselves (for breakdowns). Named tuples
    here and below: immutable (cached, shared) and cheap to make."""
    time_s: float
    dynamic_j: float
    flops: float
    hbm_bytes: float
    kernels: int
    ops: tuple[OpCost, ...]

    @staticmethod
    def of(op_list: list[OpCost], idle_w: float, pert: Perturbation | None = None) -> "Part":
        t = dyn = fl = by = 0.0
        n = 0
        for o in op_list:
            t += o.time_s * o.count * (pert.factor(o.op_class, o.name) if pert else 1.0)
            dyn += (o.energy_j - idle_w * o.time_s) * o.count
            fl += o.flops * o.count
            by += o.hbm_bytes * o.count
            n += o.count
        return Part(t, dyn, fl, by, n, tuple(op_list))


class Priced(NamedTuple):
    """A step: wall time, energy of all chips (idle power included), work of all chips,
    and (``detail``) the critical path's ops: one chip of the slowest replica, every
    pipeline stage, each op's ``count`` = instances per step."""
    time_s: float
    energy_j: float
    flops: float
    hbm_bytes: float
    kernel_s: float = 0.0
    ops: tuple[OpCost, ...] = ()


def _add_parts(parts, count: int, dyn, flops, hbm) -> tuple:
    """(one chip's kernel time of ``parts``, and the replicas' dynamic energy, work and HBM
    bytes with ``count`` layers of them added), summed part by part in order."""
    t = 0.0
    for p in parts:
        t += p.time_s
        dyn += p.dynamic_j * count
        flops += p.flops * count
        hbm += p.hbm_bytes * count
    return t, dyn, flops, hbm


class StepPricer:
    def __init__(self, model: ModelArch, dep: Deployment, bucketed: bool = False):
        dep.check_model(model)
        self.model, self.dep, self.bucketed = model, dep, bucketed
        self.kinds = sorted(graph.layer_kinds(model).items())
        self.windows = graph.model_windows(model)
        self._widx = {w: i for i, w in enumerate(self.windows)}
        self._stages = [(moe, w, count) for (moe, w), count in self.kinds] + [(None, 0, 1)]   # layer kinds, the head
        self.idle_w = dep.chip.energy.idle_w
        self._cache: dict = {}
        self._ops = _shared_ops(model, dep if dep.perturbation is None else dep.replace(perturbation=None))
        self._steps: dict = {}      # whole steps (no detail) by what prices them: see _step_key

    # ---- cached parts -------------------------------------------------------
    def _part(self, key, build, *args) -> Part:
        """The part cached under ``key``, else ``build(*args)``'s ops summed (no closure is
        made on a hit: most lookups are hits)."""
        v = self._cache.get(key)
        if v is None:
            if len(self._cache) >= MAX_CACHED_PARTS:
                self._cache.clear()
            built = self._ops.get(key)
            if built is None:
                if len(self._ops) >= MAX_CACHED_PARTS:
                    self._ops.clear()
                built = self._ops[key] = tuple(build(*args))
            v = self._cache[key] = Part.of(built, self.idle_w, self.dep.perturbation)
        return v

    def _piece(self, key, build, *args) -> tuple[OpCost, ...]:
        """Ops shared by several parts (what an MoE layer runs around its routed experts,
        a decode's GEMMs around its attention), built once per key: a part made of pieces
        holds the same ops in the same order as one built whole."""
        v = self._ops.get(key)
        if v is None:
            if len(self._ops) >= MAX_CACHED_PARTS:
                self._ops.clear()
            v = self._ops[key] = tuple(build(*args))
        return v

    def _dense_layer_ops(self, t: int) -> list[OpCost]:
        m, d = self.model, self.dep
        return graph.qkv_ops(m, d, t) + graph.out_proj_ops(m, d, t) + graph.dense_mlp_ops(m, d, t, m.intermediate_size,
                                                                                           d.tp)

    def _moe_head_ops(self, t: int) -> list[OpCost]:
        m, d = self.model, self.dep
        return graph.qkv_ops(m, d, t) + graph.out_proj_ops(m, d, t) + graph.moe_pre_ops(m, d, t)

    def _moe_layer_ops(self, t: int, t_all: int) -> tuple[OpCost, ...]:
        """qkv, out_proj and :func:`graph.moe_ops`, the ops around the routed experts
        built once per replica token count."""
        m, d = self.model, self.dep
        return self._piece(("moe_head", t), self._moe_head_ops, t) + \
            tuple(graph.routed_expert_ops(m, d, t, t_all)) + self._piece(("moe_tail", t), graph.moe_post_ops, m, d, t)

    def _decode_ops(self, n: int, keys: float, longest: float, window: int) -> tuple[OpCost, ...]:
        """:func:`graph.decode_attention_ops`, the GEMMs around the attention built once per
        sequence count."""
        m, d = self.model, self.dep
        before, after = self._piece(("dec_absorb", n), lambda: map(tuple, graph.decode_absorb_ops(m, d, n)))
        return (*before, graph.decode_attention_core(m, d, n, keys, longest, window), *after)

    def _layer(self, moe: bool, t: int, t_all: int) -> Part:
        if moe:
            return self._part(("moe", t, t_all), self._moe_layer_ops, t, t_all)
        return self._part(("dense", t), self._dense_layer_ops, t)

    def _decode(self, n: int, keys: float, longest: float, window: int) -> Part:
        k, m = (bucket(keys), bucket(longest)) if self.bucketed else (keys, longest)
        return self._part(("dec", n, k, m, window), self._decode_ops, n, k, m, window)

    def _prefill(self, chunks: tuple[tuple[int, int], ...], window: int) -> Part:
        q, pairs, kv, max_keys = graph.prefill_aggregates(chunks, window)
        tiles, past = graph.prefill_tiles(chunks, window)
        if self.bucketed:
            pairs, kv = bucket(pairs), bucket(kv)
        return self._part(("pre", window, q, max_keys, pairs, kv, tiles, past), graph.prefill_attention_ops,
                          self.model, self.dep, q, pairs, kv, max_keys, tiles, past)

    def _head(self, t: int, logits: int) -> tuple[Part, Part]:
        m, d = self.model, self.dep
        return (self._part(("emb", t), graph.embedding_ops, m, d, t),
                self._part(("logits", logits), graph.logits_ops, m, d, logits))

    def _pp_send(self, tokens: int) -> Part:
        size = tokens * self.model.hidden_size * 2.0
        return self._part(("p2p", tokens), lambda: [ops.collective(self.dep.chip, self.dep.calibration, "p2p", size,
                                                                   2, "pp_send")])

    # ---- a whole step -------------------------------------------------------
    def _replica_layer(self, r: graph.ReplicaBatch, moe: bool, window: int, t_all: int) -> list[Part]:
        parts = [self._layer(moe, r.num_tokens, t_all)]
        if r.num_decode:
            parts.append(self._decode(r.num_decode, r.decode_keys[self._widx[window]], r.decode_max, window))
        if r.prefill:
            parts.append(self._prefill(r.prefill, window))
        return parts

    def _step_key(self, r: graph.ReplicaBatch) -> tuple:
        """What a replica's share of a step is priced by: its counts, its decode keys and
        longest sequence as :meth:`_decode` sees them (bucketed in bucketed mode) and its
        prefill chunks."""
        if not r.num_decode:
            return r.num_tokens, r.num_seqs, r.num_logits, 0, (), 0.0, r.prefill
        if self.bucketed:
            keys = r.decode_keys
            return (r.num_tokens, r.num_seqs, r.num_logits, r.num_decode,
                    (bucket(keys[0]),) if len(keys) == 1 else tuple(bucket(k) for k in keys), bucket(r.decode_max),
                    r.prefill)
        return r.num_tokens, r.num_seqs, r.num_logits, r.num_decode, r.decode_keys, r.decode_max, r.prefill

    def price_batches(self, replicas: list[graph.ReplicaBatch], detail: bool = False) -> Priced:
        """Price a step given as per-replica aggregates (see :func:`graph.aggregate`);
        steps priced by the same quantities (:meth:`_step_key`) come from a cache."""
        if detail:
            return self._price_batches(replicas, True)
        one = len(replicas) == 1
        key = self._step_key(replicas[0]) if one else tuple(self._step_key(r) for r in replicas)
        v = self._steps.get(key)
        if v is None:
            if len(self._steps) >= MAX_CACHED_STEPS:
                self._steps.clear()
            v = self._steps[key] = self._price_one(replicas[0]) if one else self._price_batches(replicas, False)
        return v

    def _price_one(self, r: graph.ReplicaBatch) -> Priced:
        """:meth:`_price_batches` of one replica without the breakdown (most steps: one
        replica): the same parts summed in the same order."""
        kernel_s = dyn = flops = hbm = 0.0
        kernels = 0
        t = r.num_tokens
        for moe, w, count in self._stages:
            parts = self._head(t, r.num_logits) if moe is None else self._replica_layer(r, moe, w, t)
            s, dyn, flops, hbm = _add_parts(parts, count, dyn, flops, hbm)
            kernel_s += s * count
            n = 0
            for p in parts:
                n += p.kernels
            kernels += n * count
        return self._step(kernel_s, kernels, dyn, flops, hbm, t, r.num_seqs, bool(r.prefill), None)

    def _price_batches(self, replicas: list[graph.ReplicaBatch], detail: bool) -> Priced:
        dep = self.dep
        t_all = sum(r.num_tokens for r in replicas)
        kernel_s = dyn = flops = hbm = 0.0
        kernels = 0
        critical: list[OpCost] = []
        for moe, w, count in self._stages:
            worst, worst_parts = -1.0, None
            for r in replicas:
                parts = self._head(r.num_tokens, r.num_logits) if moe is None else \
                    self._replica_layer(r, moe, w, t_all)
                t, dyn, flops, hbm = _add_parts(parts, count, dyn, flops, hbm)
                if t > worst:
                    worst, worst_parts = t, parts
            kernel_s += worst * count
            kernels += sum(p.kernels for p in worst_parts) * count
            if detail:
                critical += [o.scaled(o.count * count) for p in worst_parts for o in p.ops]
        return self._step(kernel_s, kernels, dyn, flops, hbm, max(r.num_tokens for r in replicas),
                          max(r.num_seqs for r in replicas), any(r.prefill for r in replicas),
                          critical if detail else None)

    def _step(self, kernel_s, kernels, dyn, flops, hbm, max_tokens: int, num_seqs: int, has_prefill: bool,
              critical: list[OpCost] | None) -> Priced:
        """A step from its replicas' sums (one chip of each stage's slowest replica: kernel
        time and launches; one chip of every replica: dynamic energy and work): the
        pipeline sends, the runtime's step time and every chip's energy. Arrays price a
        run of steps at once (:meth:`price_uniform_decode`)."""
        dep = self.dep
        tp = dep.tp
        dyn, flops, hbm = dyn * tp, flops * tp, hbm * tp      # a replica's layer runs on its stage's tp chips
        if dep.pp > 1:
            p = self._pp_send(max_tokens)
            kernel_s += p.time_s * (dep.pp - 1)
            dyn += p.dynamic_j * (dep.pp - 1)
            kernels += p.kernels * (dep.pp - 1)
            if critical is not None:
                critical += [o.scaled(dep.pp - 1) for o in p.ops]
        rt, pert = dep.runtime, dep.perturbation
        graphed = rt.graphed(max_tokens, num_seqs, has_prefill)
        time_s = rt.step_time(kernel_s, kernels, num_seqs, graphed, pert.host if pert else 1.0)
        if pert:
            time_s *= pert.step
        energy = dyn + idle_energy_j(dep.chip, dep.num_chips, time_s)
        return Priced(time_s, energy, flops, hbm, kernel_s, tuple(critical or ()))

    def price_uniform_decode(self, batch: int, contexts) -> Priced:
        """The decode steps of a static batch of ``batch`` sequences that each hold
        ``contexts[i]`` cached tokens, priced at once: a Priced of arrays whose element i
        equals ``price_batches(graph.uniform_decode(batch, contexts[i], ...))`` to the last
        bit (tested), the same parts summed in the same order with the decode attention
        vectorised over the contexts. Exact mode only (bucketing is per step)."""
        if self.bucketed:
            raise ValueError("price_uniform_decode prices exact steps: use an exact pricer (pricer_for(..., False))")
        dep = self.dep
        c = np.asarray(contexts, dtype=float) + 1.0                          # keys of each sequence
        ns = [r.num_decode for r in graph.uniform_decode(batch, 0, self.windows, dep.dp)]   # sequences per replica
        kernel_s = dyn = flops = hbm = 0.0
        kernels = 0
        for moe, w, count in self._stages:
            keys = c if not w else np.where(c < w, c, float(w))
            worst = worst_kernels = None
            for n in ns:
                parts = self._head(n, n) if moe is None else (
                    self._layer(moe, n, batch),
                    Part.of(graph.decode_attention_ops(self.model, dep, n, n * keys, c, w), self.idle_w,
                            dep.perturbation))
                t, dyn, flops, hbm = _add_parts(parts, count, dyn, flops, hbm)
                k = sum(p.kernels for p in parts)
                if worst is None:
                    worst, worst_kernels = t, k
                else:      # the first slowest replica, step by step (price_batches keeps the first)
                    slower = t > worst
                    worst, worst_kernels = np.where(slower, t, worst), np.where(slower, k, worst_kernels)
            kernel_s += worst * count
            kernels += worst_kernels * count
        return self._step(kernel_s, kernels, dyn, flops, hbm, max(ns), max(ns), False, None)

    def price(self, seqs: tuple, advance: int = 0, detail: bool = False) -> Priced:
        """Price a step of ``(new_tokens, cached_context, sampled)`` sequences;
        ``advance``: with the decode sequences that many steps further on."""
        return self.price_batches(self.aggregate(seqs, advance), detail)

    def aggregate(self, seqs: tuple, advance: int = 0) -> list[graph.ReplicaBatch]:
        """The per-replica aggregates :meth:`price_batches` prices (:func:`graph.aggregate`)."""
        return graph.aggregate(seqs, self.windows, self.dep.dp, advance)

    def advance(self, replicas: list[graph.ReplicaBatch], seqs: tuple, advance: int) -> list[graph.ReplicaBatch]:
        """``aggregate(seqs, advance)`` from ``replicas = aggregate(seqs)`` (:func:`graph.advance_batches`)."""
        return graph.advance_batches(replicas, seqs, self.windows, self.dep.dp, advance)


@lru_cache(maxsize=16)
def _shared_ops(model: ModelArch, dep: Deployment) -> dict:
    """The ops of every part priced for a model on a deployment without perturbation, by
    the part's key: shared by the pricers of that deployment and of its draws."""
    return {}


@lru_cache(maxsize=256)
def _exact_pricer(model: ModelArch, dep: Deployment) -> StepPricer:
    return StepPricer(model, dep, False)


@lru_cache(maxsize=16)     # a simulator's pricer fills its caches (up to ~200,000 parts): few are kept
def _bucketed_pricer(model: ModelArch, dep: Deployment) -> StepPricer:
    return StepPricer(model, dep, True)


def pricer_for(model: ModelArch, dep: Deployment, bucketed: bool = False) -> StepPricer:
    """The (shared, cached) pricer of a model on a deployment: the 256 most recent exact
    ones, the 16 most recent bucketed ones (a deployment and the perturbed draws of its
    interval)."""
    return _bucketed_pricer(model, dep) if bucketed else _exact_pricer(model, dep)


def idle_energy_j(chip, num_chips: float, seconds: float) -> float:
    """Energy of ``num_chips`` chips at idle power for ``seconds``: the floor every step pays,
    and all a deployment draws between steps."""
    return chip.energy.idle_w * num_chips * seconds


__all__ = ["StepPricer", "Priced", "Part", "pricer_for", "bucket", "idle_energy_j"]
