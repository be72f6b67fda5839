"""explore(space, out=DIR) -> ExploreResult: run a sweep, store every point, mark the frontier.

Backends (``seedchip.parallel``): in-process (workers = 1), a local process pool (workers > 1;
spawned processes, each builds its evaluation context once) or Ray (``use_ray``; optional; a
task whose worker dies is run again). Every backend hands results back to this process, which
commits them to DIR/results.duckdb in batches (at least once a second) and keeps
DIR/progress.json at what is stored, so a killed sweep (or a worker lost for good) loses only
the points in flight and the last second's, and ``resume=DIR`` continues it.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

from ..errors import BackendError, SpecError
from ..gc_tuning import relaxed_gc
from ..outputs import check_dir
from ..parallel import check_options, local_state, open_backend
from .evaluate import Context, direction, evaluate_baseline, evaluate_point
from .pareto import dominates, frontier
from .space import Space, load_space, parse_space, point_key, run_options
from .store import Store

# ---- evaluation on a backend ----------------------------------------------------------

def _context(space_json: str) -> Context:
    """A worker's evaluation context (built once per worker, ``parallel.py``)."""
    return Context.build(Space.model_validate_json(space_json))


def _eval_chunk(ctx: Context, points: list[dict]) -> list[dict]:
    with relaxed_gc():
        return [evaluate_point(ctx, p) for p in points]


def _chunks(points: list[dict], size: int) -> Iterator[list[dict]]:
    for i in range(0, len(points), size):
        yield points[i:i + size]


def _evaluate(backend, sp: Space, points: list[dict]) -> Iterator[list[dict]]:
    """The points' rows, a chunk at a time as each finishes (one point a chunk in-process)."""
    size = 1 if backend.workers == 1 else max(1, min(16, len(points) // (backend.workers * 4)))
    for _, rows in backend.map(_eval_chunk, list(_chunks(points, size)), setup=_context,
                               shared=sp.model_dump_json()):
        yield rows


# ---- result -----------------------------------------------------------------------------

FRONTIER_METRICS = ("die_area_mm2", "yield", "unit_cost_usd", "tdp_w", "hbm_capacity_gb", "hbm_bw_tb_per_s",
                    "bf16_tflop_per_s", "num_cores")


def _public(row: dict) -> dict:
    m = row.get("metrics") or {}
    return {"key": row["key"], "params": row["params"], "objectives": row["objectives"],
            "metrics": {k: m[k] for k in FRONTIER_METRICS if k in m}, "workload": m.get("workload", {})}


@dataclass(frozen=True)
class ExploreResult:
    """A sweep's stored rows, its frontier and the baseline. Frozen: the plots and the elapsed
    time are set when the result is made (``dataclasses.replace``), not afterwards."""
    space: Space
    method: str
    rows: list[dict]
    front: list[dict]
    baseline: dict | None
    num_new: int
    eval_s: float
    elapsed_s: float
    store: str
    backend: str
    workers: int
    plots: dict = field(default_factory=dict)

    @property
    def points_per_s(self) -> float:
        return self.num_new / self.eval_s if self.eval_s > 0 else 0.0

    def to_dict(self) -> dict:
        points = [r for r in self.rows if not r.get("is_baseline")]
        objs = self.space.objectives
        dirs = {o: direction(o) for o in objs}
        base = self.baseline
        front = []
        for r in self.front:
            d = _public(r)
            d["dominates_baseline"] = bool(base and base["feasible"] and dominates(r["objectives"], base["objectives"],
                                                                                   objs, dirs))
            front.append(d)
        out = {
            "space": self.space.name, "search": self.method, "axes": list(self.space.axes), "objectives": objs,
            "directions": dirs,
            "num_points": len(points), "num_feasible": sum(1 for r in points if r["feasible"]),
            "num_new": self.num_new, "points_per_s": self.points_per_s, "eval_s": self.eval_s,
            "elapsed_s": self.elapsed_s, "backend": self.backend, "workers": self.workers,
            "frontier": front,
            "baseline": ({**_public(base), "chip": base["params"]["baseline"], "feasible": base["feasible"],
                          "reason": base["reason"]} if base else None),
            "infeasible_reasons": _reason_counts(points),
            "store": self.store,
        }
        out.update(self.plots)
        return out


def _reason_counts(points: list[dict]) -> dict[str, int]:
    out: dict[str, int] = {}
    for r in points:
        if not r["feasible"]:
            head = re.sub(r"\$?[0-9][0-9,.]*", "N", (r["reason"] or "?").split(":")[0])[:80]
            out[head] = out.get(head, 0) + 1
    return dict(sorted(out.items(), key=lambda kv: -kv[1]))


# ---- the sweep --------------------------------------------------------------------------

FLUSH_ROWS = 256     # rows committed together at most ...
FLUSH_S = 1.0        # ... and at least this often: a killed sweep loses at most the last second


class _Progress:
    """Commits evaluated rows to the store a batch at a time (one INSERT per row cost more
    than a point at sampled fidelity), shows the progress bar and keeps progress.json.
    ``close`` commits what is left, so a sweep stopped by an error or Ctrl-C keeps every
    point it evaluated; a killed one loses at most the last second's, which ``--resume``
    evaluates again."""

    def __init__(self, store: Store, total: int, done: int, show: bool, label: str):
        self.store, self.total, self.done, self.t0 = store, total, done, time.perf_counter()
        self.new = 0
        self.pending: list[dict] = []
        self.flushed = -FLUSH_S         # the first chunk is stored at once: a watcher sees the sweep start
        self.bar = None
        if show:
            from rich.console import Console
            from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                                       TimeRemainingColumn)
            self.bar = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                                TextColumn("{task.fields[rate]} pts/s"), TimeElapsedColumn(), TextColumn("ETA"),
                                TimeRemainingColumn(), console=Console(stderr=True), transient=False)
            self.bar.start()
            self.task = self.bar.add_task(label, total=total, completed=done, rate="-")

    def commit(self, rows: list[dict]) -> None:
        """Take a chunk of evaluated rows: stored with the next batch."""
        self.pending += rows
        n = len(rows)
        self.done += n
        self.new += n
        now = time.perf_counter()
        if self.bar is not None:
            self.bar.update(self.task, advance=n, rate=f"{self._rate(now):.1f}")
        if len(self.pending) >= FLUSH_ROWS or now - self.flushed >= FLUSH_S or self.done >= self.total:
            self.flush()

    def _rate(self, now: float) -> float:
        return self.new / (now - self.t0) if now > self.t0 else 0.0

    def flush(self) -> None:
        """Store the pending rows; progress.json then counts them ("done": stored points)."""
        if self.pending:
            self.store.add(self.pending)
            self.pending = []
        now = self.flushed = time.perf_counter()
        p = self.store.dir / "progress.json"
        tmp = p.with_suffix(".tmp")
        tmp.write_text(json.dumps({"done": self.done, "total": self.total, "new": self.new,
                                   "points_per_s": self._rate(now)}))
        os.replace(tmp, p)

    def close(self) -> None:
        self.flush()
        if self.bar is not None:
            self.bar.stop()


