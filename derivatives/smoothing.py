"""Black-box stochastic smoothing: derivatives of `E[f(x + Lε)]` from values of f alone.

**Theorem** (score-function smoothing). Let μ be an absolutely continuous probability
density on ℝ with score `s = −μ'/μ` (defined almost everywhere; 0 where it is not), let
`ε = (ε₁, …, εₙ)` have i.i.d. coordinates with density μ, let L be an invertible n × n
matrix (`L = γI` for a scalar scale γ > 0, `L = diag(σ)` for a per-coordinate scale),
and let `f: ℝⁿ → ℝᵐ` be measurable with `E|f(x + Lε)| < ∞` and `E[|f(x + Lε)| |s(εᵢ)|] < ∞`
locally uniformly in x. Then `f_L(x) = E[f(x + Lε)]` is differentiable in x, and

    ∇ₓ f_L(x) = E[f(x + Lε) ⊗ L^(−T) s(ε)]                 (= E[f(x + γε) ⊗ s(ε)]/γ),

with `s(ε) = (s(ε₁), …, s(εₙ))`. If also `E[|f(x + Lε)| |εⱼ s(εᵢ)|] < ∞` for all i, j
(i = j suffices for a scalar or per-coordinate scale), locally uniformly in L, then
f_L is differentiable in L with

    ∂_L f_L(x) = E[f(x + Lε) ⊗ L^(−T)(s(ε)εᵀ − I)],
    ∂_γ f_γ(x) = E[f(x + γε) (Σᵢ εᵢ s(εᵢ) − n)]/γ          (L = γI, a scalar γ),
    ∂_σⱼ f_σ(x) = E[f(x + σ ⊙ ε) (εⱼ s(εⱼ) − 1)]/σⱼ         (L = diag(σ)).

*Proof.* With `y = x + Lε`, `f_L(x) = ∫ f(y) p(y; x, L) dy`, `p = |det L|^(−1) Πᵢ μ(εᵢ)`,
`ε = L^(−1)(y − x)`. Since `dε = −L^(−1)(dx + dL ε)`, `d log|det L| = tr(L^(−1) dL)` and
`d log μ(εᵢ) = −s(εᵢ) dεᵢ`, `d log p = s(ε)ᵀL^(−1)dx + tr((ε s(ε)ᵀL^(−1) − L^(−1)) dL)`,
so `∇ₓ p = p L^(−T)s(ε)` and `∂_L p = p L^(−T)(s(ε)εᵀ − I)`; the trace of the latter at
`L = γI` is the scalar formula, its diagonal at `L = diag(σ)` the per-coordinate one.
Differentiating under the integral is justified by the moment conditions (dominated
convergence); absolute continuity of μ suffices (no derivative everywhere, no full
support: Laplace, triangular), which is the theorem of the reference below. The
per-density identities `sμ + μ' = 0`, `E[s(ε)] = 0`, and the vanishing boundary terms
are certified symbolically in `proofs_check.densities`; the scores and quantiles used
here are the JAX functions of `derivatives.noises`, tested against those certified
expressions. ∎

The off-diagonal entries of `s(ε)εᵀ` need `E|εⱼ| < ∞`, which the Cauchy density lacks:
there `∂_L f_L` is not offered for a matrix L, and it need not exist (for `f = 1[y₁ ≥ 0]`
and `L = [[1, t], [0, 1]]`, `ε₁ + tε₂` is Cauchy with scale `1 + |t|`, not differentiable
at t = 0). For the Cauchy density the conditions need `E|f(x + Lε)| < ∞`, e.g. a bounded
f: a linear f has no smoothed value, and for n ≥ 2 its Jacobian estimator has no mean
either (`E|εᵢ s(εⱼ)| = ∞` for i ≠ j; only in one dimension is `ε s(ε)` bounded).

**Variance.** Per sample, the x-estimator has variance of the order of
`E[(f − b)² s(εᵢ)²]/γ²`, i.e. `(f − b)² I(μ)/γ²` for nearly constant f, with the Fisher
information `I(μ) = E[s²]` (`noises.by_name(name).fisher_information`): gaussian 1, logistic
1/3, gumbel 1, cauchy 1/2, laplace 1, triangular ∞. For the triangular density
`P(|s(ε)| > t) = t^(−2)`, so unless `f − b` vanishes near the ends of the support the
estimators (x and scale) have infinite variance; they remain unbiased, and the variance
diverges only logarithmically (sample means fluctuate at order `√(log N / N)`).

**Covariates** `b` (subtracted from every f sample before it is multiplied by the
score weights; `E[s(ε)] = 0` and `E[s(ε)εᵀ − I] = 0` make any b independent of that
sample's ε leave both estimators unbiased; the value estimate never uses b):

- `"none"`: b = 0.
- `"value"`: `b = f(x)`, one extra evaluation; unbiased under every sampling.
- `"loo"`: the mean of f over the samples independent of sample i. Under `"mc"` these
  are all other samples (`b_i = Σ_{j≠i} f_j/(N − 1)`), or with antithetic pairs all other
  pairs (`N ≥ 4`): exactly unbiased. Under `"qmc"`, `"rqmc"` and `"cartesian"` every
  sample depends on every other, so no leave-out mean is independent of sample i. The
  plain leave-one-out mean would give `N/(N − 1)` times the sample covariance of f and
  the weights, whose mean is `N/(N − 1)` times the target (the weights' design mean
  `w̄` is nearly deterministic 0 there): a relative bias of `1/(N − 1)`. So these
  samplings use the design mean `b = f̄`, whose bias is `−Cov(f̄, w̄)`, a product of
  two randomised-QMC errors (at most `sd(f̄) sd(w̄)`). Measured (200000 repetitions):
  under `"rqmc"` it decays like `N^(−2)`, e.g. a relative bias of the Jacobian of a
  linear f with Gaussian noise in two dimensions of about −8e-4 at N = 64 and −8e-5 at
  N = 256 (against `1/(N − 1)` = 1.6e-2 and 3.9e-3 for the plain leave-one-out mean),
  a small fraction of one estimate's standard deviation; under `"qmc"` and
  `"cartesian"` it was not detectable. Use `"value"` where exact unbiasedness matters.

`"loo"` also needs `E|f(x + Lε)| < ∞` (the covariate itself must be integrable): with the
Cauchy density and a linear f it has no mean, even in one dimension where `"none"` and
`"value"` do.

With antithetic pairs the x-weights `L^(−T)s(ε)` of a pair sum to zero (s is odd for a
symmetric density), so every covariate that is the same for both members of a pair
(`"value"`, the leave-one-pair-out mean, the design mean) cancels from the x-Jacobian:
there all three covariates give the estimate of `"none"`. They still act on the scale
derivative, whose weights `ε s(ε) − 1` are even.

**Samplings** (uniforms `u`, mapped coordinate-wise through the density's quantile
`ε = F⁻¹(u)` after clipping `u` to `[2^(−53), 1 − 2^(−53)]`, which moves a probability
of at most `2^(−52)` per coordinate and keeps heavy-tailed quantiles finite, e.g.
`|ε| ≤ 2.9e15` for the Cauchy density). Every point is uniform on the unit cube, so
every estimator's mean is as under i.i.d. sampling:

- `"mc"`: i.i.d. uniforms.
- `"qmc"`: a Latin hypercube (McKay, Beckman and Conover 1979): `u_ij = (π_j(i) + V_ij)/N`
  with independent uniformly random permutations `π_j` of the N strata per coordinate
  and uniform jitters V, so each coordinate has exactly one point in each stratum.
- `"rqmc"`: a Korobov rank-1 lattice with a Cranley–Patterson random shift:
  `u_i = frac(i z/N + Δ)`, `z = (1, a, a², …) mod N`, Δ uniform on the unit cube. The
  multiplier a (coprime to N, `a ≤ N/2`) minimises the unweighted `P₂` criterion
  `−1 + (1/N) Σ_i Π_j (1 + 2π² B₂(u_ij))`, `B₂(t) = t² − t + 1/6`, over all candidates or,
  for large `N · n`, a fixed pseudo-random subset of `max(32, 2^24/(N n))` of them
  (`korobov_generator`); the search runs once per `(N, n)` in NumPy when tracing. In
  one dimension it is the randomly shifted equispaced grid.
- `"cartesian"`: one uniform point in every cell of the `k × … × k` grid (jittered or
  stratified sampling), so the design size must be `kⁿ`.

With `antithetic=True` (symmetric densities only) the design has `N/2` points and the
samples are its points followed by their negations `(ε, −ε)`.

References: F. Petersen, C. Borgelt, A. Mishra, S. Ermon, *Generalizing Stochastic
Smoothing for Differentiation and Gradient Estimation*, arXiv:2410.08125. R. Cranley,
T. N. L. Patterson, *Randomization of number theoretic methods for multiple
integration*, SIAM J. Numer. Anal. 13 (1976). A. B. Owen, *Monte Carlo Theory, Methods
and Examples* (2013), chapters on stratification and lattice rules.
"""

