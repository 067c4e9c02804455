"""The command line of the studies, as `python -m experiments` or `python -m rates`:

- `report --out DIR [--quick] [--compilation-cache DIR]`: the rate report;
- `dsgd --out DIR [--quick] [--models NAME …]`: the comparison of gradient estimators;
- `smoothing --out DIR [--quick]`: the variance study of black-box smoothing;
- `phase --out DIR [--quick]`: the exact rates of decreasing steps against aμ (the phase diagram);
- `hypergradients --out DIR [--quick]`: every hypergradient method against the exact hypergradient;
- `falsify --quantity Q --bound B --schedule S [--condition C …]`: a search for a
  counterexample to a claimed bound (`rates.claims.falsify`).

Each study runs through `experiments.study.write`; the exit status is 0 when every verdict
passed (for `falsify`: when the claim was not refuted), 1 otherwise. `--compilation-cache
DIR` keeps compiled programs in DIR for the next run (`experiments.workers.compilation_cache`);
XLA:CPU then writes an error-level line for every program it loads from the cache, which
`TF_CPP_MIN_LOG_LEVEL=3` in the environment silences (`make report` sets it; XLA reads it
when JAX is first imported, so it cannot be set from here).
"""

from __future__ import annotations

import argparse
import dataclasses
import pathlib
import sys

# Only the standard library at import (`experiments.workers` too): the rate report starts its
# workers before this process imports JAX and the studies, so that both import at once.
from experiments import workers

# What the rate report's tasks need: its workers import it as they start.
REPORT_MODULES = ("experiments.report",)
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


def _prog() -> str:
    """`python -m rates` or `python -m experiments`, whichever was run."""
    launched = pathlib.Path(sys.argv[0])
    package = launched.parent.name if launched.name == "__main__.py" else "experiments"
    return f"python -m {package}"


def studies() -> dict:
    """Each study by its command."""
    from experiments import dsgd, hypergradients, phase, report, smoothing

    return {"report": report.STUDY, "dsgd": dsgd.STUDY, "smoothing": smoothing.STUDY, "phase": phase.STUDY,
            "hypergradients": hypergradients.STUDY}


def parser(prog: str | None = None) -> argparse.ArgumentParser:
    from experiments import dsgd

    result = argparse.ArgumentParser(prog=prog or _prog(), description="Rate checks for SGD and its derivatives.")
    commands = result.add_subparsers(dest="command", required=True)
    for name, (summary, quick) in HELP.items():
        command = commands.add_parser(name, help=summary)
        command.add_argument("--out", type=pathlib.Path, required=True, help="output directory")
        command.add_argument("--quick", action="store_true", help=quick)
        command.add_argument("--compilation-cache", type=pathlib.Path, default=None, metavar="DIR",
                             help="keep compiled programs in DIR (a directory per machine inside) for later runs")
    commands.choices["dsgd"].add_argument("--models", nargs="+", default=None, choices=tuple(dsgd.PROTOCOL),
                                          help="a subset of the models")
    _falsify_parser(commands)
    return result


def _falsify_parser(commands) -> None:
    from rates import claims

    symbols = "; ".join(f"{name}: {meaning}" for name, meaning in claims.MEANINGS.items())
    command = commands.add_parser(
        "falsify", help="search for a counterexample to a claimed bound on SGD's error curves",
        description="Search problems, θ, batch sizes and schedules for a step k where quantity(k) > bound(k), "
                    "shrink it to a small counterexample, and say how close to tight the bound came. Exit "
                    "status 0: not refuted; 1: refuted.",
        epilog=f"Symbols of --bound, --condition and --define: {symbols}.")
    command.add_argument("--quantity", required=True, choices=claims.QUANTITIES, help="what the bound bounds")
    command.add_argument("--bound", required=True, help='a sympy expression, e.g. "C/(k + k0)"')
    command.add_argument("--schedule", required=True, choices=claims.SCHEDULES, help="the step-size family")
    command.add_argument("--condition", action="append", default=[], metavar="RELATION",
                         help='a condition on the constants, e.g. "a*mu > 1" (repeatable)')
    command.add_argument("--define", action="append", default=[], metavar="NAME=EXPRESSION",
                         help='a constant of the bound, e.g. "C=2*a**2*sigma2/(b*(a*mu - 1))" (repeatable)')
    command.add_argument("--family", choices=claims.FAMILIES, default="quadratic",
                         help="quadratic: exact curves; logistic: Monte Carlo with a one-sided test")
    command.add_argument("--max-examples", type=int, default=100, help="settings tried (default 100)")
    command.add_argument("--num-steps", type=int, default=5000, help="steps compared (default 5000)")
    command.add_argument("--seed", type=int, default=0, help="the search's seed (default 0)")


def _falsify(args) -> int:
    from rates import claims

    definitions = {}
    for definition in args.define:
        name, separator, expression = definition.partition("=")
        if not separator or not name.strip():
            raise SystemExit(f"--define takes NAME=EXPRESSION, got {definition!r}")
        definitions[name.strip()] = expression
    try:
        result = claims.falsify(args.quantity, args.bound, schedule=args.schedule, conditions=args.condition,
                                where=definitions, family=args.family, max_examples=args.max_examples,
                                num_steps=args.num_steps, seed=args.seed, progress=print)
    except ValueError as error:
        raise SystemExit(f"error: {error}") from None
    print(result)
    return 1 if result.refuted else 0


def main(argv=None, prog: str | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["report"] and not {"-h", "--help"} & set(argv):
        workers.start_early(REPORT_MODULES)
    import jax

    from experiments import study

    # Every rate is checked in float64; the library leaves JAX's configuration to its caller.
    jax.config.update("jax_enable_x64", True)
    args = parser(prog).parse_args(argv)
    if args.command == "falsify":
        return _falsify(args)
    if args.compilation_cache is not None:
        workers.compilation_cache(args.compilation_cache)
    chosen = studies()[args.command]
    settings = chosen.settings(args.quick)
    if getattr(args, "models", None):
        settings = dataclasses.replace(settings, models=tuple(args.models))
    return 0 if study.write(chosen, args.out, settings=settings).passed else 1


if __name__ == "__main__":
    sys.exit(main())
