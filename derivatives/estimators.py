"""Gradient estimators for the ELBO of programs with if-statements.

For a `problems.programs.Program` with mean-field family `q_θ` (`z = T_θ(ε) = m + σ ⊙ ε`,
`σ = softplus(ρ)`, `ε ∼ N(0, I)`) and objective `f(θ, z) = log p(z) − log q_θ(z)`, each
estimator returns single-sample estimates `ĝ` of `∇θ ELBO(θ) = ∇θ E_{z∼q_θ}[f(θ, z)]`,
the ascent direction:

| estimator | single-sample estimate | unbiased for | variance |
|---|---|---|---|
| `"score"` | `f ∇θ log q_θ(z) + ∇θ f(θ, z)`, `z ∼ q_θ` fixed | `∇θ ELBO` | high: grows with `f²` |
| `"reparam"` | `∇θ f(θ, T_θ(ε))`, crisp | `∇θ ELBO` only without jumps | low |
| `"lyy18"` | reparam`(ε)` + `K · t_k(z′)` | `∇θ ELBO`, but see `boundary` | reparam + boundary term |
| `"smoothed"` | `∇θ f_η(θ, T_θ(ε))` | `∇θ E[f_η]`, not `∇θ ELBO` | `O(η^−ℓ)`, ℓ = nesting depth |

Randomness (the same for every estimator): sample `b` uses
`key_b = jax.random.split(key, num_samples)[b]`, split once more into `(key_ε, key_boundary)`;
`ε = jax.random.normal(key_ε, (d,))` is the noise of score, reparam and smoothed and of the
reparameterisation term of lyy18, so the estimators share random numbers for the same key.
One function draws it (`_sample_noise`), for the estimators and for `base_noise`, which
returns it. lyy18 draws `z′` and the if number `k` from `key_boundary`.

References: W. Lee, H. Yu, H. Yang, *Reparameterization Gradient for Non-differentiable
Models*, NeurIPS 2018 (LYY18). D. Wagner, B. Khajwal, C.-H. L. Ong, *Diagonalisation SGD:
Fast & Convergent SGD for Non-Differentiable Models via Reparameterisation and Smoothing*,
AISTATS 2024, arXiv:2402.11752 (DSGD).
"""

from __future__ import annotations

import functools
import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike
from jaxtyping import Array, Float, Real

from problems.programs.program import Program
from problems.validation import CountLike, KeyLike, as_key, check_count, concrete, require_x64

ESTIMATORS = ("score", "reparam", "lyy18", "smoothed")
BOUNDARY_VARIANTS = ("sample", "projected")


