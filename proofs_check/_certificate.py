"""A certificate: a claim, the sympy steps that prove it, and mutants that must fail.

A certificate is verified when its proof steps all succeed on the true claim and each
mutant (a constant changed, a condition dropped) makes at least one step fail. A
certificate whose mutants pass is itself a failure: its steps prove nothing.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Mapping

import sympy as sp


@dataclasses.dataclass(frozen=True)
class Certificate:
    """**Arguments:**

    - `name`: how bounds in `rates` and the tests refer to it.
    - `statement`: the claim in plain text, with its conditions.
    - `claim`: the sympy expressions the proof is about (e.g. `{"bound": ...}`).
    - `steps`: functions `claim -> bool`, each one step of the proof.
    - `mutants`: `(description, claim)` pairs; each must fail some step.
    """

    name: str
    statement: str
    claim: Mapping[str, sp.Expr]
    steps: tuple[Callable[[Mapping[str, sp.Expr]], bool], ...]
    mutants: tuple[tuple[str, Mapping[str, sp.Expr]], ...]

    def holds(self, claim: Mapping[str, sp.Expr]) -> bool:
        return all(bool(step(claim)) for step in self.steps)

    def verify(self) -> Verification:
        start = time.perf_counter()
        verified = self.holds(self.claim)
        rejected = [description for description, mutant in self.mutants if not self.holds(mutant)]
        return Verification(
            name=self.name, statement=self.statement, verified=verified,
            controls_rejected=len(rejected), controls_total=len(self.mutants),
            seconds=time.perf_counter() - start,
        )


@dataclasses.dataclass(frozen=True)
class Verification:
    """The outcome of `Certificate.verify()`: whether the proof steps hold on the claim,
    and how many of the mutants (controls) they reject. It passes only when both hold."""

    name: str
    statement: str
    verified: bool
    controls_rejected: int
    controls_total: int
    seconds: float

    @property
    def passed(self) -> bool:
        return self.verified and self.controls_total > 0 and self.controls_rejected == self.controls_total


def is_zero(expression: sp.Expr) -> bool:
    """An identity: the expression simplifies to exactly zero."""
    return sp.simplify(sp.expand(expression)) == 0


def nonnegative_by_coefficients(expression: sp.Expr, nonnegative: tuple[sp.Symbol, ...]) -> bool:
    """Sufficient test of `expression ≥ 0` when every symbol in `nonnegative` is ≥ 0:
    the numerator, expanded, has only non-negative coefficients, and so does the
    denominator (after cancelling)."""
    numerator, denominator = sp.fraction(sp.together(sp.expand(expression)))
    for part in (numerator, denominator):
        polynomial = sp.Poly(sp.expand(part), *nonnegative)
        if any(coefficient < 0 for coefficient in polynomial.coeffs()):
            return False
    return True
