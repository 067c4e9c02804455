"""One SGD step against its exact worst case: performance estimation (PEP) for (U) and (V).

`sgd_one_step_iterates` certifies (U) and `sgd_one_step_jacobian` certifies (V) (docs/theory.md):

    E_k‖x_{k+1} − x*‖² ≤ (1 − αμ)‖x_k − x*‖² + 2α²σ²/b                                    (U)
    E_k‖J_{k+1} − J*‖²_F ≤ (1 − αμ)‖D‖² + 2αM‖D‖‖x_k − x*‖ + 4α²(M²‖x_k − x*‖² + σ_J²/b)   (V)

for `F = (1/n)Σ fᵢ` with every `fᵢ` convex and L-smooth, F μ-strongly convex, `0 < α ≤ 1/(2L)`,
`D = J_k − J*`, `M = L_H‖J*‖_F + L_C`. This module measures how far each right side is from the
largest value the left side can take, computed by a semidefinite program (Drori–Teboulle,
Taylor–Hendrickx–Glineur): the unknowns (iterates, gradients, Hessian–vector products) enter only
through their Gram matrix, and the function classes through interpolation conditions; where those
are exact, the program's value is the worst case itself, not a bound on it. PEPit builds and solves the programs;
it is imported inside the functions (`pip install -e '.[test]'` installs it), so that
`import proofs_check` needs nothing beyond the project's dependencies.

Two classes of per-sample losses:

- `samples="strongly_convex"`: every `fᵢ` μ-strongly convex and L-smooth (PEPit's
  `SmoothStronglyConvexFunction`; for (V), every per-sample Hessian at x_k a symmetric matrix with
  spectrum in [μ, L], PEPit's `SymmetricLinearOperator`). A subclass of (U)'s and (V)'s class, with
  exact interpolation conditions: the program's value is that subclass's worst case, a *lower* bound
  on the worst case over (U)'s class. For one step of SGD it equals the PESTO guarantee
  (`pesto_sgd_guarantee`).
- `samples="convex"`: (U)'s own class, every `fᵢ` convex and L-smooth with F μ-strongly convex.
  That F is strongly convex is a condition on a sum, which has no known interpolation conditions:
  it is imposed between the two points the step sees (F's own `F_{μ,L}` interpolation inequalities
  between x_k and x*; for (V), the mean Hessian's spectral condition on D). A relaxation: its value
  is an *upper* bound on the worst case over (U)'s class, and the smallest bound any proof from those
  two-point inequalities can reach (the proof of (U) uses a subset of them).

The worst case over (U)'s class lies between the two, so `(U) ≥ samples="convex"` on a grid checks
(U) numerically on its own class, and how loose (U) is on that class lies between
`(U) ÷ samples="convex"` and `(U) ÷ samples="strongly_convex"` (the latter exact on the subclass).
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import math
import warnings

import sympy as sp

from proofs_check import sgd

SOLVER = "CLARABEL"  # an interior-point SDP solver that cvxpy installs; "SCS" (first order) is less accurate
SAMPLES = ("strongly_convex", "convex")
# Relative rounding allowed on α ≤ 1/(2L), e.g. α computed as 0.5/L.
_ROUNDING = 1e-12


def _pepit():
    """PEPit's primitives, imported on first use."""
    try:
        import PEPit
        from PEPit import functions, operators
    except ImportError as error:
        raise ImportError("the worst-case programs need PEPit (and cvxpy with an SDP solver): "
                          "pip install -e '.[test]'") from error
    return PEPit, functions, operators


def _check(L: float, mu: float, step: float, samples: str, n: int, batch_size: int = 1, *,
           radius_squared: float = 1.0, **bounds: float) -> None:
    if not 0 < mu <= L:
        raise ValueError(f"need 0 < mu <= L, got mu = {mu}, L = {L}")
    if not 0 < step:
        raise ValueError(f"need a positive step, got {step}")
    if samples not in SAMPLES:
        raise ValueError(f"samples must be one of {SAMPLES}, got {samples!r}")
    if not radius_squared > 0:
        raise ValueError(f"need a positive initial distance, got {radius_squared}")
    for name, value in bounds.items():
        if not value >= 0:
            raise ValueError(f"need {name} >= 0, got {value}")
    if n < 1 or batch_size < 1 or n**batch_size > 64:
        raise ValueError(f"need n >= 1, b >= 1 and at most 64 ordered minibatches (n^b), got n = {n}, b = {batch_size}")


