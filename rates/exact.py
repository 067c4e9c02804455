"""Exact expected error curves of SGD and its derivative when the gradients are affine in x.

**Theorem** (`docs/theory.md`, "Exact moment dynamics"). Let every per-sample gradient be
affine in x at fixed θ, `∇ₓfᵢ(x, θ) = Hᵢx + cᵢ`, and write `H̄ = mean Hᵢ`, `Gᵢⱼ = ∂θⱼHᵢ`,
`zᵢ = ∇ₓfᵢ(x*)`, `Zᵢ = HᵢJ* + ∂θ∇ₓfᵢ(x*)` (mean zero: optimality and the implicit function
theorem), `ΔHᵢ = Hᵢ − H̄`, `ΔGᵢ = Gᵢ − Ḡ`. Minibatch SGD with batches of b samples drawn
with replacement, and its forward derivative `Jₖ = ∂θxₖ`, move the errors `e = x − x*`,
`E = J − J*` (columns `Eⱼ`) by

    e′  = (I − αH̄)e  − α·ε,     ε  = mean over the batch of  ΔHᵢe + zᵢ,
    Eⱼ′ = (I − αH̄)Eⱼ − αḠⱼe − α·Εⱼ,  Εⱼ = mean over the batch of ΔHᵢEⱼ + ΔGᵢⱼe + Zᵢⱼ,

with ε, Ε of mean zero given the past. The moments `m = E e`, `N = E E`, `P = E eeᵀ`,
`Cⱼ = E Eⱼeᵀ` and `Q = E EEᵀ = Σⱼ E EⱼEⱼᵀ` therefore follow a deterministic linear
recursion (written out in `ExactMoments.step`), and

    E‖eₖ‖² = tr Pₖ,   E‖Eₖ‖²_F = tr Qₖ,   E[F(xₖ) − F*] = ½ tr(H̄Pₖ)

exactly, for any schedule, any batch size and any start. Every column of E meets the same
random matrix, so the column second moments need only be summed (Q) and crossed with e
(Cⱼ, and only when the coupling G is not zero): `(p + 2)·d²` numbers instead of the
`(d(1 + p))²` of a dense second moment.

Affinity is checked, not assumed: the per-sample Hessians `∇²ₓₓfᵢ` are evaluated at x* and
at a second point `x* + δ` (δ Gaussian, of the size of `1 + ‖x*‖`), and the problem is
refused when they differ by more than `AFFINE_TOLERANCE` relative to the largest Hessian
entry (a gradient affine in x has Hessians independent of x).
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jaxtyping import Array, ArrayLike, Float, Int, Real

from derivatives.schedules import Constant, Schedule, StepSize, as_schedule
from derivatives.sgd import check_run, divergence_error
from problems import Problem
from problems.pytrees import pytree_dataclass, static
from problems.validation import check_count
from rates.curves import STATISTICS, Curves, checkpoints

# Relative change of the per-sample Hessians between two points above which the gradient is
# not affine in x. Rounding of a Hessian computed by automatic differentiation is ~1e-15.
AFFINE_TOLERANCE = 1e-9

# Above this d, the Hessian-noise operator X ↦ mean ΔHᵢXΔHᵢ is applied sample by sample
# (cost n·d³ per matrix) rather than as a stored d²×d² matrix (cost d⁴, memory 8d⁴ bytes).
OPERATOR_MAX_DIM = 48

# Steps taken per pass of the inner loop: a small state spends most of a step in loop overhead.
UNROLL = 8

# Moment states of at most this many numbers move by the dense `MomentOperator` (matrix
# powers for a constant step; `SlabOperator`, its nonzero blocks, for varying steps); larger
# ones by the structured step, whose cost grows more slowly with d. The dense matrices stop
# paying before they stop fitting in cache: for ridge at d = 10 with P and Q stored whole
# (n = 320), three variants over 2,000,000 decreasing steps took 89 s dense against 80 s
# structured; packed (n = 230), 71 s dense, 57 s with the variants' linear part shared, and
# 28 s by slabs (14 µs a step on one core, `SlabOperator`).
DENSE_MAX_STATE = 256

# A state of at most this many numbers moves by one slab (the whole matrices): split by
# parts, its products would cost more in calls than they save in arithmetic. Measured on
# one core: n = 45 (least squares, d = 5, p = 2), 2.0 µs a step by parts, 2.3 in one slab.
SINGLE_SLAB_STATE = 32


class NotAffineError(ValueError):
    """The problem's per-sample gradients are not affine in x, so no exact recursion exists."""


