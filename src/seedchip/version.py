"""The package version and a hash of its code and data (one place; the root package,
provenance and every cache key or store hash read them)."""

import hashlib
from functools import lru_cache
from pathlib import Path

__version__ = "0.1.0"


@lru_cache(maxsize=1)
def code_hash() -> str:
    """A hash of the whole package's source and data (code, catalogs, calibrations, engine
    profiles, workloads): any change that could move a result changes it."""
    pkg = Path(__file__).resolve().parent
    h = hashlib.sha256(__version__.encode())
    for f in sorted(pkg.rglob("*")):
        if f.is_file() and f.suffix in (".py", ".yaml", ".json", ".md") and "__pycache__" not in f.parts:
            h.update(str(f.relative_to(pkg)).encode())
            h.update(f.read_bytes())
    return h.hexdigest()[:16]
