"""The hypergradient checks of the rate report: every method of `derivatives.hypergradients`
against the exact hypergradient `h = bilevel.hypergradient(θ)`, with its bound and its rate.

On three bilevel families (per-feature ridge, data hyper-cleaning with squared and with
logistic loss; `problems.bilevel`), at θ₀, each method is run at a ladder of its iteration
count and checked three ways:

- **bound**: the certified bound of docs/theory.md ("Hypergradients") at every count, with
  its constants (`rates.hypergradients`); errors below `ROUNDING·‖h‖` are rounding and only
  compared with that floor;
- **rate**: the geometric (or power-law) rate fitted to the error by `rates.fit` over the
  tail of the ladder, tested one-sidedly against the bound's own rate over the same window
  (an upper bound: the error must fall at least as fast), or, for the stochastic Neumann
  series, a two-sided z-test of its mean against its expectation;
- **power**: the same check run on a misstated claim (a contraction `1 − 2αμ` instead of
  `1 − αμ`, a rate `k^(−1/2)` steeper than claimed, a minibatch reused for every Neumann
  term), which the check must catch.

| method | counted in | claim (error ≤) | certificate |
|---|---|---|---|
| `Implicit()` | — | `1e-10·‖h‖` (rounding) | the implicit function theorem |
| `Neumann(k, 1/L)`, `FixedPoint(k, 1/L)` | k | `‖C‖₂ q^k ‖v*‖`, q = 1 − μ/L | `neumann_remainder`, `gd_contraction` |
| `ConjugateGradient(k)` | k | `2‖C‖₂ ρ^k ‖v*‖_H/√μ`; exact at k = d | `chebyshev_conjugate_gradient` |
| `StochasticNeumann(k, 1/L, 1)` | k | mean = `Neumann(k, 1/L)` (unbiased) | independence of the minibatches |
| `Unrolled(K, 1/L, None)` | K | `unrolled_bound`, `O(Kq^K)` | `gd_contraction`, `gd_jacobian_linear_rate` |
| `Truncated(K, T, 1/L, None)` | T | `‖ĥ_T − ĥ_K‖ ≤` `truncation_bound`, `O(q^T)` | `gd_contraction` |
| `Unrolled(k, a/(k + k0), 1)` | k | see below; `E‖ĥ_k − h‖² = O(log(k)²/k)` | triangle inequality, SGD bounds |

SGD: per seed and checkpoint `‖ĥ_k − h‖ ≤ (L_Gθ + ‖J*‖₂L_Gx)e_x + (‖∇ₓG*‖ + L_Gx e_x)e_J`,
with `e_x = ‖x_k − x*‖` and `e_J = ‖J_k − J*‖_F` of the same seed. The SGD rate is an upper
bound derived from the per-seed inequality, with `E e_x² = O(1/k)`
and `E e_J² = O(log(k)²/k)` (the certified decreasing-step bounds), assuming that the
product `e_x e_J` is of the order of the product of their root mean squares.
"""

from __future__ import annotations

import dataclasses
import math
import time

import jax
import jax.numpy as jnp
import numpy as np
from scipy import stats

from derivatives import hypergradients as hg
from derivatives.schedules import inverse_time
from experiments import figures, study
from experiments.progress import SILENT, Progress
from problems import bilevel as bilevels
from rates import fit
from rates import hypergradients as rh

# Errors below this fraction of ‖h‖ are rounding (float64 sums of O(d) terms).
ROUNDING = 1e-12
# How much slower than the certified geometric rate a fitted one may be: the local rate of a
# sum of eigen-components approaches the slowest one from above, with a correction of
# relative size (q₂/q)^k (q₂ the next factor); measured at most 0.1% on these families.
PRE_ASYMPTOTIC = 0.01
# Family-wise false-failure probability of the stochastic Neumann z-test (Bonferroni).
Z_TEST_LEVEL = 1e-3
IMPLICIT_TOLERANCE = 1e-10


@dataclasses.dataclass(frozen=True)
class HypergradientSettings:
    """Sizes of the bilevel problems (`n_train`, `n_val`, `n_features`) and of the ladders:
    `iterations` of the Neumann series, `unrolled_steps` of gradient-descent unrolling (and
    the K of truncation, with `truncations` values of T), `sgd_steps` and `num_seeds` of the
    SGD hypergradient, `stochastic_keys` draws of the stochastic Neumann series."""

    n_train: int
    n_val: int
    n_features: int
    iterations: int
    unrolled_steps: int
    truncations: int
    sgd_steps: int
    num_seeds: int
    stochastic_keys: int
    num_checkpoints: int = 40
    seed: int = 0


