"""Where results go: every output path is checked before the work starts (so a long run
never ends in an unwritable place and loses its result), and files are written
atomically (a temporary file beside the target, then a rename), so a failed or
interrupted write never leaves half a file."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from .errors import SpecError


class OutputError(SpecError):
    """An output path that cannot be written."""


def _writable_dir(d: Path, option: str, target: Path) -> None:
    if not d.exists():
        raise OutputError(f"{option} {str(target)!r}: the folder {str(d)!r} does not exist; create it or "
                          f"choose another path")
    if not d.is_dir():
        raise OutputError(f"{option} {str(target)!r}: {str(d)!r} is a file, not a folder")
    if not os.access(d, os.W_OK | os.X_OK):
        raise OutputError(f"{option} {str(target)!r}: the folder {str(d)!r} is not writable; choose another path")


def check_file(path: str | os.PathLike, option: str = "--out") -> Path:
    """``path`` as a file this process can create or replace (raises :class:`OutputError`)."""
    p = Path(path)
    if str(path) == "" or p.name in ("", ".", ".."):
        raise OutputError(f"{option} {str(path)!r}: give a file name")
    if p.is_dir():
        raise OutputError(f"{option} {str(p)!r} is a folder; give a file name inside it")
    if p.exists() and not os.access(p, os.W_OK):
        raise OutputError(f"{option} {str(p)!r} is not writable; choose another path")
    _writable_dir(p.parent if str(p.parent) else Path("."), option, p)
    return p


def check_dir(path: str | os.PathLike, option: str = "--out") -> Path:
    """``path`` as a folder this process can write into: created now (with its parents) if
    missing, and probed with a temporary file (``os.access`` cannot see ``/proc`` or a
    read-only mount)."""
    p = Path(path)
    if str(path) == "":
        raise OutputError(f"{option} '': give a folder")
    if p.exists() and not p.is_dir():
        raise OutputError(f"{option} {str(p)!r} is a file; give a folder")
    try:
        p.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=p, prefix=".seedchip-", suffix=".probe")
        os.close(fd)
        os.unlink(tmp)
    except OSError as e:
        raise OutputError(f"{option} {str(p)!r}: cannot write there ({e.strerror or e}); choose another folder") from None
    return p


def _mode(p: Path) -> int:
    """The replaced file's permissions, or what the umask gives a new file."""
    try:
        return p.stat().st_mode & 0o777
    except OSError:
        mask = os.umask(0)
        os.umask(mask)
        return 0o666 & ~mask


def write_text(path: str | os.PathLike, text: str, option: str = "--out") -> Path:
    """Write ``text`` to ``path`` atomically; an OS failure becomes an :class:`OutputError`."""
    p = check_file(path, option)
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(dir=p.parent, prefix=f".{p.name}.", suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.chmod(tmp, _mode(p))               # mkstemp makes 0600; a written result reads as any file
        os.replace(tmp, p)
    except OSError as e:
        raise OutputError(f"{option} {str(p)!r}: could not write ({e.strerror or e}); choose another path") from None
    finally:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)
    return p


def probe(path: str | os.PathLike, option: str = "--out") -> Path:
    """Check that a file can be written at ``path`` by creating (and removing) a
    temporary file beside it: catches the places ``os.access`` cannot see (``/proc``,
    read-only mounts) before any work is done."""
    p = check_file(path, option)
    try:
        fd, tmp = tempfile.mkstemp(dir=p.parent, prefix=f".{p.name}.", suffix=".probe")
        os.close(fd)
        os.unlink(tmp)
    except OSError as e:
        raise OutputError(f"{option} {str(p)!r}: cannot write there ({e.strerror or e}); choose another path") from None
    return p


def read_text(path: str | os.PathLike, what: str) -> str:
    """A text input file, with one-line errors for a folder, a missing file or binary content."""
    p = Path(path)
    if p.is_dir():
        raise SpecError(f"{what} {str(p)!r} is a folder; give a file")
    if not p.is_file():
        raise SpecError(f"{what} {str(p)!r} does not exist")
    try:
        return p.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise SpecError(f"{what} {str(p)!r} is not a text file (byte {e.start} is not UTF-8); give a YAML, "
                        f"JSON or CSV file") from None
    except OSError as e:
        raise SpecError(f"{what} {str(p)!r}: cannot read it ({e.strerror or e})") from None


__all__ = ["OutputError", "check_file", "check_dir", "probe", "write_text", "read_text"]