def _optuna_study(optuna, space: Space, method: str, seed: int, stored: list[dict]):
    """An Optuna study over ``space`` (TPE or NSGA-II, seeded) that already knows the stored
    points; infeasible points carry the worst objective values and a violated constraint (> 0).
    (study, distributions, Optuna's direction per objective, whether this Optuna has
    ``Trial.set_constraint``)."""
    from .optuna_space import distributions, to_trial_values
    dists = distributions(space)
    objs = space.objectives
    dirs = ["maximize" if direction(o) == "max" else "minimize" for o in objs]
    new_api = hasattr(optuna.trial.Trial, "set_constraint")          # optuna >= 5

    def constraints(trial):
        return [trial.user_attrs.get("infeasible", 0.0)]

    kw = {} if new_api else {"constraints_func": constraints}
    if method == "tpe":
        sampler = optuna.samplers.TPESampler(seed=seed, n_startup_trials=10, **kw)
    else:
        sampler = optuna.samplers.NSGAIISampler(seed=seed, **kw)
    study = optuna.create_study(directions=dirs, sampler=sampler)
    for r in stored:
        bad = 0.0 if r["feasible"] else 1.0
        extra = {"constraints": {"infeasible": bad}} if new_api else {}
        study.add_trial(optuna.trial.create_trial(params=r["params"], distributions=dists,
                                                  values=to_trial_values(r, objs, dirs),
                                                  user_attrs={"infeasible": bad}, **extra))
    return study, dists, dirs, new_api


def _evaluate_new(backend, sp: Space, store: Store, prog: _Progress, points: list[dict], seen: set[str]
                  ) -> tuple[dict[str, dict], int]:
    """Evaluate the points not yet seen (each key once), committing them as they arrive:
    (key -> row, the number evaluated)."""
    fresh = [p for p in points if point_key(p) not in seen]
    uniq = list({point_key(p): p for p in fresh}.values())
    results = {}
    new = 0
    for chunk in _evaluate(backend, sp, uniq):
        prog.commit(chunk)
        new += len(chunk)
        for r in chunk:
            results[r["key"]] = r
            seen.add(r["key"])
    return results, new


