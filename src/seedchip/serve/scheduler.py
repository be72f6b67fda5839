"""Scheduling policies of one engine: what runs in the next step.

A request is two token counters (``computed`` of ``known`` = prompt + generated); a
step is ``[(request, new_tokens)]``. ``ChunkedPrefill`` is continuous batching with
chunked prefill under a per-step token budget (the deployment's
``max_batched_tokens``): running requests first, then waiting ones first come first
served while the budget, ``max_num_seqs`` and the KV blocks allow. What "the KV blocks
allow" is the engine's admission rule (see ``serve/engines.yaml``):

- ``on-demand`` (vLLM): blocks for the tokens computed this step; a running request
  that cannot grow preempts the most recent one (recomputed later);
- ``reserve`` (TensorRT-LLM, guaranteed no evict): the blocks of the whole prompt and
  the maximum output are taken at admission, so nothing is ever preempted;
- ``estimate`` (SGLang): a request is admitted when its prompt plus ``new_token_ratio``
  x the outputs still to come (its own and the running requests') fit; the ratio
  decays every step and is reset when a decode runs out of blocks and requests are
  retracted. SGLang also runs prefill and decode in separate steps
  (``mixed_batches: false``): a prefill step whenever a waiting request can start.

``StaticBatching`` is the no-continuous-batching baseline.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import SpecError, UnknownNameError
from .profiles import ADMISSIONS, NewTokenRatio

CLIP_MAX_NEW_TOKENS = 4096     # SGLang clips each request's expected output at this in its estimate


@dataclass(frozen=True)
class SchedulerConfig:
    """The scheduler's knobs; the token budget and memory share live on the Deployment."""
    policy: str = "chunked-prefill"
    admission: str = "on-demand"
    max_num_seqs: int = 256
    block_size: int = 16
    prefix_caching: bool = False
    mixed_batches: bool = True
    new_token_ratio: NewTokenRatio | None = None
    batch_tuning: dict | None = field(default=None, compare=False)   # how a runtime tuner set max_num_seqs

    def validate(self) -> "SchedulerConfig":
        if self.policy not in POLICIES:
            raise UnknownNameError("scheduler", self.policy, POLICIES)
        if self.admission not in ADMISSIONS:
            raise UnknownNameError("admission", self.admission, ADMISSIONS)
        for name in ("max_num_seqs", "block_size"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
                raise SpecError(f"--{name.replace('_', '-')} = {v!r} must be a positive integer")
        if self.admission == "estimate" and self.new_token_ratio is None:
            raise SpecError("admission 'estimate' needs a new_token_ratio (init, min, decay_steps)")
        return self


class ChunkedPrefill:
    def __init__(self, engine):
        self.e = engine
        ntr = engine.cfg.new_token_ratio
        self.ratio = ntr.init if ntr else 0.0

    # -- admission ------------------------------------------------------------------
    def _reserved_tokens(self) -> float:
        """Tokens the running requests are expected to still need (estimate admission)."""
        return self.ratio * sum(min(r.output_len - r.generated, CLIP_MAX_NEW_TOKENS) for r in self.e.running)

    def _admit(self, r, n: int, reserved: float) -> bool:
        """Take the KV blocks a waiting request needs to start with ``n`` tokens."""
        kv, adm = self.e.kv, self.e.cfg.admission
        if adm == "reserve":
            return kv.grow(r, r.input_len + r.output_len)
        if adm == "estimate":
            expect = (r.known - r.computed) + self.ratio * min(r.output_len - r.generated, CLIP_MAX_NEW_TOKENS)
            if reserved + expect > kv.available * kv.block_size:
                return False
        return kv.grow(r, r.computed + n)

    def on_steps(self, k: int) -> None:
        """``k`` steps ran: the estimate's ratio decays (SGLang decays it every decode step)."""
        ntr = self.e.cfg.new_token_ratio
        if ntr is not None:
            self.ratio = max(ntr.min, self.ratio - k * (ntr.init - ntr.min) / ntr.decay_steps)

    # -- one step -------------------------------------------------------------------
    def schedule(self, now: float) -> tuple[list, bool]:
        """(work, blocked): ``blocked`` says no waiting request could join, so that
        nothing changes until a request finishes or arrives (macro steps are exact)."""
        e = self.e
        if not e.cfg.mixed_batches:        # a prefill step when something can start, else a decode step
            work, _ = self._admit_waiting([], e.dep.max_batched_tokens, now, prefill_only=True)
            if work:
                return work, False
            work, _, preempted = self._running(decode_only=True)
            return work, not preempted and not e.waiting
        work, budget, preempted = self._running(decode_only=False)
        if preempted:
            return work, False
        return self._admit_waiting(work, budget, now)

    def _running(self, decode_only: bool) -> tuple[list, int, bool]:
        """Running requests first: decodes and unfinished prompt chunks (``decode_only``:
        decodes alone, with no token budget, as in a separate decode step)."""
        e, kv = self.e, self.e.kv
        budget = e.dep.max_batched_tokens
        work: list = []
        bs = kv.block_size
        preempted = False
        i = 0
        running = e.running          # the engine's list (preemption removes from it)
        coh = e.cohort
        if coh is not None and coh.n:
            if not decode_only and coh.n <= budget and coh.take_blocks(self._rest_blocks(coh.n, budget - coh.n)):
                i = coh.n            # the cohort decodes as a whole: running[:i], one token each
                budget -= i
            else:
                coh.sync(running)    # the step the cohort cannot take as the loop would: request by request
        while i < len(running) and (budget > 0 or decode_only):
            r = running[i]
            n = r.input_len + r.generated - r.computed     # known - computed
            if decode_only:
                if n != 1:
                    i += 1
                    continue
            elif n > budget:
                n = budget
            if r.computed + n <= (r.blocks + r.shared_blocks) * bs or kv.grow(r, r.computed + n):
                work.append((r, n))
                budget -= n
                i += 1
                continue
            preempted = True
            survived = self._retract(r, n)
            work = [(q, m) for q, m in work if q in e.running]
            if not survived:
                break
            work.append((r, n))
            budget -= n
            i += 1
        return work, budget, preempted

    def _rest_blocks(self, start: int, budget: int) -> int:
        """KV blocks the loop of :meth:`_running` would take for ``running[start:]`` with
        ``budget`` tokens left (every grant succeeds when the cohort's and these fit)."""
        kv = self.e.kv
        bs = kv.block_size
        total = 0
        for r in self.e.running[start:]:
            if budget <= 0:
                break
            n = min(r.input_len + r.generated - r.computed, budget)
            extra = -(-(r.computed + n) // bs) - r.blocks - r.shared_blocks
            if extra > 0:
                total += extra
            budget -= n
        return total

    def _retract(self, r, n: int) -> bool:
        """Preempt the most recent requests until ``r`` can grow by ``n`` tokens; False
        when ``r`` itself had to go."""
        e, kv = self.e, self.e.kv
        while not kv.grow(r, r.computed + n):
            victim = e.running[-1]
            e.preempt(victim)
            if e.cfg.new_token_ratio is not None:
                self.ratio = e.cfg.new_token_ratio.init
            if victim is r:
                return False
        return True

    def _admit_waiting(self, work: list, budget: int, now: float, prefill_only: bool = False) -> tuple[list, bool]:
        e, kv = self.e, self.e.kv
        if prefill_only:     # a prefill step (no mixing): unfinished prompt chunks first
            for r in e.running:
                n = min(r.known - r.computed, budget)
                if r.known - r.computed > 1 and n > 0 and kv.grow(r, r.computed + n):
                    work.append((r, n))
                    budget -= n
        reserved = self._reserved_tokens() if e.cfg.admission == "estimate" else 0.0
        while e.waiting and budget > 0:
            if len(e.running) >= e.cfg.max_num_seqs:
                return work, True
            r = e.waiting[0]
            if e.never_fits(r):
                e.reject(e.waiting.popleft(), now)      # can never be served: refused, as an engine would
                continue
            hit = 0
            if r.computed == 0:
                hit = r.computed = kv.match(r)
            n = min(r.known - r.computed, budget)
            if not self._admit(r, n, reserved):
                if hit:
                    kv.unmatch(r)
                    r.computed = 0
                return work, e.cfg.admission != "estimate"   # the estimate's ratio moves every step
            if r.preemptions == 0:
                r.prefix_hit_tokens = hit
            e.waiting.popleft()
            e.running.append(r)
            if r.first_scheduled_s < 0:
                r.first_scheduled_s = now
            work.append((r, n))
            budget -= n
            reserved += self.ratio * min(r.output_len - r.generated, CLIP_MAX_NEW_TOKENS)
        return work, not e.waiting      # the budget ran out with requests still waiting: not blocked


class StaticBatching:
    """The baseline: take up to max sequences from the queue whose whole KV (prompt +
    output) fits, prefill them, decode until every one is done, then take the next
    batch. No request joins a batch in flight."""

    def __init__(self, engine):
        self.e = engine
        self.batch: list = []

    def on_steps(self, k: int) -> None:
        pass

    def schedule(self, now: float) -> tuple[list, bool]:
        e, kv, cfg = self.e, self.e.kv, self.e.cfg
        self.batch = [r for r in self.batch if r in e.running]
        if not self.batch:
            while e.waiting and len(self.batch) < cfg.max_num_seqs:
                r = e.waiting[0]
                if e.never_fits(r):
                    e.reject(e.waiting.popleft(), now)
                    continue
                if not kv.grow(r, r.input_len + r.output_len):
                    break
                e.waiting.popleft()
                e.running.append(r)
                r.first_scheduled_s = now
                self.batch.append(r)
        budget = e.dep.max_batched_tokens
        prompts = [r for r in self.batch if r.computed < r.input_len]
        work = []
        if prompts:
            for r in prompts:
                if budget == 0:
                    break
                n = min(r.known - r.computed, budget)
                work.append((r, n))
                budget -= n
            return work, False
        return [(r, 1) for r in self.batch], True


POLICIES = {"chunked-prefill": ChunkedPrefill, "static": StaticBatching}

__all__ = ["SchedulerConfig", "ChunkedPrefill", "StaticBatching", "POLICIES"]