def _solve(problem, solver: str) -> float:
    """The program's dual value (an upper bound on its optimum, up to the solver's tolerance), or
    `RuntimeError` when the solver does not report an optimal solution: an inaccurate value is not returned."""
    with warnings.catch_warnings():
        # cvxpy warns "Solution may be inaccurate" with status "optimal_inaccurate": turned into the error below.
        warnings.filterwarnings("ignore", message="Solution may be inaccurate", category=UserWarning)
        value = problem.solve(wrapper="cvxpy", solver=solver, verbose=0)
    status = problem.wrapper.prob.status
    if value is None or status != "optimal":
        raise RuntimeError(f"the SDP solver {solver} ended with status {status!r} (value {value}); "
                           "try another solver, e.g. solver='SCS' or 'CLARABEL'")
    return float(value)


def _total(terms):
    """The sum of PEPit expressions, points or functions (`sum` would start from the integer 0)."""
    total = terms[0]
    for term in terms[1:]:
        total = total + term
    return total


def _mean(terms):
    return _total(terms) / len(terms)


def _smooth_strongly_convex_between(problem, function, first, second, L: float, mu: float) -> None:
    """`function ∈ F_{μ,L}` interpolated on the two points (Taylor, Hendrickx, Glineur 2017, Thm 4):
    for (i, j) = (first, second) and (second, first),
    fᵢ ≥ fⱼ + ⟨gⱼ, xᵢ − xⱼ⟩ + (‖gᵢ − gⱼ‖²/L + μ‖xᵢ − xⱼ‖² − 2(μ/L)⟨gᵢ − gⱼ, xᵢ − xⱼ⟩) / (2(1 − μ/L))."""
    for x_i, x_j in ((first, second), (second, first)):
        f_i, f_j = function.value(x_i), function.value(x_j)
        g_i, g_j = function.gradient(x_i), function.gradient(x_j)
        if mu < L:
            curvature = ((g_i - g_j) ** 2 / L + mu * (x_i - x_j) ** 2 - 2 * mu / L * ((g_i - g_j) * (x_i - x_j))) \
                / (2 * (1 - mu / L))
        else:  # μ = L: strong convexity's inequality alone (necessary, which is all a relaxation needs)
            curvature = L / 2 * (x_i - x_j) ** 2
        problem.add_constraint(f_i >= f_j + g_j * (x_i - x_j) + curvature)


