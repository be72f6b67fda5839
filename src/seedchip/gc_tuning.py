"""Python's cyclic garbage collector, held back while the simulator and the explorer run
(``serve.api.simulate``, ``serve.capacity.capacity``, the explorer's chunks of points).

Their hot loops allocate many short-lived containers (tuples, small lists) that reference
counting frees at once, and the oracle's caches hold hundreds of thousands of long-lived ones.
With the collector's defaults a young collection runs every 700 net allocations and each full
collection walks every cached object again: a tenth to a quarter of a capacity search went
there (benchmarks/README.md, the serving benchmark's sixth pass). Inside :func:`relaxed_gc`
the objects that exist when it is entered are frozen (never walked again while it holds;
``gc.freeze``) and collections run far less often: a young one every 50,000 net allocations,
and one of the middle generation, which walks every survivor of the young ones (the growing
caches: ~1 s of a 100,000-request run at every 20 young ones), after 1,000 of them; the
simulator makes little cyclic garbage for it to find (a few hundred objects a run). On
leaving, the previous thresholds come back and the frozen objects return to the oldest
generation with those the block made (a simulation's caches and requests: walking them in the
younger collections that the restored thresholds set off at once took ~0.5 s after a run), so
cyclic garbage among them is still collected later, by the next full collection. Nested uses
hold it once. Results do not depend on it: only when cycles are reclaimed changes.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

RELAXED_THRESHOLD = (50_000, 1_000, 100)   # young-generation allocations, then collections per older generation

_lock = threading.Lock()
_depth = 0
_saved: tuple[int, int, int] | None = None


@contextmanager
def relaxed_gc() -> Iterator[None]:
    """Hold the collector back for the block (see the module's docstring)."""
    global _depth, _saved
    with _lock:
        _depth += 1
        if _depth == 1:
            _saved = gc.get_threshold()
            gc.freeze()
            gc.set_threshold(*(max(a, b) for a, b in zip(_saved, RELAXED_THRESHOLD)))
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0:
                gc.set_threshold(*_saved)
                gc.freeze()       # the block's survivors join the frozen objects: none is walked now
                gc.unfreeze()
