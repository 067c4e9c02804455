"""The shared shape of the studies: `experiments.study.write` on a toy study, and the
three studies of the command line built on it."""

import dataclasses
import json

import pytest

from experiments import dsgd, report, smoothing, study
from experiments.figures import new_figure


@dataclasses.dataclass(frozen=True)
class Toy:
    values: tuple[float, ...]


def _run(settings: Toy, progress) -> dict:
    squares = {}
    for value in settings.values:
        squares[f"{value:g}"] = value**2
        progress.advance(f"{value:g}")
    return squares


def _figure(outcome):
    figure = new_figure(2.0, 2.0)
    figure.subplots().plot(list(outcome.result.values()))
    return {"toy.png": figure}


TOY = study.Study(
    name="toy", quick=Toy((1.0, 2.0)), full=Toy((1.0, 2.0, 3.0)), num_tasks=lambda s: len(s.values), run=_run,
    markdown=lambda outcome: f"# toy\n\n{len(outcome.result)} squares in {outcome.seconds:.0f} s\n",
    document=lambda outcome: {"settings": dataclasses.asdict(outcome.settings), "squares": outcome.result},
    figures=_figure, verdicts=lambda result: {name: square < 5 for name, square in result.items()},
    markdown_file="toy.md", json_file="toy.json",
)


def test_write_runs_the_chosen_settings_and_writes_every_file(tmp_path, capsys):
    written = study.write(TOY, tmp_path / "quick", quick=True)
    assert written.passed and written.result == {"1": 1.0, "2": 4.0}
    assert [path.name for path in written.paths] == ["toy.md", "toy.json", "toy.png"]
    assert all(path.stat().st_size > 0 for path in written.paths)
    assert json.loads((tmp_path / "quick" / "toy.json").read_text())["settings"] == {"values": [1.0, 2.0]}
    captured = capsys.readouterr()
    assert [line.split() for line in captured.out.splitlines()[:2]] == [["1", "pass"], ["2", "pass"]]
    assert [line.split(" [")[0] for line in captured.err.splitlines()] == ["toy 1/2", "toy 2/2"]


def test_write_reports_a_failed_verdict(tmp_path, capsys):
    written = study.write(TOY, tmp_path, quick=False)
    assert not written.passed and written.verdicts == {"1": True, "2": True, "3": False}
    assert "3  FAIL" in capsys.readouterr().out
    assert study.write(TOY, tmp_path, settings=Toy((0.5,))).passed


@pytest.mark.parametrize("module", [report, dsgd, smoothing], ids=lambda m: m.__name__)
def test_each_study_has_a_quick_and_a_full_size_and_one_write(module):
    chosen = module.STUDY
    assert chosen.settings(True) is module.QUICK and chosen.settings(False) is module.FULL
    assert type(module.QUICK) is type(module.FULL) and dataclasses.is_dataclass(module.QUICK)
    assert module.QUICK.__dataclass_params__.frozen
    assert chosen.markdown_file.endswith(".md") and chosen.json_file.endswith(".json")
    assert module.write.__doc__ and "study.write" in module.write.__doc__
