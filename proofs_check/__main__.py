"""`python -m proofs_check [--json PATH]`: verify every certificate; exit 1 on any failure."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys

from proofs_check import verify_all


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--json", help="also write the verifications to this path")
    args = parser.parse_args()
    verifications = verify_all()
    print(f"{'certificate':28s} {'verified':9s} {'controls':9s} {'seconds':>8s}  statement")
    for v in verifications:
        controls = f"{v.controls_rejected}/{v.controls_total}"
        print(f"{v.name:28s} {v.verified!s:9s} {controls:9s} {v.seconds:8.2f}  {v.statement}")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump({"certificates": [dataclasses.asdict(v) for v in verifications]}, handle, indent=2)
    failed = [v.name for v in verifications if not v.passed]
    if failed:
        print(f"FAILED: {', '.join(failed)}")
        return 1
    print(f"all {len(verifications)} certificates verified, every control rejected")
    return 0


if __name__ == "__main__":
    sys.exit(main())