def sgd_step_worst_case(L: float, mu: float, step: float, noise: float, radius_squared: float = 1.0, n: int = 2,
                        *, batch_size: int = 1, samples: str = "strongly_convex", solver: str = SOLVER) -> float:
    """The largest `E_B‖x₁ − x*‖²` after one minibatch SGD step `x₁ = x₀ − α∇f_B(x₀)`, an SDP solved by PEPit.

    **Class** (`samples`, module docstring): `F = (1/n)Σᵢ fᵢ` with every `fᵢ` μ-strongly convex and
    L-smooth ("strongly_convex": exact), or every `fᵢ` convex and L-smooth with F μ-strongly
    convex between x₀ and x* ("convex": a relaxation of (U)'s class, an upper bound on its worst
    case); x* the minimiser of F.

    **Constraints:** `‖x₀ − x*‖² ≤ radius_squared`, `(1/n)Σᵢ‖∇fᵢ(x*)‖² ≤ noise` (σ², the gradient
    noise at the optimum); `B` is `batch_size` indices drawn uniformly with replacement, and
    `∇f_B` their mean: the expectation is the average over the `n^b` ordered minibatches.

    The program is PEPit's `PEP` built here from its primitives (`declare_function`,
    `stationary_point`, `set_initial_point`, `add_constraint`, `set_initial_condition`,
    `set_performance_metric`), solved through cvxpy with `solver`; returns the dual value (an upper
    bound on the program's optimum, up to the solver's tolerance). For b = 1 and the strongly convex class it is
    PEPit's example `wc_sgd` (`PEPit.examples.stochastic_and_randomized_convex_minimization`).
    """
    _check(L, mu, step, samples, n, batch_size, radius_squared=radius_squared, noise=noise)
    PEPit, functions, _ = _pepit()
    problem = PEPit.PEP()
    if samples == "strongly_convex":
        losses = [problem.declare_function(functions.SmoothStronglyConvexFunction, L=L, mu=mu) for _ in range(n)]
    else:
        losses = [problem.declare_function(functions.SmoothConvexFunction, L=L) for _ in range(n)]
    objective = _mean(losses)
    if noise > 0:
        x_star = objective.stationary_point()
        problem.add_constraint(_mean([loss.gradient(x_star) ** 2 for loss in losses]) <= noise)
    else:  # every ∇fᵢ(x*) = 0, written as such: the constraint (1/n)Σ‖∇fᵢ(x*)‖² ≤ 0 leaves no interior
        x_star = PEPit.Point()
        for loss in losses:
            loss.add_point((x_star, PEPit.null_point, PEPit.Expression()))
    x0 = problem.set_initial_point()
    if samples == "convex":
        _smooth_strongly_convex_between(problem, objective, x0, x_star, L, mu)
    problem.set_initial_condition((x0 - x_star) ** 2 <= radius_squared)
    gradients = [loss.gradient(x0) for loss in losses]
    errors = [(x0 - step * _mean([gradients[i] for i in batch]) - x_star) ** 2
              for batch in itertools.product(range(n), repeat=batch_size)]
    problem.set_performance_metric(_mean(errors))
    return _solve(problem, solver)


def pesto_sgd_guarantee(L: float, mu: float, step: float, noise: float, radius_squared: float = 1.0) -> float:
    """The one-step SGD guarantee of PESTO (Taylor, Hendrickx, Glineur 2017), quoted by PEPit's `wc_sgd`:

        E‖x₁ − x*‖² ≤ (γ(L − μ)R/2 + √((1 − γ(L + μ)/2)²R² + γ²v²))²

    for every `fᵢ` μ-strongly convex and L-smooth, `‖x₀ − x*‖² ≤ R²` (`radius_squared`),
    `(1/n)Σ‖∇fᵢ(x*)‖² ≤ v²` (`noise`), one index uniform in {1..n}, step γ. Empirically tight
    (the SDP `sgd_step_worst_case` attains it), and independent of n. With v = 0 and
    γ ≤ 2/(L + μ) it is `(1 − γμ)²R²`, gradient descent's contraction squared."""
    radius = math.sqrt(radius_squared)
    return (step * (L - mu) * radius / 2
            + math.sqrt((1 - step * (L + mu) / 2) ** 2 * radius_squared + step**2 * noise)) ** 2


def _require_certified_step(L: float, step: float) -> None:
    if not 0 < step <= (1 + _ROUNDING) / (2 * L):
        raise ValueError(f"(U) and (V) are certified for 0 < alpha <= 1/(2L): alpha = {step}, 1/(2L) = {1 / (2 * L)}")


_ITERATE_ERROR, _JACOBIAN_ERROR, _COUPLING = sp.symbols("iterate_error jacobian_error coupling", nonnegative=True)
_ITERATE_SYMBOLS = (sgd.alpha, sgd.mu, sgd.sigma2, sgd.b, _ITERATE_ERROR)
_JACOBIAN_SYMBOLS = (sgd.alpha, sgd.mu, _COUPLING, sgd.sigma2_jac, sgd.b, _ITERATE_ERROR, _JACOBIAN_ERROR)


def iterate_bound_expression(claim=None) -> sp.Expr:
    """The right side of (U), `contraction·u + noise` from the claim of `sgd_one_step_iterates` (or
    `claim`, e.g. one of its mutants), in α, μ, σ², b and `u = ‖x_k − x*‖²` (`iterate_error`)."""
    claim = sgd.SGD_ONE_STEP_ITERATES.claim if claim is None else claim
    return claim["contraction"] * _ITERATE_ERROR + claim["noise"]


