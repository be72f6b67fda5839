"""Long work tells a progress callback how far it is (the CLI draws a Rich bar from it on a
terminal, never with --json or into a pipe); the results do not depend on it."""

from __future__ import annotations

import pytest

import seedchip
from seedchip.cli.progress import progress_bar

pytestmark = pytest.mark.unit


def test_simulate_reports_completed_requests():
    calls = []
    kw = dict(model="llama-3.1-8b", workload="chat", qps=20, num_requests=1000, seed=2, interval=False)
    with_bar = seedchip.simulate(**kw, progress=lambda *a: calls.append(a)).to_dict()
    assert calls and all(total == 1000 and 0 <= done <= 1000 for done, total, _ in calls)
    assert [c[0] for c in calls] == sorted(c[0] for c in calls)
    without = seedchip.simulate(**kw).to_dict()
    assert with_bar["throughput_tokens_per_s"] == without["throughput_tokens_per_s"]


def test_capacity_reports_each_run():
    calls = []
    seedchip.capacity(model="llama-3.1-8b", workload="chat", slo_ttft_p99="1s", num_requests=100, max_requests=100,
                      interval=False, progress=lambda *a: calls.append(a))
    assert len(calls) >= 3 and calls[0][0] == 0 and all(total == 0 for _, total, _ in calls)
    assert any("req/s" in label for _, _, label in calls)


def test_no_bar_off_a_terminal():
    with progress_bar("x") as tick:          # pytest captures stderr: not a terminal
        assert tick is None
