"""Progress of a long run: a `tqdm` bar on a terminal, a few whole lines anywhere else.

The reports run a fixed list of tasks (regimes, estimators, noise strategies) of seconds
to minutes each. On a terminal a bar redrawn in place reads best. In a log file, a CI job
or a notebook, redrawing relies on carriage returns, which either pile every update into
one unreadable line or become one line each; there, each update is a whole line, and the
lines are thinned to at most `max_lines`.
"""

from __future__ import annotations

import contextlib
import io
import sys
import time
from collections.abc import Iterator
from typing import Protocol, runtime_checkable

from tqdm import tqdm


@runtime_checkable
class Progress(Protocol):
    """What a long run reports to: `advance(label)` after each finished task."""

    def advance(self, label: str) -> None: ...


class _Silent:
    def advance(self, label: str) -> None:
        pass


# For a study run from code (a notebook, a test) that wants no progress lines.
SILENT: Progress = _Silent()


@contextlib.contextmanager
def progress_bar(total: int, description: str, *, stream: io.TextIOBase | None = None,
                 max_lines: int = 8) -> Iterator[Progress]:
    """Report `total` tasks on `stream`, as a bar on a terminal and as lines elsewhere.

    **Arguments:**

    - `total`: the number of tasks, ≥ 1.
    - `description`: what is running, e.g. `"rate report"`.
    - `stream`: where to write; `sys.stderr` (at the time of the call) by default.
    - `max_lines`: the most lines written when `stream` is not a terminal.

    **Returns:** a context manager yielding a `Progress`; call its `advance(label)` after
    each task, `label` naming the task just finished.
    """
    if total < 1:
        raise ValueError(f"total must be an integer >= 1, got {total}")
    if max_lines < 1:
        raise ValueError(f"max_lines must be an integer >= 1, got {max_lines}")
    stream = sys.stderr if stream is None else stream
    if _is_terminal(stream):
        with tqdm(total=total, desc=description, file=stream, unit="task", dynamic_ncols=True) as bar:
            yield _Bar(bar)
    else:
        yield _Lines(total, description, stream, max_lines)


def _is_terminal(stream) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no `isatty`, or a closed stream
        return False


class _Bar:
    def __init__(self, bar: tqdm):
        self._bar = bar

    def advance(self, label: str) -> None:
        self._bar.set_postfix_str(label, refresh=False)
        self._bar.update()


class _Lines:
    """One line per `total/max_lines` tasks, and one for the last: `description done/total
    [elapsed] label`, with the elapsed time as `tqdm` formats it."""

    def __init__(self, total: int, description: str, stream: io.TextIOBase, max_lines: int):
        self._total, self._description, self._stream = total, description, stream
        self._lines = min(max_lines, total)
        self._done = 0
        self._start = time.perf_counter()

    def advance(self, label: str) -> None:
        self._done += 1
        # Line n is written at the first task whose count reaches n/lines of the total.
        if self._done * self._lines // self._total == (self._done - 1) * self._lines // self._total:
            return
        elapsed = tqdm.format_interval(time.perf_counter() - self._start)
        self._stream.write(f"{self._description} {self._done}/{self._total} [{elapsed}] {label}\n")
        self._stream.flush()