@pytree_dataclass
class AffineDynamics:
    """The coefficients of one SGD step on a problem with per-sample gradients affine in x.

    Fields (n samples, shapes for d, p): `hessian` H̄ (d, d); `gradient_noise` zᵢ (n, d);
    `jacobian_noise` Zᵢ (n, d, p); `coupling` Ḡⱼ = mean ∂θⱼHᵢ (p, d, d);
    `hessian_deviations` ΔHᵢ (n, d, d); `coupling_deviations` ΔGᵢⱼ (n, p, d, d); `x_star`,
    `jac_star`. The flags (static) say which terms of the recursion are present:
    `coupled` (G ≠ 0: the derivative is driven by the iterate error), `random_coupling`
    (ΔG ≠ 0) and `noise_operator` (the d²×d² operator `noise_matrix` and the tensors below
    are stored; for d > `OPERATOR_MAX_DIM` the sums over samples are taken at each step).

    Precomputed means over samples: `gradient_covariance` mean zzᵀ, `jacobian_covariance`
    Σⱼ mean ZⱼZⱼᵀ, `cross_covariance` mean Zⱼzᵀ, `hessian_gradient[a, c, b]` mean ΔH[a, c]z[b],
    `jacobian_hessian[j, a, c, b]` mean Z[a, j]ΔH[c, b].
    """

    hessian: Float[Array, "d d"]
    gradient_noise: Float[Array, "n d"]
    jacobian_noise: Float[Array, "n d p"]
    coupling: Float[Array, "p d d"]
    hessian_deviations: Float[Array, "n d d"]
    coupling_deviations: Float[Array, "n p d d"]
    noise_matrix: Float[Array, "dd dd"]
    gradient_covariance: Float[Array, "d d"]
    jacobian_covariance: Float[Array, "d d"]
    cross_covariance: Float[Array, "p d d"]
    hessian_gradient: Float[Array, "d d d"]
    jacobian_hessian: Float[Array, "p d d d"]
    x_star: Float[Array, " d"]
    jac_star: Float[Array, "d p"]
    coupled: bool = static()
    random_coupling: bool = static()
    noise_operator: bool = static()

    @property
    def dim(self) -> int:
        return int(self.hessian.shape[0])

    def hessian_noise(self, matrices: Float[Array, "m d d"]) -> Float[Array, "m d d"]:
        """`mean ΔHᵢ X ΔHᵢ` for each X in a stack."""
        if self.noise_operator:
            d = self.dim
            return (matrices.reshape(-1, d * d) @ self.noise_matrix.T).reshape(matrices.shape)
        deviations = self.hessian_deviations
        return jnp.einsum("iab,mbc,icd->mad", deviations, matrices, deviations) / deviations.shape[0]

    def hessian_times_mean(self, m: Float[Array, " d"]) -> Float[Array, "d d"]:
        """`mean ΔHᵢ m zᵢᵀ`."""
        if self.noise_operator:
            return jnp.einsum("acb,c->ab", self.hessian_gradient, m)
        return jnp.einsum("iac,c,ib->ab", self.hessian_deviations, m, self.gradient_noise) / self._n

    def jacobian_times_mean(self, m: Float[Array, " d"]) -> Float[Array, "p d d"]:
        """`mean Zᵢⱼ mᵀ ΔHᵢ` for each j."""
        if self.noise_operator:
            return jnp.einsum("jacb,c->jab", self.jacobian_hessian, m)
        return jnp.einsum("iaj,c,icb->jab", self.jacobian_noise, m, self.hessian_deviations) / self._n

    def hessian_times_jacobian_mean(self, N: Float[Array, "d p"]) -> tuple[Float[Array, "d d"], Float[Array, "p d d"]]:
        """`Σⱼ mean ΔHᵢ Nⱼ Zᵢⱼᵀ` and, for each j, `mean ΔHᵢ Nⱼ zᵢᵀ`."""
        if self.noise_operator:
            return (jnp.einsum("jbac,cj->ab", self.jacobian_hessian, N),
                    jnp.einsum("acb,cj->jab", self.hessian_gradient, N))
        dH_N = jnp.einsum("iab,bj->iaj", self.hessian_deviations, N)
        return (jnp.einsum("iaj,ibj->ab", dH_N, self.jacobian_noise) / self._n,
                jnp.einsum("iaj,ib->jab", dH_N, self.gradient_noise) / self._n)

    def with_noise_scaled(self, *, gradient: float = 1.0, jacobian: float = 1.0) -> AffineDynamics:
        """The same step with the gradient noise zᵢ scaled by `√gradient` and the Jacobian noise
        Zᵢ by `√jacobian`, so that σ² and σ_J² (and every covariance built from them) are
        multiplied by `gradient` and `jacobian`: a problem whose noise constant is misstated."""
        g, j = float(gradient) ** 0.5, float(jacobian) ** 0.5
        changes = dict(gradient_noise=g * self.gradient_noise, jacobian_noise=j * self.jacobian_noise,
                       gradient_covariance=g * g * self.gradient_covariance,
                       jacobian_covariance=j * j * self.jacobian_covariance,
                       cross_covariance=g * j * self.cross_covariance, hessian_gradient=g * self.hessian_gradient,
                       jacobian_hessian=j * self.jacobian_hessian)
        return dataclasses.replace(self, **changes)

    def first_order_plateau(self, step_size: Real[ArrayLike, ""], batch_size: int = 1) -> Limit:
        """`rates.exact.first_order_plateau` for these coefficients."""
        return _stationary(self, scale=1.0, shift=0.0, noise=float(step_size) / _batch(batch_size), drive=1.0)

    def decreasing_limit(self, a: Real[ArrayLike, ""], batch_size: int = 1) -> Limit:
        """`rates.exact.decreasing_limit` for these coefficients."""
        a = float(a)
        mu = float(jnp.linalg.eigvalsh(self.hessian)[0])
        if not 2.0 * a * mu > 1.0:
            raise ValueError(f"lim k·E‖e_k‖² is finite only for 2aμ > 1; got a = {a:.6g}, μ = {mu:.6g}, "
                             f"2aμ = {2 * a * mu:.6g}")
        return _stationary(self, scale=a, shift=1.0, noise=a**2 / _batch(batch_size), drive=a)

    @property
    def _n(self) -> int:
        return int(self.gradient_noise.shape[0])


