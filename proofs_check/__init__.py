"""Why the bounds hold: each lemma stated once in sympy and verified symbolically,
with mutated claims that the same steps must reject.

`rates` and the tests evaluate these same expressions numerically (via `lambdify`),
so the theory has one source of truth.
"""

from proofs_check import contraction, densities, gradient_descent, hypergradient, sgd, smoothing
from proofs_check._certificate import Certificate, Verification

CERTIFICATES = (
    gradient_descent.CERTIFICATES + sgd.CERTIFICATES + contraction.CERTIFICATES
    + smoothing.CERTIFICATES + densities.CERTIFICATES + hypergradient.CERTIFICATES
)


def verify_all() -> list[Verification]:
    """Verify every certificate and its controls."""
    return [certificate.verify() for certificate in CERTIFICATES]


__all__ = [
    "CERTIFICATES", "Certificate", "Verification", "contraction", "densities", "gradient_descent", "hypergradient",
    "sgd",
    "smoothing", "verify_all",
]