from __future__ import annotations

import functools
import math
import numbers
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike
from jaxtyping import Array, Float, Real

from derivatives import noises
from derivatives.noises import NOISES, SYMMETRIC_NOISES
from problems.validation import CountLike, FlagLike, KeyLike, as_key, concrete, require_x64

COVARIATES = ("none", "value", "loo")
SAMPLINGS = ("mc", "qmc", "rqmc", "cartesian")
UNIFORM_MARGIN = 2.0 ** -53       # uniforms are clipped to [margin, 1 − margin]
_KOROBOV_BUDGET = 2 ** 24         # lattice points × dimensions × candidates in the search
_KOROBOV_MIN_CANDIDATES = 32


def smoothed_gradient(
    f: Callable | Any,
    x: Real[ArrayLike, ...],
    key: KeyLike,
    noise: str = "gaussian",
    scale: Real[ArrayLike, ...] = 0.1,
    num_samples: CountLike = 1024,
    covariate: str = "none",
    sampling: str = "mc",
    antithetic: FlagLike = False,
    *,
    wrt_scale: FlagLike = False,
    host: FlagLike = False,
) -> tuple[Float[Array, "*_"], ...]:
    """Estimates of `f_L(x) = E[f(x + Lε)]` and of its Jacobian in x (and in the scale),
    from `num_samples` evaluations of f: the score-function estimators of the module's
    theorem, `Ĵ = (1/N) Σᵢ (f(x + Lεᵢ) − bᵢ) ⊗ L^(−T)s(εᵢ)`, the value `(1/N) Σᵢ f(x + Lεᵢ)`.

    **Arguments:**

    - `f`: a JAX function from arrays of the shape of x to arrays of any shape (real,
      bool or integer; cast to float64); with `host=True` a NumPy function from a batch
      of shape `(B,) + x.shape` to `(B,) + output shape`. Static under `jit` (hashable
      callables are compiled once per `f`).
    - `x`: the point, a real array of any shape with `n = x.size ≥ 1` entries.
    - `key`: a JAX PRNG key; the same key gives the same estimate.
    - `noise`: one of `NOISES` (gaussian, logistic, gumbel, cauchy, laplace, triangular),
      standardised as in `derivatives.noises` (gumbel: maxima, mean Euler's γ).
    - `scale`: a scalar γ > 0 (`x + γε`); an array of x's shape with entries > 0
      (`x + σ ⊙ ε`); or an invertible `(n, n)` matrix L acting on the flattened noise
      (`x + Lε`). Checked when concrete; may be traced.
    - `num_samples`: N ≥ 2, the number of evaluations of f (one more with the value
      covariate); even with antithetic pairs; `k**n` (or `2 k**n` with antithetic
      pairs) for `"cartesian"`.
    - `covariate`: one of `COVARIATES`, see the module docstring.
    - `sampling`: one of `SAMPLINGS`, see the module docstring.
    - `antithetic`: pairs `(ε, −ε)`; only for the symmetric densities, `SYMMETRIC_NOISES`.
    - `wrt_scale`: also return the derivative with respect to `scale`.
    - `host`: evaluate f on the host through one `jax.pure_callback` per call: the whole
      batch of N (+1) points goes to the host and back in one round trip, f runs in NumPy
      without XLA's parallelism, and under `vmap` the batches of all instances are stacked
      into one call of f. Its output shape is learned before compiling by calling f once
      on `np.zeros((1,) + x.shape)`.

    **Returns:** `(value, jacobian)`, shapes `out` and `out + x.shape` where `out` is the
    shape of `f(x)`; with `wrt_scale=True` also `scale_jacobian`, shape `out + scale.shape`.

    Bad arguments raise `ValueError` (`TypeError` for a non-callable f or a bad key) naming the argument
    and its valid range, before anything is compiled. Works under `jit` (with `f`, `noise`,
    `num_samples`, `covariate`, `sampling`, `antithetic`, `wrt_scale`, `host` static) and
    `vmap` (over `x`, `key`, `scale`).
    """
    x, key, scale, spec = _check_smoothing_arguments(f, x, key, noise, scale, num_samples, covariate, sampling,
                                                     antithetic, wrt_scale, host)
    try:
        hash(f)
        estimate = _estimate_jit
    except TypeError:
        estimate = _estimate
    return estimate(f, x, key, scale, **spec)