def affine_dynamics(problem: Problem, theta: Real[ArrayLike, ...] | None = None, *, seed: int = 0,
                    ) -> AffineDynamics:
    """The coefficients of the exact moment recursion of `problem` at `θ` (default `theta0`).

    Everything is obtained from `problem.loss` on one-sample batches by automatic
    differentiation at x*, and from `problem.solution`, `problem.solution_jacobian`.

    **Raises:** `NotAffineError` if a per-sample Hessian changes between x* and a second point
    by more than `AFFINE_TOLERANCE` relative (the module docstring); `seed` draws that point.
    """
    theta = problem.check_theta(problem.theta0 if theta is None else theta)
    x_star = problem.solution(theta)
    jac_star = problem.solution_jacobian(theta)
    scale = 1.0 + float(jnp.linalg.norm(x_star))
    probe = x_star + scale * jax.random.normal(jax.random.key(seed), x_star.shape, jnp.float64)
    parts = _per_sample(problem, theta, x_star, jac_star, probe)
    hessians, hessians_elsewhere = parts["hessians"], parts["hessians_elsewhere"]
    size = float(jnp.max(jnp.abs(hessians)))
    change = float(jnp.max(jnp.abs(hessians - hessians_elsewhere)))
    if change > AFFINE_TOLERANCE * max(size, np.finfo(np.float64).tiny):
        name = getattr(problem, "name", type(problem).__name__)
        raise NotAffineError(
            f"exact moments need per-sample gradients affine in x, but the per-sample Hessians of {name} "
            f"change by {change / size:.3g} (relative to their largest entry) between x* and a point at distance "
            f"~{scale:.3g} from it (tolerance {AFFINE_TOLERANCE:g}); use rates.error_curves instead"
        )
    mean_hessian = hessians.mean(0)
    couplings = parts["couplings"]
    mean_coupling = couplings.mean(0)
    deviations = hessians - mean_hessian
    coupling_deviations = couplings - mean_coupling
    d = problem.dim
    noise_operator = d <= OPERATOR_MAX_DIM
    # vec(ΔH X ΔH) = (ΔH ⊗ ΔH) vec X for symmetric ΔH (row-major vec).
    noise_matrix = (jnp.einsum("iab,icd->acbd", deviations, deviations).reshape(d * d, d * d) / deviations.shape[0]
                    if noise_operator else jnp.zeros((1, 1)))
    z, Z = parts["gradients"], parts["jacobian_terms"]
    n = z.shape[0]
    return AffineDynamics(
        hessian=0.5 * (mean_hessian + mean_hessian.T),
        gradient_covariance=z.T @ z / n,
        jacobian_covariance=jnp.einsum("iaj,ibj->ab", Z, Z) / n,
        cross_covariance=jnp.einsum("iaj,ib->jab", Z, z) / n,
        hessian_gradient=(jnp.einsum("iac,ib->acb", deviations, z) / n) if noise_operator else jnp.zeros((1,) * 3),
        jacobian_hessian=(jnp.einsum("iaj,icb->jacb", Z, deviations) / n) if noise_operator else jnp.zeros((1,) * 4),
        gradient_noise=z,
        jacobian_noise=Z,
        coupling=mean_coupling,
        hessian_deviations=deviations,
        coupling_deviations=coupling_deviations,
        noise_matrix=noise_matrix,
        x_star=x_star,
        jac_star=jac_star,
        coupled=bool(jnp.any(couplings != 0)),
        random_coupling=bool(jnp.any(coupling_deviations != 0)),
        noise_operator=noise_operator,
    )


@jax.jit
def _per_sample(problem, theta, x_star, jac_star, probe):
    def per_sample_loss(x, theta_, sample):
        return problem.loss(x, theta_, jax.tree.map(lambda leaf: leaf[None], sample))

    gradient = jax.grad(per_sample_loss)
    hessian = jax.hessian(per_sample_loss)

    def one(sample):
        g, push = jax.linearize(lambda x, t: gradient(x, t, sample), x_star, theta)
        jacobian_term = jax.vmap(push, out_axes=1)(jac_star.T, jnp.eye(theta.shape[0]))  # (d, p)
        h = hessian(x_star, theta, sample)
        coupling = jnp.moveaxis(jax.jacfwd(hessian, argnums=1)(x_star, theta, sample), -1, 0)  # (p, d, d)
        return dict(gradients=g, jacobian_terms=jacobian_term, hessians=0.5 * (h + h.T),
                    hessians_elsewhere=hessian(probe, theta, sample), couplings=coupling)

    return lax.map(one, problem.data)


