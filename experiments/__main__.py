"""`python -m rates report --out DIR [--quick]`: the rate report;
`python -m rates dsgd --out DIR [--quick]`: the comparison of gradient estimators;
`python -m rates smoothing --out DIR [--quick]`: the variance study of black-box smoothing."""

from __future__ import annotations

import argparse
import pathlib
import sys

import jax


def main(argv=None) -> int:
    # Every rate is checked in float64; the library leaves JAX's configuration to its caller.
    jax.config.update("jax_enable_x64", True)
    parser = argparse.ArgumentParser(prog="python -m rates", description="Rate checks for SGD and its derivatives.")
    commands = parser.add_subparsers(dest="command", required=True)
    report = commands.add_parser("report", help="run every regime and write report.md, results.json and figures")
    report.add_argument("--out", type=pathlib.Path, required=True, help="output directory")
    report.add_argument("--quick", action="store_true", help="fewer seeds and steps (a few minutes)")
    dsgd = commands.add_parser("dsgd", help="compare gradient estimators on the six non-differentiable models "
                                            "and write dsgd.md, dsgd.json and figures")
    dsgd.add_argument("--out", type=pathlib.Path, required=True, help="output directory")
    dsgd.add_argument("--quick", action="store_true", help="fewer steps, samples and η values (minutes)")
    dsgd.add_argument("--models", nargs="+", default=None, help="a subset of the models",
                      choices=("temperature", "textmsg", "influenza", "cheating", "xornet", "walk"))
    smoothing = commands.add_parser("smoothing", help="variance of the black-box smoothing estimators on sorting "
                                                      "and shortest paths; writes smoothing.md, smoothing.json "
                                                      "and a heatmap")
    smoothing.add_argument("--out", type=pathlib.Path, required=True, help="output directory")
    smoothing.add_argument("--quick", action="store_true", help="two tasks, two noises, fewer repetitions "
                                                                "and a smaller reference (1–2 minutes)")
    args = parser.parse_args(argv)
    if args.command == "smoothing":
        from experiments.smoothing import write_smoothing_report

        write_smoothing_report(args.out, args.quick)
        return 0
    if args.command == "dsgd":
        from experiments.dsgd import write_dsgd_report

        return 0 if write_dsgd_report(args.out, args.quick, names=args.models) else 1
    if args.command == "report":
        from experiments.report import write_report

        return 0 if write_report(args.out, args.quick) else 1
    return 2


if __name__ == "__main__":
    sys.exit(main())