# --- the estimator --------------------------------------------------------------------------

def _estimate(f, x, key, scale, *, noise, num_samples, covariate, sampling, antithetic, wrt_scale,
              scale_kind, host_shape):
    functions = noises.by_name(noise)
    dim = x.size
    design_size = num_samples // 2 if antithetic else num_samples
    uniforms = jnp.clip(_uniforms(key, sampling, design_size, dim), UNIFORM_MARGIN, 1.0 - UNIFORM_MARGIN)
    epsilon = functions.quantile(uniforms)
    if antithetic:
        epsilon = jnp.concatenate([epsilon, -epsilon])
    scores = functions.score(epsilon)                                    # (N, n)

    x_flat = x.reshape(-1)
    if scale_kind == "scalar":
        perturbation = scale * epsilon
        weights = scores / scale                                          # rows L^(−T) s(εᵢ)
    elif scale_kind == "diagonal":
        perturbation = epsilon * scale.reshape(-1)
        weights = scores / scale.reshape(-1)
    else:
        perturbation = epsilon @ scale.T
        weights = jnp.linalg.solve(scale.T, scores.T).T
    points = (x_flat + perturbation).reshape((num_samples,) + x.shape)

    values, at_x = _evaluate(f, x, points, covariate == "value", host_shape)
    out_shape = values.shape[1:]
    values = values.reshape(num_samples, -1)                              # (N, m)
    centred = values - _covariate(values, at_x, covariate, sampling, antithetic)

    value = jnp.mean(values, axis=0).reshape(out_shape)
    jacobian = (centred.T @ weights / num_samples).reshape(out_shape + x.shape)
    if not wrt_scale:
        return value, jacobian
    if scale_kind == "scalar":
        direction = (jnp.sum(epsilon * scores, axis=1) - dim) / scale
        scale_jacobian = (centred.T @ direction / num_samples).reshape(out_shape)
    elif scale_kind == "diagonal":
        direction = (epsilon * scores - 1.0) / scale.reshape(-1)
        scale_jacobian = (centred.T @ direction / num_samples).reshape(out_shape + x.shape)
    else:
        mean_centred = jnp.mean(centred, axis=0)
        outer = jnp.einsum("im,ij,ik->mjk", centred, scores, epsilon) / num_samples
        moment = outer - mean_centred[:, None, None] * jnp.eye(dim)        # (m, n, n)
        m = moment.shape[0]
        solved = jnp.linalg.solve(scale.T, moment.transpose(1, 0, 2).reshape(dim, m * dim))
        scale_jacobian = solved.reshape(dim, m, dim).transpose(1, 0, 2).reshape(out_shape + (dim, dim))
    return value, jacobian, scale_jacobian


