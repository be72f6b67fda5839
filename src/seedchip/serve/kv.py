"""Paged KV-cache blocks with an optional prefix cache (block hashes).

Allocation returns False when blocks do not fit (no exceptions in the hot path).
Invariant (tested): free + private + cached == total, where cached counts the blocks
held by prefix-cache entries, referenced or not; unreferenced entries are evicted in
LRU order when private allocations need room.
"""

from __future__ import annotations

from collections import OrderedDict

from .workload import MOONCAKE_BLOCK_TOKENS, Request


class BlockManager:
    def __init__(self, total_blocks: int, block_size: int, prefix_caching: bool = False,
                 hash_block_tokens: int = MOONCAKE_BLOCK_TOKENS):
        self.total = int(total_blocks)
        self.block_size = int(block_size)
        self.private = 0
        self.prefix_caching = prefix_caching
        self.hash_tokens = hash_block_tokens
        self.blocks_per_hash = max(1, hash_block_tokens // block_size)
        self.cache: OrderedDict[int, int] = OrderedDict()   # hash -> references (LRU order)
        self.cached_blocks = 0
        self.evictable_blocks = 0

    @property
    def free(self) -> int:
        return self.total - self.private - self.cached_blocks

    @property
    def available(self) -> int:
        """Blocks an allocation can get: free ones plus unreferenced cache entries."""
        return self.free + self.evictable_blocks

    def used_fraction(self) -> float:
        return (self.private + self.cached_blocks - self.evictable_blocks) / self.total if self.total else 0.0

    def blocks_for(self, tokens: int) -> int:
        return -(-tokens // self.block_size)

    def _evict(self, need: int) -> None:
        while self.free < need and self.evictable_blocks > 0:
            for h, refs in self.cache.items():
                if refs == 0:
                    del self.cache[h]
                    self.cached_blocks -= self.blocks_per_hash
                    self.evictable_blocks -= self.blocks_per_hash
                    break
            else:  # pragma: no cover - evictable_blocks says there is one
                break

    def grow(self, req: Request, tokens: int) -> bool:
        """Make room for the request's KV to cover ``tokens`` tokens."""
        need = self.blocks_for(tokens) - req.shared_blocks - req.blocks
        if need <= 0:
            return True
        if need > self.free:
            if need > self.available:
                return False
            self._evict(need)
        req.blocks += need
        self.private += need
        return True

    def grant(self, blocks: int) -> None:
        """Take ``blocks`` private blocks known to be available, evicting unreferenced cache
        entries as :meth:`grow` does (the same entries, in the same LRU order, as growing
        the requests one by one: eviction takes whole entries only while free blocks fall
        short, so the entries it takes depend on the total alone)."""
        if blocks > self.free:
            self._evict(blocks)
        self.private += blocks

    def release(self, req: Request) -> None:
        self.private -= req.blocks
        req.blocks = 0
        for h in req.cached_hashes:
            refs = self.cache.get(h)
            if refs is not None:
                self.cache[h] = refs - 1
                if refs == 1:
                    self.evictable_blocks += self.blocks_per_hash
        req.cached_hashes = ()
        req.shared_blocks = 0

    # -- prefix cache -----------------------------------------------------------
    def match(self, req: Request) -> int:
        """On admission: share the longest cached prefix of the request's full hash
        blocks; returns the prompt tokens that need no computing (at least one token
        is always computed, to produce logits)."""
        if not (self.prefix_caching and req.hash_ids):
            return 0
        full = min(len(req.hash_ids), req.input_len // self.hash_tokens)
        got = []
        for h in req.hash_ids[:full]:
            refs = self.cache.get(h)
            if refs is None:
                break
            if refs == 0:
                self.evictable_blocks -= self.blocks_per_hash
            self.cache[h] = refs + 1
            self.cache.move_to_end(h)
            got.append(h)
        if not got:
            return 0
        req.cached_hashes = tuple(got)
        req.shared_blocks = len(got) * self.blocks_per_hash
        return min(len(got) * self.hash_tokens, req.input_len - 1)

    def unmatch(self, req: Request) -> None:
        """Undo :meth:`match` when the admission fails for want of blocks."""
        self.release(req)

    def publish(self, req: Request) -> None:
        """When the prompt is computed: its full hash blocks become shareable. Blocks
        move from the request's private share into cache entries it references."""
        if not (self.prefix_caching and req.hash_ids):
            return
        full = min(len(req.hash_ids), req.input_len // self.hash_tokens)
        have = set(req.cached_hashes)
        added = []
        for h in req.hash_ids[len(req.cached_hashes):full]:
            if h in have or h in self.cache:
                continue
            if req.blocks < self.blocks_per_hash:
                break
            self.cache[h] = 1
            req.blocks -= self.blocks_per_hash
            self.private -= self.blocks_per_hash
            self.cached_blocks += self.blocks_per_hash
            req.shared_blocks += self.blocks_per_hash
            added.append(h)
        if added:
            req.cached_hashes = req.cached_hashes + tuple(added)

    def check(self) -> None:
        """Conservation of blocks (used by tests)."""
        assert self.free >= 0, self.free
        assert self.cached_blocks == len(self.cache) * self.blocks_per_hash
        assert self.evictable_blocks == sum(self.blocks_per_hash for r in self.cache.values() if r == 0)
        assert self.private + self.cached_blocks + self.free == self.total