def gradient_samples(
    program: Program | Any,
    theta: Real[ArrayLike, ...],
    key: KeyLike,
    estimator: str = "score",
    num_samples: CountLike = 16,
    eta: Real[ArrayLike, ...] | None = None,
    *,
    boundary: str = "sample",
) -> Float[Array, "num_samples p"]:
    """`num_samples` independent single-sample estimates of `∇θ ELBO(θ)`.

    - **score** (REINFORCE, no baseline): `ĝ = f(θ, z) ∇θ log q_θ(z) + ∇θ f(θ, z)|_z`,
      `z = T_θ(ε)` held fixed, crisp `f`, both gradients by `jax.grad`. Since log p does
      not depend on θ this equals `(f(θ, z) − 1) ∇θ log q_θ(z)`. Unbiased for `∇θ ELBO`
      whatever the program; high variance, of the order of `E[f²]`.
    - **reparam**: `ĝ = ∇θ f(θ, T_θ(ε))` through the crisp program, each if differentiated
      as the branch it takes. Low variance, but it ignores the movement of the boundaries
      `{g_k = 0}`, so it is biased for programs whose value jumps there (it is unbiased
      for `E_ε[∇θ f]`, not for `∇θ E_ε[f]`).
    - **smoothed**: `ĝ = ∇θ f_η(θ, T_θ(ε))` through the program with every if replaced by
      `σ_η(g)A + (1 − σ_η(g))B`. Unbiased for `∇θ E[f_η]` (the smoothed ELBO, whose
      gradient tends to `∇θ ELBO` as η → 0), not for `∇θ ELBO`. Its variance grows like
      `O(η^−ℓ)` as η → 0, ℓ the nesting depth (`program.nesting_depth`): one factor
      `σ_η' = O(1/η)` per link of a chain of guards (certified as `if_statement_variance`,
      ℓ = 1, and `nested_if_variance` in `proofs_check/smoothing.py`). With a constant η
      this is DSGD's "Fixed" estimator; with `η_k` from an accuracy schedule, "DSGD":
      `eta` may be a traced scalar (under `jit`, `vmap`, `lax.scan`).
    - **lyy18**: `ĝ = ĝ_reparam(ε) + K · t_k(z′)` with `z′ ∼ q_θ` independent of `ε`, `k`
      uniform in `{0, …, K−1}`, and the boundary term of if `k` (guard `a_k·z − c_k`,
      solved for coordinate `j = j_k`):

          z*   = z′ with z*_j = (c_k − Σ_{i≠j} a_{k,i} z′_i) / a_{k,j}   (on the boundary)
          w    = N(z*_j; m_j, σ_j)                     (the fixed N(m, σ) for a fixed coordinate)
          Δ    = f^{k→then}(θ, z*) − f^{k→else}(θ, z*)   (the jump; 0 off the executed path)
          n_i  = −a_{k,i} σ_i / |a_{k,j}|
          V    = ∂ε(θ; z)/∂θ, ε_i(θ; z) = (z_i − m_i)/σ_i   (|θ| × d; zero columns for fixed coordinates)
          t_k  = Δ · w · V n:
                 t_k[m_i] = Δ w a_{k,i}/|a_{k,j}|,   t_k[ρ_i] = Δ w (a_{k,i}/|a_{k,j}|) ε_i s(ρ_i)

      `boundary` says where `V` (the `ε_i` in the ρ-components) is evaluated:

      - `"sample"` (default; the DSGD repository's version, the primary specification):
        at the unprojected `z′`. This is biased in the `ρ_j` components: `ε′_j` is
        independent of `z*`, `Δ` and `w`, so the term has mean 0 where the correct mean is
        `Σ_{k: j_k = j} E[Δ_k w_k sign(a_{k,j}) ε*_{k,j}] s(ρ_j)`, `ε*_j = (z*_j − m_j)/σ_j`
        (e.g. for `f = 1[z ≥ 0]` in one dimension, `d/dσ Φ(m/σ) = −φ(m/σ) m/σ²` is
        missed). The `m` components and the `ρ_i` with `i ≠ j_k` are unbiased.
      - `"projected"` (the LYY18 paper's version): at the boundary point `z*`. Unbiased
        in every component.

      Both assume that no two ifs share a boundary hyperplane: at `z*` every other if
      follows its guard, and one whose guard is also 0 there takes its then-branch, so
      the jumps of coinciding boundaries (e.g. `if g then (if g then A else B) else C`)
      are not split correctly.

      Needs affine guards (`program.affine`); with `K = 0` it is reparam. Its variance
      is that of reparam plus that of `K t_k`, which grows with K (subsampling of ifs).

    **Arguments:**

    - `program`: a `problems.programs.Program` (static under `jit`).
    - `theta`: the variational parameters, shape `(program.num_params,)`.
    - `key`: a JAX PRNG key.
    - `estimator`: one of `ESTIMATORS`.
    - `num_samples`: a positive integer.
    - `eta`: the accuracy coefficient, a scalar > 0; required by `"smoothed"` and ignored
      by the others. Checked when concrete; may be traced.
    - `boundary`: one of `BOUNDARY_VARIANTS`, used by `"lyy18"`.

    **Returns:** shape `(num_samples, program.num_params)`; row `b` depends on `key` only
    through `jax.random.split(key, num_samples)[b]`.

    Works under `jit` (with `program`, `estimator`, `num_samples`, `boundary` static) and
    `vmap` (over `theta`, `key` or `eta`); the samples are computed by `vmap`.
    """
    theta, key, eta = _check_estimator_arguments(program, theta, key, estimator, num_samples, eta, boundary)
    return _gradient_samples(program, theta, key, eta, estimator=estimator, num_samples=num_samples,
                             boundary=boundary)


def estimate_gradient(
    program: Program | Any,
    theta: Real[ArrayLike, ...],
    key: KeyLike,
    estimator: str = "score",
    num_samples: CountLike = 16,
    eta: Real[ArrayLike, ...] | None = None,
    *,
    boundary: str = "sample",
) -> Float[Array, " p"]:
    """The mean of `num_samples` independent single-sample estimates of `∇θ ELBO(θ)`
    (`gradient_samples`, whose docstring defines the estimators): the update direction
    of one step of stochastic gradient ascent on the ELBO.

    **Returns:** shape `(program.num_params,)`, the shape of `theta`.
    """
    return jnp.mean(gradient_samples(program, theta, key, estimator, num_samples, eta, boundary=boundary),
                    axis=0)


def base_noise(program: Program, key: KeyLike, num_samples: CountLike) -> Float[Array, "num_samples d"]:
    """The `ε` behind each row of `gradient_samples(program, θ, key, …, num_samples)`:
    the noise of score, reparam and smoothed and of the reparameterisation term of
    lyy18, drawn by the function the estimators call. `z = program.family.sample(θ, ε)`
    is the sample those rows use.

    **Returns:** shape `(num_samples, program.dim)`.
    """
    require_x64()
    num_samples = check_count(num_samples, "num_samples")
    keys = jax.random.split(as_key(key), num_samples)
    return jax.vmap(lambda key_b: _sample_noise(program, key_b)[0])(keys)


# --- checks -------------------------------------------------------------------------------