_STATIC = ("f", "noise", "num_samples", "covariate", "sampling", "antithetic", "wrt_scale", "scale_kind",
           "host_shape")
_estimate_jit = jax.jit(_estimate, static_argnames=_STATIC)


def _evaluate(f, x, points, with_value, host_shape):
    """f at every point (shape `(N,) + out`) and, for the value covariate, at x."""
    if host_shape is None:
        values = jax.vmap(f)(points).astype(jnp.float64)
        at_x = jnp.asarray(f(x)).astype(jnp.float64).reshape(1, -1) if with_value else None
        return values, at_x
    batch = jnp.concatenate([x[None], points]) if with_value else points
    result = jax.ShapeDtypeStruct((batch.shape[0],) + host_shape, jnp.float64)
    values = jax.pure_callback(functools.partial(_host_batch, f, x.ndim, host_shape), result, batch,
                               vmap_method="broadcast_all")
    if not with_value:
        return values, None
    return values[1:], values[0].reshape(1, -1)


def _host_batch(f, point_ndim, out_shape, batch):
    """`f` on a NumPy batch whose leading axes (a vmap may add some) are flattened into one."""
    batch = np.asarray(batch)
    leading = batch.shape[:batch.ndim - point_ndim]
    flat = batch.reshape((-1,) + batch.shape[batch.ndim - point_ndim:])
    result = np.asarray(f(flat), dtype=np.float64)
    if result.shape != (flat.shape[0],) + out_shape:
        raise ValueError(f"f (host=True) must map a batch of shape {flat.shape} to shape "
                         f"{(flat.shape[0],) + out_shape}, got shape {result.shape}")
    return result.reshape(leading + out_shape)


