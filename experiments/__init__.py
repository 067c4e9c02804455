"""The studies built on the library: the rate report, the comparison of gradient estimators
on programs with if-statements (DSGD), and the variance study of black-box smoothing.

Each is run from the command line (`python -m rates report|dsgd|smoothing --out DIR
[--quick]`) and writes markdown, JSON and figures. Nothing in `problems`, `derivatives`,
`rates` or `proofs_check` imports this package.
"""
