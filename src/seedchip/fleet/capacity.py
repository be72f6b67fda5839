"""Capacity of each device x demand class: the highest request rate its deployment sustains
under the class's SLOs (``seedchip.capacity``), with the output tokens/s and joules per token
at that rate.

Three sources, in order: a ``capacity_override`` in the scenario (measured once, recorded);
the on-disk cache; a fresh ``seedchip.capacity`` run (then cached). The cache lives in
``$SEEDCHIP_CACHE_DIR/capacity/`` (default ``~/.cache/seedchip/capacity/``, or under
``$XDG_CACHE_HOME``); each entry is keyed by a hash of every input of the run: the deployment,
workload, SLOs, sample size and seed, the chip, model and calibration spec hashes, the package
version and a hash of the simulator's and the oracle's source files. Re-planning is instant.

A device's entry for a class may be a list of candidate deployments (parallelism, batch knobs,
disaggregation): each one's capacity is found (or read from the cache) and the one with the most
output tokens/s per chip at its SLO capacity is used; ties go to the fewest chips, then to the
order listed. Every candidate's result, and why it lost or does not work, is kept on the
Capacity (``candidates``, ``choice``). When no candidate works the pair has zero capacity.

The searches a plan still needs run on a ``seedchip.parallel`` backend (``plan --workers N`` or
``--ray``): in parallel, with the same results as one after another; this process alone writes
the cache, each record as its search comes back.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

from ..errors import SeedChipError, one_line
from ..hardware.catalog import load_chip
from ..model.zoo import load_model
from ..outputs import OutputError, write_text
from ..parallel import Inline
from ..perf.calibration import load_calibration
from ..serve.profiles import ServingDeployment
from ..perf.memory import check_fits, memory_plan
from ..serve import capacity
from ..version import __version__, code_hash
from .scenario import candidates_of


@dataclass(frozen=True)
class Capacity:
    device: str
    demand: str
    num_chips: int                     # chips of the deployment the rates belong to
    requests_per_s: float | None       # max rate meeting the SLOs (None: not known)
    tokens_per_s: float                # output tokens/s at that rate (0: cannot serve)
    energy_j_per_token: float
    source: str                        # override | cache | computed
    note: str | None = None
    key: str | None = None
    deployment: dict | None = None     # the deployment used (the chosen candidate)
    candidates: list | None = None     # a candidate search: every candidate's result (None: one deployment)
    choice: str | None = None          # why the chosen candidate won (or why none works)
    interval80: list | None = None     # 80% interval of tokens_per_s (None: the oracle's error bars apply)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["tokens_per_s_per_chip"] = self.tokens_per_s / self.num_chips if self.num_chips else 0.0
        return d


def cache_dir(override: str | Path | None = None) -> Path:
    if override is not None:
        return Path(override)
    root = os.environ.get("SEEDCHIP_CACHE_DIR")
    if root:
        return Path(root) / "capacity"
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg) if xdg else Path.home() / ".cache"
    return base / "seedchip" / "capacity"


def capacity_kwargs(scenario, device: str, demand: str, dep=None) -> dict:
    """The keyword arguments of the ``seedchip.capacity`` call for one pair (``dep``: one of its
    candidate deployments; default: the first, or the only one)."""
    dev = scenario.devices[device]
    if dep is None:
        dep = candidates_of(dev.deployments[demand])[0]
    dc = scenario.demand[demand]
    kw = {"chip": dev.chip, "model": dc.model, **dep.serve_kwargs(), "calibration": scenario.calibration,
          "workload": dc.workload, "input_len": dc.input_len, "output_len": dc.output_len,
          "slo_ttft_p99": dc.slo.ttft_p99, "slo_tpot_p99": dc.slo.tpot_p99, "num_requests": dc.num_requests,
          "max_requests": dc.max_requests, "engine": dc.engine, "seed": dc.seed}
    return kw


def fit_error(kw: dict) -> str | None:
    """Why a deployment cannot hold the model (None: it fits, or is checked by the run itself),
    found without a simulation."""
    if kw.get("disaggregate"):
        return None
    try:
        spec = ServingDeployment(**{k: kw[k] for k in ServingDeployment.model_fields if k in kw})
        arch, d = spec.build(load_chip(kw["chip"]), load_model(kw["model"]), kw["engine"], kw["calibration"])
        check_fits(arch, d, memory_plan(arch, d), 16)    # weights, activations and one KV block
    except SeedChipError as e:
        return one_line(e)
    return None


def capacity_key(kw: dict) -> str:
    blob = {"kwargs": kw, "chip": load_chip(kw["chip"]).spec_hash(), "model": load_model(kw["model"]).spec_hash(),
            "calibration": load_calibration(kw["calibration"]).spec_hash(), "version": __version__,
            "code": code_hash()}
    text = json.dumps(blob, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def compute_capacity(kw: dict) -> dict:
    """One ``seedchip.capacity`` run as a cache record (a deployment that meets no SLO: zero)."""
    try:
        r = capacity(**kw, interval=False).to_dict()
    except SeedChipError as e:
        return {"requests_per_s": 0.0, "tokens_per_s": 0.0, "energy_j_per_token": 0.0, "note": one_line(e)}
    return {"requests_per_s": float(r["max_qps"]), "tokens_per_s": float(r["throughput_tokens_per_s"]),
            "energy_j_per_token": float(r["metrics"]["energy_j_per_token"] or 0.0),
            "note": None if r["converged"] else _unconverged(r["convergence"]),
            "calibration": r["inputs"].get("calibration")}


def _unconverged(history: list[dict]) -> str:
    if len(history) < 2:
        return f"one run length only ({history[-1]['num_requests']:,} requests): raise max_requests"
    a, b = history[-2], history[-1]
    if b.get("settled") is False:
        return (f"not converged: at {b['num_requests']:,} requests the steady window still held the fill-up "
                "(requests that long need a longer run; raise max_requests)")
    err = b.get("sampling_error_fraction")
    sampled = f", sampling error +-{err * 100:.1f}%" if err else ""
    return (f"not converged: {a['num_requests']:,} -> {b['num_requests']:,} requests moved it "
            f"{(b['max_qps'] / a['max_qps'] - 1) * 100:+.1f}%{sampled} (raise max_requests)")


def _read(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _write(path: Path, rec: dict) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_text(path, json.dumps(rec, indent=1, sort_keys=True), "--cache-dir")
    except (OSError, OutputError):
        pass  # a read-only cache only costs a recomputation next time


def _prepare(scenario, dname: str, cls: str, dep, folder: Path, recompute: bool, check_fit: bool) -> dict:
    """One candidate before any simulation: its result when known without one (a deployment that
    does not fit), else its run's arguments, key, cache file and record (None: to compute;
    ``recompute``: always)."""
    kw = capacity_kwargs(scenario, dname, cls, dep)
    why = fit_error(kw) if check_fit else None
    if why is not None:
        return {"num_chips": dep.num_chips, "requests_per_s": 0.0, "tokens_per_s": 0.0, "energy_j_per_token": 0.0,
                "source": "fit-check", "note": f"does not fit: {why}", "key": None, "ok": False}
    key = capacity_key(kw)
    path = folder / f"{key}.json"
    rec = None if recompute else _read(path)
    return {"kw": kw, "key": key, "path": path, "rec": rec, "source": "cache" if rec is not None else "computed",
            "label": f"capacity {dname} x {cls} ({kw['model']} on {kw['num_chips']} x {kw['chip']}) ..."}


def _capacity_task(_state, kw: dict) -> dict:
    """A worker's capacity search (``seedchip.parallel``)."""
    return compute_capacity(kw)