def _covariate(values, at_x, covariate, sampling, antithetic):
    """`b`, broadcastable against `values` (N, m)."""
    if covariate == "none":
        return jnp.zeros((1, values.shape[1]), jnp.float64)
    if covariate == "value":
        return at_x
    num_samples = values.shape[0]
    total = jnp.sum(values, axis=0)
    if sampling != "mc":
        return (total / num_samples)[None]                               # design mean
    if not antithetic:
        return (total - values) / (num_samples - 1)                      # leave one sample out
    half = num_samples // 2
    pairs = values[:half] + values[half:]
    others = (total - pairs) / (num_samples - 2)                         # leave one pair out
    return jnp.concatenate([others, others])


# --- designs ----------------------------------------------------------------------------------

def _uniforms(key, sampling, size, dim):
    """`size` points on the unit cube `[0, 1)^dim`, each uniformly distributed."""
    if sampling == "mc":
        return jax.random.uniform(key, (size, dim), jnp.float64)
    if sampling == "qmc":
        key_permutation, key_jitter = jax.random.split(key)
        # ranks of i.i.d. 64-bit keys: independent uniformly random permutations per coordinate
        # (up to ties, of probability below size² 2^(−65))
        strata = jnp.argsort(jax.random.bits(key_permutation, (size, dim), jnp.uint64), axis=0)
        return (strata.astype(jnp.float64) + jax.random.uniform(key_jitter, (size, dim), jnp.float64)) / size
    if sampling == "rqmc":
        generator = korobov_generator(size, dim)
        lattice = (np.outer(np.arange(size, dtype=np.int64), generator) % size) / size
        shifted = jnp.asarray(lattice) + jax.random.uniform(key, (dim,), jnp.float64)
        return jnp.where(shifted >= 1.0, shifted - 1.0, shifted)
    side = _integer_root(size, dim)
    cells = np.stack(np.unravel_index(np.arange(size), (side,) * dim), axis=1).astype(np.float64)
    return (jnp.asarray(cells) + jax.random.uniform(key, (size, dim), jnp.float64)) / side


