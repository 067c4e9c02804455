"""The one-step inequalities (U) and (V) of docs/theory.md, checked exactly.

For a finite sum the conditional expectation `E_k` over the minibatch `B_k` is a finite
average: over the n one-sample batches for b = 1, over the n² ordered pairs for b = 2
(minibatches are drawn with replacement). `exact_errors` computes it with the library's
own steps (`sgd_step`, `derivative_step`, vmapped over all the batches), so both sides of

    (U)  E_k‖x_{k+1} − x*‖² ≤ (1 − αμ)‖e‖² + 2α²σ²/b,
    (U') E_k‖x_{k+1} − x*‖² ≤ (1 − αμ)‖e‖² − 2α(1 − 2αL)(F(x_k) − F*) + 2α²σ²/b,
    (V)  E_k‖J_{k+1} − J*‖²_F ≤ (1 − αμ)‖D‖² + 2αM‖D‖‖e‖ + 4α²(M²‖e‖² + σ_J²/b),

with `e = x_k − x*`, `D = J_k − J*`, `M = L_H‖J*‖_F + L_C`, are numbers, not Monte Carlo
estimates. (V) is the conditional form of the docs' (V), which follows from it by
Cauchy–Schwarz.

**Margin.** An inequality `LHS ≤ t₁ + t₂ + …` is accepted when

    LHS ≤ RHS + 1e-9 · (LHS + |t₁| + |t₂| + …) + 2δ(√LHS + ‖e‖) + 2δ²,

with, for (U) and (U'), `δ = 1e-12 · (1 + ‖x_k‖ + ‖x*‖)` and, for (V), `δ = 1e-12 · (1 +
‖J_k‖ + ‖J*‖)` and ‖D‖ in place of ‖e‖; (U') adds `2α|1 − 2αL| · 1e-12 · (|F(x_k)| + |F*|)`.

- The relative part: every term is a float64 sum of at most n² = 400 terms or an
  eigenvalue of a small matrix, accurate to ~1e-13 relative; 1e-9 is 10⁴ times that.
- The δ part: `x_{k+1} − x*` and `x_k − x*` are differences of vectors of size ‖x*‖, each
  rounded by ~1e-16·‖x*‖ (δ allows 10⁴ times that), which moves a squared norm `‖v‖²` by
  at most `2δ‖v‖ + δ²`. It matters only when the point is within rounding of x* (an
  interpolating problem, where the worst point is x* itself and both sides are ~1e-31).
- The F part: `F(x_k) − F*` cancels; each value is rounded by ~1e-16 of its size.

The smallest relative slack `(RHS − LHS)/RHS` seen on the drawn instances (ci profile, and
40 examples) is ≈ 4e-6, for (U') at its worst x_k with α ≈ 1e-4/L, where both sides are
≈ ‖e‖² and the slack is O(αμ): over 10³ times the margin. A mutant counts as violated
only when its LHS exceeds its RHS by more than the same margin.

**Worst points.** For problems whose gradients are affine in x (all but logistic) the gap
`LHS − RHS` of (U) is a quadratic in x_k, and at x_k = x* that of (V) is a quadratic in
J_k (the M-terms vanish with e). One Newton step from the solution then lands on the
x_k (or J_k) that makes the inequality tightest (or, for a mutant, most violated);
for logistic it is a nearby point, no less valid an instance.

Constants: the problems of `EXACT_KINDS` (ridge, weighted ridge, least squares, logistic,
quadratic); `from_loss` is left out because its μ, L, L_H and L_C are local estimates
(`Constants.estimated`), which the global inequalities may not hold with.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools

import jax
import jax.numpy as jnp
import numpy as np
from hypothesis import given
from hypothesis import strategies as st

import problems
from derivatives.sgd import derivative_step, sgd_step
from problems.strategies import EXACT_KINDS, problems_and_thetas

MARGIN = 1e-9  # relative, on the magnitudes of the terms
ROUNDING = 1e-12  # relative to the size of the points, for the differences x − x*, J − J*


# --- the exact conditional expectation ------------------------------------------------------


def all_batches(problem, batch_size: int):
    """Every ordered minibatch of `batch_size` samples, stacked: `n^b` batches of `b` samples."""
    index = np.array(list(itertools.product(range(problem.n_samples), repeat=batch_size)), dtype=np.int64)
    return jax.tree.map(lambda leaf: leaf[index], problem.data)


@functools.partial(jax.jit, static_argnames="batch_size")
def exact_errors(problem, theta, x_star, jac_star, x, jac, alpha, batch_size):
    """`(E_k‖x_{k+1} − x*‖², E_k‖J_{k+1} − J*‖²_F)` after one step from `(x, jac)`: the mean
    over all `n^b` equally likely ordered minibatches, drawn with replacement."""
    def errors(batch):
        x_next = sgd_step(problem, theta, batch, x, alpha)
        jac_next = derivative_step(problem, theta, batch, x, jac, alpha)
        return jnp.sum((x_next - x_star) ** 2), jnp.sum((jac_next - jac_star) ** 2)

    iterate_errors, jacobian_errors = jax.vmap(errors)(all_batches(problem, batch_size))
    return jnp.mean(iterate_errors), jnp.mean(jacobian_errors)


@functools.partial(jax.jit, static_argnames=("batch_size", "wrt"))
def stationary_point(problem, theta, x_star, jac_star, alpha, contraction, objective_weight, batch_size, wrt):
    """One Newton step from the solution on a gap `LHS − RHS`, and the largest eigenvalue of its Hessian.

    `wrt="x"`: the gap `E_k‖x_{k+1} − x*‖² − contraction·‖x − x*‖² + objective_weight·F(x)` in x
    (J_k = J*). `wrt="jac"`: `E_k‖J_{k+1} − J*‖² − contraction·‖J − J*‖²` in J at x_k = x*.
    Constants of the RHS do not move the point. Where the Hessian is negative definite and the
    gap quadratic, the point is the gap's maximiser.
    """
    if wrt == "x":
        def gap(x):
            iterate_error, _ = exact_errors(problem, theta, x_star, jac_star, x, jac_star, alpha, batch_size)
            return iterate_error - contraction * jnp.sum((x - x_star) ** 2) + objective_weight * problem.objective(
                x, theta)
        start = x_star
    else:
        def gap(jac):
            _, jacobian_error = exact_errors(problem, theta, x_star, jac_star, x_star, jac, alpha, batch_size)
            return jacobian_error - contraction * jnp.sum((jac - jac_star) ** 2)
        start = jac_star
    size = start.size
    gradient = jax.grad(gap)(start).reshape(size)
    hessian = jax.hessian(gap)(start).reshape(size, size)
    step = jnp.linalg.solve(hessian, gradient).reshape(start.shape)
    return start - step, jnp.linalg.eigvalsh(hessian)[-1]


# --- the two sides ---------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Instance:
    """A problem at θ with what both sides need: constants, x*, J*, M = L_H‖J*‖_F + L_C, F*."""

    problem: object
    theta: jax.Array
    mu: float
    L: float
    sigma2: float
    sigma2_jac: float
    M: float
    x_star: jax.Array
    jac_star: jax.Array
    objective_star: float
    affine: bool  # gradients affine in x (L_H = 0): the gaps are exact quadratics
    label: str = ""

    @classmethod
    def of(cls, problem, theta=None, label: str = ""):
        theta = problem.check_theta(problem.theta0 if theta is None else theta)
        c = problem.constants(theta)
        assert not c.estimated, f"{problem} has estimated constants {c.estimated}"
        x_star, jac_star = problem.solution(theta), problem.solution_jacobian(theta)
        M = float(c.hessian_lipschitz) * float(jnp.linalg.norm(jac_star)) + float(c.cross_lipschitz)
        return cls(problem, theta, float(c.mu), float(c.L), float(c.sigma2), float(c.sigma2_jac), M, x_star,
                   jac_star, float(problem.objective(x_star, theta)), float(c.hessian_lipschitz) == 0.0, label)

    def __str__(self):
        return (f"{self.label or self.problem} at θ = {np.asarray(self.theta)} (μ = {self.mu:.6g}, L = {self.L:.6g}, "
                f"σ² = {self.sigma2:.6g}, σ_J² = {self.sigma2_jac:.6g}, M = {self.M:.6g})")


@dataclasses.dataclass(frozen=True)
class Side:
    """`lhs ≤ Σ terms`, with the margin of the module docstring (`rounding` its absolute part)."""

    lhs: float
    terms: tuple[float, ...]
    rounding: float = 0.0

    @property
    def rhs(self) -> float:
        return float(sum(self.terms))

    @property
    def excess(self) -> float:
        """`LHS − RHS` beyond the margin: > 0 means violated."""
        return self.lhs - self.rhs - MARGIN * (abs(self.lhs) + sum(abs(t) for t in self.terms)) - self.rounding

    @property
    def relative_slack(self) -> float:
        return (self.rhs - self.lhs) / self.rhs


@dataclasses.dataclass(frozen=True)
class Variant:
    """The inequalities as stated (the defaults) or mutated."""

    contraction_factor: float = 1.0  # (1 − c·αμ); the mutant c = 2
    noise_power: int = 1  # σ²/b^power in (U); the mutant 2
    zero_coupling: bool = False  # M replaced by 0 in (V)
    jacobian_noise_factor: float = 4.0  # the 4α² of (V); the mutant 1


STATED = Variant()


def sides(inst: Instance, x, jac, alpha: float, batch_size: int, variant: Variant = STATED) -> dict[str, Side]:
    """Both sides of (U), (U') and (V) at `(x_k, J_k) = (x, jac)`, as `Side`s keyed by name."""
    lhs_x, lhs_jac = (float(v) for v in exact_errors(inst.problem, inst.theta, inst.x_star, inst.jac_star,
                                                      jnp.asarray(x), jnp.asarray(jac), alpha, batch_size))
    e2 = float(jnp.sum((x - inst.x_star) ** 2))
    d = float(jnp.linalg.norm(jac - inst.jac_star))
    objective_gap = float(inst.problem.objective(x, inst.theta)) - inst.objective_star
    b = batch_size
    contraction = 1.0 - variant.contraction_factor * alpha * inst.mu
    M = 0.0 if variant.zero_coupling else inst.M
    rounding_x = rounding(lhs_x, np.sqrt(e2), x, inst.x_star)
    rounding_f = 2 * alpha * abs(1 - 2 * alpha * inst.L) * ROUNDING * (
        abs(float(inst.problem.objective(x, inst.theta))) + abs(inst.objective_star))
    return {
        "U": Side(lhs_x, (contraction * e2, 2 * alpha**2 * inst.sigma2 / b**variant.noise_power), rounding_x),
        "U'": Side(lhs_x, ((1 - alpha * inst.mu) * e2, -2 * alpha * (1 - 2 * alpha * inst.L) * objective_gap,
                          2 * alpha**2 * inst.sigma2 / b), rounding_x + rounding_f),
        "V": Side(lhs_jac, (contraction * d**2, 2 * alpha * M * d * np.sqrt(e2),
                            variant.jacobian_noise_factor * alpha**2 * M**2 * e2,
                            variant.jacobian_noise_factor * alpha**2 * inst.sigma2_jac / b),
                  rounding(lhs_jac, d, jac, inst.jac_star)),
    }


def rounding(lhs: float, distance: float, point, solution) -> float:
    """The absolute part of the margin: `2δ(√lhs + distance) + 2δ²`, `δ = 1e-12(1 + ‖point‖ + ‖solution‖)`."""
    delta = ROUNDING * (1.0 + float(jnp.linalg.norm(point)) + float(jnp.linalg.norm(solution)))
    return 2 * delta * (np.sqrt(max(lhs, 0.0)) + distance) + 2 * delta**2


def assert_holds(side: Side, what: str) -> None:
    assert side.excess <= 0, (f"{what}: LHS {side.lhs:.17g} > RHS {side.rhs:.17g} (terms {side.terms}), "
                              f"beyond the margin by {side.excess:.3e}")


def worst_point(inst: Instance, alpha: float, batch_size: int, wrt: str, contraction: float,
                objective_weight: float = 0.0):
    point, top = stationary_point(inst.problem, inst.theta, inst.x_star, inst.jac_star, alpha, contraction,
                                  objective_weight, batch_size, wrt)
    return point, float(top)


def unit(rng: np.random.Generator, shape) -> np.ndarray:
    v = rng.standard_normal(shape)
    return v / np.linalg.norm(v)


# --- the stated inequalities -----------------------------------------------------------------


@given(
    problems_and_thetas(EXACT_KINDS),
    st.sampled_from((1, 2)),
    st.floats(1e-3, 1.0),
    st.sampled_from((1e-3, 0.1, 1.0, 10.0)),
    st.sampled_from((0.0, 1e-2, 1.0, 10.0)),
    st.integers(0, 2**16),
)
def test_one_step_inequalities_hold_exactly(drawn, batch_size, step_fraction, distance, jacobian_distance, seed):
    """(U), (U') and (V) hold with the margin of the module docstring, at three kinds of point
    (and, first, the helper `exact_errors` gives α²σ²/b and α²σ_J²/b at (x*, J*), see below):

    - a random (x_k, J_k): x_k = x* + r·u, J_k = J* + s·W with u, W uniform unit directions
      (seeded), r = distance·(1 + ‖x*‖), s = jacobian_distance·(1 + ‖J*‖_F);
    - the worst x_k for (U) and for (U') (J_k = J*), by the Newton step of `stationary_point`;
    - the worst J_k for (V) at x_k = x*.

    For affine gradients the gaps of (U) in x_k and of (V) in J_k are also checked to be
    strictly concave (largest Hessian eigenvalue < 0): otherwise they would grow without
    bound along some direction and the Newton point would not be the worst one.

    Instances: a drawn problem of every exact-constant kind at a drawn θ, α = step_fraction/(2L)
    with step_fraction ∈ [1e-3, 1] (α = 1/(2L) included), b ∈ {1, 2}. (U') needs no step
    condition, so it is checked again with 4α, up to 2/L.
    """
    inst = Instance.of(*drawn)
    rng = np.random.default_rng(seed)
    alpha = step_fraction * 0.5 / inst.L
    # The helper itself: at (x*, J*) one step gives exactly α²σ²/b and α²σ_J²/b (b independent
    # mean-zero terms), σ² and σ_J² of `problem.constants` being summed by another code path.
    # Tolerance: 1e-12 relative, plus the δ-part of the margin for the rounding of x_{k+1} − x*.
    at_solution = exact_errors(inst.problem, inst.theta, inst.x_star, inst.jac_star, inst.x_star, inst.jac_star,
                               alpha, batch_size)
    for value, noise, point in zip(at_solution, (inst.sigma2, inst.sigma2_jac), (inst.x_star, inst.jac_star)):
        exact = alpha**2 * noise / batch_size
        assert abs(float(value) - exact) <= 1e-12 * exact + rounding(exact, 0.0, point, point), (
            f"one step from the solution of {inst}: E_k‖error‖² = {float(value)!r}, α²·noise/b = {exact!r}")
    r = distance * (1.0 + float(jnp.linalg.norm(inst.x_star)))
    s = jacobian_distance * (1.0 + float(jnp.linalg.norm(inst.jac_star)))
    x = inst.x_star + r * unit(rng, inst.x_star.shape)
    jac = inst.jac_star + s * unit(rng, inst.jac_star.shape)
    for name, side in sides(inst, x, jac, alpha, batch_size).items():
        assert_holds(side, f"({name}) at a random point of {inst}, α = {alpha!r}, b = {batch_size}, seed {seed}")
    assert_holds(sides(inst, x, jac, 4 * alpha, batch_size)["U'"],
                 f"(U') at a random point of {inst}, α = {4 * alpha!r}, b = {batch_size}, seed {seed}")

    contraction = 1.0 - alpha * inst.mu
    worst_x, top = worst_point(inst, alpha, batch_size, "x", contraction)
    assert top < 0 or not inst.affine, f"the gap of (U) is not strictly concave on {inst}: eigenvalue {top}"
    assert_holds(sides(inst, worst_x, inst.jac_star, alpha, batch_size)["U"],
                 f"(U) at the worst x_k = {worst_x} of {inst}, α = {alpha!r}, b = {batch_size}")
    worst_x, _ = worst_point(inst, alpha, batch_size, "x", contraction, 2 * alpha * (1 - 2 * alpha * inst.L))
    assert_holds(sides(inst, worst_x, inst.jac_star, alpha, batch_size)["U'"],
                 f"(U') at the worst x_k = {worst_x} of {inst}, α = {alpha!r}, b = {batch_size}")
    worst_jac, top = worst_point(inst, alpha, batch_size, "jac", contraction)
    assert top < 0 or not inst.affine, f"the gap of (V) in J_k is not strictly concave on {inst}: eigenvalue {top}"
    assert_holds(sides(inst, inst.x_star, worst_jac, alpha, batch_size)["V"],
                 f"(V) at the worst J_k = {worst_jac} of {inst}, α = {alpha!r}, b = {batch_size}")


# --- mutants: each weakened inequality fails somewhere ---------------------------------------


def gaussian_ridges():
    """A fixed family: ridge on Gaussian designs, n = 20, d = 2 (one compiled shape), θ = λ."""
    return [Instance.of(problems.ridge(20, 2, regularisation=lam, seed=seed),
                        label=f"ridge(20, 2, regularisation={lam}, seed={seed})")
            for lam in (0.05, 0.3) for seed in (1, 2, 3)]


def arc_ridge(spread: float, lam: float) -> Instance:
    """Ridge on n = 20 features of equal norm on an arc `(cos φ, sin φ)`, |φ| ≤ spread, with
    noise-free targets `y = A(1, 2)`: every per-sample Hessian `aaᵀ + λI` has the same top
    eigenvalue L, which makes the co-coercivity step of (U) nearly tight."""
    phi = np.linspace(-spread, spread, 20)
    features = np.stack([np.cos(phi), np.sin(phi)], axis=1)
    return Instance.of(problems.ridge(features=features, targets=features @ np.array([1.0, 2.0]),
                                      regularisation=lam), label=f"arc_ridge(spread={spread}, λ={lam})")


def violations(found: list[tuple[float, str]], what: str) -> None:
    """Assert that some instance violates: `found` holds (relative excess, description)."""
    worst = max(found)
    assert worst[0] > 0, f"{what}: no instance violates; the largest relative excess is {worst[0]:.3e} on {worst[1]}"


def relative_excess(side: Side) -> float:
    return side.excess / abs(side.rhs)


def test_relaxed_step_condition_is_violated():
    """Mutant: (U) and (V) claimed for α ≤ 1/L instead of α ≤ 1/(2L), checked at α = 1/L,
    b = 1, at the worst x_k (for U) and the worst J_k at x_k = x* (for V).

    Instances: the Gaussian ridges of `gaussian_ridges` (they do not violate it: their
    per-sample Hessians have top eigenvalues spread below L, which leaves slack) and the
    equal-norm `arc_ridge`s, on which both mutants fail. Margin as in the module docstring."""
    family = gaussian_ridges() + [arc_ridge(spread, lam) for spread in (0.5, 1.0) for lam in (0.1, 0.01)]
    found_u, found_v = [], []
    for inst in family:
        alpha = 1.0 / inst.L
        contraction = 1.0 - alpha * inst.mu
        worst_x, _ = worst_point(inst, alpha, 1, "x", contraction)
        found_u.append((relative_excess(sides(inst, worst_x, inst.jac_star, alpha, 1)["U"]),
                        f"{inst}, x_k = {worst_x}"))
        worst_jac, _ = worst_point(inst, alpha, 1, "jac", contraction)
        found_v.append((relative_excess(sides(inst, inst.x_star, worst_jac, alpha, 1)["V"]),
                        f"{inst}, J_k = {worst_jac}"))
    violations(found_u, "(U) at α = 1/L")
    violations(found_v, "(V) at α = 1/L")


def test_noise_divided_by_b_squared_is_violated():
    """Mutant: (U) with σ²/b² in place of σ²/b, b = 2, α = 1/(2L), at the worst x_k.

    At x_k = x* the mutant is an equality (E_k‖x_{k+1} − x*‖² = α²σ²/2 = 2α²σ²/b²), and for
    constant per-sample Hessians it holds everywhere; it fails through the correlation of
    the per-sample Hessians with the gradient noise, which makes the gap linear in e near
    x*. Instances: `gaussian_ridges`. Margin as in the module docstring."""
    found = []
    for inst in gaussian_ridges():
        alpha = 0.5 / inst.L
        worst_x, _ = worst_point(inst, alpha, 2, "x", 1.0 - alpha * inst.mu)
        side = sides(inst, worst_x, inst.jac_star, alpha, 2, Variant(noise_power=2))["U"]
        found.append((relative_excess(side), f"{inst}, x_k = {worst_x}"))
    violations(found, "(U) with σ²/b²")


def test_zero_coupling_is_violated():
    """Mutant: (V) with M = 0 (ridge with θ = λ has ∇²ₓθfᵢ = x, so L_C = 1 and M = 1).

    At J_k = J* and x_k = x* + t·u the exact LHS is α²(σ_J²/b + t²) (the cross term is
    constant in i), which passes the mutant's 4α²σ_J²/b once t² > 3σ_J²/b. Instances:
    `gaussian_ridges`, t = 10, u a fixed unit direction, α = 1/(2L), b ∈ {1, 2}."""
    found = []
    direction = np.array([0.6, 0.8])
    for inst in gaussian_ridges():
        assert inst.M == 1.0
        alpha = 0.5 / inst.L
        x = inst.x_star + 10.0 * direction
        for b in (1, 2):
            side = sides(inst, x, inst.jac_star, alpha, b, Variant(zero_coupling=True))["V"]
            found.append((relative_excess(side), f"{inst}, b = {b}, x_k = {x}"))
    violations(found, "(V) with M = 0")


def test_doubled_contraction_is_violated():
    """Mutant: (U) and (V) with the contraction 1 − 2αμ in place of 1 − αμ.

    Along the eigenvector v of ∇²F(x*) for μ the exact contraction of a ridge step is
    (1 − αμ)² > 1 − 2αμ, which the noise terms cannot cover far from the solution:
    x_k = x* + t·v (J_k = J*) for (U), J_k = J* + t·v e₁ᵀ at x_k = x* for (V), t = 10.
    Instances: `gaussian_ridges`, α = 1/(2L), b = 1. Margin as in the module docstring."""
    found_u, found_v = [], []
    for inst in gaussian_ridges():
        alpha = 0.5 / inst.L
        _, vectors = np.linalg.eigh(np.asarray(jax.hessian(inst.problem.objective)(inst.x_star, inst.theta)))
        smallest = vectors[:, 0]
        x = inst.x_star + 10.0 * smallest
        jac = inst.jac_star + 10.0 * np.outer(smallest, np.eye(inst.jac_star.shape[1])[0])
        found_u.append((relative_excess(sides(inst, x, inst.jac_star, alpha, 1, Variant(contraction_factor=2.0))["U"]),
                        f"{inst}, x_k = {x}"))
        found_v.append((relative_excess(sides(inst, inst.x_star, jac, alpha, 1, Variant(contraction_factor=2.0))["V"]),
                        f"{inst}, J_k = {jac}"))
    violations(found_u, "(U) with 1 − 2αμ")
    violations(found_v, "(V) with 1 − 2αμ")


def test_jacobian_noise_factor_one_is_violated():
    """Mutant: (V) with α² in place of 4α², at the worst J_k at x_k = x*, α = 1/(2L), b ∈ {1, 2}.

    At (x*, J*) the mutant is an equality (E_k‖J_{k+1} − J*‖² = α²σ_J²/b); it fails through the
    correlation of the per-sample Hessians with the Jacobian noise, which makes the gap
    linear in D near J*. Instances: `gaussian_ridges`. Margin as in the module docstring."""
    found = []
    for inst in gaussian_ridges():
        alpha = 0.5 / inst.L
        for b in (1, 2):
            worst_jac, _ = worst_point(inst, alpha, b, "jac", 1.0 - alpha * inst.mu)
            side = sides(inst, inst.x_star, worst_jac, alpha, b, Variant(jacobian_noise_factor=1.0))["V"]
            found.append((relative_excess(side), f"{inst}, b = {b}, J_k = {worst_jac}"))
    violations(found, "(V) with α² in place of 4α²")


def test_step_condition_is_nearly_sharp_for_the_iterates():
    """(U) on `arc_ridge(0.5, 0.001)`, b = 1, at the worst x_k: it holds at α = 1/(2L) (the
    stated condition) and fails already at α = 0.55/L, so the constant ½ in α ≤ 1/(2L) cannot
    be raised much for (U) as stated. Margin as in the module docstring."""
    inst = arc_ridge(0.5, 0.001)
    for step_fraction, holds in ((0.5, True), (0.55, False)):
        alpha = step_fraction / inst.L
        worst_x, _ = worst_point(inst, alpha, 1, "x", 1.0 - alpha * inst.mu)
        side = sides(inst, worst_x, inst.jac_star, alpha, 1)["U"]
        if holds:
            assert_holds(side, f"(U) at the worst x_k = {worst_x} of {inst}, α = {alpha!r}")
        else:
            assert side.excess > 0, f"(U) holds at α = {step_fraction}/L on {inst}: slack {side.relative_slack:.3e}"
