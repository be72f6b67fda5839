"""The collector held back while the simulator runs (seedchip.gc_tuning): thresholds raised and
the old objects frozen inside, everything as it was after, nested uses held once, and a run's
JSON the same either way."""

from __future__ import annotations

import gc
import json

import pytest

import seedchip
from seedchip import gc_tuning
from seedchip.gc_tuning import RELAXED_THRESHOLD, relaxed_gc

pytestmark = pytest.mark.unit


@pytest.fixture
def default_gc():
    saved = gc.get_threshold()
    gc.set_threshold(700, 10, 10)
    yield
    gc.set_threshold(*saved)


def test_relaxed_gc_holds_the_collector_back_and_restores_it(default_gc):
    keep = [[i] for i in range(1000)]              # old objects: frozen inside, back after
    with relaxed_gc():
        assert gc.get_threshold() == RELAXED_THRESHOLD
        assert gc.get_freeze_count() >= len(keep)
        with relaxed_gc():                        # nested: held once
            assert gc.get_threshold() == RELAXED_THRESHOLD
        assert gc.get_threshold() == RELAXED_THRESHOLD and gc.get_freeze_count() >= len(keep)
    assert gc.get_threshold() == (700, 10, 10)
    assert gc.get_freeze_count() == 0
    with pytest.raises(ZeroDivisionError):
        with relaxed_gc():
            1 / 0
    assert gc.get_threshold() == (700, 10, 10) and gc.get_freeze_count() == 0 and gc_tuning._depth == 0
    gc.set_threshold(100_000, 5_000, 200)              # a process that already collects less keeps its own
    with relaxed_gc():
        assert gc.get_threshold() == (100_000, 5_000, 200)
    assert gc.get_threshold() == (100_000, 5_000, 200)


def test_what_the_block_made_joins_the_oldest_generation(default_gc):
    """On leaving, the block's survivors go where the frozen objects go (the oldest generation),
    so the younger collections that the restored thresholds set off do not walk them."""
    with relaxed_gc():
        made = [[i] for i in range(1000)]
    ids = {id(x) for x in made}
    assert not any(id(o) in ids for g in (0, 1) for o in gc.get_objects(generation=g))
    assert sum(id(o) in ids for o in gc.get_objects(generation=2)) == len(made)


def test_cyclic_garbage_made_inside_is_collected_after(default_gc):
    class Node:
        pass

    with relaxed_gc():
        a, b = Node(), Node()
        a.other, b.other = b, a
        import weakref
        ref = weakref.ref(a)
        del a, b
    gc.collect()
    assert ref() is None


def test_a_simulation_does_not_depend_on_the_collector(monkeypatch, default_gc):
    kw = dict(model="llama-3.1-8b", chip="h100-sxm", workload="chat", qps=4.0, num_requests=200, interval=False)
    held = seedchip.simulate(**kw).to_dict()
    monkeypatch.setattr(gc_tuning, "RELAXED_THRESHOLD", (1, 1, 1))     # the defaults: nothing held back
    monkeypatch.setattr(gc, "freeze", lambda: None)
    eager = seedchip.simulate(**kw).to_dict()
    for d in (held, eager):
        d.pop("sim_wall_s", None)
    assert json.dumps(held, sort_keys=True) == json.dumps(eager, sort_keys=True)