@pytree_dataclass
class ExactMoments:
    """The moments of the errors after k steps: `m = E e`, `N = E E` (d, p), `P = E eeᵀ`,
    `C[j] = E Eⱼeᵀ` (p, d, d; zeros and unused without coupling), `Q = E EEᵀ`."""

    m: Float[Array, " d"]
    N: Float[Array, "d p"]
    P: Float[Array, "d d"]
    C: Float[Array, "p d d"]
    Q: Float[Array, "d d"]

    @classmethod
    def start(cls, dynamics: AffineDynamics, x_init: Float[Array, " d"]) -> ExactMoments:
        """The deterministic start `x₀ = x_init`, `J₀ = 0`."""
        e = x_init - dynamics.x_star
        errors = -dynamics.jac_star
        return cls(m=e, N=errors, P=jnp.outer(e, e), C=jnp.einsum("aj,b->jab", errors, e), Q=errors @ errors.T)

    def statistics(self, dynamics: AffineDynamics) -> Float[Array, " 3"]:
        """`E‖e‖²`, `E‖E‖²_F` and `E[F(x) − F*] = ½ tr(H̄P)` (F is quadratic)."""
        return jnp.stack([jnp.trace(self.P), jnp.trace(self.Q), 0.5 * jnp.sum(dynamics.hessian * self.P)])

    def step(self, dynamics: AffineDynamics, alpha: Float[Array, ""], inverse_batch: Float[Array, ""],
             ) -> ExactMoments:
        """The moments after one step of size α with batches of `1/inverse_batch` samples
        (`inverse_batch = 0`: full batch). The terms are those of `docs/theory.md`."""
        d = dynamics
        m, N, P, C, Q = self.m, self.N, self.P, self.C, self.Q
        contraction = jnp.eye(d.dim) - alpha * d.hessian
        noise_scale = alpha**2 * inverse_batch

        hessian_noise = d.hessian_noise(jnp.concatenate([P[None], Q[None], C], axis=0) if d.coupled
                                        else jnp.stack([P, Q]))
        # E[εεᵀ]·b = mean ΔHPΔH + ΔHm zᵀ + z mᵀΔH + zzᵀ.
        cross_e = d.hessian_times_mean(m)
        noise_ee = hessian_noise[0] + cross_e + cross_e.T + d.gradient_covariance
        P_next = contraction @ P @ contraction + noise_scale * noise_ee
        # Σⱼ E[ΕⱼΕⱼᵀ]·b = mean ΔHQΔH + Σⱼ (ΔHNⱼZⱼᵀ + ZⱼNⱼᵀΔH + ZⱼZⱼᵀ) (+ random-coupling terms).
        cross_E, cross_Ee = d.hessian_times_jacobian_mean(N)
        noise_EE = hessian_noise[1] + cross_E + cross_E.T + d.jacobian_covariance
        Q_next = contraction @ Q @ contraction + noise_scale * noise_EE
        N_next = contraction @ N
        C_next = C
        if d.coupled:
            G = d.coupling
            G_m = jnp.einsum("jab,b->aj", G, m)
            N_next = N_next - alpha * G_m
            C_contracted = jnp.einsum("ab,jbc->jac", contraction, C)
            G_P = jnp.einsum("jab,bc->jac", G, P)
            C_G = jnp.einsum("jab,jbc->ac", C_contracted, G)   # Σⱼ ÃCⱼḠⱼ
            Q_next = Q_next - alpha * (C_G + C_G.T) + alpha**2 * jnp.einsum("jab,bc,jdc->ad", G, P, G)
            # E[Εⱼεᵀ]·b = mean ΔHCⱼΔH + ZⱼmᵀΔH + ΔHNⱼzᵀ + Zⱼzᵀ (+ random-coupling terms).
            noise_Ee = hessian_noise[2:] + d.jacobian_times_mean(m) + cross_Ee + d.cross_covariance
            if d.random_coupling:
                z, Z, dH, n = d.gradient_noise, d.jacobian_noise, d.hessian_deviations, d._n
                dG = d.coupling_deviations
                dG_m = jnp.einsum("ijab,b->ija", dG, m)
                dG_P = jnp.einsum("ijab,bc->ijac", dG, P)
                noise_Ee = noise_Ee + (jnp.einsum("ijac,icb->jab", dG_P, dH)
                                       + jnp.einsum("ija,ib->jab", dG_m, z)) / n
                # Σⱼ mean ΔGⱼPΔGⱼ + (ΔHCⱼΔGⱼ + ΔGⱼmZⱼᵀ + their transposes).
                dH_C = jnp.einsum("iab,jbc->ijac", dH, C)
                cross = jnp.einsum("ijab,ijcb->ac", dH_C, dG) + jnp.einsum("ija,ibj->ab", dG_m, Z)
                coupling_noise = (jnp.einsum("ijab,ijcb->ac", dG_P, dG) + cross + cross.T) / n
                Q_next = Q_next + noise_scale * coupling_noise
            C_next = (jnp.einsum("jab,bc->jac", C_contracted, contraction)
                      - alpha * jnp.einsum("jac,cb->jab", G_P, contraction)
                      + noise_scale * noise_Ee)
        return ExactMoments(m=contraction @ m, N=N_next, P=P_next, C=C_next, Q=Q_next)


def exact_curves(
    problem: Problem,
    theta: Real[ArrayLike, ...] | None = None,
    *,
    step_size: StepSize,
    num_steps: int,
    batch_size: int | None = 1,
    num_checkpoints: int = 32,
    x_init: Float[ArrayLike, " d"] | None = None,
    every_step: bool = False,
) -> Curves:
    """The exact expectations of the curves of `rates.error_curves`, with no seeds.

    `E‖xₖ − x*‖²`, `E‖Jₖ − J*‖²_F` and `E[F(xₖ) − F*]` at the same checkpoints as
    `error_curves` (standard errors zero, `num_seeds=None`), by the moment recursion of the
    module docstring, run under `jit` in a loop over steps that records at the checkpoints.

    **Arguments:** as `rates.error_curves` (`batch_size=None`: full-batch gradient descent),
    without seeds or key; `every_step=True` records every step `0, 1, …, num_steps` instead
    of the log-spaced checkpoints (what a search for the first step where a bound fails
    needs, `rates.claims.falsify`).

    **Cost.** The recursion carries n = d + dp + d(d + 1) + pd² numbers (`state_size`: m, N,
    the upper triangles of P and Q, and the Cⱼ; without coupling — least squares, any problem
    whose Hessians do not depend on θ — no Cⱼ). For n ≤ `DENSE_MAX_STATE` it runs as
    `MomentOperator`: at most two n×n matrix–vector products a step (`SlabOperator`: only
    their nonzero blocks), and for a constant step O(n³·log K) in all (binary powers of the
    step's matrix, then at most log₂K products per checkpoint). Larger states take the
    structured step: O((p + 2)·d⁴) per step for d ≤ `OPERATOR_MAX_DIM` (the stored
    Hessian-noise operator), else O((p + 2)·N·d³) for N samples.

    **Raises:** `NotAffineError` for a problem whose per-sample gradients are not affine in
    x; as `error_curves` for bad arguments; `DivergenceError` if the moments become infinite.
    """
    # No randomness is used; check_run's key argument is only validated.
    theta, _, schedule, x_init = check_run(problem, problem.theta0 if theta is None else theta, jax.random.key(0),
                                           step_size, num_steps, batch_size, x_init, stacklevel=3)
    check_count(num_checkpoints, "num_checkpoints", minimum=2)
    dynamics = affine_dynamics(problem, theta)
    try:
        return moment_curves(dynamics, step_size=schedule, num_steps=num_steps, batch_size=batch_size,
                             num_checkpoints=num_checkpoints, x_init=x_init, every_step=every_step)
    except FloatingPointError as error:
        raise divergence_error(problem, theta, schedule, f"in expectation {error}") from None


def moment_curves(dynamics: AffineDynamics, *, step_size: StepSize, num_steps: int, batch_size: int | None = 1,
                  num_checkpoints: int = 32, x_init: Float[ArrayLike, " d"] | None = None,
                  every_step: bool = False) -> Curves:
    """`exact_curves` for given coefficients: what `affine_dynamics` returns, or a variant of
    them (`AffineDynamics.with_noise_scaled`, to ask what a verdict would see if a noise
    constant were different).

    **Raises:** `FloatingPointError` naming the first checkpoint whose moments are not finite.
    """
    return moment_curves_batch([dynamics], step_sizes=[step_size], num_steps=num_steps, batch_size=batch_size,
                               num_checkpoints=num_checkpoints, x_init=x_init, every_step=every_step)[0]


