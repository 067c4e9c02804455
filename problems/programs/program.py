"""A probabilistic program with a mean-field Gaussian variational family.

The objective of variational inference is

    f(θ, z)   = log p(z) − log q_θ(z)          (crisp)
    f_η(θ, z) = log p_η(z) − log q_θ(z)        (smoothed; log q is never smoothed)
    ELBO(θ)   = E_{z∼q_θ}[f(θ, z)],

with `z = m + σ ⊙ ε`, `ε ∼ N(0, I)`, `σ = softplus(ρ)`. `θ` holds the variational means,
then the variational ρ's (`MeanField`). Coordinates whose mean and scale are both fixed are
auxiliary: they are drawn from their fixed N(m, σ) and left out of log q (and, by the
model's construction, of log p).
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np

from problems.programs import expressions as ex
from problems.validation import as_key, require_x64


def softplus_inverse(y):
    """`log(e^y − 1)`, the ρ with `softplus(ρ) = y`."""
    y = np.asarray(y, dtype=np.float64)
    return y + np.log(-np.expm1(-y))


@dataclasses.dataclass(frozen=True, eq=False)
class MeanField:
    """`q_θ(z) = Π N(z_i; m_i, σ_i)` over the variational coordinates.

    - `mean_slots`: the coordinates whose mean is a parameter; `scale_slots`: those whose
      ρ is a parameter. θ = (means of `mean_slots`, ρ's of `scale_slots`).
    - `fixed_mean`, `fixed_scale` (shape (d,)): the values of the others.
    """

    dim: int
    mean_slots: np.ndarray
    scale_slots: np.ndarray
    fixed_mean: np.ndarray
    fixed_scale: np.ndarray

    @classmethod
    def full(cls, dim: int) -> MeanField:
        """Every coordinate has a variational mean and scale."""
        return cls(dim, np.arange(dim), np.arange(dim), np.zeros(dim), np.ones(dim))

    @property
    def num_params(self) -> int:
        return len(self.mean_slots) + len(self.scale_slots)

    @property
    def variational(self) -> np.ndarray:
        """The coordinates that enter log q."""
        return np.union1d(self.mean_slots, self.scale_slots)

    def unpack(self, theta):
        """`(m, σ)`, each of shape (d,)."""
        means, rhos = theta[: len(self.mean_slots)], theta[len(self.mean_slots):]
        m = jnp.asarray(self.fixed_mean).at[self.mean_slots].set(means)
        sigma = jnp.asarray(self.fixed_scale).at[self.scale_slots].set(jax.nn.softplus(rhos))
        return m, sigma

    def sample(self, theta, epsilon):
        """`z = T_θ(ε) = m + σ ⊙ ε`."""
        m, sigma = self.unpack(theta)
        return m + sigma * epsilon

    def log_density(self, theta, z):
        """`log q_θ(z)` over the variational coordinates."""
        m, sigma = self.unpack(theta)
        keep = self.variational
        standard = (z[keep] - m[keep]) / sigma[keep]
        return jnp.sum(-0.5 * standard**2 - jnp.log(sigma[keep])) - 0.5 * len(keep) * math.log(2 * math.pi)


@dataclasses.dataclass(frozen=True, eq=False)
class Program:
    """A model: its log-joint density as an expression, its variational family and its
    initial parameters. Hashable by identity, so it can be a static argument of `jit`.

    - `name`; `log_joint`: a scalar `Expr` in the latent vector; `family`: a `MeanField`;
      `theta0`: the initial variational parameters, shape `(family.num_params,)`.
    - Computed from the graph: `num_ifs` (K), `nesting_depth` (ℓ), `affine` (whether
      every guard is affine in z) and, when it is, `boundaries` = (a (K, d), c (K,), j (K,))
      with guard k equal to `a[k]·z − c[k]` and `j[k]` the coordinate LYY18 solves for.
    """

    name: str
    log_joint: ex.Expr
    family: MeanField
    theta0: np.ndarray
    analysis: ex.Analysis = dataclasses.field(init=False, repr=False)

    def __post_init__(self):
        if self.log_joint.shape != ():
            raise ex.ProgramError(f"{self.name}: the log-joint density must be a scalar, got shape "
                                  f"{self.log_joint.shape}")
        theta0 = np.asarray(self.theta0, dtype=np.float64)
        if theta0.shape != (self.family.num_params,):
            raise ex.ProgramError(f"{self.name}: theta0 has shape {theta0.shape}, the family has "
                                  f"{self.family.num_params} parameters")
        object.__setattr__(self, "theta0", theta0)
        object.__setattr__(self, "analysis", ex.analyse(self.log_joint, self.family.dim))

    @property
    def dim(self) -> int:
        return self.family.dim

    @property
    def num_params(self) -> int:
        return self.family.num_params

    @property
    def num_ifs(self) -> int:
        return self.analysis.num_ifs

    @property
    def nesting_depth(self) -> int:
        return self.analysis.nesting_depth

    @property
    def affine(self) -> bool:
        return self.analysis.affine

    @property
    def boundaries(self):
        if not self.affine:
            raise ValueError(f"{self.name} has guards that are not affine in z: no boundary table")
        a = self.analysis
        return a.coefficients, a.constants, a.solve_for

    def log_p(self, z, eta=None):
        """`log p(z)` crisp (`eta=None`) or smoothed with accuracy `eta`."""
        semantics = ex.Crisp() if eta is None else ex.Smoothed(eta)
        return ex.evaluate(self.log_joint, z, semantics)

    def log_p_forced(self, z, index, then):
        """`log p(z)` with scalar if number `index` forced to its then-branch (`then`
        true) or its else-branch, every other if crisp."""
        return ex.evaluate(self.log_joint, z, ex.Forced(index, then), self.analysis.offsets)

    def guard_values(self, z):
        """The crisp guards of the K scalar ifs at `z`, shape (K,), in if-number order."""
        return ex.guard_values(self.log_joint, z, self.analysis)

    def objective(self, theta, z, eta=None):
        """`f(θ, z) = log p(z) − log q_θ(z)`, crisp or smoothed."""
        return self.log_p(z, eta) - self.family.log_density(theta, z)

    def elbo(self, theta, key, num_samples: int = 1000):
        """Monte Carlo estimate of the crisp ELBO at θ from `num_samples` draws."""
        require_x64()
        epsilon = jax.random.normal(as_key(key), (num_samples, self.dim))
        z = jax.vmap(self.family.sample, (None, 0))(theta, epsilon)
        return jnp.mean(jax.vmap(self.objective, (None, 0))(theta, z))

    def __repr__(self) -> str:
        return (f"Program({self.name}: d={self.dim}, |θ|={self.num_params}, K={self.num_ifs}, "
                f"ℓ={self.nesting_depth}, affine={self.affine})")
