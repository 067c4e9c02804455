"""Diagonalisation SGD: stochastic optimisation of the ELBO of a smoothed program whose
accuracy coefficient η_k shrinks during optimisation.

**Setting.** A program with if-statements (`problems.programs.Program`), its crisp
objective `f` and smoothed objectives `f_η`, and the unbiased reparameterisation estimator
`ĝ_η` of `∇θ E[f_η]` (`derivatives.estimate_gradient(..., "smoothed", eta=η)`). DSGD
iterates `θ_{k+1} = θ_k + γ_k ĝ_{η_k}(θ_k)` (ascent) with `η_k → 0`.

**Theorem** (Wagner, Khajwal and Ong, 2024, Theorem 3 in spirit; the conditions are certified
by `proofs_check.smoothing`, certificate `dsgd_schedule`, applied as
`rates.bounds.DSGD_SCHEDULE`). If the estimator's variance is `O(η^(−ℓ))` for nesting
depth ℓ (certificate `nested_if_variance`), then with `γ_k = c·k^(−a)` and
`η_k = η₀·k^(−r)` DSGD converges to stationary points of the crisp ELBO when `Σγ_k = ∞`
(a ≤ 1), `Σγ_k² η_k^(−ℓ) < ∞` (2a − rℓ > 1) and `η_k → 0` (r > 0). `theory_schedules`
picks such a pair and checks it with the conditions of `DSGD_SCHEDULE`, decided in exact
arithmetic.

The experiments of the paper instead run Adam with a constant step and
`η_k = η·(4000/(k + 1))^r` (`paper_accuracy`; `paper_adam` is their Adam); the same driver
runs both, with any Optax optimiser, and Fixed-η smoothing is the driver with a constant
accuracy schedule.

`train` runs everything under one `jit`, in the SGD loop of `derivatives.sgd`
(`iterate_segments`: an outer `lax.scan` over logging points, an inner `fori_loop` over the
steps between them, step k drawing its estimates with `fold_in(key, k)`). At each logging
point it records the crisp ELBO (a Monte Carlo mean) and the estimator's variance at the current θ (and, for smoothed
estimators, the current η_k) from i.i.d. single-sample estimates: the mean per-component
variance and the variance of the Euclidean norm (divisor n − 1). Memory does not grow
with the number of steps.

References: D. Wagner, B. Khajwal, C.-H. L. Ong, *Diagonalisation SGD: Fast & Convergent
SGD for Non-Differentiable Models via Reparameterisation and Smoothing*, AISTATS 2024,
arXiv:2402.11752.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jaxtyping import Array, ArrayLike, Float, Int

import derivatives
from derivatives.schedules import PolynomialDecay, Schedule, StepSize, accuracy, as_schedule, polynomial_decay
from derivatives.sgd import iterate_segments
from problems.programs import Program
from problems.validation import KeyLike, as_key, check_count, require_x64
from rates.bounds import DSGD_SCHEDULE
from rates.fit import OffsetPowerFit, RateFit, fit_power_law

OPTIMIZERS = ("adam", "sgd")
ETA_VERDICTS = ("consistent", "inconclusive", "violated")
ADAM_BETAS = (0.9, 0.999)
ADAM_EPSILON = 1e-8
PAPER_STEP_SIZE = 0.0015
# Optax mixes Python floats with its int32 step counters (Adam's bias correction `β^t`),
# which JAX's strict dtype promotion refuses: the trainer runs the optimiser's `init` and
# `update` under standard promotion, whatever the caller's setting (the result is float64).
OPTAX_PROMOTION = "standard"
PAPER_SCALE = 4000.0


@dataclasses.dataclass(frozen=True)
class Trace:
    """What `train` records at each logging point `steps` (θ before update k; the last point
    is the final θ): the crisp ELBO, the estimator's mean per-component variance and the
    variance of its norm, and the accuracy coefficient η_k in use (NaN if none)."""

    steps: Int[np.ndarray, " P"]
    elbo: Float[np.ndarray, " P"]
    avg_variance: Float[np.ndarray, " P"]
    norm_variance: Float[np.ndarray, " P"]
    eta: Float[np.ndarray, " P"]
    theta: Float[np.ndarray, " p"]


def paper_accuracy(eta: float, r: float) -> PolynomialDecay:
    """`η_k = η·(4000/(k + 1))^r`, the accuracy schedule of the paper's experiments
    (`r = 0.5`, and `r = 0.2` for xornet); `η_3999 = η`."""
    return accuracy(eta, r, PAPER_SCALE)


def theory_schedules(nesting_depth: int, *, c: float, eta0: float, a: float = 0.9, r: float | None = None):
    """A step-size schedule `γ_k = c·(k + 1)^(−a)` and an accuracy schedule
    `η_k = η₀·(k + 1)^(−r)` that meet the certified DSGD conditions at `nesting_depth`.

    By default `r = (2a − 1)/(2ℓ)`, halfway inside `2a − rℓ > 1` (for ℓ = 0, r = 1/2).
    Raises `rates.bounds.ConditionError` (a `ValueError`) naming each condition of
    `rates.bounds.DSGD_SCHEDULE` that `(a, r, ℓ)` violates.
    """
    r = (2 * a - 1) / (2 * max(nesting_depth, 1)) if r is None else r
    DSGD_SCHEDULE.require(a=a, r=r, ell=nesting_depth)
    return polynomial_decay(c, 1.0, a), accuracy(eta0, r, 1.0)


def paper_adam(step_size: StepSize = PAPER_STEP_SIZE) -> optax.GradientTransformation:
    """Adam as the paper's experiments run it: β = (0.9, 0.999), ε = 1e−8, step `step_size`
    (a number or a schedule `k ↦ α_k`). Step k = 0, 1, … (Kingma and Ba, 2015):

        M_k = β₁M_{k−1} + (1 − β₁)G_k,  S_k = β₂S_{k−1} + (1 − β₂)G_k²,
        θ_{k+1} = θ_k − α_k·[M_k/(1 − β₁^(k+1))] / (√(S_k/(1 − β₂^(k+1))) + ε),

    with `G_k` the gradient it is given and k its own step counter. `optax.adam`'s update
    needs JAX's standard dtype promotion (`OPTAX_PROMOTION`), which `train` provides.
    """
    return optax.adam(as_schedule(step_size), b1=ADAM_BETAS[0], b2=ADAM_BETAS[1], eps=ADAM_EPSILON)


def train(program: Program, estimator: str, *, key: KeyLike, accuracy: StepSize | None = None,
          optimizer: str | optax.GradientTransformation = "adam", step_size: StepSize | None = None,
          num_steps: int = 10_000, num_samples: int = 16, log_every: int = 100, num_log_samples: int = 1000,
          theta0: Float[ArrayLike, " p"] | None = None) -> Trace:
    """Maximise the ELBO of `program` with `estimator` and record the ELBO and the variance.

    Step k draws `num_samples` single-sample estimates with the key `fold_in(k₁, k)` (`k₁`
    the optimisation half of `key`), averages them into `ĝ_k` and hands `−ĝ_k`, the gradient
    of −ELBO, to the optimiser, which minimises.

    **Arguments:**

    - `program`: a `problems.programs.Program`.
    - `estimator`: one of `derivatives.ESTIMATORS`; `"smoothed"` needs `accuracy`.
    - `key`: a JAX key; it is split into an optimisation stream and a logging stream.
    - `accuracy`: η_k, a schedule or a number (constant η, "Fixed"); ignored unless smoothed.
    - `optimizer`: any Optax `GradientTransformation` (it receives `−ĝ_k` and `θ_k`; its
      state starts from `optimizer.init(θ₀)`), or a name: `"adam"` (`paper_adam(step_size)`,
      the paper's Adam) or `"sgd"` (`optax.sgd(step_size)`: `θ_{k+1} = θ_k + γ_k ĝ_k`).
    - `step_size`: for a named optimiser, its step: a number or a schedule `k ↦ γ_k`
      (default 0.0015); a transformation carries its own, so it must then be `None`.
    - `num_steps`: a multiple of `log_every`; `num_samples`: estimates averaged per step.
    - `num_log_samples`: samples (≥ 2) for the ELBO and for the variance at each logging point.
    - `theta0`: initial parameters (default `program.theta0`).

    **Returns:** a `Trace` with `num_steps/log_every + 1` logging points.
    """
    smoothed = estimator == "smoothed"
    if smoothed and accuracy is None:
        raise ValueError("the smoothed estimator needs an accuracy schedule (a number for constant η)")
    return _run(program, estimator, [accuracy if smoothed else 1.0], key=key, optimizer=optimizer,
                step_size=step_size, num_steps=num_steps, num_samples=num_samples, log_every=log_every,
                num_log_samples=num_log_samples, theta0=theta0, batched=False)[0]


def train_grid(program: Program, accuracies: Sequence[StepSize], *, key: KeyLike, **options: Any,
               ) -> list[Trace]:
    """`train(program, "smoothed", accuracy=a, key=key, **options)` for every `a` in
    `accuracies` (schedules of one kind, e.g. constant η's, or `paper_accuracy` at several
    η), as one compiled computation vmapped over the schedules: the same keys, hence the
    same random numbers, for every run."""
    if not accuracies:
        raise ValueError("accuracies must hold at least one schedule")
    return _run(program, "smoothed", list(accuracies), key=key, batched=True, **options)


def _run(program, estimator, accuracies, *, key, optimizer="adam", step_size=None, num_steps=10_000,
         num_samples=16, log_every=100, num_log_samples=1000, theta0=None, batched):
    require_x64()
    key = as_key(key)
    if estimator not in derivatives.ESTIMATORS:
        raise ValueError(f"estimator must be one of {derivatives.ESTIMATORS}, got {estimator!r}")
    step_size = _check_optimizer(optimizer, step_size)
    for name, value in (("num_steps", num_steps), ("num_samples", num_samples), ("log_every", log_every)):
        check_count(value, name)
    check_count(num_log_samples, "num_log_samples (a sample variance needs two)", minimum=2)
    if num_steps % log_every:
        raise ValueError(f"num_steps ({num_steps}) must be a multiple of log_every ({log_every})")
    theta0 = program.theta0 if theta0 is None else theta0
    theta0 = jnp.asarray(theta0, jnp.float64)
    if theta0.shape != (program.num_params,):
        raise ValueError(f"theta0 must have shape ({program.num_params},), got {theta0.shape}")
    smoothed = estimator == "smoothed"
    schedules = [as_schedule(a) for a in accuracies]
    structures = {jax.tree.structure(schedule) for schedule in schedules}
    if len(structures) > 1:
        raise ValueError(f"the accuracy schedules must be of one kind to run together, got {structures}")
    static = (program, estimator, optimizer, smoothed, num_steps, num_samples, log_every, num_log_samples)
    if batched:
        # Stacked leaves, rebuilt into one schedule per vmapped lane inside the computation.
        treedef = structures.pop()
        stacked = [jnp.stack([jnp.asarray(leaf, jnp.float64) for leaf in leaves])
                   for leaves in zip(*(jax.tree.leaves(schedule) for schedule in schedules))]
        results = _train_batched(*static, treedef, theta0, step_size, stacked, key)
    else:
        results = jax.tree.map(lambda x: x[None], _train(*static, theta0, step_size, schedules[0], key))
    results = [np.asarray(x) for x in results]
    traces = []
    for i in range(len(schedules)):
        steps, elbo, avg_variance, norm_variance, eta, theta = (x[i] for x in results)
        traces.append(Trace(steps, elbo, avg_variance, norm_variance, eta, theta))
    return traces


def _check_optimizer(optimizer, step_size) -> Schedule | None:
    """The step-size schedule of a named optimiser (`None` for a transformation, which has its own)."""
    if isinstance(optimizer, str):
        if optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {OPTIMIZERS} or an optax.GradientTransformation, "
                             f"got {optimizer!r}")
        return as_schedule(PAPER_STEP_SIZE if step_size is None else step_size)
    if not isinstance(optimizer, optax.GradientTransformation):
        raise ValueError(f"optimizer must be one of {OPTIMIZERS} or an optax.GradientTransformation, "
                         f"got {optimizer!r}")
    if step_size is not None:
        raise ValueError("step_size is for a named optimizer; an optax.GradientTransformation carries its own "
                         "learning rate")
    return None


def _transformation(optimizer, step_size):
    # Built inside the computation from the traced schedule, so a new step size does not recompile.
    if optimizer == "adam":
        return paper_adam(step_size)
    if optimizer == "sgd":
        return optax.sgd(step_size)
    return optimizer


def variance_statistics(samples: Float[Array, "n p"]) -> tuple[Float[Array, ""], Float[Array, ""]]:
    """`(mean per-component variance, variance of the norm)` of single-sample estimates
    `samples` (shape (n, p)), both with divisor n − 1."""
    component = jnp.mean(jnp.var(samples, axis=0, ddof=1))
    norm = jnp.var(jnp.linalg.norm(samples, axis=1), ddof=1)
    return component, norm


def _train_one(program, estimator, optimizer, smoothed, num_steps, num_samples, log_every, num_log_samples,
               theta0, step_size, accuracy_schedule, key):
    optimisation_key, logging_key = jax.random.split(key)
    transformation = _transformation(optimizer, step_size)

    def eta_at(k):
        return accuracy_schedule(k) if smoothed else None

    def advance(state, k, step_key):
        theta, optimizer_state = state
        gradient = derivatives.estimate_gradient(program, theta, step_key, estimator, num_samples, eta_at(k))
        with jax.numpy_dtype_promotion(OPTAX_PROMOTION):
            updates, optimizer_state = transformation.update(-gradient, optimizer_state, theta)  # minimise −ELBO
        return optax.apply_updates(theta, updates), optimizer_state

    def log(state, k, point):
        theta = state[0]
        elbo_key, variance_key = jax.random.split(jax.random.fold_in(logging_key, point))
        elbo = program.elbo(theta, elbo_key, num_log_samples)
        samples = derivatives.gradient_samples(program, theta, variance_key, estimator, num_log_samples, eta_at(k))
        component, norm = variance_statistics(samples)
        eta = eta_at(k) if smoothed else jnp.nan
        return k, elbo, component, norm, jnp.asarray(eta, jnp.float64)

    # A first segment of no steps logs θ₀; then one segment per logging interval.
    segment_lengths = jnp.full(num_steps // log_every + 1, log_every, jnp.int64).at[0].set(0)
    with jax.numpy_dtype_promotion(OPTAX_PROMOTION):
        optimizer_state = transformation.init(theta0)
    (theta, _), records = iterate_segments(advance, (theta0, optimizer_state), optimisation_key, segment_lengths, log)
    return (*records, theta)


_STATIC = (0, 1, 2, 3, 4, 5, 6, 7)
_train = jax.jit(_train_one, static_argnums=_STATIC)


@functools.partial(jax.jit, static_argnums=_STATIC + (8,))
def _train_batched(program, estimator, optimizer, smoothed, num_steps, num_samples, log_every, num_log_samples,
                   treedef, theta0, step_size, schedule_leaves, key):
    def one(leaves):
        return _train_one(program, estimator, optimizer, smoothed, num_steps, num_samples, log_every,
                          num_log_samples, theta0, step_size, jax.tree.unflatten(treedef, leaves), key)
    return jax.vmap(one)(schedule_leaves)


def fitted_variance_slope(etas: Float[ArrayLike, " n"], variances: Float[ArrayLike, " n"],
                          standard_errors: Float[ArrayLike, " n"] | None = None) -> RateFit:
    """The slope of the estimator's variance against the accuracy coefficient η on log–log
    axes: a `rates.fit.RateFit` of log variance against log η over every point, with its 95%
    interval. The theory bounds the variance by `O(η^(−ℓ))` (nesting depth ℓ), so a slope
    significantly below −ℓ refutes it (`rates.fit.no_steeper_than(fit, −ℓ)`).

    **Arguments:** `etas` (> 0), `variances` (> 0) measured at them and optionally their
    `standard_errors`. The points must be independent (one key per η), hence
    `correlated=False`: not the variances of one `train_grid`, which share their keys.

    **Returns:** the `RateFit`; `fit.slope` is `(lower, estimate, upper)`.
    """
    return fit_power_law(etas, variances, standard_errors, start=float(np.min(etas)), correlated=False)



def eta_verdict(fit: OffsetPowerFit, depth: int, allowance: float = 0.0) -> str:
    """Judge a fit of `Var(η) = A + B·η^(−s)` (`rates.fit.fit_offset_power`) against the
    bound `Var = O(η^(−ℓ))` at nesting depth `depth` = ℓ:

    - `"inconclusive"` when the interval for s contains 0: the measurements do not resolve
      any η-dependence, so they can neither confirm nor refute the bound;
    - `"violated"` when the whole interval lies above `ℓ + allowance`: the variance grows
      significantly faster than the bound allows (`allowance` ≥ 0 covers a known finite-η
      steepening, `experiments.dsgd.finite_eta_allowance`);
    - `"consistent"` otherwise: an η-dependence is resolved and its exponent is not
      significantly above ℓ. The bound is an upper bound, so exponents below ℓ are
      consistent with it; whether ℓ itself is attained is `lo ≤ ℓ ≤ hi`.
    """
    if depth < 0 or allowance < 0:
        raise ValueError(f"depth and allowance must be non-negative, got {depth} and {allowance}")
    lo = fit.exponent[0]
    if not fit.constant_rejected:
        return "inconclusive"
    return "violated" if lo > depth + allowance else "consistent"
