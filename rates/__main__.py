"""`python -m rates report|dsgd|smoothing|phase|hypergradients --out DIR [--quick]` and
`python -m rates falsify …`: the command line of the studies in `experiments` (an entry
point, not part of the library: no library module imports it)."""

import sys

from experiments.__main__ import main

if __name__ == "__main__":
    sys.exit(main())