def _optuna_sweep(space: Space, store: Store, backend, method: str, trials: int, seed: int, prog: _Progress,
                  stored: list[dict]) -> int:
    """Ask Optuna for batches of points (one per worker), evaluate those not stored yet and tell it
    every result, until ``trials`` points; the number of points evaluated."""
    try:
        import optuna
    except ImportError:
        raise SpecError("--search tpe/nsga2 needs Optuna: pip install 'seedchip[explore]' (or optuna)") from None
    from .optuna_space import to_trial_values
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study, dists, dirs, new_api = _optuna_study(optuna, space, method, seed, stored)
    objs = space.objectives
    seen = {r["key"] for r in stored}
    new = 0
    batch = max(1, getattr(backend, "workers", 1))
    left = trials - len(stored)
    while left > 0:
        asked = [study.ask(dists) for _ in range(min(batch, left))]
        left -= len(asked)
        points = [dict(t.params) for t in asked]
        by_key: dict[str, list] = {}
        for t, p in zip(asked, points):
            by_key.setdefault(point_key(p), []).append(t)
        results, evaluated = _evaluate_new(backend, space, store, prog, points, seen)
        new += evaluated
        old = {}
        if len(results) < len(by_key):      # some asked again: their rows are stored (or pending)
            prog.flush()
            old = {r["key"]: r for r in store.rows()}
        for k, ts in by_key.items():
            r = results.get(k) or old.get(k)
            for t in ts:
                bad = 0.0 if r["feasible"] else 1.0
                t.set_user_attr("infeasible", bad)
                if new_api:
                    t.set_constraint("infeasible", bad)
                study.tell(t, to_trial_values(r, objs, dirs))
    return new


def _given_space(space: str | Path | Space | None) -> tuple[Space, str] | None:
    """(space, its text) when one is given (a YAML path or a Space), else None."""
    if space is None:
        return None
    if isinstance(space, Space):
        return space, space.model_dump_json()
    return load_space(space)


def _open_space(store: Store, given: tuple[Space, str] | None, directory: Path) -> Space:
    """The space to sweep (given, or the one stored in ``directory``); refuses a store swept with a
    different evaluation and records the space in the store."""
    if given is None:
        text = store.get_meta("space_yaml")
        if text is None:
            raise SpecError(f"{str(directory)!r} holds no design space; give the space YAML too")
        sp = parse_space(text, origin=str(directory / "results.duckdb"))
    else:
        sp, text = given
    stored_hash = store.get_meta("eval_hash")
    if stored_hash is not None and stored_hash != sp.eval_hash():
        raise SpecError(f"{str(directory)!r} was swept with a different workload, objectives, constraints, TCO, "
                        f"calibration or SeedChip version (hash {stored_hash} != {sp.eval_hash()}); use a new "
                        f"--out directory")
    store.set_meta("space_yaml", text)
    store.set_meta("eval_hash", sp.eval_hash())
    return sp


def _add_baseline(sp: Space, store: Store, backend) -> None:
    """Evaluate the baseline chip once per store."""
    if sp.baseline is not None and "baseline" not in store.keys():
        ctx = local_state(_context, sp.model_dump_json())      # the inline backend's own context
        b = evaluate_baseline(ctx)
        if b is not None:
            store.add([b])


def _sweep(sp: Space, store: Store, backend, method: str, n: int, seed: int, progress: bool) -> int:
    """Evaluate the sweep's points not stored yet; the number of points evaluated."""
    label = f"{sp.name} ({method})"
    if method in ("grid", "random"):
        done = store.keys()
        points = sp.grid() if method == "grid" else sp.random_points(n, seed)
        uniq = list({point_key(p): p for p in points}.values())
        todo = [p for p in uniq if point_key(p) not in done]
        prog = _Progress(store, len(uniq), len(uniq) - len(todo), progress, label)
        new = 0
        try:
            for chunk in _evaluate(backend, sp, todo):
                prog.commit(chunk)
                new += len(chunk)
        finally:
            prog.close()
        return new
    stored = [r for r in store.rows() if not r["is_baseline"]]
    prog = _Progress(store, n, len(stored), progress, label)
    try:
        return _optuna_sweep(sp, store, backend, method, n, seed, prog, stored)
    finally:
        prog.close()


