"""Diagonalisation SGD: stochastic optimisation of the ELBO of a smoothed program whose
accuracy coefficient η_k shrinks during optimisation.

**Setting.** A program with if-statements (`problems.programs.Program`), its crisp
objective `f` and smoothed objectives `f_η`, and the unbiased reparameterisation estimator
`ĝ_η` of `∇θ E[f_η]` (`derivatives.estimate_gradient(..., "smoothed", eta=η)`). DSGD
iterates `θ_{k+1} = θ_k + γ_k ĝ_{η_k}(θ_k)` (ascent) with `η_k → 0`.

**Theorem** (Wagner, Khajwal and Ong, 2024, Theorem 3 in spirit; the conditions are certified
by `proofs_check.smoothing`, certificate `dsgd_schedule`). If the estimator's variance is
`O(η^(−ℓ))` for nesting depth ℓ (certificate `nested_if_variance`), then with
`γ_k = c·k^(−a)` and `η_k = η₀·k^(−r)` DSGD converges to stationary points of the crisp
ELBO when `Σγ_k = ∞` (a ≤ 1), `Σγ_k² η_k^(−ℓ) < ∞` (2a − rℓ > 1) and `η_k → 0` (r > 0).
`theory_schedules` picks such a pair and checks it with the certificate's decision
procedure.

The experiments of the paper instead run Adam with a constant step and
`η_k = η·(4000/(k + 1))^r` (`paper_accuracy`); the same driver runs both, and Fixed-η
smoothing is the driver with a constant accuracy schedule.

`train` runs everything under one `jit`: an outer `lax.scan` over logging points, an inner
`fori_loop` over the steps between them. At each logging point it records the crisp ELBO
(a Monte Carlo mean) and the estimator's variance at the current θ (and, for smoothed
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

import jax
import jax.numpy as jnp
import numpy as np

import derivatives
from derivatives.schedules import PolynomialDecay, Schedule, accuracy, as_schedule, polynomial_decay
from problems.validation import as_key, require_x64
from proofs_check.smoothing import dsgd_schedule_admissible, dsgd_schedule_conditions
from rates.fit import fit_power_law

OPTIMIZERS = ("adam", "sgd")
ADAM_BETAS = (0.9, 0.999)
ADAM_EPSILON = 1e-8
PAPER_SCALE = 4000.0


@dataclasses.dataclass(frozen=True)
class Trace:
    """What `train` records at each logging point `steps` (θ before update k; the last point
    is the final θ): the crisp ELBO, the estimator's mean per-component variance and the
    variance of its norm, and the accuracy coefficient η_k in use (NaN if none)."""

    steps: np.ndarray
    elbo: np.ndarray
    avg_variance: np.ndarray
    norm_variance: np.ndarray
    eta: np.ndarray
    theta: np.ndarray


def paper_accuracy(eta: float, r: float) -> PolynomialDecay:
    """`η_k = η·(4000/(k + 1))^r`, the accuracy schedule of the paper's experiments
    (`r = 0.5`, and `r = 0.2` for xornet); `η_3999 = η`."""
    return accuracy(eta, r, PAPER_SCALE)


def theory_schedules(nesting_depth: int, *, c: float, eta0: float, a: float = 0.9, r: float | None = None):
    """A step-size schedule `γ_k = c·(k + 1)^(−a)` and an accuracy schedule
    `η_k = η₀·(k + 1)^(−r)` that meet the certified DSGD conditions at `nesting_depth`.

    By default `r = (2a − 1)/(2ℓ)`, halfway inside `2a − rℓ > 1` (for ℓ = 0, r = 1/2).
    Raises `ValueError` naming the failed condition when `(a, r, ℓ)` is not admissible.
    """
    r = (2 * a - 1) / (2 * max(nesting_depth, 1)) if r is None else r
    if not dsgd_schedule_admissible(a, r, nesting_depth):
        failed = [name for name, holds in dsgd_schedule_conditions(a, r, nesting_depth).items() if not holds]
        raise ValueError(f"(a, r) = ({a}, {r}) at nesting depth {nesting_depth} violates {failed}: "
                         f"need a <= 1, 2a - r*ell > 1 and r > 0")
    return polynomial_decay(c, 1.0, a), accuracy(eta0, r, 1.0)


def train(program, estimator: str, *, key, accuracy: Schedule | float | None = None, optimizer: str = "adam",
          step_size: Schedule | float = 0.0015, num_steps: int = 10_000, num_samples: int = 16,
          log_every: int = 100, num_log_samples: int = 1000, theta0=None) -> Trace:
    """Maximise the ELBO of `program` with `estimator` and record the ELBO and the variance.

    **Arguments:**

    - `program`: a `problems.programs.Program`.
    - `estimator`: one of `derivatives.ESTIMATORS`; `"smoothed"` needs `accuracy`.
    - `key`: a JAX key; it is split into an optimisation stream and a logging stream.
    - `accuracy`: η_k, a schedule or a number (constant η, "Fixed"); ignored unless smoothed.
    - `optimizer`: `"adam"` (β = (0.9, 0.999), ε = 1e−8, as in the paper) or `"sgd"`.
    - `step_size`: the step, a number or a schedule `k ↦ γ_k` (Adam's α or SGD's γ).
    - `num_steps`: a multiple of `log_every`; `num_samples`: estimates averaged per step.
    - `num_log_samples`: samples for the ELBO and for the variance at each logging point.
    - `theta0`: initial parameters (default `program.theta0`).

    **Returns:** a `Trace` with `num_steps/log_every + 1` logging points.
    """
    smoothed = estimator == "smoothed"
    if smoothed and accuracy is None:
        raise ValueError("the smoothed estimator needs an accuracy schedule (a number for constant η)")
    return _run(program, estimator, [accuracy if smoothed else 1.0], key=key, optimizer=optimizer,
                step_size=step_size, num_steps=num_steps, num_samples=num_samples, log_every=log_every,
                num_log_samples=num_log_samples, theta0=theta0, batched=False)[0]


def train_grid(program, accuracies, *, key, **options) -> list[Trace]:
    """`train(program, "smoothed", accuracy=a, key=key, **options)` for every `a` in
    `accuracies` (schedules of one kind, e.g. constant η's, or `paper_accuracy` at several
    η), as one compiled computation vmapped over the schedules: the same keys, hence the
    same random numbers, for every run."""
    if not accuracies:
        raise ValueError("accuracies must hold at least one schedule")
    return _run(program, "smoothed", list(accuracies), key=key, batched=True, **options)


def _run(program, estimator, accuracies, *, key, optimizer="adam", step_size=0.0015, num_steps=10_000,
         num_samples=16, log_every=100, num_log_samples=1000, theta0=None, batched):
    require_x64()
    key = as_key(key)
    if estimator not in derivatives.ESTIMATORS:
        raise ValueError(f"estimator must be one of {derivatives.ESTIMATORS}, got {estimator!r}")
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {optimizer!r}")
    for name, value in (("num_steps", num_steps), ("num_samples", num_samples), ("log_every", log_every),
                        ("num_log_samples", num_log_samples)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    if num_log_samples < 2:
        raise ValueError(f"num_log_samples must be at least 2 (a sample variance), got {num_log_samples}")
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
        results = _train_batched(*static, treedef, theta0, as_schedule(step_size), stacked, key)
    else:
        results = jax.tree.map(lambda x: x[None], _train(*static, theta0, as_schedule(step_size), schedules[0], key))
    results = [np.asarray(x) for x in results]
    traces = []
    for i in range(len(schedules)):
        steps, elbo, avg_variance, norm_variance, eta, theta = (x[i] for x in results)
        traces.append(Trace(steps, elbo, avg_variance, norm_variance, eta if smoothed else np.full_like(eta, np.nan),
                            theta))
    return traces


def adam_step(theta, first, second, descent, k, alpha):
    """One Adam update (Kingma and Ba, 2015) of `theta` along `−descent`, k = 0, 1, …:

        M_k = β₁M_{k−1} + (1 − β₁)G_k,  S_k = β₂S_{k−1} + (1 − β₂)G_k²,
        θ_{k+1} = θ_k − α·[M_k/(1 − β₁^(k+1))] / (√(S_k/(1 − β₂^(k+1))) + ε).

    **Returns:** `(θ_{k+1}, M_k, S_k)`."""
    beta1, beta2 = ADAM_BETAS
    first = beta1 * first + (1 - beta1) * descent
    second = beta2 * second + (1 - beta2) * descent**2
    t = jnp.asarray(k, jnp.float64) + 1
    corrected = (first / (1 - beta1**t)) / (jnp.sqrt(second / (1 - beta2**t)) + ADAM_EPSILON)
    return theta - alpha * corrected, first, second


def variance_statistics(samples):
    """`(mean per-component variance, variance of the norm)` of single-sample estimates
    `samples` (shape (n, p)), both with divisor n − 1."""
    component = jnp.mean(jnp.var(samples, axis=0, ddof=1))
    norm = jnp.var(jnp.linalg.norm(samples, axis=1), ddof=1)
    return component, norm


def _train_one(program, estimator, optimizer, smoothed, num_steps, num_samples, log_every, num_log_samples,
           theta0, step_size, accuracy_schedule, key):
    optimisation_key, logging_key = jax.random.split(key)

    def eta_at(k):
        return accuracy_schedule(k) if smoothed else None

    def update(k, state):
        theta, first, second = state
        gradient = derivatives.estimate_gradient(program, theta, jax.random.fold_in(optimisation_key, k), estimator,
                                                 num_samples, eta_at(k))
        alpha = step_size(k)
        if optimizer == "sgd":
            return theta + alpha * gradient, first, second
        return adam_step(theta, first, second, -gradient, k, alpha)  # Adam minimises −ELBO

    def log(theta, k, point):
        elbo_key, variance_key = jax.random.split(jax.random.fold_in(logging_key, point))
        elbo = program.elbo(theta, elbo_key, num_log_samples)
        samples = derivatives.gradient_samples(program, theta, variance_key, estimator, num_log_samples, eta_at(k))
        component, norm = variance_statistics(samples)
        eta = accuracy_schedule(k) if smoothed else jnp.nan
        return k, elbo, component, norm, jnp.asarray(eta, jnp.float64)

    def segment(state, point):
        start = point * log_every
        record = log(state[0], start, point)
        state = jax.lax.fori_loop(start, start + log_every, update, state)
        return state, record

    zeros = jnp.zeros_like(theta0)
    num_points = num_steps // log_every
    state, records = jax.lax.scan(segment, (theta0, zeros, zeros), jnp.arange(num_points))
    final = log(state[0], jnp.asarray(num_steps), num_points)
    records = tuple(jnp.concatenate([r, jnp.asarray(f)[None]]) for r, f in zip(records, final))
    return (*records, state[0])


_STATIC = (0, 1, 2, 3, 4, 5, 6, 7)
_train = jax.jit(_train_one, static_argnums=_STATIC)


@functools.partial(jax.jit, static_argnums=_STATIC + (8,))
def _train_batched(program, estimator, optimizer, smoothed, num_steps, num_samples, log_every, num_log_samples,
                   treedef, theta0, step_size, schedule_leaves, key):
    def one(leaves):
        return _train_one(program, estimator, optimizer, smoothed, num_steps, num_samples, log_every,
                          num_log_samples, theta0, step_size, jax.tree.unflatten(treedef, leaves), key)
    return jax.vmap(one)(schedule_leaves)


def fitted_variance_slope(etas, variances, standard_errors=None):
    """A `rates.fit.RateFit` of log variance against log η over every point, with its 95%
    interval; the points are independent (one key per η), hence `correlated=False`."""
    return fit_power_law(etas, variances, standard_errors, start=float(np.min(etas)), correlated=False)