def _compute(jobs: list[dict], recompute: bool, backend, progress) -> None:
    """Run the searches the jobs still need, each key once, on ``backend`` (in parallel when it
    has workers); this process writes each record to the cache as it arrives."""
    first: dict[str, dict] = {}
    for j in jobs:
        if "kw" not in j or j["rec"] is not None:
            continue
        if j["key"] in first:                # the same run twice: the second reads what the first wrote
            j["source"] = "computed" if recompute else "cache"
        else:
            first[j["key"]] = j
    todo = list(first.values())

    def starting(i: int) -> None:
        if progress:
            progress(todo[i]["label"])
    for i, rec in backend.map(_capacity_task, [j["kw"] for j in todo], before=starting):
        rec["inputs"] = todo[i]["kw"]
        _write(todo[i]["path"], rec)
        todo[i]["rec"] = rec
    for j in jobs:
        if "kw" in j and j["rec"] is None:
            j["rec"] = first[j["key"]]["rec"]


def _result(job: dict) -> dict:
    """A candidate's capacity: {num_chips, requests_per_s, tokens_per_s, energy_j_per_token,
    source, note, key, ok}."""
    if "kw" not in job:
        return job
    rec, kw = job["rec"], job["kw"]
    ok = rec["tokens_per_s"] > 0
    note = rec.get("note")
    if not ok and not note:
        note = "meets no SLO at any rate"
    return {"num_chips": kw["num_chips"], "requests_per_s": rec["requests_per_s"], "tokens_per_s": rec["tokens_per_s"],
            "energy_j_per_token": rec["energy_j_per_token"], "source": job["source"], "note": note, "key": job["key"],
            "ok": ok}