QUICK = HypergradientSettings(n_train=60, n_val=40, n_features=5, iterations=300, unrolled_steps=1500, truncations=10,
                              sgd_steps=20_000, num_seeds=32, stochastic_keys=1000)
FULL = HypergradientSettings(n_train=200, n_val=100, n_features=10, iterations=1000, unrolled_steps=4000,
                             truncations=12, sgd_steps=200_000, num_seeds=128, stochastic_keys=4000)


_MAKERS = {
    "per_feature_ridge": lambda s: bilevels.ridge_validation(s.n_train, s.n_val, s.n_features, per_feature=True,
                                                             conditioning=3.0, seed=s.seed),
    "cleaning_squared": lambda s: bilevels.hyper_cleaning(s.n_train, s.n_val, s.n_features, seed=s.seed),
    "cleaning_logistic": lambda s: bilevels.hyper_cleaning(s.n_train, s.n_val, s.n_features, loss="logistic",
                                                           seed=s.seed),
}
FAMILIES = tuple(_MAKERS)


def family(name: str, settings: HypergradientSettings) -> bilevels.Bilevel:
    """The bilevel family `name` (one of `FAMILIES`) at the sizes of `settings`."""
    return _MAKERS[name](settings)


def families(settings: HypergradientSettings) -> dict[str, bilevels.Bilevel]:
    return {name: family(name, settings) for name in FAMILIES}


@dataclasses.dataclass(frozen=True)
class Check:
    """One method on one family: the measured error against its count, the bound and
    whether it held, the fitted rate (`(lo, estimate, hi)` of log q per count, or of the
    log–log slope) against the claimed one, and whether a misstated claim was caught."""

    family: str
    method: str
    quantity: str
    variable: str
    claim: str
    certificate: str
    steps: list
    measured: list
    bound: list | None
    bound_holds: bool
    worst_ratio: float | None
    fitted: tuple | None
    claimed: float | None
    rate_holds: bool | None
    mutant: str
    mutant_caught: bool
    detail: str = ""

    @property
    def passed(self) -> bool:
        return self.bound_holds and self.rate_holds is not False

    def as_dict(self) -> dict:
        return dataclasses.asdict(self) | {"passed": self.passed}


# --- the pieces of a check ------------------------------------------------------------------

def _holds(measured, bound, scale: float) -> tuple[bool, float | None]:
    """`measured ≤ bound` wherever the measurement is above rounding, else ≤ the rounding
    floor; and the largest ratio measured ÷ bound above rounding."""
    measured, bound = np.asarray(measured), np.asarray(bound)
    resolved = measured > ROUNDING * scale
    holds = bool(np.all(measured <= np.maximum(bound * (1 + 1e-10), ROUNDING * scale)))
    worst = float(np.max(measured[resolved] / bound[resolved])) if resolved.any() else None
    return holds, worst


