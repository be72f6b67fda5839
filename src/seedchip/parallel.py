"""One parallel map for the explorer's sweeps, the planner's capacity searches and plan sweeps.

    backend = open_backend(workers=1, use_ray=False, address=None)
    for i, result in backend.map(fn, items, setup=build, shared=x, before=hook):
        ...                # each result as it finishes, with its index in ``items``
    backend.close()

Backends: inline (``workers=1``: in this process, in order), a local pool of spawned processes
(``workers > 1``) or Ray (``use_ray``; ``address`` joins a running cluster, none starts a local
one; the optional ``ray`` extra). ``fn(state, item)`` runs in a worker, where
``state = setup(shared)`` is built once per worker process and kept while the same
(setup, shared) comes again: a sweep's evaluation context is built once per worker, not once
per task. ``fn`` and ``setup`` must be module-level functions (the pool and Ray import them).

Results come back to the caller, which alone writes them (a store, a cache): a task that is lost
is never half-written. Ray runs a task again when its worker dies (``RAY_MAX_RETRIES`` times);
a worker lost for good (or a local pool's killed process) ends the map with
:class:`~seedchip.errors.BackendError`, the results handed back before it kept by the caller.
"""

from __future__ import annotations

import atexit
import hashlib
import os
import pickle
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from .errors import BackendError, SpecError, one_line

MAX_WORKERS = 1024           # local processes; more than that will not help on one machine
RAY_MAX_RETRIES = 3          # runs of a task whose Ray worker died, after the first
CONNECT_TIMEOUT_S = 5.0      # to reach a Ray cluster's address before Ray's own (minutes-long) retries
RAY_ADDRESS_HELP = ("give the head node's address HOST:PORT (what `ray start --head` prints; port 6379 by default), "
                    "ray://HOST:10001 for Ray Client, or auto for the cluster `ray start` runs on this machine")


def check_options(workers: int = 1, use_ray: bool = False, address: str | None = None) -> None:
    """Refuse a bad combination of --workers, --ray and --address before any work."""
    if isinstance(workers, bool) or not isinstance(workers, int) or not 1 <= workers <= MAX_WORKERS:
        raise SpecError(f"--workers {workers!r} must be a whole number from 1 to {MAX_WORKERS}")
    if address is not None and not use_ray:
        raise SpecError(f"--address {address!r} is a Ray cluster's address: add --ray (or drop --address)")
    if use_ray and workers != 1:
        raise SpecError(f"--workers {workers} sizes the local process pool; with --ray the cluster's CPUs set how "
                        "many tasks run at once: drop --workers")
    if address is not None:
        _host_port(address)


def open_backend(workers: int = 1, use_ray: bool = False, address: str | None = None):
    """Inline (workers = 1), a local process Pool (workers > 1) or Ray (use_ray)."""
    check_options(workers, use_ray, address)
    if use_ray:
        return RayBackend(address)
    return Inline() if workers == 1 else Pool(workers)


# ---- what a worker keeps --------------------------------------------------------------------

_STATE: tuple[str, Any] | None = None       # (token, setup(shared)) of the last setup in this process


def _token(setup: Callable | None, shared: Any) -> str:
    if setup is None:
        return ""
    blob = pickle.dumps((setup.__module__, setup.__qualname__, shared), protocol=4)
    return hashlib.sha256(blob).hexdigest()


def _state(token: str, setup: Callable | None, shared: Any) -> Any:
    global _STATE
    if setup is None:
        return shared
    if _STATE is None or _STATE[0] != token:
        _STATE = None                        # free the old state before building the new one
        _STATE = (token, setup(shared))
    return _STATE[1]


def _task(token: str, setup: Callable | None, shared: Any, fn: Callable, item: Any) -> Any:
    """What a worker runs: ``fn(state, item)``."""
    return fn(_state(token, setup, shared), item)


def local_state(setup: Callable, shared: Any) -> Any:
    """``setup(shared)`` in this process, built once (the inline backend's tasks share it)."""
    return _state(_token(setup, shared), setup, shared)


def _forget() -> None:
    global _STATE
    _STATE = None