def _frontier(store: Store, sp: Space) -> tuple[list[dict], list[dict], dict | None]:
    """Mark the frontier in the store; (every stored row, the frontier rows best first, the baseline row)."""
    rows = store.rows()
    objs = sp.objectives
    front = frontier(rows, objs, {o: direction(o) for o in objs})
    store.mark_frontier([r["key"] for r in front])
    rows = store.rows()
    keys = {r["key"] for r in front}
    front = [r for r in sorted(rows, key=lambda r: 0) if r["key"] in keys]
    front = frontier(front, objs, {o: direction(o) for o in objs})
    base = next((r for r in rows if r["is_baseline"]), None)
    return rows, front, base


def _resumed(store: Store, resume, search: str | None, trials: int | None, seed: int | None) -> tuple:
    """(search, trials, seed): on --resume, what the stored run used unless given again."""
    stored = json.loads(store.get_meta("run_options") or "{}") if resume is not None else {}
    search = search if search is not None else stored.get("search")
    if trials is None and search == stored.get("search") and search != "grid":
        trials = stored.get("trials")
    return search, trials, seed if seed is not None else stored.get("seed")


def _run_directory(out: str | Path | None, resume: str | Path | None) -> Path:
    directory = Path(resume) if resume is not None else (Path(out) if out is not None else None)
    if directory is None:
        raise SpecError("give --out DIR for a new sweep (or --resume DIR to continue one)")
    if resume is not None and out is not None and Path(out) != Path(resume):
        raise SpecError(f"--resume {str(resume)!r} writes into its own folder: drop --out {str(out)!r}")
    if resume is not None and not (directory / "results.duckdb").is_file():
        raise SpecError(f"--resume {str(directory)!r}: no results.duckdb there; start a sweep with --out")
    if resume is None and (directory / "results.duckdb").exists():
        raise SpecError(f"--out {str(directory)!r} already holds a sweep: continue it with --resume "
                        f"{str(directory)!r}, or give a new folder")
    check_dir(directory, "--resume" if resume is not None else "--out")
    return directory


def _run(sp: Space, store: Store, backend, method: str, n: int, sd: int, progress: bool,
         directory: Path) -> tuple[int, float]:
    """Evaluate the baseline and the sweep's points not stored yet: (points evaluated, seconds)."""
    try:
        _add_baseline(sp, store, backend)
        t_eval = time.perf_counter()
        new = _sweep(sp, store, backend, method, n, sd, progress)
        return new, time.perf_counter() - t_eval
    except BackendError as e:
        raise BackendError(f"{e}: continue the sweep with --resume {str(directory)!r}") from None


def explore(space: str | Path | Space | None = None, *, out: str | Path | None = None, search: str | None = None,
            trials: int | None = None, seed: int | None = None, workers: int = 1, resume: str | Path | None = None,
            use_ray: bool = False, address: str | None = None, plot: bool = True,
            progress: bool = False) -> ExploreResult:
    """Sweep ``space`` (a YAML path or a Space) into ``out/results.duckdb``; with ``resume=DIR``
    continue a stored sweep (its space is read from the store unless given). ``workers`` > 1: a
    local process pool; ``use_ray``: a Ray cluster (``address``, or a local one)."""
    t_start = time.perf_counter()
    given = _given_space(space)
    if given is not None:                    # refuse bad options before a folder or a store is made
        run_options(given[0], search, trials, seed, workers)
    check_options(workers, use_ray, address)
    directory = _run_directory(out, resume)
    backend = open_backend(workers, use_ray, address)     # a cluster that cannot be reached leaves no store
    try:
        store = Store(directory)
        try:
            sp = _open_space(store, given, directory)
            method, n, sd = run_options(sp, *_resumed(store, resume, search, trials, seed), workers)
            store.set_meta("run_options", json.dumps({"search": method, "trials": n, "seed": sd}, sort_keys=True))
            new, eval_s = _run(sp, store, backend, method, n, sd, progress, directory)
            rows, front, base = _frontier(store, sp)
        finally:
            store.close()
    finally:
        backend.close()
    res = ExploreResult(space=sp, method=method, rows=rows, front=front, baseline=base, num_new=new,
                        eval_s=eval_s, elapsed_s=0.0, store=str(store.path), backend=backend.name,
                        workers=backend.workers)
    if plot:
        from .report import write_plots
        res = replace(res, plots=write_plots(res.to_dict(), rows, directory))
    return replace(res, elapsed_s=time.perf_counter() - t_start)


__all__ = ["explore", "ExploreResult"]