def jacobian_bound_expression(claim=None) -> sp.Expr:
    """The right side of (V), `contraction·v + cross·√(vu) + coupling·u + noise` from the claim of
    `sgd_one_step_jacobian` (or `claim`), with `M = L_H‖J*‖_F + L_C` as one symbol (`coupling`), in
    α, μ, M, σ_J², b, `u = ‖x_k − x*‖²` (`iterate_error`) and `v = ‖J_k − J*‖²_F` (`jacobian_error`)."""
    claim = sgd.SGD_ONE_STEP_JACOBIAN.claim if claim is None else claim
    expression = (claim["contraction"] * _JACOBIAN_ERROR
                  + claim["cross"] * sp.sqrt(_JACOBIAN_ERROR * _ITERATE_ERROR)
                  + claim["coupling"] * _ITERATE_ERROR + claim["noise"])
    # L_C = M − L_H‖J*‖_F turns every M into `coupling`; nothing else may remain of L_H, L_C, J*.
    expression = sp.expand(expression.subs(sgd.L_C, _COUPLING - sgd.L_H * sgd.J_star))
    if expression.free_symbols & {sgd.L_H, sgd.L_C, sgd.J_star}:
        raise ValueError(f"the claim depends on L_H, L_C, ‖J*‖ otherwise than through M: {expression}")
    return expression


@functools.cache
def _numeric(expression: sp.Expr, symbols: tuple[sp.Symbol, ...]):
    return sp.lambdify(symbols, expression, modules="math")


def one_step_iterate_bound(L: float, mu: float, step: float, noise: float, radius_squared: float = 1.0,
                           batch_size: int = 1, *, claim=None) -> float:
    """The right side of (U), `(1 − αμ)u + 2α²σ²/b` with `u = ‖x_k − x*‖²` (`radius_squared`) and
    σ² = `noise`, evaluated from the claim that `sgd_one_step_iterates` certifies (or `claim`, e.g. one
    of its mutants). Raises `ValueError` outside the certified steps `0 < α ≤ 1/(2L)`."""
    _require_certified_step(L, step)
    function = _numeric(iterate_bound_expression(claim), _ITERATE_SYMBOLS)
    return float(function(step, mu, noise, batch_size, radius_squared))


def one_step_jacobian_bound(L: float, mu: float, step: float, coupling: float, iterate_error_squared: float,
                            jacobian_noise: float, jacobian_error_squared: float = 1.0, batch_size: int = 1, *,
                            claim=None) -> float:
    """The right side of (V), `(1 − αμ)v + 2αM√(vu) + 4α²(M²u + σ_J²/b)` with `v = ‖J_k − J*‖²_F`
    (`jacobian_error_squared`), `u = ‖x_k − x*‖²` (`iterate_error_squared`), M = `coupling`,
    σ_J² = `jacobian_noise`, evaluated from the claim that `sgd_one_step_jacobian` certifies (or `claim`).
    Raises `ValueError` outside the certified steps `0 < α ≤ 1/(2L)`."""
    _require_certified_step(L, step)
    function = _numeric(jacobian_bound_expression(claim), _JACOBIAN_SYMBOLS)
    return float(function(step, mu, coupling, jacobian_noise, batch_size, iterate_error_squared,
                          jacobian_error_squared))