def tail_window(steps, errors, scale: float) -> np.ndarray:
    """The indices of the second half of the counts whose error is above rounding."""
    resolved = np.flatnonzero(np.asarray(errors) > ROUNDING * scale)
    return resolved[len(resolved) // 2:]


def _geometric(steps, errors, scale, q, polynomial=0):
    """Fitted log-rate of the error over its tail, and whether it falls at least as fast as
    the claimed rate `O(k^polynomial·q^k)` does over the same counts (its fitted log-rate,
    `log q` when `polynomial = 0`), up to `PRE_ASYMPTOTIC`."""
    window = tail_window(steps, errors, scale)
    if window.size < 3:
        return None, None, None
    steps, errors = np.asarray(steps, np.float64)[window], np.asarray(errors)[window]
    rate = fit.fit_linear_rate(steps, errors, start=steps[0])
    claimed = (math.log(q) if polynomial == 0 else
               fit.fit_linear_rate(steps, steps**polynomial * q**steps, start=steps[0]).slope[1])
    if rate.slope[2] - rate.slope[0] > abs(claimed):
        return rate.slope, float(claimed), None        # too few counts above rounding to tell
    return rate.slope, float(claimed), fit.at_least_as_steep_as(rate, claimed * (1 - PRE_ASYMPTOTIC))


def _norms(squared) -> list:
    return np.sqrt(np.asarray(squared)).tolist()


# --- the checks -------------------------------------------------------------------------------

def check_implicit(name, bilevel, theta, scale) -> Check:
    exact = bilevel.hypergradient(theta)
    error = float(jnp.linalg.norm(hg.hypergradient(bilevel, theta, method="implicit") - exact)) / scale
    # Mutant: the exact solve at a point off x* by 1e-8 relative, which must show.
    x_star = bilevel.inner.solution(theta)
    shifted = x_star * (1 + 1e-8) + 1e-8 * jnp.linalg.norm(x_star) / math.sqrt(bilevel.dim)
    off = float(jnp.linalg.norm(hg.hypergradient(bilevel, theta, method="implicit", x=shifted) - exact)) / scale
    return Check(name, "implicit", "‖ĥ − h‖/‖h‖", "—", f"≤ {IMPLICIT_TOLERANCE:g}", "implicit function theorem",
                 [0], [error], [IMPLICIT_TOLERANCE], error <= IMPLICIT_TOLERANCE, error / IMPLICIT_TOLERANCE,
                 None, None, None, "solved at x* moved by 1e-8 relative", off > IMPLICIT_TOLERANCE,
                 f"moved: {off:.2e}")


def _doubled_mu(constants: rh.AdjointConstants) -> rh.AdjointConstants:
    return constants._replace(mu=2 * constants.mu)


def check_neumann_like(name, bilevel, theta, scale, method, steps) -> Check:
    """`Neumann(k, 1/L)` or `FixedPoint(k, 1/L)` at x* over the counts `steps`."""
    constants = rh.adjoint_constants(bilevel, theta)
    errors = np.sqrt(rh.approximation_errors(bilevel, theta, method, steps))
    bound = rh.neumann_bound(constants, steps)
    holds, worst = _holds(errors, bound, scale)
    q = 1 - constants.mu / constants.L
    lowest = float(np.linalg.eigvalsh(np.asarray(jax.hessian(bilevel.inner.objective)(bilevel.inner.solution(theta),
                                                                                       theta)))[0])
    fitted, claimed, rate_holds = _geometric(steps, errors, scale, q)
    # Mutant: μ claimed twice as large, the contraction 1 − 2μ/L.
    wrong = rh.neumann_bound(_doubled_mu(constants), steps)
    wrong_holds, _ = _holds(errors, wrong, scale)
    wrong_rate = _geometric(steps, errors, scale, 1 - 2 * constants.mu / constants.L)[2]
    label = type(method).__name__
    return Check(name, {"Neumann": "neumann", "FixedPoint": "fixed_point"}[label], "‖ĥ_k − h‖", "k",
                 "‖C‖₂ q^k ‖v*‖, q = 1 − μ/L (upper bound)", "neumann_remainder, gd_contraction",
                 np.asarray(steps).tolist(), errors.tolist(), np.asarray(bound).tolist(), holds, worst, fitted,
                 claimed, rate_holds, "contraction 1 − 2μ/L", not (wrong_holds and wrong_rate is not False),
                 f"q = {q:.6g}; λ_min(H)/μ = {lowest / constants.mu:.4g} (a misstated 2μ is true where this is ≥ 2)")


def check_conjugate_gradient(name, bilevel, theta, scale) -> Check:
    constants = rh.adjoint_constants(bilevel, theta)
    steps = np.arange(bilevel.dim + 1)
    errors = np.sqrt(rh.approximation_errors(bilevel, theta, hg.ConjugateGradient(0), steps))
    bound = rh.conjugate_gradient_bound(constants, steps)
    holds, worst = _holds(errors, bound, scale)
    exact_at_d = bool(errors[-1] <= 1e-9 * scale)
    root = math.sqrt(constants.L / constants.mu)
    rho = (root - 1) / (root + 1)
    fitted, claimed, rate_holds = _geometric(steps, errors, scale, rho)
    wrong = 2 * constants.cross_norm * rho ** (2 * steps) * constants.adjoint_energy_norm / math.sqrt(constants.mu)
    wrong_holds, _ = _holds(errors, wrong, scale)
    return Check(name, "cg", "‖ĥ_k − h‖", "k", "2‖C‖₂ ρ^k ‖v*‖_H/√μ, ρ = (√κ − 1)/(√κ + 1); exact at k = d",
                 "chebyshev_conjugate_gradient (Krylov optimality assumed)",
                 steps.tolist(), errors.tolist(), bound.tolist(), holds and exact_at_d,
                 worst, fitted, claimed, rate_holds, "ρ² in place of ρ", not wrong_holds,
                 f"ρ = {rho:.4g}; error at k = d: {errors[-1] / scale:.1e}·‖h‖"
                 + ("; rate not resolved: too few counts above rounding before CG ends at k = d" if rate_holds is None
                    else ""))


def _reused_minibatch_neumann(bilevel, theta, key, counts, batch_size):
    """The misstated stochastic series at every k of `counts`: one minibatch's Hessian for
    every term, whose expectation `E[(I − αH_B)^j] ≠ (I − αH)^j` is not the Neumann series."""
    inner = bilevel.inner
    x = inner.solution(theta)
    outer_x, _ = bilevel.outer_gradients(x, theta)
    batch = inner.sample(key, batch_size)
    adjoints = hg.neumann_partial_sums(lambda v: hg.hessian_vector_product(inner, x, theta, v, batch), outer_x,
                                       1.0 / inner.smoothness(theta), counts)
    return jax.vmap(lambda adjoint: hg.from_adjoint(bilevel, x, theta, adjoint))(adjoints)


def _max_z(samples, expected, scale: float):
    """`max |z|` over counts and components of the mean of `samples` (keys × counts × p);
    differences below `ROUNDING·scale` count as none (k = 1 draws nothing: every sample is
    the same up to rounding, and so is the mean)."""
    samples = np.asarray(samples)
    mean, se = samples.mean(0), samples.std(0, ddof=1) / math.sqrt(samples.shape[0])
    difference = np.abs(mean - np.asarray(expected))
    z = np.where(difference > ROUNDING * scale, difference, 0.0) / np.maximum(se, ROUNDING * scale)
    return float(np.max(z))


def check_stochastic_neumann(name, bilevel, theta, scale, steps, num_keys, key) -> Check:
    keys = jax.random.split(key, num_keys)
    counts = np.asarray(steps, np.int64)
    exact = bilevel.hypergradient(theta)
    # Every count of a key from one pass (`StochasticNeumann.estimates`).
    samples = jax.jit(jax.vmap(lambda k: hg.StochasticNeumann(0).estimates(bilevel, theta, k, None, counts)))(keys)
    expected = jax.jit(lambda: hg.Neumann(0).estimates(bilevel, theta, None, None, counts))()
    tests = len(steps) * bilevel.param_dim
    critical = float(stats.norm.isf(Z_TEST_LEVEL / (2 * tests)))
    z = _max_z(samples, expected, scale)
    reused = jax.jit(jax.vmap(lambda k: _reused_minibatch_neumann(bilevel, theta, k, counts, 1)))(keys)
    mse = np.mean(np.sum((np.asarray(samples) - np.asarray(exact)) ** 2, axis=-1), axis=0)
    return Check(name, "stochastic_neumann", "√E‖ĥ_k − h‖²", "k",
                 f"E ĥ_k = Neumann(k) (unbiased): max abs(z) ≤ {critical:.2f}", "independent minibatches",
                 np.asarray(steps).tolist(), np.sqrt(mse).tolist(), None, z <= critical, z / critical, None, None,
                 None, "one minibatch reused for every term", _max_z(reused, expected, scale) > critical,
                 f"{num_keys} keys, {tests} z-tests, family-wise level {Z_TEST_LEVEL:g}; max abs(z) {z:.2f}")


def check_unrolled_gd(name, bilevel, theta, scale, settings, x0_error) -> tuple[Check, rh.UnrollingConstants]:
    constants = rh.unrolling_constants(bilevel, theta)
    alpha = 1.0 / float(constants.inner.L)
    curves = rh.hypergradient_curves(bilevel, theta, step_size=alpha, num_steps=settings.unrolled_steps, num_seeds=2,
                                     batch_size=None, num_checkpoints=settings.num_checkpoints)
    steps, errors = curves.steps, np.sqrt(curves.hypergradient_error)
    bound = rh.unrolled_bound(constants, alpha, x0_error, steps)
    holds, worst = _holds(errors, bound, scale)
    mu = float(constants.inner.mu)
    fitted, claimed, rate_holds = _geometric(steps, errors, scale, 1 - alpha * mu, polynomial=1)
    doubled = constants._replace(inner=dataclasses.replace(constants.inner, mu=2 * mu))
    wrong = rh.unrolled_bound(doubled, alpha, x0_error, steps)
    wrong_holds, _ = _holds(errors, wrong, scale)
    wrong_rate = _geometric(steps, errors, scale, 1 - 2 * alpha * mu, polynomial=1)[2]
    check = Check(name, "unrolled (GD)", "‖ĥ_K − h‖", "K", "unrolled_bound: O(K q^K), q = 1 − μ/L (upper bound)",
                  "gd_contraction, gd_jacobian_linear_rate", steps.tolist(), errors.tolist(), bound.tolist(), holds,
                  worst, fitted, claimed, rate_holds, "μ claimed 2× too large",
                  not (wrong_holds and wrong_rate is not False), f"α = 1/L = {alpha:.4g}")
    return check, constants


def check_truncated(name, bilevel, theta, scale, settings, constants, x0_error) -> Check:
    alpha = 1.0 / float(constants.inner.L)
    num_steps = settings.unrolled_steps
    q = 1 - alpha * float(constants.inner.mu)
    # Up to where q^T reaches 1e-9 (or K), in equal steps: a geometric rate is linear in T.
    reach = min(num_steps, math.ceil(math.log(1e-9) / math.log(q)))
    truncations = np.unique(np.linspace(1, reach, settings.truncations).astype(int))
    unrolled = hg.hypergradient(bilevel, theta, method="unrolled", num_steps=num_steps, step_size=alpha,
                                batch_size=None)
    differences = np.array([float(jnp.linalg.norm(
        hg.hypergradient(bilevel, theta, method="truncated", num_steps=num_steps, truncation=int(t), step_size=alpha,
                         batch_size=None) - unrolled)) for t in truncations])
    bound = rh.truncation_bound(constants, alpha, x0_error, num_steps, truncations)
    holds, worst = _holds(differences, bound, scale)
    fitted, claimed, rate_holds = _geometric(truncations, differences, scale, q)
    wrong_q = 1 - 2 * alpha * float(constants.inner.mu)
    wrong = bound * (wrong_q / q) ** truncations
    wrong_holds, _ = _holds(differences, wrong, scale)
    wrong_rate = _geometric(truncations, differences, scale, wrong_q)[2]
    return Check(name, "truncated (GD)", "‖ĥ_T − ĥ_K‖", "T", f"truncation_bound: O(q^T) (upper bound), K = {num_steps}",
                 "gd_contraction", truncations.tolist(), differences.tolist(), bound.tolist(), holds, worst, fitted,
                 claimed, rate_holds, "contraction 1 − 2μ/L", not (wrong_holds and wrong_rate is not False))


def check_unrolled_sgd(name, bilevel, theta, scale, settings, constants) -> Check:
    mu, L = float(constants.inner.mu), float(constants.inner.L)
    k0 = 4 * L / mu
    curves = rh.hypergradient_curves(bilevel, theta, step_size=inverse_time(2 / mu, k0), num_steps=settings.sgd_steps,
                                     num_seeds=settings.num_seeds, batch_size=1,
                                     key=jax.random.key(settings.seed), num_checkpoints=settings.num_checkpoints)
    values = curves.seeds.values
    e_x, e_j, error = np.sqrt(values[:, :, 0]), np.sqrt(values[:, :, 1]), np.sqrt(values[:, :, -1])
    lipschitz = constants.outer_lipschitz_x
    pathwise = ((constants.outer_lipschitz_theta + constants.jacobian_norm * lipschitz) * e_x
                + (constants.outer_gradient_norm + lipschitz * e_x) * e_j)
    holds, worst = _holds(error.ravel(), pathwise.ravel(), scale)
    steps, mean, se = curves.steps, curves.hypergradient_error, curves.hypergradient_error_se
    window = steps >= 10 * k0
    fitted = claimed = rate_holds = None
    caught = False
    if window.sum() >= 3:
        rate = fit.fit_power_law(steps[window], mean[window], se[window], start=10 * k0)
        k = steps[window].astype(np.float64)
        claimed = fit.fit_power_law(k, np.log(k) ** 2 / k, start=10 * k0).slope[1]
        fitted, rate_holds = rate.slope, fit.at_least_as_steep_as(rate, claimed)
        caught = not fit.at_least_as_steep_as(rate, claimed - 0.5)
    return Check(name, "unrolled (SGD)", "E‖ĥ_k − h‖²", "k",
                 f"per seed ≤ (L_Gθ + ‖J*‖₂L_Gx)e_x + (‖∇ₓG*‖ + L_Gx e_x)e_J; O(log(k)²/k), k ≥ 10·k0 = {10 * k0:.3g}",
                 "triangle inequality; SGD derivative bounds", steps.tolist(), mean.tolist(), None, holds, worst,
                 fitted, claimed, rate_holds, "rate k^(−1/2) steeper", caught,
                 f"α_k = a/(k + k0), a = 2/μ, k0 = 4L/μ; {settings.num_seeds} seeds, batch 1; "
                 f"pathwise bound on every seed and checkpoint")


def check_family(name: str, bilevel, settings: HypergradientSettings) -> list[Check]:
    theta = bilevel.theta0
    scale = float(jnp.linalg.norm(bilevel.hypergradient(theta)))
    x0_error = float(jnp.linalg.norm(bilevel.inner.solution(theta)))       # x₀ = 0
    iterations = np.arange(1, settings.iterations + 1)
    sparse = np.unique(np.linspace(1, settings.iterations, 12).astype(int))
    unrolled, constants = check_unrolled_gd(name, bilevel, theta, scale, settings, x0_error)
    return [
        check_implicit(name, bilevel, theta, scale),
        check_neumann_like(name, bilevel, theta, scale, hg.Neumann(0), iterations),
        check_neumann_like(name, bilevel, theta, scale, hg.FixedPoint(0), sparse),
        check_conjugate_gradient(name, bilevel, theta, scale),
        check_stochastic_neumann(name, bilevel, theta, scale, sparse[:6], settings.stochastic_keys,
                                 jax.random.key(settings.seed + 1)),
        unrolled,
        check_truncated(name, bilevel, theta, scale, settings, constants, x0_error),
        check_unrolled_sgd(name, bilevel, theta, scale, settings, constants),
    ]


# --- the study ------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class HypergradientChecks:
    """Every check of every family, with the settings and the time they took."""

    settings: HypergradientSettings
    checks: tuple[Check, ...]
    seconds: float

    @property
    def passed(self) -> bool:
        return all(check.passed for check in self.checks)

    def verdicts(self) -> dict[str, bool]:
        return {f"hypergradients/{c.family}/{c.method}": c.passed for c in self.checks}

    def as_dict(self) -> dict:
        return {"settings": dataclasses.asdict(self.settings), "seconds": self.seconds,
                "rounding": ROUNDING, "pre_asymptotic": PRE_ASYMPTOTIC, "z_test_level": Z_TEST_LEVEL,
                "checks": [c.as_dict() for c in self.checks], "passed": self.passed}

    def markdown(self) -> str:
        s = self.settings
        lines = [
            "## Hypergradients", "",
            f"Every method of `derivatives.hypergradients` against the exact hypergradient h on three bilevel "
            f"families ({s.n_train} training and {s.n_val} validation rows, {s.n_features} features; θ = θ₀), "
            f"{self.seconds:.0f} s. *Bound*: the certified bound (docs/theory.md, \"Hypergradients\") at every "
            f"count, errors below {ROUNDING:g}·‖h‖ compared with that floor only; worst = the largest measured ÷ "
            "bound above it. *Rate*: the fitted log-rate per count over the tail of the ladder (second half of the "
            "counts above rounding; `rates.fit.fit_linear_rate`, 95%), which must be at least as steep as the "
            f"claimed one (up to {PRE_ASYMPTOTIC:.0%} for the pre-asymptotic tail); for SGD the log–log slope over "
            "k ≥ 10·k0 against that of log(k)²/k there. *Power*: the same check on a misstated claim, which it "
            "must catch.", "",
            "| family | method | quantity | claim | certificate | bound holds (worst) | fitted rate [95% CI] "
            "| claimed | misstated claim | caught | verdict |",
            "|---|---|---|---|---|---|---|---|---|---|---|"]
        for c in self.checks:
            worst = "" if c.worst_ratio is None else f" ({c.worst_ratio:.3g})"
            fitted = "—" if c.fitted is None else f"{c.fitted[1]:.4g} [{c.fitted[0]:.4g}, {c.fitted[2]:.4g}]"
            fitted += "" if c.fitted is None or c.rate_holds is not None else " (not resolved)"
            claimed = "—" if c.claimed is None else f"{c.claimed:.4g}"
            lines.append(f"| {c.family} | {c.method} | {c.quantity} vs {c.variable} | {c.claim} | {c.certificate} | "
                         f"{'yes' if c.bound_holds else '**no**'}{worst} | {fitted} | {claimed} | {c.mutant} | "
                         f"{'yes' if c.mutant_caught else '**no**'} | {'pass' if c.passed else '**fail**'} |")
        lines += ["", "A fitted rate marked *not resolved* has an interval wider than the claimed rate: too few counts "
                  "above rounding (CG, which is exact after d iterations); its verdict rests on the bound alone."]
        details = [f"- {c.family}, {c.method}: {c.detail}" for c in self.checks if c.detail]
        return "\n".join(lines + ["", *details, "", f"![hypergradient errors]({FIGURE})", ""])

    def figure(self):
        names = list(dict.fromkeys(c.family for c in self.checks))
        figure = figures.new_figure(4.2 * len(names) + 2.4, 4.0)
        axes = figure.subplots(1, len(names) + 1, squeeze=False, width_ratios=[1.0] * len(names) + [0.6])[0]
        colors = dict(zip(("neumann", "fixed_point", "cg", "stochastic_neumann", "unrolled (GD)", "truncated (GD)",
                           "unrolled (SGD)"), ("C0", "C1", "C2", "C3", "C4", "C5", "C6")))
        for axis, family in zip(axes, names):
            for c in (c for c in self.checks if c.family == family and c.method in colors):
                steps, measured = np.asarray(c.steps, np.float64), np.asarray(c.measured)
                if c.method == "unrolled (SGD)":
                    measured = np.sqrt(measured)
                shown = (steps > 0) & (measured > 0)
                style = dict(marker="o", ms=3, lw=0) if c.method in ("fixed_point", "stochastic_neumann") else {}
                axis.loglog(steps[shown], measured[shown], color=colors[c.method],
                            label=f"{c.method} ({c.quantity} vs {c.variable})", **style)
                if c.bound is not None and c.method != "fixed_point":
                    bound = np.asarray(c.bound)
                    axis.loglog(steps[shown], bound[shown], color=colors[c.method], ls=":", lw=1.0,
                                label=f"{c.method}: bound")
            axis.set_title(family)
            axis.set_xlabel("count: k, K or T")
            axis.set_ylabel("error (norm; SGD: root mean square)")
            axis.set_ylim(bottom=1e-17)
        handles, labels = axes[0].get_legend_handles_labels()
        axes[-1].axis("off")
        axes[-1].legend(handles, labels, loc="center left", fontsize=7, frameon=False)
        return figure


FIGURE = "hypergradients.png"


def num_tasks(settings: HypergradientSettings) -> int:
    return len(FAMILIES)


def check_named_family(name: str, settings: HypergradientSettings) -> list[Check]:
    """`check_family` on `family(name, settings)`: the checks of one family, by its name (a
    task of the rate report's worker processes)."""
    return check_family(name, family(name, settings), settings)


def run(settings: HypergradientSettings, progress: Progress = SILENT) -> HypergradientChecks:
    """Every check of `check_family` on every family of `FAMILIES`."""
    start = time.perf_counter()
    checks = []
    for name in FAMILIES:
        began = time.perf_counter()
        checks += check_named_family(name, settings)
        progress.advance(f"hypergradients {name} ({time.perf_counter() - began:.0f} s)")
    return HypergradientChecks(settings, tuple(checks), time.perf_counter() - start)


STUDY = study.Study(
    name="hypergradient checks", quick=QUICK, full=FULL, num_tasks=num_tasks, run=run,
    markdown=lambda outcome: outcome.result.markdown(), document=lambda outcome: outcome.result.as_dict(),
    figures=lambda outcome: {FIGURE: outcome.result.figure()}, verdicts=lambda result: result.verdicts(),
    markdown_file="hypergradients.md", json_file="hypergradients.json",
)


__all__ = [
    "FAMILIES",
    "FULL",
    "QUICK",
    "STUDY",
    "Check",
    "HypergradientChecks",
    "HypergradientSettings",
    "check_family",
    "check_named_family",
    "families",
    "family",
    "run",
]
