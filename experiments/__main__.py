"""The command line of the studies, as `python -m experiments` or `python -m rates`:

- `report --out DIR [--quick]`: the rate report;
- `dsgd --out DIR [--quick] [--models NAME …]`: the comparison of gradient estimators;
- `smoothing --out DIR [--quick]`: the variance study of black-box smoothing;
- `phase --out DIR [--quick]`: the exact rates of decreasing steps against aμ (the phase diagram);
- `hypergradients --out DIR [--quick]`: every hypergradient method against the exact hypergradient.

Each runs through `experiments.study.write`; the exit status is 0 when every verdict
passed, 1 otherwise. Compiled programs are kept in JAX's persistent compilation cache
(`--cache DIR`, default `CACHE`; `--no-cache` for none), so that a second run skips the
compilations of the first.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os
import pathlib
import sys

import jax

from experiments import dsgd, hypergradients, phase, report, smoothing, study

STUDIES = {"report": report.STUDY, "dsgd": dsgd.STUDY, "smoothing": smoothing.STUDY, "phase": phase.STUDY,
           "hypergradients": hypergradients.STUDY}
HELP = {
    "report": ("run every regime and write report.md, results.json and figures",
               "fewer seeds and steps (about a minute)"),
    "dsgd": ("compare gradient estimators on the six non-differentiable models and write dsgd.md, dsgd.json "
             "and figures", "fewer steps, samples and η values (minutes)"),
    "smoothing": ("variance of the black-box smoothing estimators on sorting and shortest paths; writes "
                  "smoothing.md, smoothing.json and a heatmap",
                  "two tasks, two noises, fewer repetitions and a smaller reference (1–2 minutes)"),
    "phase": ("exact error curves of decreasing steps a/(k + k0) for aμ from 1/4 to 4 on least squares and ridge, "
              "their fitted rates against the derived ones; writes phase.md, phase.json and phase_diagram.png",
              "10⁶ steps instead of 10⁷ (under a minute)"),
    "hypergradients": ("every hypergradient method against the exact hypergradient on three bilevel families: "
                       "bounds, fitted rates and their power; writes hypergradients.md, hypergradients.json and "
                       "hypergradients.png", "smaller problems, fewer steps and seeds (under a minute)"),
}


# Where compiled programs are kept between runs: JAX keys each entry by the program, the
# JAX version, the backend and its flags, so one directory serves every version.
CACHE = pathlib.Path(os.environ.get("XDG_CACHE_HOME", pathlib.Path.home() / ".cache")) / "sgd-derivative-rates" / "jax"


def _prog() -> str:
    """`python -m rates` or `python -m experiments`, whichever was run."""
    launched = pathlib.Path(sys.argv[0])
    package = launched.parent.name if launched.name == "__main__.py" else "experiments"
    return f"python -m {package}"


def parser(prog: str | None = None) -> argparse.ArgumentParser:
    result = argparse.ArgumentParser(prog=prog or _prog(), description="Rate checks for SGD and its derivatives.")
    commands = result.add_subparsers(dest="command", required=True)
    for name, (summary, quick) in HELP.items():
        command = commands.add_parser(name, help=summary)
        command.add_argument("--out", type=pathlib.Path, required=True, help="output directory")
        command.add_argument("--quick", action="store_true", help=quick)
        command.add_argument("--cache", type=pathlib.Path, default=CACHE,
                             help="JAX's persistent compilation cache (default: %(default)s)")
        command.add_argument("--no-cache", action="store_true", help="compile everything afresh, keep nothing")
    commands.choices["dsgd"].add_argument("--models", nargs="+", default=None, choices=tuple(dsgd.PROTOCOL),
                                          help="a subset of the models")
    return result


def main(argv=None, prog: str | None = None) -> int:
    # Every rate is checked in float64; the library leaves JAX's configuration to its caller.
    jax.config.update("jax_enable_x64", True)
    args = parser(prog).parse_args(argv)
    chosen = STUDIES[args.command]
    settings = chosen.settings(args.quick)
    if getattr(args, "models", None):
        settings = dataclasses.replace(settings, models=tuple(args.models))
    with _compilation_cache(None if args.no_cache else args.cache):
        return 0 if study.write(chosen, args.out, settings=settings).passed else 1


# Every compilation is kept, however short: a study compiles a few hundred small programs.
_CACHE_OPTIONS = {"jax_compilation_cache_dir": None, "jax_persistent_cache_min_compile_time_secs": 0.0,
                  "jax_persistent_cache_min_entry_size_bytes": 0}


@contextlib.contextmanager
def _compilation_cache(directory: pathlib.Path | None):
    """JAX's persistent compilation cache in `directory` (none for `None`) for the duration,
    the earlier options restored afterwards (for callers in the same process: tests, notebooks)."""
    if directory is None:
        yield
        return
    earlier = {name: getattr(jax.config, name) for name in _CACHE_OPTIONS}
    try:
        for name, value in (_CACHE_OPTIONS | {"jax_compilation_cache_dir": str(directory)}).items():
            jax.config.update(name, value)
        yield
    finally:
        for name, value in earlier.items():
            jax.config.update(name, value)


if __name__ == "__main__":
    sys.exit(main())