def derivative_step_worst_case(L: float, mu: float, step: float, coupling: float, iterate_error_squared: float,
                               jacobian_noise: float, jacobian_error_squared: float = 1.0, n: int = 2, *,
                               samples: str = "strongly_convex", solver: str = SOLVER) -> float:
    """The largest `E_ξ‖J_{k+1} − J*‖²` after one step `J_{k+1} = J_k − α(H_ξJ_k + C_ξ)` of the
    derivative recursion (b = 1, ξ uniform in {1..n}), an SDP solved by PEPit.

    With `D = J_k − J*`, `Eᵢ(x) = ∇²ₓₓfᵢ(x)J* + ∇²ₓθfᵢ(x)` and `Hᵢ = ∇²ₓₓfᵢ(x_k)`, the step is
    `J_{k+1} − J* = D − α(HᵢD + Eᵢ(x*) + δᵢ)` with `δᵢ = Eᵢ(x_k) − Eᵢ(x*)`. The program's unknowns are
    the vectors D, `wᵢ = HᵢD`, `Zᵢ = Eᵢ(x*)` and δᵢ, constrained by

    - `‖D‖² ≤ jacobian_error_squared`;
    - each `(D, wᵢ)` interpolable by a symmetric `Hᵢ` with spectrum in [μ, L] ("strongly_convex") or
      [0, L] ("convex", where also `(D, w̄)`, `w̄ = (1/n)Σwᵢ = H̄D`, must be interpolable with spectrum in
      [μ, L]: a relaxation, as for (U)) — Bousselmi, Hendrickx, Glineur 2023, PEPit's `SymmetricLinearOperator`;
    - `ΣZᵢ = 0` (the implicit function theorem), `(1/n)Σ‖Zᵢ‖² ≤ jacobian_noise` (σ_J²);
    - `‖δᵢ‖² ≤ M²u` with M = `coupling`, `u = iterate_error_squared` ((A3), as in the proof of (V)).

    Every problem of the class with `L_H‖J*‖_F + L_C ≤ M` gives a feasible point (the Frobenius case
    as vectors of `R^{dp}`, with `Hᵢ ⊗ I_p`), so the value bounds its worst case; for the strongly
    convex class it is attained: take `fᵢ(x, θ) = ½(x − aᵢ)ᵀHᵢ(x − aᵢ) + θ(½xᵀSᵢx + cᵢᵀx)` near θ = 0,
    with `Sᵢ` symmetric, `Sᵢ(x_k − x*) = δᵢ`, `‖Sᵢ‖ = ‖δᵢ‖/‖x_k − x*‖ ≤ M` (a scaled reflection), so
    `L_H = 0`, `L_C ≤ M`, and `cᵢ` chosen to make `Eᵢ(x*) = Zᵢ`. The iterates enter only through
    `u = ‖x_k − x*‖²`: (V) holds for every x_k, and so does this worst case.
    """
    _check(L, mu, step, samples, n, radius_squared=jacobian_error_squared, coupling=coupling,
           iterate_error_squared=iterate_error_squared, jacobian_noise=jacobian_noise)
    PEPit, _, operators = _pepit()
    problem = PEPit.PEP()
    low = mu if samples == "strongly_convex" else 0.0
    hessians = [problem.declare_function(operators.SymmetricLinearOperator, mu=low, L=L) for _ in range(n)]
    D = problem.set_initial_point()
    products = [hessian.gradient(D) for hessian in hessians]
    if samples == "convex":  # the mean Hessian H̄ ⪰ μ (and ⪯ L), seen along D only: (w̄ − μD)·(LD − w̄) ≥ 0
        mean_product = _mean(products)
        problem.add_constraint((mean_product - mu * D) * (L * D - mean_product) >= 0)
    problem.set_initial_condition(D**2 <= jacobian_error_squared)
    # A bound 0 is written as zero vectors: a constraint ‖·‖² ≤ 0 would leave the program no interior.
    if jacobian_noise > 0 and n > 1:
        at_solution = [PEPit.Point() for _ in range(n - 1)]
        at_solution.append(-_total(at_solution))  # Σᵢ Zᵢ = 0
        problem.add_constraint(_mean([z**2 for z in at_solution]) <= jacobian_noise)
    else:
        at_solution = [PEPit.null_point] * n
    drift_bound = coupling**2 * iterate_error_squared
    drifts = [PEPit.Point() if drift_bound > 0 else PEPit.null_point for _ in range(n)]
    for drift in drifts if drift_bound > 0 else ():
        problem.add_constraint(drift**2 <= drift_bound)
    problem.set_performance_metric(_mean([(D - step * (w + z + drift)) ** 2
                                          for w, z, drift in zip(products, at_solution, drifts)]))
    return _solve(problem, solver)