def choose(results: list[dict]) -> tuple[int | None, str]:
    """The index of the best candidate (most output tokens/s per chip; ties: fewest chips, then
    listed order) and why; None when none works."""
    ok = [i for i, r in enumerate(results) if r["ok"]]
    if not ok:
        return None, "no candidate works: " + "; ".join(f"#{i}: {r['note']}" for i, r in enumerate(results))

    def per_chip(i):      # to 9 significant digits, so that equal rates tie whatever the float noise
        return float(f"{results[i]['tokens_per_s'] / results[i]['num_chips']:.9g}")
    best = min(ok, key=lambda i: (-per_chip(i), results[i]["num_chips"], i))
    others = [i for i in ok if i != best]
    why = f"#{best}: {per_chip(best):.4g} output tokens/s per chip"
    if others:
        ru = min(others, key=lambda i: (-per_chip(i), results[i]["num_chips"], i))
        tie = per_chip(ru) == per_chip(best)
        if not tie:
            why += f", best of {len(ok)} that work (next: #{ru}, {per_chip(ru):.4g})"
        elif results[ru]["num_chips"] != results[best]["num_chips"]:
            why += f", tied with #{ru} (chosen for fewer chips)"
        else:
            why += f", tied with #{ru} (chosen for being listed first)"
    else:
        why += ", the only candidate that works"
    bad = len(results) - len(ok)
    if bad:
        why += f"; {bad} do{'es' if bad == 1 else ''} not work"
    return best, why


def _searched(dname: str, cls: str, entry: list, results: list[dict]) -> Capacity:
    """The pair's Capacity from its candidates' results: the best one, every one kept."""
    best, why = choose(results)
    cands = []
    for i, (dep, r) in enumerate(zip(entry, results)):
        cands.append({"index": i, "deployment": dep.model_dump(exclude_none=True), "label": dep.label(),
                      "num_chips": r["num_chips"], "requests_per_s": r["requests_per_s"],
                      "tokens_per_s": r["tokens_per_s"],
                      "tokens_per_s_per_chip": r["tokens_per_s"] / r["num_chips"],
                      "energy_j_per_token": r["energy_j_per_token"], "source": r["source"],
                      "key": r["key"], "works": r["ok"], "chosen": i == best,
                      "reason": r["note"] if not r["ok"] else None})
    if best is None:
        srcs = {r["source"] for r in results}
        src = next((x for x in ("computed", "cache") if x in srcs), "fit-check")
        return Capacity(dname, cls, min(r["num_chips"] for r in results), 0.0, 0.0, 0.0, src, why, None,
                        deployment=None, candidates=cands, choice=why)
    r = results[best]
    return Capacity(dname, cls, r["num_chips"], r["requests_per_s"], r["tokens_per_s"], r["energy_j_per_token"],
                    r["source"], r["note"], r["key"], deployment=cands[best]["deployment"], candidates=cands,
                    choice=why)