@functools.lru_cache(maxsize=64)
def korobov_generator(size: int, dim: int) -> np.ndarray:
    """The generating vector `z = (1, a, a², …, a^(dim−1)) mod size` of the Korobov rank-1
    lattice used by `"rqmc"`: a coprime to `size`, `1 ≤ a ≤ size/2` (a and `size − a`
    give mirror-image lattices with the same criterion), minimising the unweighted `P₂`
    criterion over all candidates or, when there are more than
    `max(32, 2^24/(size · dim))`, over that many drawn by a generator seeded with
    `(size, dim)` (deterministic). Ties go to the smallest a."""
    if dim == 1:
        return np.ones(1, dtype=np.int64)
    candidates = np.array([a for a in range(1, size // 2 + 1) if math.gcd(a, size) == 1], dtype=np.int64)
    allowed = max(_KOROBOV_MIN_CANDIDATES, _KOROBOV_BUDGET // (size * dim))
    if candidates.size > allowed:      # evenly spaced ones would be structured, e.g. N/8 + 1
        chosen = np.random.default_rng([size, dim]).choice(candidates.size, allowed, replace=False)
        candidates = candidates[np.sort(chosen)]
    generators = np.stack([[pow(int(a), j, size) for j in range(dim)] for a in candidates])
    indices = np.arange(size, dtype=np.int64)
    chunk = max(1, 2 ** 21 // (size * dim))
    criteria = []
    for start in range(0, len(generators), chunk):
        block = generators[start:start + chunk]
        t = (indices[None, :, None] * block[:, None, :] % size) / size
        factors = 1.0 + 2.0 * math.pi ** 2 * (t * t - t + 1.0 / 6.0)
        criteria.append(np.mean(np.prod(factors, axis=2), axis=1) - 1.0)
    return generators[int(np.argmin(np.concatenate(criteria)))]


def _integer_root(size, dim):
    """k with `k**dim == size`, or None."""
    guess = round(size ** (1.0 / dim))
    for k in (guess - 1, guess, guess + 1):
        if k >= 1 and k ** dim == size:
            return k
    return None


# --- checks -------------------------------------------------------------------------------------

def _check_smoothing_arguments(f, x, key, noise, scale, num_samples, covariate, sampling, antithetic, wrt_scale, host):
    require_x64()
    if not callable(f):
        raise TypeError(f"f must be callable (a function of arrays of the shape of x), got {type(f).__name__}")
    for name, value, valid in (("noise", noise, NOISES), ("covariate", covariate, COVARIATES),
                               ("sampling", sampling, SAMPLINGS)):
        if not isinstance(value, str) or value not in valid:
            raise ValueError(f"{name} must be one of {valid}, got {value!r}")
    for name, value in (("antithetic", antithetic), ("wrt_scale", wrt_scale), ("host", host)):
        if not isinstance(value, bool):
            raise ValueError(f"{name} must be True or False, got {value!r}")
    if not isinstance(num_samples, numbers.Integral) or isinstance(num_samples, bool) or num_samples < 2:
        raise ValueError(f"num_samples must be an integer >= 2, got {num_samples!r}")
    num_samples = int(num_samples)
    functions = noises.by_name(noise)
    if antithetic and not functions.symmetric:
        raise ValueError(f"antithetic=True needs a symmetric density (pairs (ε, −ε) have the same law only "
                         f"then), but noise {noise!r} is asymmetric; use one of {SYMMETRIC_NOISES} or "
                         f"antithetic=False")
    if antithetic and num_samples % 2:
        raise ValueError(f"num_samples must be even with antithetic=True (pairs (ε, −ε)), got {num_samples}")
    if antithetic and covariate == "loo" and sampling == "mc" and num_samples < 4:
        raise ValueError(f"num_samples must be >= 4 with covariate='loo' and antithetic pairs under "
                         f"sampling='mc' (the covariate of a pair is the mean over the other pairs), "
                         f"got {num_samples}")

    x = _as_real_array(x, "x")
    if x.size == 0:
        raise ValueError(f"x must have at least one entry, got shape {x.shape}")
    values = concrete(x)
    if values is not None and not np.all(np.isfinite(values)):
        raise ValueError(f"x must be finite, got {values}")
    key = as_key(key)
    dim = x.size
    if sampling == "cartesian":
        _check_cartesian(num_samples, dim, antithetic)

    scale = _as_real_array(scale, "scale")
    if scale.shape == ():
        scale_kind = "scalar"
    elif scale.shape == x.shape:
        scale_kind = "diagonal"
    elif scale.shape == (dim, dim):
        scale_kind = "matrix"
    else:
        raise ValueError(f"scale must be a scalar, an array of the shape of x {x.shape} (one scale per "
                         f"coordinate) or a matrix of shape {(dim, dim)} (x + L ε on the flattened noise), "
                         f"got shape {scale.shape}")
    _check_scale(concrete(scale), scale_kind)
    if wrt_scale and scale_kind == "matrix" and not functions.finite_mean:
        raise ValueError(f"wrt_scale=True with a matrix scale needs E|ε| < ∞, which noise {noise!r} lacks "
                         f"(the off-diagonal derivatives need not exist); use a scalar or per-coordinate scale")

    host_shape = _check_output(f, x, host)
    spec = dict(noise=noise, num_samples=num_samples, covariate=covariate, sampling=sampling,
                antithetic=antithetic, wrt_scale=wrt_scale, scale_kind=scale_kind, host_shape=host_shape)
    return x, key, scale, spec


def _as_real_array(value, name):
    try:
        array = jnp.asarray(value)
    except TypeError as error:
        raise ValueError(f"{name} must be a real array, got {type(value).__name__}") from error
    if not (jnp.issubdtype(array.dtype, jnp.floating) or jnp.issubdtype(array.dtype, jnp.integer)):
        raise ValueError(f"{name} must hold real numbers, got dtype {array.dtype}")
    return array.astype(jnp.float64)


def _check_cartesian(num_samples, dim, antithetic):
    factor = 2 if antithetic else 1
    if _integer_root(num_samples // factor, dim) is not None and num_samples % factor == 0:
        return
    below = max(1, math.floor((num_samples / factor) ** (1.0 / dim)))
    while (below + 1) ** dim * factor <= num_samples:
        below += 1
    while below > 1 and below ** dim * factor > num_samples:
        below -= 1
    feasible = [factor * k ** dim for k in (below, below + 1) if factor * k ** dim >= 2]
    form = "2 k**n" if antithetic else "k**n"
    raise ValueError(f"num_samples must be {form} for an integer k with sampling='cartesian' (n = x.size = "
                     f"{dim}: one point per cell of a k**n grid{', then the negations' if antithetic else ''}); "
                     f"nearest feasible values: {feasible}, got {num_samples}")


def _check_scale(values, kind):
    if values is None:
        return
    if not np.all(np.isfinite(values)):
        raise ValueError(f"scale must be finite, got {values}")
    if kind == "matrix":
        singular_values = np.linalg.svd(values, compute_uv=False)
        if not singular_values[-1] > singular_values[0] * values.shape[0] * np.finfo(np.float64).eps:
            raise ValueError(f"scale, as a matrix L (x + L ε), must be invertible, got a singular matrix {values}")
    elif not np.all(values > 0):
        raise ValueError(f"scale must be > 0 (every entry, for a per-coordinate scale), got {values}")


def _check_output(f, x, host):
    """The output shape for a host function (learned from one probe call), else None after
    checking that f maps x's shape to a real array."""
    if host:
        probe = np.asarray(f(np.zeros((1,) + x.shape)))
        real = any(np.issubdtype(probe.dtype, kind) for kind in (np.floating, np.integer, np.bool_))
        if probe.ndim < 1 or probe.shape[0] != 1 or not real:
            raise ValueError(f"f (host=True) must map a batch of shape (B,) + x.shape to a real array of shape "
                             f"(B,) + output shape; a batch of shape {(1,) + x.shape} gave "
                             f"shape {probe.shape}, dtype {probe.dtype}")
        return tuple(probe.shape[1:])
    try:
        output = jax.eval_shape(f, jax.ShapeDtypeStruct(x.shape, jnp.float64))
    except TypeError as error:
        raise ValueError(f"f must return one real (float, integer or bool) JAX array for an argument of "
                         f"shape {x.shape}: {error}") from error
    if not isinstance(output, jax.ShapeDtypeStruct) or not (
            jnp.issubdtype(output.dtype, jnp.floating) or jnp.issubdtype(output.dtype, jnp.integer)
            or output.dtype == jnp.bool_):
        raise ValueError(f"f must return one real (float, integer or bool) array, got {output}")
    return None
