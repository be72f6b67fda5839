"""The decoding head of an engine's running list, stepped without touching its requests.

In steady serving most of a batch decodes: every step each such request computes one
token, emits one, and now and then takes one more KV block. A :class:`Cohort` holds the
longest prefix ``running[:n]`` of the running list in which every request decodes, and
steps it in O(1) plus O(the requests that finish this step) plus O(block size): a
member's counters are lazy (its true ``computed`` and ``generated`` are the stored ones
plus the steps run since it joined, ``tick - base[r]``) and so are its KV blocks. A member
needs its next block every ``block_size`` steps from the tick at which it first needs one,
so the members are counted by the tick of their next need (``due_n``): the blocks a step,
or a stretch of steps, needs come from those counts (at most a block's worth of ticks),
the counts move on by whole blocks as blocks are granted, and a member's blocks are the
ones it held when it joined plus its need ticks that grants have covered (``covered``).
The tick at which a member finishes sits in a heap. A member's counters and blocks are
made true again when it finishes or when the cohort is dissolved (:meth:`sync`), which
the scheduler does before any step the cohort cannot take exactly as the per-request
loop would: a member that cannot get its block, a token budget smaller than the cohort,
or a preemption. Results equal the per-request loop to the last bit (tested): the keys
attended are integer sums, blocks are granted only when every grant of the step succeeds
(then their order does not matter), and finished members leave in running order.
"""

from __future__ import annotations

from heapq import heapify, heappop, heappush

import numpy as np

from .kv import BlockManager
from .workload import Request


def decodes(r: Request) -> bool:
    """Whether the next step of ``r`` computes one token and emits one (its prompt done,
    its first token out, its output not finished)."""
    return 0 < r.generated < r.output_len and r.computed + 1 == r.input_len + r.generated