def moment_curves_batch(dynamics: Sequence[AffineDynamics], *, step_sizes: Sequence[StepSize], num_steps: int,
                        batch_size: int | None = 1, num_checkpoints: int = 32,
                        x_init: Float[ArrayLike, " d"] | None = None, every_step: bool = False) -> list[Curves]:
    """`moment_curves` for several runs of the same shapes at once, one per pair of
    `dynamics[i]` (variants of one problem's coefficients, `AffineDynamics.with_noise_scaled`)
    and `step_sizes[i]` (schedules of one kind), in one compiled loop: a small moment state
    costs a step mostly in loop overhead, which the runs then share.

    **Raises:** `ValueError` for sequences of different lengths or runs of different
    shapes; `FloatingPointError` as `moment_curves`.
    """
    dynamics, schedules = list(dynamics), [as_schedule(step) for step in step_sizes]
    if len(dynamics) != len(schedules) or not dynamics:
        raise ValueError(f"need one step size per dynamics, got {len(dynamics)} dynamics and "
                         f"{len(schedules)} step sizes")
    try:
        stacked_dynamics, stacked_schedules = (jax.tree.map(lambda *leaves: jnp.stack(leaves), *runs)
                                               for runs in (dynamics, schedules))
    except ValueError as error:
        raise ValueError(f"the runs of a batch must have the same shapes and kinds of schedule: {error}") from None
    num_steps = check_count(num_steps, "num_steps", minimum=0)
    check_count(num_checkpoints, "num_checkpoints", minimum=2)
    x_init = jnp.zeros(dynamics[0].dim) if x_init is None else jnp.asarray(x_init, jnp.float64)
    steps = np.arange(num_steps + 1) if every_step else checkpoints(num_steps, num_checkpoints)
    lengths = np.diff(steps, prepend=0)
    inverse_batch = jnp.asarray(0.0 if batch_size is None else 1.0 / check_count(batch_size, "batch_size"))
    segment_lengths = jnp.asarray(lengths, dtype=jnp.int64)
    dense = state_size(dynamics[0]) <= DENSE_MAX_STATE
    if dense and not isinstance(schedules[0], Constant):
        values = _slab_batch(stacked_dynamics, stacked_schedules, x_init, segment_lengths, inverse_batch)
    else:
        values = _exact_batch(stacked_dynamics, stacked_schedules, x_init, segment_lengths, inverse_batch,
                              max_bits=-(-max(1, int(lengths.max()).bit_length()) // 8) * 8, dense=dense)
    values = np.asarray(values)
    zeros = np.zeros(len(steps))
    curves = []
    for run in values:
        nonfinite = ~np.all(np.isfinite(run), axis=1)
        if nonfinite.any():
            raise FloatingPointError(f"from the checkpoint k = {int(steps[np.argmax(nonfinite)])} on")
        curves.append(Curves(steps=steps, **{name: run[:, i] for i, name in enumerate(STATISTICS)},
                             **{f"{name}_se": zeros for name in STATISTICS}, num_seeds=None, batch_size=batch_size))
    return curves


def _state_parts(dynamics: AffineDynamics) -> tuple[str, ...]:
    """The moments that move: `C` only with coupling (without it, it stays zero and unused)."""
    return ("m", "N", "P", "C", "Q") if dynamics.coupled else ("m", "N", "P", "Q")


# P = E eeᵀ and Q = E EEᵀ are symmetric: the flat state holds their upper triangles, which the
# step maps to symmetric matrices again, so the operator acts on d(d + 1)/2 numbers each.
_SYMMETRIC = ("P", "Q")


def _flatten(moments: ExactMoments, parts: tuple[str, ...]) -> Float[Array, " n"]:
    def flat(name):
        value = getattr(moments, name)
        return value[jnp.triu_indices(value.shape[0])] if name in _SYMMETRIC else value.reshape(-1)

    return jnp.concatenate([flat(name) for name in parts])


def _unflatten(state: Float[Array, " n"], template: ExactMoments, parts: tuple[str, ...]) -> ExactMoments:
    values, offset = {}, 0
    for name in parts:
        shape = getattr(template, name).shape
        if name in _SYMMETRIC:
            rows, columns = jnp.triu_indices(shape[0])
            size = rows.shape[0]
            upper = jnp.zeros(shape, state.dtype).at[rows, columns].set(state[offset:offset + size])
            values[name] = upper + jnp.triu(upper, 1).T
        else:
            size = math.prod(shape)
            values[name] = state[offset:offset + size].reshape(shape)
        offset += size
    return dataclasses.replace(template, **values)


@pytree_dataclass
class MomentOperator:
    """The moment recursion as matrices: with the moments flattened into one vector s (m, N,
    P, C, Q in that order; C only with coupling; of the symmetric P and Q their upper
    triangles), a step of size α is

        s′ = s + α·(A s) + α²·(B s + c)

    exactly (`ExactMoments.step` is affine in the moments and a polynomial of degree 2 in α:
    the contraction I − αH̄ appears at most twice in a term, the noise with α²/b). `linear` A,
    `quadratic` B (n, n) and `drive` c are its Taylor coefficients in α, taken by automatic
    differentiation of the step itself, so they are the step's own arithmetic. A state of
    n ≤ `DENSE_MAX_STATE` numbers then moves by the nonzero blocks of two matrix–vector
    products a step (`SlabOperator`), and a constant step by matrix powers (`_powers`)."""

    linear: Float[Array, "n n"]
    quadratic: Float[Array, "n n"]
    drive: Float[Array, " n"]

    def step(self, state: Float[Array, " n"], alpha: Float[Array, ""]) -> Float[Array, " n"]:
        return state + alpha * (self.linear @ state) + alpha**2 * (self.quadratic @ state + self.drive)

    def matrix(self, alpha: Float[Array, ""]) -> Float[Array, "m m"]:
        """The step of size α as one matrix acting on `(s, 1)` (m = n + 1)."""
        n = self.drive.shape[0]
        top = jnp.concatenate([jnp.eye(n) + alpha * self.linear + alpha**2 * self.quadratic,
                               (alpha**2 * self.drive)[:, None]], axis=1)
        return jnp.concatenate([top, jnp.eye(1, n + 1, n)], axis=0)


def moment_operator(dynamics: AffineDynamics, inverse_batch: Float[ArrayLike, ""],
                    template: ExactMoments) -> MomentOperator:
    """The `MomentOperator` of `dynamics` with batches of `1/inverse_batch` samples."""
    parts = _state_parts(dynamics)
    inverse_batch = jnp.asarray(inverse_batch, jnp.float64)

    def step(state, alpha):
        return _flatten(_unflatten(state, template, parts).step(dynamics, alpha, inverse_batch), parts)

    zero_state = jnp.zeros_like(_flatten(template, parts))
    zero = jnp.asarray(0.0)
    slope = jax.jacfwd(step, argnums=1)                    # A s + 2α(B s + c)
    curvature = jax.jacfwd(slope, argnums=1)               # 2(B s + c)
    return MomentOperator(linear=jax.jacfwd(slope)(zero_state, zero),
                          quadratic=0.5 * jax.jacfwd(curvature)(zero_state, zero),
                          drive=0.5 * curvature(zero_state, zero))


def _powers(matrix: Float[Array, "n n"], count: int) -> Float[Array, "count n n"]:
    """`matrix^(2^j)` for j < count, by repeated squaring."""
    def square(power, _):
        return power @ power, power

    return lax.scan(square, matrix, None, length=count)[1]


def state_size(dynamics: AffineDynamics) -> int:
    """How many numbers the moment recursion of `dynamics` carries (`MomentOperator`'s n):
    m, N, the upper triangles of P and Q, and the p matrices Cⱼ with coupling."""
    d, p = dynamics.jac_star.shape
    return d + d * p + d * (d + 1) + (p * d * d if dynamics.coupled else 0)


def _exact(dynamics: AffineDynamics, schedule: Schedule, x_init: Float[Array, " d"],
           segment_lengths: Int[Array, " C"], inverse_batch: Float[Array, ""], max_bits: int, dense: bool,
           ) -> Float[Array, "C 3"]:
    """The statistics at the checkpoints (`segment_lengths` apart) of one run: with `dense`
    (a small state and a constant step), by the binary powers of the `MomentOperator`'s
    matrix (segments of up to `2^max_bits − 1` steps, in at most `max_bits` products each);
    else by the structured step (`ExactMoments.step`). Dense runs with varying steps go
    through `_slab_batch`."""
    initial = ExactMoments.start(dynamics, x_init)
    if not dense:
        return _stepped(initial, segment_lengths, lambda alpha, moments: moments.step(dynamics, alpha, inverse_batch),
                        jax.vmap(schedule),
                        statistics=lambda moments: moments.statistics(dynamics))
    parts = _state_parts(dynamics)
    powers = _powers(moment_operator(dynamics, inverse_batch, initial).matrix(schedule(0)), max_bits)

    def segment(state, length):
        def apply(j, state_):
            return jnp.where((length >> j) & 1, powers[j] @ state_, state_)

        state = lax.fori_loop(0, max_bits, apply, state)
        return state, _unflatten(state[:-1], initial, parts).statistics(dynamics)

    start = jnp.concatenate([_flatten(initial, parts), jnp.ones(1)])
    return lax.scan(segment, start, segment_lengths)[1]


def _stepped(initial, segment_lengths, advance, step_sizes, *, statistics):
    """Step by step (`advance(α_k, state)`), `UNROLL` steps per pass of the loop, recording
    `statistics(state)` at the end of each segment. `step_sizes(ks)` gives the steps' α_k
    (a leading axis over `ks`), computed once per pass: a small state spends a step mostly
    in the calls that make it, and α_k would be one more."""
    def run(state, start, length):
        def block(i, state_):
            alphas = step_sizes(start + i * UNROLL + jnp.arange(UNROLL))
            for j in range(UNROLL):
                state_ = advance(alphas[j], state_)
            return state_

        blocks = length // UNROLL
        state = lax.fori_loop(0, blocks, block, state)
        return lax.fori_loop(start + blocks * UNROLL, start + length,
                             lambda k, state_: advance(step_sizes(k[None])[0], state_), state)

    def segment(carry, length):
        state, k = carry
        state = run(state, k, length)
        return (state, k + length), statistics(state)

    return lax.scan(segment, (initial, jnp.asarray(0, jnp.int64)), segment_lengths)[1]


@functools.partial(jax.jit, static_argnames=("max_bits", "dense"))
def _exact_batch(dynamics: AffineDynamics, schedule: Schedule, x_init: Float[Array, " d"],
                 segment_lengths: Int[Array, " C"], inverse_batch: Float[Array, ""], max_bits: int, dense: bool,
                 ) -> Float[Array, "R C 3"]:
    """The statistics of a stack of R runs (dynamics and schedules stacked along a leading
    axis), each by `_exact`. Dense runs with varying steps go through `_slab_batch`."""
    return jax.vmap(_exact, in_axes=(0, 0, None, None, None, None, None))(
        dynamics, schedule, x_init, segment_lengths, inverse_batch, max_bits, dense)


def _slab_batch(dynamics: AffineDynamics, schedule: Schedule, x_init: Float[Array, " d"],
                segment_lengths: Int[Array, " C"], inverse_batch: Float[Array, ""]) -> Float[Array, "R C 3"]:
    """R dense runs with varying steps, stepped together by their `SlabOperator`."""
    operators, initial = _stacked_operators(dynamics, x_init, inverse_batch)
    template = jax.tree.map(lambda leaf: leaf[0], initial)
    sizes = tuple(_flatten(template, (name,)).shape[0] for name in _state_parts(dynamics))
    slabs = SlabOperator.build(np.asarray(operators.linear), np.asarray(operators.quadratic), operators.drive, sizes)
    return _slab_stepped(slabs, dynamics, schedule, initial, segment_lengths)


@jax.jit
def _stacked_operators(dynamics, x_init, inverse_batch):
    initial = jax.vmap(ExactMoments.start, in_axes=(0, None))(dynamics, x_init)
    return jax.vmap(moment_operator, in_axes=(0, None, 0))(dynamics, inverse_batch, initial), initial


@jax.jit
def _slab_stepped(slabs: SlabOperator, dynamics, schedule, initial, segment_lengths) -> Float[Array, "R C 3"]:
    parts = _state_parts(dynamics)

    def step_sizes(ks):
        return jax.vmap(lambda k: jax.vmap(lambda one: one(k))(schedule))(ks)

    def statistics(states):
        return jax.vmap(lambda one, state, start: _unflatten(state, start, parts).statistics(one))(
            dynamics, states, initial)

    states = jax.vmap(_flatten, in_axes=(0, None))(initial, parts)
    return jnp.swapaxes(_stepped(states, segment_lengths, lambda alphas, states_: slabs.step(states_, alphas),
                                 step_sizes, statistics=statistics), 0, 1)


# A slab: the rows `[row_start, row_stop)` of one part of the state against the columns
# `[column_start, column_stop)`, the contiguous range of the parts those rows depend on.
Slab = tuple[int, int, int, int]


@pytree_dataclass
class SlabOperator:
    """The `MomentOperator`s of R runs of one shape, `s′ = s + α(A_r s) + α²(B_r s + c_r)`,
    stored by their nonzero blocks.

    The state's parts (m, N, P, C, Q) depend on few others: A moves each part by itself and
    the part that drives it (P by P; C by P and C; Q by C and Q), and B adds the noise
    (e.g. for ridge at d = 10, A has 4,220 nonzero entries of 52,900 and B 21,205). And the
    runs of a batch, variants of one problem's noise (`AffineDynamics.with_noise_scaled`),
    share A and all of B but a few blocks (the noise enters a step only with α², and the
    Jacobian noise only through N and m). So the operators are stored as

    - `shared`: for each part of the state (the rows of `shared_slabs`), the blocks of A₀
      and B₀ (the first run's) over the contiguous range of parts they read, transposed
      and side by side: `states[:, columns] @ shared[i]` gives that part's rows of A₀s and
      B₀s for every run at once, one read of the matrix for all R runs;
    - `differences`: the same for `A_r − A₀` and `B_r − B₀`, run by run, over the parts
      where any run differs (`difference_slabs`; none when the runs share their operators);
    - `drive`: every c_r.

    A state of at most `SINGLE_SLAB_STATE` numbers keeps one slab, the whole matrices. The
    arithmetic is that of the dense operators with the exact zeros left out (blocks of zeros
    are what automatic differentiation of the step gives for parts that do not interact), so
    the results agree with `MomentOperator.step` up to the order of summation.
    """

    shared: tuple[Float[Array, "_w _t2"], ...]   # each slab its own shape
    differences: tuple[Float[Array, "R _w _t2"], ...]
    drive: Float[Array, "R n"]
    shared_slabs: tuple[Slab, ...] = static()
    difference_slabs: tuple[Slab, ...] = static()

    @classmethod
    def build(cls, linear: np.ndarray, quadratic: np.ndarray, drive: Float[ArrayLike, "R n"],
              part_sizes: Sequence[int]) -> SlabOperator:
        """From the concrete operators of R runs, `linear` and `quadratic` (R, n, n), and the
        sizes of the state's parts in order."""
        linear, quadratic = np.asarray(linear), np.asarray(quadratic)
        n = linear.shape[-1]
        bounds = (0, n) if n <= SINGLE_SLAB_STATE else tuple(np.cumsum([0, *part_sizes]).tolist())
        linear_diff, quadratic_diff = linear - linear[:1], quadratic - quadratic[:1]

        def slabs(matrices):
            found = []
            for row in range(len(bounds) - 1):
                start, stop = bounds[row], bounds[row + 1]
                reads = [column for column in range(len(bounds) - 1)
                         if any(np.any(m[..., start:stop, bounds[column]:bounds[column + 1]]) for m in matrices)]
                if reads:
                    found.append((start, stop, bounds[reads[0]], bounds[reads[-1] + 1]))
            return tuple(found)

        def side_by_side(first, second, slab):
            start, stop, begin, end = slab
            return np.swapaxes(np.concatenate([first[..., start:stop, begin:end], second[..., start:stop, begin:end]],
                                              axis=-2), -1, -2).copy()

        shared_slabs = slabs([linear[0], quadratic[0]])
        difference_slabs = slabs([linear_diff, quadratic_diff])
        return cls(shared=tuple(jnp.asarray(side_by_side(linear[0], quadratic[0], slab)) for slab in shared_slabs),
                   differences=tuple(jnp.asarray(side_by_side(linear_diff, quadratic_diff, slab))
                                     for slab in difference_slabs),
                   drive=jnp.asarray(drive), shared_slabs=shared_slabs, difference_slabs=difference_slabs)

    def step(self, states: Float[Array, "R n"], alphas: Float[Array, " R"]) -> Float[Array, "R n"]:
        """One step of every run, run r with step `alphas[r]`."""
        linear, quadratic, filled = [], [], 0
        for (start, stop, begin, end), matrix in zip(self.shared_slabs, self.shared):
            if start > filled:     # rows that no part moves
                linear.append(jnp.zeros_like(states[:, filled:start]))
                quadratic.append(linear[-1])
            both = states[:, begin:end] @ matrix
            linear.append(both[:, :stop - start])
            quadratic.append(both[:, stop - start:])
            filled = stop
        if filled < states.shape[1]:
            linear.append(jnp.zeros_like(states[:, filled:]))
            quadratic.append(linear[-1])
        linear, quadratic = jnp.concatenate(linear, axis=1), jnp.concatenate(quadratic, axis=1)
        for (start, stop, begin, end), matrices in zip(self.difference_slabs, self.differences):
            both = jnp.einsum("rj,rjk->rk", states[:, begin:end], matrices)
            linear = linear.at[:, start:stop].add(both[:, :stop - start])
            quadratic = quadratic.at[:, start:stop].add(both[:, stop - start:])
        alphas = alphas[:, None]
        return states + alphas * linear + alphas**2 * (quadratic + self.drive)


@dataclasses.dataclass(frozen=True)
class Limit:
    """A limit of the exact curves: `iterate` for `E‖e‖²`, `jacobian` for `E‖E‖²_F`, and
    `suboptimality` for `E[F − F*]`, each as a number (see the function that returns it)."""

    iterate: float
    jacobian: float
    suboptimality: float


def first_order_plateau(problem: Problem, theta: Real[ArrayLike, ...] | None = None, *,
                        step_size: Real[ArrayLike, ""], batch_size: int = 1) -> Limit:
    """The noise ball of constant steps α to first order in α: `lim_k E‖eₖ‖² = u₁α + O(α²)`, …

    **Theorem** (`docs/theory.md`, "The plateau to first order in α"). For gradients affine in
    x and a constant step α with `αL < 2`, the moments converge to the fixed point of the exact
    recursion; writing `P = αP₁ + O(α²)` (and likewise C, Q), the terms of order α give

        H̄P₁ + P₁H̄ = Σ_z/b,   H̄C₁ⱼ + C₁ⱼH̄ = −ḠⱼP₁ + Ξⱼ/b,   H̄Q₁ + Q₁H̄ = −Σⱼ(C₁ⱼḠⱼ + ḠⱼC₁ⱼᵀ) + Σ_J/b,

    with `Σ_z = mean zzᵀ` (trace σ²), `Ξⱼ = mean Zⱼzᵀ`, `Σ_J = Σⱼ mean ZⱼZⱼᵀ` (trace σ_J²). Without
    coupling (Ḡ = 0), `tr P₁ = tr(H̄⁻¹Σ_z)/(2b)` and `tr Q₁ = tr(H̄⁻¹Σ_J)/(2b)`.

    **Returns:** a `Limit` holding `α·tr P₁`, `α·tr Q₁` and `½α·tr(H̄P₁)`.
    """
    return affine_dynamics(problem, theta).first_order_plateau(step_size, batch_size)


def decreasing_limit(problem: Problem, theta: Real[ArrayLike, ...] | None = None, *, a: Real[ArrayLike, ""],
                     batch_size: int = 1) -> Limit:
    """`lim_k k·E‖eₖ‖²` (and the same for the derivative and the suboptimality) for the steps
    `αₖ = a/(k + k0)`, any k0.

    **Theorem** (`docs/theory.md`, "Decreasing steps: exact rates"). For gradients affine in x
    and `2aμ > 1`, `Pₖ = X/k + o(1/k)` (and `Cⱼ = Yⱼ/k`, `Q = Z/k`) where

        a(H̄X + XH̄) − X = a²Σ_z/b,   a(H̄Yⱼ + YⱼH̄) − Yⱼ = −aḠⱼX + a²Ξⱼ/b,
        a(H̄Z + ZH̄) − Z = −aΣⱼ(YⱼḠⱼ + ḠⱼYⱼᵀ) + a²Σ_J/b,

    each solvable since every `a(λᵢ + λⱼ) − 1 ≥ 2aμ − 1 > 0`.

    The approach is slow with coupling: the start and the early noise leave terms of relative
    size `O(log²k · k^(1−2aμ))`, and `O(log k/k)` from the steps' offset (measured on ridge
    at aμ = 2: `K·E‖E_K‖²_F` is 2.4% above the limit at K = 7·10⁵, 0.25% at 10⁷).

    **Raises:** `ValueError` unless `2aμ > 1` (below it the rate is slower than 1/k).
    """
    return affine_dynamics(problem, theta).decreasing_limit(a, batch_size)


def _batch(batch_size: int) -> int:
    return check_count(batch_size, "batch_size")


def _stationary(dynamics: AffineDynamics, *, scale: float, shift: float, noise: float, drive: float) -> Limit:
    """Solve `s(H̄X + XH̄) − tX = R` for the three moments (s = `scale`, t = `shift`), with the
    noise terms weighted by `noise` and the coupling by `drive`; return the traces."""
    eigenvalues, basis = (np.asarray(part) for part in jnp.linalg.eigh(dynamics.hessian))
    denominator = scale * (eigenvalues[:, None] + eigenvalues[None, :]) - shift

    def solve(right):
        rotated = basis.T @ right @ basis
        return basis @ (rotated / denominator) @ basis.T

    coupling = np.asarray(dynamics.coupling)
    P = solve(noise * np.asarray(dynamics.gradient_covariance))
    C = [solve(-drive * G @ P + noise * cross) for G, cross in zip(coupling, np.asarray(dynamics.cross_covariance))]
    coupled = sum((Cj @ G + G @ Cj.T for Cj, G in zip(C, coupling)), np.zeros_like(P))
    Q = solve(-drive * coupled + noise * np.asarray(dynamics.jacobian_covariance))
    hessian = np.asarray(dynamics.hessian)
    return Limit(iterate=float(np.trace(P)), jacobian=float(np.trace(Q)),
                 suboptimality=0.5 * float(np.sum(hessian * P)))


__all__ = [
    "AffineDynamics",
    "ExactMoments",
    "Limit",
    "MomentOperator",
    "NotAffineError",
    "SlabOperator",
    "affine_dynamics",
    "decreasing_limit",
    "exact_curves",
    "first_order_plateau",
    "moment_curves",
    "moment_curves_batch",
    "moment_operator",
    "state_size",
]
