"""The sweep's store: ``DIR/results.duckdb``, one row per evaluated point, feasible or not.

Rows are committed as results arrive (one INSERT statement per result batch, atomic on its
own; no primary-key index, which would cost ~3 ms a row: a key stored twice keeps its latest
row), so a sweep killed at any moment loses only the points
in flight; ``--resume DIR`` reads the stored keys and skips them. The ``meta`` table keeps the
space's YAML and its evaluation hash: resuming with a different workload, objective or TCO
is refused rather than mixing incomparable rows.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import SpecError

SCHEMA = """
CREATE TABLE IF NOT EXISTS points (
    key VARCHAR NOT NULL,
    params VARCHAR NOT NULL,
    feasible BOOLEAN NOT NULL,
    reason VARCHAR,
    objectives VARCHAR,
    metrics VARCHAR,
    die_area_mm2 DOUBLE,
    unit_cost_usd DOUBLE,
    tdp_w DOUBLE,
    eval_s DOUBLE,
    is_baseline BOOLEAN NOT NULL,
    on_frontier BOOLEAN DEFAULT FALSE,
    seq BIGINT
);
CREATE TABLE IF NOT EXISTS meta (name VARCHAR PRIMARY KEY, value VARCHAR);
"""


def _duckdb():
    try:
        import duckdb
    except ImportError:  # pragma: no cover - the explore extra installs it
        raise SpecError("explore needs DuckDB: pip install 'seedchip[explore]' (or duckdb)") from None
    return duckdb


class Store:
    def __init__(self, directory: str | Path):
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.path = self.dir / "results.duckdb"
        self.con = _duckdb().connect(str(self.path))
        self.con.execute(SCHEMA)
        self._seq = self.con.execute("SELECT coalesce(max(seq), 0) FROM points").fetchone()[0]

    @classmethod
    def read_only(cls, directory: str | Path) -> "Store":
        """A stored sweep opened for reading only (a report reads it; nothing is written)."""
        self = cls.__new__(cls)
        self.dir = Path(directory)
        self.path = self.dir / "results.duckdb"
        duckdb = _duckdb()
        try:
            self.con = duckdb.connect(str(self.path), read_only=True)
            self.con.execute("SELECT count(*) FROM points").fetchone()
        except duckdb.Error as e:
            raise SpecError(f"{str(self.path)!r} cannot be read as a sweep store ({str(e).splitlines()[0][:160]}); "
                            f"give a folder written by seedchip explore, and wait for a running sweep to end") from None
        self._seq = 0
        return self

    # ---- meta --------------------------------------------------------------------------
    def get_meta(self, name: str) -> str | None:
        r = self.con.execute("SELECT value FROM meta WHERE name = ?", [name]).fetchone()
        return r[0] if r else None

    def set_meta(self, name: str, value: str) -> None:
        self.con.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", [name, value])

    # ---- rows --------------------------------------------------------------------------
    def keys(self) -> set[str]:
        return {r[0] for r in self.con.execute("SELECT DISTINCT key FROM points").fetchall()}

    def add(self, rows: list[dict]) -> None:
        """Insert rows in one statement (one committed transaction)."""
        if not rows:
            return
        flat = []
        for r in rows:
            self._seq += 1
            m = r.get("metrics") or {}
            flat += [r["key"], json.dumps(r["params"], sort_keys=True), bool(r["feasible"]), r.get("reason"),
                     json.dumps(r["objectives"]) if r.get("objectives") is not None else None,
                     json.dumps(m, sort_keys=True), m.get("die_area_mm2"), m.get("unit_cost_usd"), m.get("tdp_w"),
                     r.get("eval_s"), bool(r.get("is_baseline")), self._seq]
        marks = ",".join(["(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"] * len(rows))
        self.con.execute("INSERT INTO points (key, params, feasible, reason, objectives, metrics, die_area_mm2, "
                         "unit_cost_usd, tdp_w, eval_s, is_baseline, seq) VALUES " + marks, flat)

    def rows(self) -> list[dict]:
        cur = self.con.execute("SELECT key, params, feasible, reason, objectives, metrics, eval_s, is_baseline, "
                               "on_frontier FROM points QUALIFY row_number() OVER (PARTITION BY key ORDER BY seq DESC) = 1 "
                               "ORDER BY seq")
        out = []
        for key, params, feas, reason, objs, metrics, eval_s, base, front in cur.fetchall():
            out.append({"key": key, "params": json.loads(params), "feasible": feas, "reason": reason,
                         "objectives": json.loads(objs) if objs else None, "metrics": json.loads(metrics or "{}"),
                         "eval_s": eval_s, "is_baseline": base, "on_frontier": front})
        return out

    def mark_frontier(self, keys: list[str]) -> None:
        self.con.execute("BEGIN TRANSACTION")
        self.con.execute("UPDATE points SET on_frontier = FALSE WHERE on_frontier")
        if keys:
            self.con.execute("UPDATE points SET on_frontier = TRUE WHERE key IN (SELECT unnest(?))", [list(keys)])
        self.con.execute("COMMIT")

    def close(self) -> None:
        self.con.close()


__all__ = ["Store"]
