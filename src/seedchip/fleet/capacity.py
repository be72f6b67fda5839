"""Capacity of each device x demand class: the highest request rate its deployment sustains
under the class's SLOs (``seedchip.capacity``), with the output tokens/s and joules per token
at that rate.

Three sources, in order: a ``capacity_override`` in the scenario (measured once, recorded);
the on-disk cache; a fresh ``seedchip.capacity`` run (then cached). The cache lives in
``$SEEDCHIP_CACHE_DIR/capacity/`` (default ``~/.cache/seedchip/capacity/``, or under
``$XDG_CACHE_HOME``); each entry is keyed by a hash of every input of the run: the deployment,
workload, SLOs, sample size and seed, the chip, model and calibration spec hashes, the package
version and a hash of the simulator's and the oracle's source files. Re-planning is instant.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path
from typing import Callable

from ..errors import SeedChipError, one_line


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


@lru_cache(maxsize=1)
def code_hash() -> str:
    """A hash of the simulator's and the oracle's source (a change there invalidates the cache)."""
    pkg = Path(__file__).resolve().parent.parent
    h = hashlib.sha256()
    for sub in ("serve", "perf", "model"):
        for f in sorted((pkg / sub).rglob("*")):
            if f.is_file() and f.suffix in (".py", ".yaml", ".json"):
                h.update(str(f.relative_to(pkg)).encode())
                h.update(f.read_bytes())
    return h.hexdigest()[:16]


def capacity_kwargs(scenario, device: str, demand: str) -> dict:
    """The keyword arguments of the ``seedchip.capacity`` call for one pair."""
    dev = scenario.devices[device]
    dep = dev.deployments[demand]
    dc = scenario.demand[demand]
    return {"chip": dev.chip, "model": dc.model, "num_chips": dep.num_chips, "tp": dep.tp, "pp": dep.pp,
            "ep": dep.ep, "weight_format": dep.weight_format, "act_format": dep.act_format,
            "kv_format": dep.kv_format, "calibration": scenario.calibration, "max_num_seqs": dep.max_num_seqs,
            "max_batched_tokens": dep.max_batched_tokens, "prefix_caching": dep.prefix_caching,
            "workload": dc.workload, "input_len": dc.input_len, "output_len": dc.output_len,
            "slo_ttft_p99": dc.slo.ttft_p99, "slo_tpot_p99": dc.slo.tpot_p99, "num_requests": dc.num_requests,
            "seed": dc.seed}


def capacity_key(kw: dict) -> str:
    from .. import __version__
    from ..hardware.catalog import load_chip
    from ..model.zoo import load_model
    from ..perf.calibration import load_calibration
    blob = {"kwargs": kw, "chip": load_chip(kw["chip"]).spec_hash(), "model": load_model(kw["model"]).spec_hash(),
            "calibration": load_calibration(kw["calibration"]).spec_hash(), "version": __version__,
            "code": code_hash()}
    text = json.dumps(blob, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def compute_capacity(kw: dict) -> dict:
    """One ``seedchip.capacity`` run as a cache record (a deployment that meets no SLO: zero)."""
    from ..serve import capacity
    try:
        r = capacity(**kw).to_dict()
    except SeedChipError as e:
        return {"requests_per_s": 0.0, "tokens_per_s": 0.0, "energy_j_per_token": 0.0, "note": one_line(e)}
    return {"requests_per_s": r["max_qps"], "tokens_per_s": r["throughput_tokens_per_s"],
            "energy_j_per_token": r["metrics"]["energy_j_per_token"] or 0.0, "note": None,
            "calibration": r["inputs"].get("calibration")}


def _read(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _write(path: Path, rec: dict) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        with os.fdopen(fd, "w") as f:
            json.dump(rec, f, indent=1, sort_keys=True)
        os.replace(tmp, path)
    except OSError:
        pass  # a read-only cache only costs a recomputation next time


def resolve_capacities(scenario, *, recompute: bool = False, cache: str | Path | None = None,
                       progress: Callable[[str], None] | None = None) -> dict[tuple[str, str], Capacity]:
    """Capacity of every (device, demand class) pair that has a deployment or an override.

    recompute: ignore the scenario's overrides and the cache; run ``seedchip.capacity`` again
    for every pair with a deployment (and refresh the cache)."""
    out: dict[tuple[str, str], Capacity] = {}
    overrides = {(o.device, o.demand): o for o in scenario.capacity_override}
    folder = cache_dir(cache)
    for dname, dev in scenario.devices.items():
        for cls in scenario.demand:
            o = overrides.get((dname, cls))
            has_dep = cls in dev.deployments
            if o is not None and not (recompute and has_dep):
                n = o.num_chips or dev.deployments[cls].num_chips
                out[(dname, cls)] = Capacity(dname, cls, n, o.requests_per_s, o.tokens_per_s, o.energy_j_per_token,
                                             "override", o.note)
                continue
            if not has_dep:
                continue
            kw = capacity_kwargs(scenario, dname, cls)
            key = capacity_key(kw)
            path = folder / f"{key}.json"
            rec = None if recompute else _read(path)
            source = "cache"
            if rec is None:
                if progress:
                    progress(f"capacity {dname} x {cls} ({kw['model']} on {kw['num_chips']} x {kw['chip']}) ...")
                rec = compute_capacity(kw)
                rec["inputs"] = kw
                _write(path, rec)
                source = "computed"
            out[(dname, cls)] = Capacity(dname, cls, kw["num_chips"], rec["requests_per_s"], rec["tokens_per_s"],
                                         rec["energy_j_per_token"], source, rec.get("note"), key)
    return out


def override_yaml(caps: list[Capacity], command: str | None = None) -> str:
    """A ``capacity_override:`` block to paste into a scenario (what --recompute-capacity found)."""
    lines = ["# Capacities from seedchip.capacity" + (f", produced by: {command}" if command else ""),
             "capacity_override:"]
    for c in caps:
        rq = "null" if c.requests_per_s is None else f"{c.requests_per_s:.6g}"
        lines.append(f"  - {{device: {c.device}, demand: {c.demand}, num_chips: {c.num_chips}, requests_per_s: {rq}, "
                     f"tokens_per_s: {c.tokens_per_s:.6g}, energy_j_per_token: {c.energy_j_per_token:.6g}}}"
                     + (f"   # {c.note}" if c.note else ""))
    return "\n".join(lines) + "\n"