def _check_estimator_arguments(program, theta, key, estimator, num_samples, eta, boundary):
    require_x64()
    if not isinstance(program, Program):
        raise TypeError(f"program must be a problems.programs.Program, got {type(program).__name__}")
    if estimator not in ESTIMATORS:
        raise ValueError(f"estimator must be one of {ESTIMATORS}, got {estimator!r}")
    if boundary not in BOUNDARY_VARIANTS:
        raise ValueError(f"boundary must be one of {BOUNDARY_VARIANTS}, got {boundary!r}")
    check_count(num_samples, "num_samples")
    theta = jnp.asarray(theta)
    if theta.shape != (program.num_params,):
        raise ValueError(f"theta must have shape ({program.num_params},) for program {program.name!r} "
                         f"(its variational parameters), got shape {theta.shape}")
    if not (jnp.issubdtype(theta.dtype, jnp.floating) or jnp.issubdtype(theta.dtype, jnp.integer)):
        raise ValueError(f"theta must hold real numbers, got dtype {theta.dtype}")
    theta = theta.astype(jnp.float64)
    values = concrete(theta)
    if values is not None and not np.all(np.isfinite(values)):
        raise ValueError(f"theta must be finite, got {values}")
    if estimator == "lyy18" and not program.affine:
        raise ValueError(f"estimator 'lyy18' needs every guard affine in z (g = a·z − c), but program "
                         f"{program.name!r} has guards that are not affine; use 'score' or 'smoothed'")
    key = as_key(key)
    if estimator != "smoothed":
        return theta, key, None
    return theta, key, _check_eta(eta)


def _check_eta(eta):
    if eta is None:
        raise ValueError("eta must be given for estimator 'smoothed': the accuracy coefficient, "
                         "a finite scalar > 0")
    eta = jnp.asarray(eta)
    if eta.shape != () or not (jnp.issubdtype(eta.dtype, jnp.floating) or jnp.issubdtype(eta.dtype, jnp.integer)):
        raise ValueError(f"eta must be a real scalar > 0, got dtype {eta.dtype} and shape {eta.shape}")
    eta = eta.astype(jnp.float64)
    value = concrete(eta)
    if value is not None and not (math.isfinite(float(value)) and float(value) > 0):
        raise ValueError(f"eta must be a finite scalar > 0 (the accuracy coefficient), got {float(value)}")
    return eta


# --- the estimators -----------------------------------------------------------------------

@functools.partial(jax.jit, static_argnames=("program", "estimator", "num_samples", "boundary"))
def _gradient_samples(program, theta, key, eta, *, estimator, num_samples, boundary):
    def one(key_b):
        epsilon, key_boundary = _sample_noise(program, key_b)
        if estimator == "score":
            return _score(program, theta, epsilon)
        if estimator == "smoothed":
            return _reparam(program, theta, epsilon, eta)
        gradient = _reparam(program, theta, epsilon, None)
        if estimator == "lyy18" and program.num_ifs > 0:
            gradient = gradient + _boundary_term(program, theta, key_boundary, boundary)
        return gradient

    return jax.vmap(one)(jax.random.split(key, num_samples))


def _sample_noise(program, key_b):
    """`(ε, key_boundary)` of the sample with key `key_b`: the one draw of the base noise."""
    key_epsilon, key_boundary = jax.random.split(key_b)
    return jax.random.normal(key_epsilon, (program.dim,)), key_boundary


def _score(program, theta, epsilon):
    z = program.family.sample(theta, epsilon)
    value, gradient_f = jax.value_and_grad(program.objective)(theta, z)
    gradient_log_q = jax.grad(program.family.log_density)(theta, z)
    return value * gradient_log_q + gradient_f


def _reparam(program, theta, epsilon, eta):
    return jax.grad(lambda th: program.objective(th, program.family.sample(th, epsilon), eta))(theta)


def _boundary_term(program, theta, key, variant):
    """`K · t_k(z′)` for one uniform `k` and one `z′ ∼ q_θ`."""
    coefficients, constants, solve_for = program.boundaries
    num_ifs, family = program.num_ifs, program.family
    key_z, key_k = jax.random.split(key)
    z_sample = family.sample(theta, jax.random.normal(key_z, (program.dim,)))
    k = jax.random.randint(key_k, (), 0, num_ifs)
    a, c, j = jnp.asarray(coefficients)[k], jnp.asarray(constants)[k], jnp.asarray(solve_for)[k]
    a_j = a[j]
    others = jnp.where(jnp.arange(program.dim) == j, 0.0, a)
    z_star = z_sample.at[j].set((c - others @ z_sample) / a_j)
    m, sigma = family.unpack(theta)
    weight = jnp.exp(-0.5 * ((z_star[j] - m[j]) / sigma[j]) ** 2) / (sigma[j] * math.sqrt(2 * math.pi))
    jump = program.log_p_forced(z_star, k, True) - program.log_p_forced(z_star, k, False)
    normal = -a * sigma / jnp.abs(a_j)
    at = z_sample if variant == "sample" else z_star

    def inverse_reparameterisation(th):
        m_, sigma_ = family.unpack(th)
        return (at - m_) / sigma_

    _, pullback = jax.vjp(inverse_reparameterisation, theta)
    (velocity,) = pullback(normal)
    return num_ifs * jump * weight * velocity