@dataclasses.dataclass(frozen=True)
class IterateRow:
    """(U) against the worst cases at one point (L, R² and n fixed by `worst_case_table`)."""

    mu: float
    step: float
    noise: float
    worst_case: float          # strongly convex samples: exact (a lower bound on (U)'s class)
    pesto: float               # its closed form
    convex_relaxation: float   # (U)'s class, relaxed: an upper bound on its worst case
    bound: float               # the right side of (U)

    @property
    def ratio(self) -> float:
        """(U) ÷ the strongly convex worst case: how loose (U) is on that subclass, and at most how loose
        it is on its own class (where `bound / convex_relaxation` is at least how loose)."""
        return self.bound / self.worst_case


def worst_case_table(mu_over_L=(0.01, 0.1, 0.5), step_times_L=(0.05, 0.25, 0.5), noise_over_L2R2=(0.0, 0.1, 1.0, 10.0),
                     *, L: float = 1.0, radius_squared: float = 1.0, n: int = 2,
                     solver: str = SOLVER) -> list[IterateRow]:
    """(U) against one step's exact worst case over the grid μ = (μ/L)·L, α = (αL)/L,
    σ² = (σ²/(L²R²))·L²R², with b = 1: one `IterateRow` a point, in the grid's order.
    Steps must satisfy α ≤ 1/(2L), where (U) is certified."""
    rows = []
    for mu_ratio, step_L, noise_ratio in itertools.product(mu_over_L, step_times_L, noise_over_L2R2):
        mu, step, noise = mu_ratio * L, step_L / L, noise_ratio * L**2 * radius_squared
        rows.append(IterateRow(
            mu=mu, step=step, noise=noise,
            worst_case=sgd_step_worst_case(L, mu, step, noise, radius_squared, n, solver=solver),
            pesto=pesto_sgd_guarantee(L, mu, step, noise, radius_squared),
            convex_relaxation=sgd_step_worst_case(L, mu, step, noise, radius_squared, n, samples="convex",
                                                  solver=solver),
            bound=one_step_iterate_bound(L, mu, step, noise, radius_squared),
        ))
    return rows


@dataclasses.dataclass(frozen=True)
class JacobianRow:
    """(V) against the worst cases at one point (L, ‖D‖², n fixed by `derivative_worst_case_table`)."""

    mu: float
    step: float
    drift: float               # M²u = M²‖x_k − x*‖²
    jacobian_noise: float      # σ_J²
    worst_case: float          # strongly convex samples: exact
    convex_relaxation: float   # (V)'s class, relaxed
    bound: float               # the right side of (V)

    @property
    def ratio(self) -> float:
        """(V) ÷ the strongly convex worst case, as `IterateRow.ratio`."""
        return self.bound / self.worst_case


def derivative_worst_case_table(mu_over_L=(0.1,), step_times_L=(0.05, 0.25, 0.5), drift=(0.0, 0.1, 1.0),
                                jacobian_noise=(0.0, 1.0), *, L: float = 1.0, jacobian_error_squared: float = 1.0,
                                n: int = 2, solver: str = SOLVER) -> list[JacobianRow]:
    """(V) against one step's exact worst case over the grid, with M = 1 and `u = drift`: the worst
    case and (V) (through `M²u` and `M√u`) depend on M and u only through `M²u`."""
    rows = []
    for mu_ratio, step_L, drift_value, noise in itertools.product(mu_over_L, step_times_L, drift, jacobian_noise):
        mu, step = mu_ratio * L, step_L / L
        arguments = (L, mu, step, 1.0, drift_value, noise, jacobian_error_squared)
        rows.append(JacobianRow(
            mu=mu, step=step, drift=drift_value, jacobian_noise=noise,
            worst_case=derivative_step_worst_case(*arguments, n, solver=solver),
            convex_relaxation=derivative_step_worst_case(*arguments, n, samples="convex", solver=solver),
            bound=one_step_jacobian_bound(*arguments),
        ))
    return rows


__all__ = [
    "SAMPLES", "SOLVER", "IterateRow", "JacobianRow", "derivative_step_worst_case", "derivative_worst_case_table",
    "iterate_bound_expression", "jacobian_bound_expression", "one_step_iterate_bound", "one_step_jacobian_bound",
    "pesto_sgd_guarantee", "sgd_step_worst_case", "worst_case_table",
]
