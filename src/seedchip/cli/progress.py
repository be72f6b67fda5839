"""A progress bar for long work: Rich, on stderr, only when stderr is a terminal and the
output is not JSON (so pipes and --json stay clean). A total of 0 (or None) shows a bar that
pulses, with the count of steps done (a search whose length is not known in advance)."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager


@contextmanager
def progress_bar(what: str, enabled: bool = True) -> Iterator[Callable[[int, int, str], None] | None]:
    """Yields ``tick(done, total, label)`` (or None when off)."""
    if not (enabled and sys.stderr.isatty()):
        yield None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  TextColumn("{task.fields[label]}"), console=Console(stderr=True), transient=True) as p:
        task = p.add_task(what, total=None, label="")

        def tick(done: int, total: int, label: str) -> None:
            p.update(task, completed=done, total=total or None, label=label)
        yield tick