class Cohort:
    def __init__(self, kv: BlockManager, dp: int = 1):
        """``dp``: the replicas a step's sequences are dealt to by position (sequence i to
        replica i mod dp, :func:`seedchip.perf.graph.split_replicas`)."""
        self.kv, self.dp = kv, dp
        self.dealt: tuple | None = None   # dp > 1: per replica (members, sum of offsets, largest offset)
        self.bs = kv.block_size
        self.tick = 0                 # steps the engine has run
        self.n = 0                    # members: the engine's running[:n]
        self.base: dict[Request, int] = {}   # member -> the tick at which its counters were true
        self.sum_off = 0              # sum of members' computed - base (the keys without the tick)
        self.seq = 0                  # join order: ties in the heaps resolve in running order
        self.ends: list = []          # (tick after its last token, seq, member)
        self.first_need: dict[Request, int] = {}   # member -> the tick at which it needed a block after joining
        self.due_n: dict[int, int] = {}      # tick -> members whose next block is needed at that tick
        self.covered = 0              # every member holds the blocks of the steps before this tick
        self.longest: list = []       # dp 1: (-(computed - base), seq, member)
        # dp > 1: members' offsets by join slot (join order is running order), and which are in
        self.slot: dict[Request, int] = {}
        self.offs = np.zeros(64, dtype=np.int64)
        self.alive = np.zeros(64, dtype=bool)
        self.slots = 0

    # -- membership -----------------------------------------------------------------
    def add(self, r: Request) -> None:
        """``r`` (true counters, decoding) joins at the end of the cohort."""
        t = self.tick
        self.base[r] = t
        off = r.computed - t
        self.sum_off += off
        self.seq += 1
        s = self.seq
        heappush(self.ends, (t + r.output_len - r.generated, s, r))
        at = t + (r.blocks + r.shared_blocks) * self.bs - r.computed     # >= t = covered: it holds its tokens
        self.first_need[r] = at
        self.due_n[at] = self.due_n.get(at, 0) + 1
        if self.dp == 1:
            heappush(self.longest, (-off, s, r))
            self.n += 1
            return
        if self.slots == len(self.offs):
            self._compact()
        self.slot[r] = self.slots
        self.offs[self.slots] = off
        self.alive[self.slots] = True
        self.slots += 1
        if self.dealt is not None:           # joins at the end: the positions before it keep their replicas
            cnt, offs, top = self.dealt
            j = self.n % self.dp
            top[j] = off if not cnt[j] or off > top[j] else top[j]
            cnt[j] += 1
            offs[j] += off
        self.n += 1

    def _leave(self, r: Request) -> None:
        b = self.base.pop(r)
        self.sum_off -= r.computed - b
        d = self.tick - b
        r.computed += d
        r.generated += d
        at = self._make_blocks_true(r)
        left = self.due_n[at] - 1
        if left:
            self.due_n[at] = left
        else:
            del self.due_n[at]
        self.n -= 1
        if self.dp > 1:
            self.alive[self.slot.pop(r)] = False
            self.dealt = None              # the members after it moved one position

    def _make_blocks_true(self, r: Request) -> int:
        """``r``'s blocks made true (those it held plus one per need tick covered); returns
        the tick of its next need."""
        first = self.first_need.pop(r)
        granted = -(-(self.covered - first) // self.bs) if self.covered > first else 0
        r.blocks += granted
        return first + granted * self.bs

    def _compact(self) -> None:
        """dp > 1: the slots of members gone dropped (room for as many members again)."""
        keep = np.flatnonzero(self.alive[:self.slots])
        size = max(64, 2 * len(keep))
        offs, alive = np.zeros(size, dtype=np.int64), np.zeros(size, dtype=bool)
        offs[:len(keep)] = self.offs[keep]
        alive[:len(keep)] = True
        new = {int(old): i for i, old in enumerate(keep)}
        self.slot = {r: new[i] for r, i in self.slot.items()}
        self.offs, self.alive, self.slots = offs, alive, len(keep)

    def sync(self, running: list) -> None:
        """Dissolve the cohort: every member's counters and blocks made true."""
        t = self.tick
        for r in running[:self.n]:
            d = t - self.base[r]
            r.computed += d
            r.generated += d
            self._make_blocks_true(r)
        self.covered = t
        self.base.clear()
        self.due_n.clear()
        self.ends.clear()
        self.longest.clear()
        self.slot.clear()
        self.alive[:self.slots] = False
        self.slots = 0
        self.dealt = None
        self.n = self.sum_off = 0

    def extend(self, running: list) -> None:
        """Members join from the head of the rest of ``running`` while they decode."""
        while self.n < len(running) and decodes(running[self.n]):
            self.add(running[self.n])

    # -- what a step sees -----------------------------------------------------------
    def keys(self) -> int:
        """Keys the members attend this step: the sum of their computed + 1."""
        return self.sum_off + self.n * (self.tick + 1)

    def longest_context(self) -> int:
        """The longest member's computed + 1."""
        h, base = self.longest, self.base
        while True:
            neg, _, r = h[0]
            b = base.get(r)
            if b is not None and r.computed - b == -neg:
                break
            heappop(h)
        if len(h) > 2 * self.n + 64:           # drop the entries of members gone
            h[:] = [e for e in h if base.get(e[2]) is not None and e[2].computed - base[e[2]] == -e[0]]
            heapify(h)
        return -h[0][0] + self.tick + 1

    def replicas(self) -> tuple[list, list, list]:
        """dp > 1: per replica, its members, the sum of their offsets and the largest
        (a member's keys this step are its offset + tick + 1), recounted when a member
        has left since the last step."""
        if self.dealt is None:
            dp, n = self.dp, self.n
            offs = self.offs[:self.slots][self.alive[:self.slots]]     # in running order
            full, rest = divmod(n, dp)
            cnt = [full + (j < rest) for j in range(dp)]
            sums, top = [0] * dp, [0] * dp
            if full:
                grid = offs[:full * dp].reshape(full, dp)
                sums, top = grid.sum(axis=0).tolist(), grid.max(axis=0).tolist()
            for j, off in enumerate(offs[full * dp:].tolist()):
                top[j] = off if not full or off > top[j] else top[j]
                sums[j] += off
            self.dealt = (cnt, sums, top)
        return self.dealt

    def steps_left(self) -> int:
        """Steps until the first member emits its last token."""
        h, base = self.ends, self.base
        while True:
            end, _, r = h[0]
            b = base.get(r)
            if b is not None and b + r.output_len - r.generated == end:
                return end - self.tick
            heappop(h)

    def take_blocks(self, extra_blocks: int) -> bool:
        """This step's blocks for the members that need one (one block each: they hold whole
        blocks and fill the last one now), when they and ``extra_blocks`` more (the rest of
        the batch's) all fit; False (nothing granted, and the cohort must be dissolved): they
        do not."""
        t = self.tick
        need = self.due_n.get(t, 0)
        if not need:
            return extra_blocks <= self.kv.available
        if need + extra_blocks > self.kv.available:
            return False                       # the caller dissolves the cohort (sync)
        self._cover(t + 1)
        return True

    def _cover(self, stop: int) -> None:
        """Grant the members the blocks of every step before tick ``stop`` (known to fit):
        the counts due before it move on by whole blocks."""
        bs, due_n = self.bs, self.due_n
        total = 0
        # the ticks due before the stop (every key is >= covered; at most one per slot of a block)
        ticks = range(self.covered, stop) if stop - self.covered <= len(due_n) else [a for a in due_n if a < stop]
        for at in ticks:
            members = due_n.pop(at, 0)
            if not members:
                continue
            more = -(-(stop - at) // bs)
            total += members * more
            after = at + more * bs
            due_n[after] = due_n.get(after, 0) + members
        if total:
            self.kv.grant(total)
        self.covered = stop

    def stretch_blocks(self, k: int) -> int:
        """Blocks the members need to run ``k`` steps from now."""
        total, end, bs = 0, self.tick + k, self.bs
        for at, members in self.due_n.items():      # at most one tick per slot of a block
            if at < end:
                total += members * -(-(end - at) // bs)
        return total

    def advance(self, k: int) -> list:
        """Run ``k`` steps: the blocks for them (known to fit), then the tick; returns the
        members that emitted their last token, in running order, with true counters and
        blocks."""
        self._cover(self.tick + k)
        self.tick += k
        h, base, done = self.ends, self.base, []
        while h and h[0][0] <= self.tick:
            end, _, r = heappop(h)
            b = base.get(r)
            if b is not None and b + r.output_len - r.generated == end:
                done.append(r)
        for r in done:
            self._leave(r)
        return done

    def outstanding_tokens(self, running: list) -> int:
        """Tokens the members still have to compute (one each) and to emit."""
        t, base = self.tick, self.base
        return sum(1 + r.output_len - r.generated - (t - base[r]) for r in running[:self.n])