def _bounded(items: Iterable, limit: int, submit: Callable, done_of: Callable, cancel: Callable,
             before: Callable[[int], None] | None) -> Iterator[tuple[int, Any]]:
    """Keep up to ``limit`` tasks in flight; (index, handle) of each as it finishes. Tasks still
    in flight when the caller stops (or a task fails) are cancelled."""
    todo = iter(enumerate(items))
    pending: dict = {}

    def fill() -> None:
        for i, item in todo:
            if before is not None:
                before(i)
            pending[submit(item)] = i
            if len(pending) >= limit:
                return

    try:
        fill()
        while pending:
            for h in done_of(list(pending)):
                yield pending.pop(h), h
            fill()
    finally:
        if pending:
            cancel(list(pending))


# ---- backends -------------------------------------------------------------------------------

class Inline:
    """In this process, one item after another, in order."""
    name = "inline"
    workers = 1

    def map(self, fn: Callable, items: Iterable, *, setup: Callable | None = None, shared: Any = None,
            before: Callable[[int], None] | None = None) -> Iterator[tuple[int, Any]]:
        token = _token(setup, shared)
        for i, item in enumerate(items):
            if before is not None:
                before(i)
            yield i, _task(token, setup, shared, fn, item)

    def close(self) -> None:
        _forget()


def _watch_parent(parent_pid: int, every_s: float = 0.5) -> None:
    """Die with the caller: a pool worker whose parent was killed (SIGKILL gives it no chance to
    shut the pool down) is re-parented; a daemon thread notices and ends the worker."""
    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(every_s)
        os._exit(1)

    threading.Thread(target=watch, daemon=True, name="seedchip-parent-watch").start()


def _ready() -> None:
    """A pool's first task: it makes the pool start its workers at once."""


