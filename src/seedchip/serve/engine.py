"""One serving engine (a replica: a group of chips with a parallel plan): its queue,
KV blocks, steps and preemption; what runs in a step is its scheduling policy's
(:mod:`seedchip.serve.scheduler`). All step times and energies come from the oracle
(StepPricer).

Decode-only stretches are advanced as one *macro step*: while the running batch is
all decode and no request can join (none waiting, or blocked by max sequences or KV
blocks), consecutive steps differ only by one more cached token per sequence, so k
steps are priced at their first and last step and summed by the trapezoid rule (the
step time is nearly affine in the keys attended: split-KV partitions and per-core
streaming bend it slightly; over 4,096 steps the sum moves by under 1%). A macro step
ends at the first completion, when KV blocks would run out, or at the first step
boundary after the next external event (an arrival, a KV transfer), so scheduling
decisions are the same as step by step.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

from ..model.arch import ModelArch
from ..perf.deployment import Deployment
from ..perf.graph import ReplicaBatch
from ..perf.memory import check_fits, memory_plan
from ..perf.pricer import pricer_for
from .cohort import Cohort
from .kv import BlockManager
from .metrics import ItlHistogram
from .scheduler import POLICIES, SchedulerConfig
from .workload import Request, RequestStatus

MAX_MACRO_STEPS = 4096


@dataclass
class Step:
    start_s: float
    end_s: float
    work: list                  # [(request, tokens)] of the first step
    k: int                      # steps in this (macro) step
    t0: float                   # first step time
    slope: float                # step time growth per step
    e0: float
    e_slope: float
    flops: float
    hbm_bytes: float
    num_tokens: int
    members: int = 0            # decoding requests of the engine's cohort in it (beside ``work``)

    def span(self, k: int) -> float:
        return k * self.t0 + self.slope * k * (k - 1) / 2.0

    def energy(self, k: int) -> float:
        return k * self.e0 + self.e_slope * k * (k - 1) / 2.0


@dataclass
class EngineStats:
    busy_s: float = 0.0
    energy_j: float = 0.0
    flops: float = 0.0
    hbm_bytes: float = 0.0
    steps: int = 0
    macro_steps: int = 0
    preemptions: int = 0
    tokens_out: int = 0                   # output tokens emitted (first tokens included)
    itl: ItlHistogram = field(default_factory=ItlHistogram)   # step seconds, weighted by tokens emitted


class Engine:
    """A replica. ``role``: "both" (prefill and decode), "prefill" or "decode"."""

    def __init__(self, index: int, model: ModelArch, dep: Deployment, cfg: SchedulerConfig, role: str = "both",
                 max_macro_steps: int = MAX_MACRO_STEPS):
        """``max_macro_steps``: the most decode steps priced as one (1: every step priced)."""
        self.index, self.model, self.dep, self.cfg, self.role = index, model, dep, cfg, role
        self.max_macro_steps = max_macro_steps
        plan = memory_plan(model, dep)
        check_fits(model, dep, plan, cfg.block_size)
        self.plan = plan
        self.kv = BlockManager((plan.max_kv_tokens // cfg.block_size) * dep.dp, cfg.block_size, cfg.prefix_caching)
        self.pricer = pricer_for(model, dep, bucketed=True)   # shared: its caches outlive one run
        self._direct = dep.dp == 1 and self.pricer.windows == (0,)   # steps aggregated without their sequences
        # the decoding head of the running list stepped as one (``serve/cohort.py``): where no
        # layer has a window (a step's aggregates are sums, per replica) and the scheduler
        # mixes decodes with prompt chunks under an admission that never reads the running
        # requests' counters
        self.cohort = (Cohort(self.kv, dep.dp) if self.pricer.windows == (0,) and role == "both"
                       and cfg.policy == "chunked-prefill" and cfg.mixed_batches
                       and cfg.admission in ("on-demand", "reserve") else None)
        self.running: list[Request] = []
        self.waiting: deque[Request] = deque()
        self.current: Step | None = None
        self.stats = EngineStats()
        self.preemptions_seen = 0             # preemptions already reported in the time series
        self.policy = POLICIES[cfg.policy](self)
        self.finished: list[Request] = []     # filled by finish(); drained by the simulator
        self.handed_off: list[Request] = []   # prefill role: prompts done, KV to transfer

    # -- queue ----------------------------------------------------------------------
    def add(self, req: Request) -> None:
        req.engine = self.index
        self.waiting.append(req)

    def outstanding_tokens(self) -> int:
        coh = self.cohort
        m = coh.n if coh is not None else 0
        n = coh.outstanding_tokens(self.running) if m else 0
        for r in self.running[m:] if m else self.running:
            n += (r.known - r.computed) + (r.output_len - r.generated)
        for r in self.waiting:
            n += (r.known - r.computed) + (r.output_len - r.generated)
        return n

    def idle(self) -> bool:
        return self.current is None

    def has_work(self) -> bool:
        return bool(self.running or self.waiting)

    # -- steps ----------------------------------------------------------------------
    def _price(self, replicas: list):
        """(time_s, energy_j, flops, hbm_bytes) of a step from the oracle, given as the
        pricer's per-replica aggregates."""
        p = self.pricer.price_batches(replicas)
        return p.time_s, p.energy_j, p.flops, p.hbm_bytes

    def start(self, now: float, horizon: float) -> float | None:
        """Schedule the next (macro) step at ``now``; returns its end time, or None when
        there is nothing to run. ``horizon``: the next external event."""
        work, blocked = self.policy.schedule(now)
        coh = self.cohort
        m = coh.n if coh is not None else 0
        if not work and not m:
            return None
        replicas, seqs, num_tokens, decoding = self._aggregate(work, m)
        t0, e0, f0, b0 = self._price(replicas)
        k = 1
        slope = e_slope = 0.0
        flops, hbm = f0, b0
        # a pure decode stretch: every running request decodes; when the next event comes
        # within the first step, the stretch is one step and its last step is not priced
        # (k = 1 takes nothing from it)
        if blocked and decoding and num_tokens == len(work) + m == len(self.running) and horizon - now > t0:
            kmax = self.max_macro_steps
            for r, _ in work:
                left = r.output_len - r.generated
                if left < kmax:
                    kmax = left
            if m:
                kmax = min(kmax, coh.steps_left())
            kmax = self._block_room(work, kmax, m)
            if kmax > 1:
                t1, e1, f1, b1 = self._price(self.pricer.advance(replicas, seqs, kmax - 1))
                slope = (t1 - t0) / (kmax - 1)
                e_slope = (e1 - e0) / (kmax - 1)
                k = kmax
                if horizon <= now:
                    k = 1
                elif math.isfinite(horizon):
                    k = min(kmax, _steps_to_reach(horizon - now, t0, slope))
                frac = (k - 1) / (kmax - 1)
                flops = (f0 + (f0 + (f1 - f0) * frac)) * k / 2
                hbm = (b0 + (b0 + (b1 - b0) * frac)) * k / 2
        step = Step(now, 0.0, work, k, t0, slope, e0, e_slope, flops, hbm, num_tokens, m)
        step.end_s = now + step.span(k)
        self.current = step
        return step.end_s

    def batch(self) -> list:
        """The running step's sequences as ``[(request, new tokens)]``: the cohort's members
        (one token each) and the rest (``Step.work``)."""
        s = self.current
        return [(r, 1) for r in self.running[:s.members]] + s.work

    def _aggregate(self, work: list, members: int = 0) -> tuple[list, tuple | None, int, bool]:
        """(the pricer's per-replica aggregates of the step, its sequences (None when the
        aggregates do not need them), its tokens, whether every sequence decodes), in one
        pass over the batch. A prompt whose last chunk is one token also has computed + 1 ==
        known, but it has not produced its first token yet: it does not decode. Without
        sliding windows (with one replica, or with the cohort standing) the aggregates are
        summed here (:meth:`_summed`) without making the sequences."""
        if self._direct or members:
            return self._summed(work, members)
        num_tokens = 0
        decoding = True
        seqs = []
        for r, n in work:
            c = r.computed
            known = r.input_len + r.generated
            seqs.append((n, c, c + n == known))
            num_tokens += n
            if decoding and (c + 1 != known or r.generated <= 0):
                decoding = False
        seqs = tuple(seqs)
        return self.pricer.aggregate(seqs), seqs, num_tokens, decoding

    def _summed(self, work: list, members: int) -> tuple[list, None, int, bool]:
        """:meth:`_aggregate` summed per replica, equal to ``pricer.aggregate`` of the
        sequences (whole numbers: exact; tested): the cohort's ``members`` hold positions
        0 .. members - 1 (their sums from the cohort) and ``work`` follows, each sequence
        dealt to replica position mod dp as :func:`graph.split_replicas` deals them."""
        dp, coh = self.dep.dp, self.cohort
        if dp == 1:
            return self._summed_one(work, members)
        if not members:
            cnt, keys, longest = [0] * dp, [0] * dp, [0] * dp
        else:
            cnt, offs, top = coh.replicas()
            t1 = coh.tick + 1
            keys = [offs[j] + cnt[j] * t1 for j in range(dp)]
            longest = [top[j] + t1 for j in range(dp)]
        tokens, seqs, logits, dec = list(cnt), list(cnt), list(cnt), list(cnt)
        prefill: list = [[] for _ in range(dp)]
        num_tokens, decoding = members, True
        for i, (r, n) in enumerate(work, members):
            j = i % dp
            c = r.computed
            known = r.input_len + r.generated
            seqs[j] += 1
            if c + n == known:
                logits[j] += 1
            if n == 1:
                keys[j] += c + 1
                longest[j] = c + 1 if not dec[j] or c + 1 > longest[j] else longest[j]
                dec[j] += 1
            else:
                prefill[j].append((n, c))
            tokens[j] += n
            num_tokens += n
            if decoding and (c + 1 != known or r.generated <= 0):
                decoding = False
        replicas = [ReplicaBatch(tokens[j], seqs[j], logits[j], dec[j], (float(keys[j]),), tuple(prefill[j]),
                                 float(longest[j]) if dec[j] else 0.0) for j in range(dp) if seqs[j]]
        return replicas, None, num_tokens, decoding

    def _summed_one(self, work: list, members: int) -> tuple[list, None, int, bool]:
        """:meth:`_summed` of one replica (most deployments), in scalars rather than per-replica lists."""
        if members:
            coh = self.cohort
            seqs = logits = dec = members
            keys, longest = coh.keys(), coh.longest_context()
        else:
            seqs = logits = dec = keys = longest = 0
        prefill = []
        num_tokens, decoding = members, True
        for r, n in work:
            c = r.computed
            known = r.input_len + r.generated
            seqs += 1
            if c + n == known:
                logits += 1
            if n == 1:
                keys += c + 1
                longest = c + 1 if not dec or c + 1 > longest else longest
                dec += 1
            else:
                prefill.append((n, c))
            num_tokens += n
            if decoding and (c + 1 != known or r.generated <= 0):
                decoding = False
        replicas = [ReplicaBatch(num_tokens, seqs, logits, dec, (float(keys),), tuple(prefill),
                                 float(longest) if dec else 0.0)] if seqs else []
        return replicas, None, num_tokens, decoding

    def _block_room(self, work: list, kmax: int, members: int = 0) -> int:
        """Most decode steps (up to ``kmax``) the running batch (``members`` of the cohort
        and ``work``) can take before KV blocks run out."""
        kv = self.kv
        room = kv.available
        bs = kv.block_size
        coh = self.cohort

        def need(k: int) -> int:
            total = coh.stretch_blocks(k) if members else 0
            for r, _ in work:
                extra = -(-(r.computed + k) // bs) - r.blocks - r.shared_blocks
                if extra > 0:
                    total += extra
            return total

        if need(kmax) <= room:
            return kmax
        lo, hi = 1, kmax        # need(1) <= room: the blocks of the first step are held
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if need(mid) <= room:
                lo = mid
            else:
                hi = mid - 1
        return lo

    def truncate(self, t: float) -> float | None:
        """Shorten the running macro step to end at the first step boundary at or after
        ``t``; returns the new end time when it changed."""
        s = self.current
        if s is None or s.k == 1 or s.end_s <= t:
            return None
        k = max(1, min(s.k, _steps_to_reach(t - s.start_s, s.t0, s.slope)))
        if k == s.k:
            return None
        frac = k / s.k
        s.flops *= frac
        s.hbm_bytes *= frac
        s.k = k
        s.end_s = s.start_s + s.span(k)
        return s.end_s

    def finish(self, now: float) -> None:
        """Apply the finished (macro) step at time ``now``."""
        s = self.current
        self.current = None
        st = self.stats
        dur = s.end_s - s.start_s
        st.busy_s += dur
        st.energy_j += s.energy(s.k)
        st.flops += s.flops
        st.hbm_bytes += s.hbm_bytes
        st.steps += s.k
        st.macro_steps += 1
        self.policy.on_steps(s.k)
        kv = self.kv
        done = self.cohort.advance(s.k) if s.members else []   # its finished members come first in running
        emitted, firsts = s.members * s.k, 0
        if s.k > 1:
            emitted += self._finish_stretch(s.work, s.k, done)
        for r, n in s.work if s.k == 1 else ():
            was_prompt = r.generated == 0 or r.computed < r.input_len
            r.computed += n
            if r.computed == r.input_len + r.generated:
                r.generated += 1
                if r.generated > 1:          # inter-token latency: tokens after the first
                    emitted += 1
                else:
                    firsts += 1
                if r.first_token_s < 0:
                    r.first_token_s = now
                if was_prompt:
                    kv.publish(r)
                if self.role == "prefill" and r.generated < r.output_len:
                    done.append(r)
                    continue
            if r.generated >= r.output_len:
                done.append(r)
        if emitted:
            st.itl.add(dur / s.k, emitted)
        st.tokens_out += emitted + firsts
        for r in done:
            self.running.remove(r)
            if self.role == "prefill" and r.generated < r.output_len:
                self.handed_off.append(r)      # keeps its blocks until the transfer ends
            else:
                r.finish_s = now
                r.status = RequestStatus.FINISHED
                kv.release(r)
                self.finished.append(r)
        if self.cohort is not None:
            self.cohort.extend(self.running)

    def _finish_stretch(self, work: list, k: int, done: list) -> int:
        """Apply ``k`` decode steps of a stretch: each request gains ``k`` tokens (and the KV
        blocks for them); the finished ones go to ``done``. Returns the tokens emitted."""
        kv = self.kv
        bs = kv.block_size
        for r, _ in work:
            if r.computed + k > (r.blocks + r.shared_blocks) * bs:
                kv.grow(r, r.computed + k)
            r.computed += k
            r.generated += k
            if r.generated >= r.output_len:
                done.append(r)
        return k * len(work)

    def never_fits(self, req: Request) -> bool:
        """Its prompt and output exceed the KV cache or the model's context window (an engine
        refuses such a request rather than serve it)."""
        n = req.input_len + req.output_len
        ctx = self.model.max_position_embeddings
        return self.kv.blocks_for(n) > self.kv.total or (ctx > 0 and n > ctx)

    def reject(self, req: Request, now: float) -> None:
        """A request that can never be served (:meth:`never_fits`)."""
        req.status = RequestStatus.REJECTED
        req.finish_s = now
        self.finished.append(req)

    # -- preemption ---------------------------------------------------------------
    def preempt(self, victim: Request) -> None:
        """Preemption by recompute: free the victim's blocks; it restarts its prefill
        (prompt + tokens generated so far) from the front of the queue."""
        if self.cohort is not None and self.cohort.n:
            raise AssertionError("a preemption with the cohort standing: the scheduler dissolves it first")
        self.kv.release(victim)
        victim.computed = 0
        victim.preemptions += 1
        self.stats.preemptions += 1
        self.running.remove(victim)
        self.waiting.appendleft(victim)


def _steps_to_reach(duration: float, t0: float, slope: float) -> int:
    """Smallest k >= 1 with k t0 + slope k (k - 1) / 2 >= duration (the first step
    boundary at or after ``duration``)."""
    span = lambda k: k * t0 + slope * k * (k - 1) / 2.0
    if duration <= t0:
        return 1
    if slope > 1e-18:
        a, b = slope / 2.0, t0 - slope / 2.0
        k = max(1, math.ceil((-b + math.sqrt(b * b + 4 * a * duration)) / (2 * a)))
    else:
        k = max(1, math.ceil(duration / t0))
    while span(k) < duration:
        k += 1
    while k > 1 and span(k - 1) >= duration:
        k -= 1
    return k
