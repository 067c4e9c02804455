"""The studies built on the library: the rate report (`report`, on the regimes of
`regimes`, run and judged by `rate_checks`), the comparison of gradient estimators on
programs with if-statements (`dsgd`), and the variance study of black-box smoothing
(`smoothing`).

Each is a `study.Study` (settings in a quick and a full size, a run returning plain data,
writers to markdown, JSON and figures) written by `study.write`, with the progress lines of
`progress` and the figures of `figures`. From the command line: `python -m experiments
report|dsgd|smoothing --out DIR [--quick]` (or `python -m rates …`). Nothing in
`problems`, `derivatives`, `rates` or `proofs_check` imports this package.
"""