def _quick_exit() -> None:
    """A pool worker's last step: its tasks are done and handed back, and multiprocessing has
    run its own exit steps; leave without the interpreter's tear-down, which frees a worker's
    pricing caches object by object (seconds after a capacity search, and the pool's
    ``close`` waits for it)."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def _pool_worker(parent_pid: int) -> None:
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    _watch_parent(parent_pid)
    atexit.register(_quick_exit)


class Pool:
    """A local pool of ``workers`` spawned processes."""
    name = "process-pool"

    def __init__(self, workers: int):
        import multiprocessing as mp
        self.workers = workers
        self.ex = ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("spawn"),
                                      initializer=_pool_worker, initargs=(os.getpid(),))
        for _ in range(workers):       # start the workers now: they import while the caller gets ready
            self.ex.submit(_ready)

    def map(self, fn: Callable, items: Iterable, *, setup: Callable | None = None, shared: Any = None,
            before: Callable[[int], None] | None = None) -> Iterator[tuple[int, Any]]:
        token = _token(setup, shared)
        try:
            for i, f in _bounded(items, 2 * self.workers, lambda item: self.ex.submit(_task, token, setup, shared, fn, item),
                                 lambda fs: wait(fs, return_when=FIRST_COMPLETED)[0],
                                 lambda fs: [f.cancel() for f in fs], before):
                yield i, f.result()
        except BrokenProcessPool:
            raise BackendError("a worker process of the local pool died (killed, out of memory, or it could not "
                               "start); the results handed back before it are kept") from None

    def close(self) -> None:
        self.ex.shutdown(cancel_futures=True)
        _forget()


class RayBackend:
    """Tasks on a Ray cluster: the one this process is connected to, the one at ``address``,
    or a local one started here (no dashboard, workers' logs not copied here)."""
    name = "ray"

    def __init__(self, address: str | None = None):
        try:
            import ray
        except ImportError:
            raise SpecError("--ray needs Ray, which is not installed: pip install 'seedchip[ray]' (or run without "
                            "--ray for the local process pool)") from None
        self.ray = ray
        if address is not None:
            _reachable(address)                      # a dead address is refused, connected or not
        if not ray.is_initialized():
            _connect(ray, address)
        elif address is not None and not _same_cluster(ray, address):
            raise SpecError(f"--address {address!r}: this process is already connected to the Ray cluster at "
                            f"{ray.get_runtime_context().gcs_address}: ray.shutdown() first, or drop --address")
        self.remote = ray.remote(_task).options(max_retries=RAY_MAX_RETRIES, retry_exceptions=False)
        self.workers = max(1, int(ray.cluster_resources().get("CPU", 1)))

    def map(self, fn: Callable, items: Iterable, *, setup: Callable | None = None, shared: Any = None,
            before: Callable[[int], None] | None = None) -> Iterator[tuple[int, Any]]:
        ray = self.ray
        token = _token(setup, shared)
        ref = ray.put(shared)                        # sent to the cluster once; a task's argument resolves it
        for i, h in _bounded(items, 2 * self.workers, lambda item: self.remote.remote(token, setup, ref, fn, item),
                             lambda hs: ray.wait(hs, num_returns=1)[0],
                             lambda hs: [ray.cancel(h) for h in hs], before):
            yield i, self._get(h)

    def _get(self, ref) -> Any:
        ex = self.ray.exceptions
        try:
            return self.ray.get(ref)
        except ex.RayTaskError as e:                 # the task raised: that error, as if run here
            cause = getattr(e, "cause", None)
            if isinstance(cause, BaseException):
                raise cause from None
            raise
        except ex.RayError as e:                     # its worker or node was lost, retries spent
            raise BackendError(f"a Ray task was lost: its worker or node died ({type(e).__name__}; retries "
                               f"allowed: {RAY_MAX_RETRIES}); the results handed back before it are kept") from None

    def close(self) -> None:
        _forget()


def _host_port(address: str) -> tuple[str, int] | None:
    """(host, port) of a Ray address, None for ``auto`` / ``local``; refuses what is neither."""
    if address in ("auto", "local"):
        return None
    host, sep, port = str(address).removeprefix("ray://").rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536 or any(c.isspace() for c in host):
        raise SpecError(f"--address {address!r} is not a Ray address: {RAY_ADDRESS_HELP}")
    return host, int(port)


def _reachable(address: str) -> None:
    """Refuse an address where nothing answers, within seconds (Ray itself retries a dead
    address for many minutes)."""
    hp = _host_port(address)
    if hp is None:
        return
    try:
        socket.create_connection(hp, timeout=CONNECT_TIMEOUT_S).close()
    except OSError as e:
        raise SpecError(f"--address {address!r}: no Ray cluster answers there ({e.strerror or e}): start one with "
                        "`ray start --head` on that machine and give its address, or drop --address to start a "
                        "local Ray") from None


def _same_cluster(ray, address: str) -> bool:
    """Whether ``address`` is the cluster this process is connected to (auto, local: yes)."""
    hp = _host_port(address)
    if hp is None:
        return True
    host, _, port = ray.get_runtime_context().gcs_address.rpartition(":")
    try:
        given = socket.gethostbyname(hp[0])
        ours = socket.gethostbyname(host)
    except OSError:
        return False
    return str(hp[1]) == port and (given == ours or given.startswith("127.") and ours == ray.util.get_node_ip_address())


def _connect(ray, address: str | None) -> None:
    """ray.init at ``address`` (else $RAY_ADDRESS, else a new local Ray; no dashboard, workers'
    logs kept on their nodes), its failures as one typed line."""
    where = address if address is not None else os.environ.get("RAY_ADDRESS") or None
    if address is None and where is not None:
        _reachable(where)
    try:                          # no address: a new local Ray, not one that `ray start` left running here
        ray.init(address=where or "local", include_dashboard=False, log_to_driver=False, ignore_reinit_error=True)
    except Exception as e:        # noqa: BLE001 - whatever Ray raises, the user gets one line
        if where is None:
            raise BackendError(f"Ray could not start a local cluster: {one_line(e)[:300]}") from None
        raise SpecError(f"--address {where!r}: Ray cannot join that cluster ({one_line(e)[:300]}); "
                        f"{RAY_ADDRESS_HELP}") from None


__all__ = ["open_backend", "check_options", "local_state", "Inline", "Pool", "RayBackend", "MAX_WORKERS",
           "RAY_MAX_RETRIES"]
