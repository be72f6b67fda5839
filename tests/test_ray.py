"""Ray for real: one local cluster (2 CPUs) for the module. On it: an explore sweep, a batch of
capacity searches, one search whose next runs go ahead on it, and a plan sweep, each equal to
the run in one process; a worker process SIGKILLed mid-sweep (Ray runs its task again; with
retries off the sweep stops, and --resume finishes it with every point stored exactly once);
the CLI joining the running cluster by --address, and refusing an address where nothing
answers. Skipped only where Ray is not installed (`make install` installs the ray extra)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml

ray = pytest.importorskip("ray")

from seedchip import parallel                                                # noqa: E402
from seedchip.errors import BackendError, SpecError                                    # noqa: E402
from seedchip.explore import explore                                         # noqa: E402
from seedchip.fleet import plan                                              # noqa: E402
from test_explore import TINY, table                                         # noqa: E402
from test_fleet import GOOD                                                  # noqa: E402

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "plan" / "two_year_plan.yaml"

SMALL = TINY.format(out=8)                                                    # 24 points
LARGE = (TINY.format(out=64).replace("[400 TFLOP/s, 800 TFLOP/s, 1200 TFLOP/s]",
                                     "[400 TFLOP/s, 600 TFLOP/s, 800 TFLOP/s, 1000 TFLOP/s, 1200 TFLOP/s, 1400 TFLOP/s]")
         .replace("  hbm_generation:", "  process_node: [tsmc-n4, tsmc-n3]\n  hbm_generation:"))      # 96 points


def capacity_scenario(path: Path) -> Path:
    """Two small capacity searches (llama-3.1-8b, chat, 300 then 600 requests): a candidate list."""
    s = yaml.safe_load(GOOD)
    s["capacity_override"] = []
    s["demand"]["chat"].update(num_requests=300, max_requests=600)
    s["devices"]["ours"]["deployments"] = {"chat": [{"num_chips": 1}, {"num_chips": 1, "max_num_seqs": 32}]}
    path.write_text(yaml.safe_dump(s))
    return path


@pytest.fixture(scope="module")
def cluster():
    """A local Ray cluster for the module; its address (what `--address` takes)."""
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        yield ray.get_runtime_context().gcs_address
    finally:
        ray.shutdown()


def space(tmp: Path, text: str) -> Path:
    p = tmp / f"space-{len(text)}.yaml"
    p.write_text(text)
    return p


def query(directory: Path, sql: str) -> list:
    """Rows of ``sql`` on a sweep's stored table (the raw rows, before any de-duplication)."""
    import duckdb
    con = duckdb.connect(str(directory / "results.duckdb"), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def stored_twice(directory: Path) -> list:
    return query(directory, "SELECT key, count(*) FROM points GROUP BY key HAVING count(*) > 1")


def num_points(directory: Path) -> int:
    return query(directory, "SELECT count(*) FROM points WHERE NOT is_baseline")[0][0]


def untimed(d) -> str:
    """A plan's JSON as text: it holds no wall-clock field, so equal results are equal bytes."""
    return json.dumps(d, sort_keys=True)


@pytest.mark.unit
def test_options_refused_before_any_work():
    for kw, words in (({"address": "10.0.0.1:6379"}, "add --ray"), ({"workers": 2, "use_ray": True}, "drop --workers"),
                      ({"workers": 0}, "--workers"), ({"use_ray": True, "address": "head"}, "not a Ray address"),
                      ({"use_ray": True, "address": "ray://head:99999"}, "not a Ray address")):
        with pytest.raises(SpecError, match=words):
            parallel.check_options(**kw)


# ---- equal to one process -------------------------------------------------------------------

def test_explore_on_ray_equals_inline(cluster, tmp_path):
    sp = space(tmp_path, SMALL)
    one = explore(sp, out=tmp_path / "inline", plot=False)
    on_ray = explore(sp, out=tmp_path / "ray", use_ray=True, plot=False)
    assert on_ray.backend == "ray" and on_ray.workers == 2 and on_ray.num_new == one.num_new == 24
    assert table(on_ray.rows) == table(one.rows)


def test_capacity_searches_on_ray_equal_serial(cluster, tmp_path):
    """Two capacity searches (a candidate list) run by the planner on the cluster: the same
    capacities, the same chosen deployment and the same cache records as one after another."""
    p = capacity_scenario(tmp_path / "s.yaml")
    started: list[str] = []
    serial = plan(p, recompute_capacity=True, cache_dir=tmp_path / "c1").to_dict()
    on_ray = plan(p, recompute_capacity=True, cache_dir=tmp_path / "c2", use_ray=True, progress=started.append).to_dict()
    assert untimed(on_ray) == untimed(serial)
    (c,) = serial["capacity"]
    assert c["source"] == "computed" and len(c["candidates"]) == 2 and c["tokens_per_s"] > 0
    assert len(started) == 2 and all(s.startswith("capacity ours x chat") for s in started)
    files = sorted(f.name for f in (tmp_path / "c1").glob("*.json"))
    assert len(files) == 2 and files == sorted(f.name for f in (tmp_path / "c2").glob("*.json"))
    for f in files:                                  # written by this process, as each search came back
        assert (tmp_path / "c1" / f).read_text() == (tmp_path / "c2" / f).read_text()


def test_one_capacity_search_runs_ahead_on_ray(cluster):
    """A single search without the interval: its streams, bracket ends and next bisection
    points run side by side on the cluster, and its JSON is that of one process."""
    import seedchip
    kw = dict(model="llama-3.1-8b", chip="h200-sxm", workload="chat", slo_ttft_p99="1s", slo_tpot_p99="40ms",
              num_requests=300, max_requests=600, interval=False)
    told: list[str] = []
    one = seedchip.capacity(**kw).to_dict()
    on_ray = seedchip.capacity(**kw, use_ray=True, progress=lambda i, n, what: told.append(what)).to_dict()
    assert json.dumps(on_ray, sort_keys=True) == json.dumps(one, sort_keys=True)
    assert any("runs side by side" in what for what in told)


def test_plan_sweep_on_ray_and_a_pool_equals_serial(cluster):
    sweep = "hbm_supply=-90%..0%:6"
    serial = plan(EXAMPLE, sweep=sweep).to_dict()
    assert len(serial["sweep"]["points"]) == 6 and serial["sweep"]["break_even"]      # a bisection ran too
    assert untimed(plan(EXAMPLE, sweep=sweep, use_ray=True).to_dict()) == untimed(serial)
    assert untimed(plan(EXAMPLE, sweep=sweep, workers=2).to_dict()) == untimed(serial)


# ---- a worker killed mid-sweep ----------------------------------------------------------------

def _descendants(pid: int) -> set[int]:
    parent = {}
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            try:
                parent[int(p.name)] = int((p / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
    out, todo = set(), [pid]
    while todo:
        here = todo.pop()
        kids = [c for c, pp in parent.items() if pp == here]
        out.update(kids)
        todo += kids
    return out


def _busy_worker() -> int | None:
    """A Ray worker process of this test's cluster that is running a sweep task (Ray names it
    after the task's function while it runs; ray::IDLE otherwise)."""
    for pid in _descendants(os.getpid()):
        try:
            if Path(f"/proc/{pid}/cmdline").read_bytes().startswith(b"ray::_task"):
                return pid
        except OSError:
            continue
    return None


class Killer(threading.Thread):
    """SIGKILLs one busy Ray worker once the sweep in ``directory`` has stored its first points."""

    def __init__(self, directory: Path):
        super().__init__(daemon=True)
        self.directory, self.killed, self.stop = directory, None, threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            if (self.directory / "progress.json").exists():
                pid = _busy_worker()
                if pid is not None:
                    os.kill(pid, signal.SIGKILL)
                    self.killed = pid
                    return
            time.sleep(0.01)


def _sweep_with_a_kill(sp: Path, out: Path, **kw):
    killer = Killer(out)
    killer.start()
    try:
        return explore(sp, out=out, use_ray=True, plot=False, **kw), killer
    finally:
        killer.stop.set()
        killer.join()


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc")
def test_killed_worker_loses_and_duplicates_nothing(cluster, tmp_path, monkeypatch):
    sp = space(tmp_path, LARGE)
    serial = explore(sp, out=tmp_path / "serial", plot=False)
    # Ray runs the killed worker's task again: the sweep completes as if nothing happened
    r, killer = _sweep_with_a_kill(sp, tmp_path / "retried")
    assert killer.killed is not None, "no worker was busy with a sweep task to kill"
    assert table(r.rows) == table(serial.rows) and stored_twice(tmp_path / "retried") == []
    # without retries the lost task ends the sweep, the points stored before it kept; --resume finishes it
    monkeypatch.setattr(parallel, "RAY_MAX_RETRIES", 0)
    with pytest.raises(BackendError, match="--resume"):
        _sweep_with_a_kill(sp, tmp_path / "resumed")
    stored = num_points(tmp_path / "resumed")
    assert 0 < stored < 96 and stored_twice(tmp_path / "resumed") == []
    monkeypatch.undo()
    r = explore(resume=tmp_path / "resumed", use_ray=True, plot=False)
    assert r.num_new == 96 - stored                    # exactly the points the stopped sweep had not stored
    assert table(r.rows) == table(serial.rows) and stored_twice(tmp_path / "resumed") == []


# ---- the CLI ---------------------------------------------------------------------------------

def cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "seedchip.cli.main", *args], capture_output=True, text=True,
                          timeout=timeout)


def test_cli_joins_a_running_cluster_by_address(cluster):
    """`plan --sweep ... --ray --address A` from another process, on the module's cluster."""
    sweep = "seedchip_nre=0..8e9:4"
    out = cli("plan", str(EXAMPLE), "--sweep", sweep, "--ray", "--address", cluster, "--json")
    assert out.returncode == 0, out.stderr[-2000:]
    assert untimed(json.loads(out.stdout)) == untimed(plan(EXAMPLE, sweep=sweep).to_dict())


def test_cli_refuses_an_address_where_nothing_answers(tmp_path):
    t0 = time.perf_counter()
    out = cli("explore", str(space(tmp_path, SMALL)), "--out", str(tmp_path / "x"), "--ray", "--address",
              "127.0.0.1:1", "--no-plot", timeout=120)
    lines = out.stderr.strip().splitlines()
    assert out.returncode == 2 and len(lines) == 1 and out.stdout == "", out.stderr
    assert "127.0.0.1:1" in lines[0] and "no Ray cluster answers" in lines[0] and "ray start --head" in lines[0]
    assert time.perf_counter() - t0 < 60
    assert not (tmp_path / "x" / "results.duckdb").exists()         # the corrected command is not refused
