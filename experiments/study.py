"""What a study is, and the one path that runs and writes every study.

A study (the rate report, the comparison of gradient estimators, the variance study of
black-box smoothing) has

- settings in two sizes, `quick` and `full` (a frozen dataclass per study);
- `run(settings, progress)`, which computes and returns plain data (dataclasses and
  dictionaries) and touches no file, calling `progress.advance(label)` after each task;
- writers from what a run yields (an `Outcome`) to markdown, to a JSON document and to
  figures, and `verdicts`, what passed, by name.

`write(study, out, quick)` does the rest, the same for every study: it picks the
settings, reports progress on stderr, times the run, writes the markdown, the JSON and
the figures into `out`, prints the verdicts on stdout and says whether all passed.
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
import sys
import time
from collections.abc import Callable, Mapping
from typing import Any, Generic, TypeVar

from matplotlib.figure import Figure

from experiments import figures
from experiments.progress import Progress, progress_bar

SettingsT = TypeVar("SettingsT")
ResultT = TypeVar("ResultT")


@dataclasses.dataclass(frozen=True)
class Outcome(Generic[SettingsT, ResultT]):
    """What one run of a study yields: its settings, its result and how long it took."""

    settings: SettingsT
    result: ResultT
    seconds: float


@dataclasses.dataclass(frozen=True)
class Study(Generic[SettingsT, ResultT]):
    """A study: its settings in two sizes, how to run it, and how to write what it found.

    **Fields:**

    - `name`: what is running, as the progress lines name it (`"rate report"`).
    - `quick`, `full`: the settings of `--quick` and of a full run.
    - `num_tasks`: the number of `progress.advance` calls a run makes at these settings.
    - `run`: `(settings, progress) -> result`, plain data, no file I/O.
    - `markdown`, `document`: an `Outcome` as markdown and as a JSON-serialisable dictionary.
    - `figures`: an `Outcome` as `{file name: Figure}`, or the file's bytes where the run
      drew it already (`figures.png`).
    - `verdicts`: the result as `{name: passed}`, in the order they are printed.
    - `markdown_file`, `json_file`: the names of the files written.
    - `progress_lines`: the most progress lines written off a terminal.
    """

    name: str
    quick: SettingsT
    full: SettingsT
    num_tasks: Callable[[SettingsT], int]
    run: Callable[[SettingsT, Progress], ResultT]
    markdown: Callable[[Outcome], str]
    document: Callable[[Outcome], dict]
    figures: Callable[[Outcome], Mapping[str, Figure | bytes]]
    verdicts: Callable[[ResultT], Mapping[str, bool]]
    markdown_file: str
    json_file: str
    progress_lines: int = 8

    def settings(self, quick: bool) -> SettingsT:
        return self.quick if quick else self.full


@dataclasses.dataclass(frozen=True)
class Written:
    """What `write` did: the outcome of the run, its verdicts, and the files it wrote."""

    outcome: Outcome
    verdicts: Mapping[str, bool]
    paths: tuple[pathlib.Path, ...]

    @property
    def passed(self) -> bool:
        return all(self.verdicts.values())

    @property
    def result(self) -> Any:
        return self.outcome.result


def write(study: Study, out, quick: bool = False, settings=None) -> Written:
    """Run `study` and write its markdown, JSON and figures into `out` (created if missing).

    **Arguments:**

    - `study`: the `Study`.
    - `out`: the output directory.
    - `quick`: use `study.quick` rather than `study.full`.
    - `settings`: settings to use instead of either.

    **Returns:** a `Written`; `.passed` says whether every verdict passed.
    """
    settings = study.settings(quick) if settings is None else settings
    out = pathlib.Path(out)
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    with progress_bar(study.num_tasks(settings), study.name, max_lines=study.progress_lines) as progress:
        result = study.run(settings, progress)
    outcome = Outcome(settings, result, time.perf_counter() - start)
    paths = [out / study.markdown_file, out / study.json_file]
    paths[0].write_text(study.markdown(outcome))
    paths[1].write_text(json.dumps(study.document(outcome), indent=1))
    for name, figure in study.figures(outcome).items():
        figures.save(figure, out / name)
        paths.append(out / name)
    verdicts = dict(study.verdicts(result))
    width = max(map(len, verdicts), default=0) + 2
    for name, passed in verdicts.items():
        print(f"{name:{width}s}{'pass' if passed else 'FAIL'}")
    print(f"wrote {', '.join(path.name for path in paths)} to {out} in {outcome.seconds:.0f} s")
    sys.stdout.flush()
    return Written(outcome, verdicts, tuple(paths))
