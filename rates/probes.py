"""Random probes that sketch the Frobenius error of a Jacobian at one product per probe.

For a matrix `A` (here `J_k − J*`, d × p) and a random `v ∈ Rᵖ` with `E[v vᵀ] = I`
(isotropic), `E‖Av‖² = tr(AᵀA) = ‖A‖²_F`: one Jacobian-vector product per step carries
`A v` through the tangent recursion, where the full Jacobian takes p. With `B = AᵀA`,
one probe's variance is

    Rademacher (vᵢ = ±1):      Var‖Av‖² = 2(‖B‖²_F − Σᵢ Bᵢᵢ²)
    Gaussian (v ~ N(0, I)):    Var‖Av‖² = 2‖B‖²_F

(`probe_variance`; derived in `docs/theory.md`, "Sketched Jacobian errors"). Rademacher
probes are never worse, and exact when B is diagonal. A seed's estimate averages m
probes, so over seeds

    Var(estimate) = Var_seeds(‖A‖²_F) + E_seeds[Var_probe]/m,

and the standard error over seeds, computed as always from the spread of the per-seed
estimates, includes the probe noise. `optimal_probe_count` picks the m that minimises
the variance × cost per seed, `(σ_s² + σ_p²/m)(c + m)` with c the cost of a step's other
work in Jacobian-vector products, against the full Jacobian's `σ_s²(c + p)`.

Keys: seed s's probes are drawn with `fold_in(seed_key, PROBE_FOLD)`, a key that no
step uses (step k uses `fold_in(seed_key, k)` and runs are limited to fewer steps than
`PROBE_FOLD`), so sketched and full runs see the same minibatches.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float, PRNGKeyArray

# The fold of a seed's key that draws its probes: step k folds k, and K < PROBE_FOLD.
PROBE_FOLD = 2**32 - 1

# c: the work of one step besides its Jacobian-vector products (minibatch draw, gradient,
# loop), in products. Measured on a CPU: see `benchmarks/efficiency.py`.
STEP_COST = 4.5
# ρ = σ_p²/σ_s², one probe's variance over the seeds' variance, as NOISE_RATIO_PER_ROOT_P·√p
# (`default_probe_count`).
NOISE_RATIO_PER_ROOT_P = 1.5

Distribution = Callable[[PRNGKeyArray, tuple[int, ...]], Array]
DISTRIBUTIONS: dict[str, Distribution] = {
    "rademacher": lambda key, shape: jax.random.rademacher(key, shape, dtype=jnp.float64),
    "gaussian": lambda key, shape: jax.random.normal(key, shape, dtype=jnp.float64),
}


@dataclasses.dataclass(frozen=True)
class Probes:
    """`count` probe directions per seed, drawn i.i.d. from `distribution`: `"rademacher"`,
    `"gaussian"`, or a function `(key, shape) ↦ array` whose entries must have
    `E[v vᵀ] = I` for the sketch to be unbiased (nothing checks it; `tests/test_probes.py`
    shows a z-test catching probes that are not isotropic)."""

    count: int
    distribution: str | Distribution = "rademacher"

    def __post_init__(self):
        if isinstance(self.distribution, str) and self.distribution not in DISTRIBUTIONS:
            raise ValueError(f"probe distribution must be one of {sorted(DISTRIBUTIONS)} or a function "
                             f"(key, shape) -> array, got {self.distribution!r}")
        if not isinstance(self.distribution, str) and not callable(self.distribution):
            raise TypeError(f"probe distribution must be a name or a function, got {self.distribution!r}")

    @property
    def name(self) -> str:
        return self.distribution if isinstance(self.distribution, str) else getattr(
            self.distribution, "__name__", repr(self.distribution))

    def draw(self, seed_key: PRNGKeyArray, param_dim: int) -> Float[Array, "m p"]:
        """The probes of the seed whose key is `seed_key`, one per row."""
        sampler = DISTRIBUTIONS[self.distribution] if isinstance(self.distribution, str) else self.distribution
        directions = sampler(jax.random.fold_in(seed_key, PROBE_FOLD), (self.count, param_dim))
        return jnp.asarray(directions, jnp.float64)


def probe_variance(error: Float[ArrayLike, "d p"], distribution: str = "rademacher") -> float:
    """The variance of one probe's `‖A v‖²` for the matrix `A = error` (module docstring)."""
    error = np.asarray(error, dtype=np.float64)
    gram = error.T @ error
    frobenius_sq = float(np.sum(gram**2))
    if distribution == "gaussian":
        return 2.0 * frobenius_sq
    if distribution == "rademacher":
        return 2.0 * (frobenius_sq - float(np.sum(np.diag(gram) ** 2)))
    raise ValueError(f"the probe variance is known for {sorted(DISTRIBUTIONS)}, got {distribution!r}")


def work_normalised_variance(seed_variance: float, probe_variance_: float, count: int | None, param_dim: int,
                             step_cost: float) -> float:
    """`(σ_s² + σ_p²/m)(c + m)`, or `σ_s²(c + p)` for the full Jacobian (`count=None`): the
    variance of one seed's estimate times its cost, in Jacobian-vector products per step."""
    if count is None:
        return seed_variance * (step_cost + param_dim)
    return (seed_variance + probe_variance_ / count) * (step_cost + count)


def default_probe_count(param_dim: int, step_cost: float = STEP_COST,
                        noise_ratio: float | None = None) -> int | None:
    """The m of `jacobian_probes="auto"`: `optimal_probe_count` with `ρ = σ_p²/σ_s²` given, or
    by default `NOISE_RATIO_PER_ROOT_P · √p`.

    ρ cannot be learnt cheaply before a run: σ_s² is the variance of a trace, whose
    fluctuations cancel over θ's directions, and a few sketched seeds see it only under
    σ_p²/m. (Probes shared by the seeds of a pilot do not help either: the spread of a
    fixed quadratic form over seeds overstates σ_s² two- to fivefold.) The model is
    measured on weighted ridge at K = 5,000 with constant steps 1/(2L): ρ = 11–12 at p = 64
    and 9.8 at p = 256 (`benchmarks/efficiency.py`), against 14 and 31 in an earlier
    measurement with 16–32 seeds. The choice is forgiving: within a factor 2 of the best m
    the work-normalised variance is within about 12% of its minimum."""
    rho = NOISE_RATIO_PER_ROOT_P * np.sqrt(param_dim) if noise_ratio is None else noise_ratio
    return optimal_probe_count(1.0, rho, param_dim, step_cost)


def optimal_probe_count(seed_variance: float, probe_variance_: float, param_dim: int, step_cost: float) -> int | None:
    """The m in `1 … p − 1` that minimises `work_normalised_variance`, or `None` when the full
    Jacobian does better (it always does when `p ≤ 2` or the probe noise dominates)."""
    seed_variance, probe_variance_ = max(float(seed_variance), 0.0), max(float(probe_variance_), 0.0)
    best, best_work = None, work_normalised_variance(seed_variance, probe_variance_, None, param_dim, step_cost)
    for count in range(1, param_dim):
        work = work_normalised_variance(seed_variance, probe_variance_, count, param_dim, step_cost)
        if work < best_work:
            best, best_work = count, work
    return best


__all__ = [
    "DISTRIBUTIONS",
    "NOISE_RATIO_PER_ROOT_P",
    "PROBE_FOLD",
    "STEP_COST",
    "Probes",
    "default_probe_count",
    "optimal_probe_count",
    "probe_variance",
    "work_normalised_variance",
]