def resolve_capacities(scenario, *, recompute: bool = False, cache: str | Path | None = None,
                       progress: Callable[[str], None] | None = None,
                       backend=None, resume: bool = False) -> dict[tuple[str, str], Capacity]:
    """Capacity of every (device, demand class) pair that has a deployment or an override.

    A list of candidate deployments is searched: the one with the most output tokens/s per chip
    wins (see ``choose``); every candidate's result is kept on the Capacity.
    recompute: ignore the scenario's overrides and the cache; run ``seedchip.capacity`` again
    for every pair with a deployment (and refresh the cache). resume (with recompute): keep
    the records the cache already holds for these searches (its key covers all the code and
    data that change a capacity, so they are what the searches would give) and run the
    others: an interrupted recompute continues where it stopped.
    backend: a ``seedchip.parallel`` backend that runs the searches (default: one after another
    in this process); the results are the same on any backend."""
    out: dict[tuple[str, str], Capacity | list] = {}
    overrides = {(o.device, o.demand): o for o in scenario.capacity_override}
    folder = cache_dir(cache)
    jobs: list[dict] = []
    for dname, dev in scenario.devices.items():
        for cls in scenario.demand:
            o = overrides.get((dname, cls))
            has_dep = cls in dev.deployments
            if o is not None and not (recompute and has_dep):
                n = o.num_chips or candidates_of(dev.deployments[cls])[0].num_chips
                out[(dname, cls)] = Capacity(dname, cls, n, o.requests_per_s, o.tokens_per_s, o.energy_j_per_token,
                                             "override", o.note, interval80=o.interval80)
            elif has_dep:
                entry = dev.deployments[cls]
                search = isinstance(entry, list)
                out[(dname, cls)] = [_prepare(scenario, dname, cls, dep, folder, recompute and not resume,
                                              check_fit=search)
                                     for dep in (entry if search else [entry])]
                jobs += out[(dname, cls)]
    _compute(jobs, recompute, backend if backend is not None else Inline(), progress)
    for (dname, cls), v in out.items():
        if isinstance(v, list):
            entry = scenario.devices[dname].deployments[cls]
            results = [_result(j) for j in v]
            if isinstance(entry, list):
                out[(dname, cls)] = _searched(dname, cls, entry, results)
            else:
                r = results[0]
                out[(dname, cls)] = Capacity(dname, cls, r["num_chips"], r["requests_per_s"], r["tokens_per_s"],
                                             r["energy_j_per_token"], r["source"], r["note"], r["key"],
                                             deployment=entry.model_dump(exclude_none=True))
    return out


def override_yaml(caps: list[Capacity], command: str | None = None) -> str:
    """A ``capacity_override:`` block to paste into a scenario (what --recompute-capacity found)."""
    lines = ["# Capacities from seedchip.capacity" + (f", produced by: {command}" if command else ""),
             "capacity_override:"]
    for c in caps:
        rq = "null" if c.requests_per_s is None else f"{c.requests_per_s:.6g}"
        lines.append(f"  - {{device: {c.device}, demand: {c.demand}, num_chips: {c.num_chips}, requests_per_s: {rq}, "
                     f"tokens_per_s: {c.tokens_per_s:.6g}, energy_j_per_token: {c.energy_j_per_token:.6g}}}"
                     + (f"   # {c.note}" if c.note else (f"   # {c.choice}" if c.choice else "")))
    return "\n".join(lines) + "\n"
