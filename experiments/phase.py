"""The phase diagram of decreasing steps `αₖ = a/(k + k0)`: the rate of both errors against aμ.

**The claims** (μ the smallest eigenvalue of H̄, assumed simple, with unit eigenvector u;
`σᵤ² = uᵀΣ_z u`, `σ_Jᵤ² = uᵀΣ_J u`, `g² = Σⱼ(uᵀḠⱼu)²`, batch size b; "coupling" means
g² > 0, as for ridge with θ = λ where Ḡ = I; least squares with targets moving with θ has
Ḡ = 0). In the μ-eigendirection SGD is the scalar recursion `e′ = (1 − αμ)e − αξ`,
`E′ = (1 − αμ)E − αg·e − αΞ`, so with `Π(k, t) ≈ (t/k)^(aμ)` and `Σ_{s=t}^{k} αₛ ≈ a log(k/t)`,

    E_k = g Σₜ αₜξₜ Π(k, t+1) Σ_{s=t+1}^{k−1} αₛ + (own noise Ξ),
    Var ≈ a⁴g²σᵤ² Σₜ t^(2aμ−2) k^(−2aμ) log²(k/t),

and for `vₖ` = E‖eₖ‖² (iterate) or E‖Eₖ‖²_F (derivative):

| aμ | iterate | derivative, no coupling | derivative, coupling |
|---|---|---|---|
| > 1/2 | `c/k`, c = `decreasing_limit` | `c/k` | `c/k` |
| = 1/2 | `c₁ log(k)/k`, `c₁ = a²σᵤ²/b` | `c log(k)/k`, `c = a²σ_Jᵤ²/b` | `c₃ log³(k)/k`, `c₃ = a⁴g²σᵤ²/(3b)` |
| < 1/2 | `c k^(−2aμ)` | `c k^(−2aμ)` | `c₂ log²(k) k^(−2aμ)` |

plus lower powers of log k. Below 1/2 the coefficient is predicted from the iterate's
curve: eₖ/Π(k, 0) converges almost surely (its increments have summable variance), and
`Eₖ ≈ −g·(Σₜαₜ)·eₖ ≈ −g·a·log(k)·eₖ`, so `c₂ = a²g²·lim k^(2aμ)E‖eₖ‖²` (the other
eigendirections decay faster). The exponent of both errors is `−min(1, 2aμ)`: the critical
point is aμ = 1/2, not the aμ > 1 that the certified bounds need; and `log(k)²/k` is the
form of no column, since 2aμ = 1 carries log¹ or log³ and log² goes with `k^(−2aμ)`, 2aμ < 1.

**What is checked.** `rates.exact_curves` gives the exact expectations (no seeds) for
problems whose gradients are affine in x, to K = 10⁷ steps on the whole grid (10⁸ at the
coupled critical point) in the full study. For each problem and aμ (steps `a = aμ/μ`,
`k0 = 2aL`, so that `a/k0 = 1/(2L)`; x₀ = 0, J₀ = 0, b = 1), over the window of the last
`window_decades` decades, `[K/100, K]`:

1. **Exponent** (`RateCheck.fitted_exponent`): the log–log slope (`rates.fit.fit_power_law`).
   A factor `log(k)^m` adds `m·ℓ` to it, ℓ the least-squares slope of `log log k` against
   `log k` over the window (`log_slope`: 0.073 over [10⁵, 10⁷], 0.087 over [10⁴, 10⁶]); lower
   powers of log with positive coefficients add less. The band is
   `[−β − EXPONENT_SLACK, −β + m·ℓ + EXPONENT_SLACK]`, β = min(1, 2aμ), m the claimed log
   power, and the slack 0.03 allows for a negative lower log term (least squares at
   aμ = 1/2: `1.06·log k − 2.0`, which adds 0.084 where m·ℓ = 0.073). A slope outside the
   band is `"crossover"` when the asymptotic check below passes, `"FAIL"` otherwise.
2. **Log factor** (`fit_log_factor`): `yₖ = k^β vₖ` is fitted over the window, by least
   squares on the exact values, with

       M(D):  y ≈ Σ_{j≤D} cⱼ Lʲ + k^(−γ) Σ_{j≤2} dⱼ Lʲ,    L = log k,

   for D = 0, …, 4. The second sum is the slowest correction the same derivation
   predicts: `γ = |1 − 2aμ|` off the critical point (the recent noise below it; the start
   and early noise above, carrying up to log² k with coupling), γ = 1/2 at it (the
   mean `E eₖ ∝ k^(−aμ)` feeding the second moments), capped at 1 (steps, k0 shifts).
   The **identified log power** is the largest D whose term improves the fit's largest
   relative residual by at least `IMPROVEMENT_RATIO` (100) over M(D − 1), residuals
   below `RESIDUAL_FLOOR` (3·10⁻¹⁰; the rounding of 10⁸ steps of the recursion was
   measured at 6·10⁻¹¹) counting as that floor; 0 if none does. Measured on the grid
   (quick and full): the claimed power improves the residual 570× (the log³ of the coupled
   critical point at K = 10⁸; 800× at 10⁷) to 10⁵×; a power above it at most 25× (quick)
   and 11× (full), as any further smooth term over two decades does; the threshold sits
   between them with a factor 4 to spare on either side. A log power with a small
   coefficient next to large lower ones is beyond this resolution (`0.01·log⁴ k` added to
   the coupled critical curve improves the residual only 23×): the identified power is
   the highest one the window can tell from smooth corrections, and the coefficient
   check below then fails, as it should.
3. **Coefficient**: the leading coefficient c_m of M(m), m the claimed power, against
   c₁, c = a²σ_Jᵤ²/b, c₃, c₂ (above) or, for 2aμ > 1, the constant c₀ of M(0), the limit of
   `k·vₖ` extrapolated, against `rates.exact.decreasing_limit`. Pass within
   `COEFFICIENT_TOLERANCE` (5%) relative. At K = 10⁷ the fitted coefficients move by at
   most 2% when the correction gains a fourth term (L³), or the window starts a decade
   earlier or half a decade later (c₃: 0.1957–0.2014 that way; 0.1975 over [10⁵, 10⁷],
   0.1969 over [10⁶, 10⁸]; predicted 0.1970); the tolerance is 2.5 times that.

A claim is **matched** when the identified power is the claimed one and the coefficient
(where one is predicted) is within tolerance. `RateCheck.effective_log_power`, the local
`d log(y)/d log(L)` of M(m)'s polynomial at K, says what the curve looks like at reachable
k: at the coupled critical point it is 2.15 at k = 10⁷ and 10⁸, since the log² coefficient
(28.4 there, of which 28.35 comes from the start alone: the mean `E Eₖ ≈ −Π(k, 0)·g·a·log(k)·
uᵀ(x₀ − x*)` gives `(Γ(k0)/Γ(k0 − ½))²·a²g²(uᵀ(x₀ − x*))²`; from x₀ = x* it is −2.2) exceeds
c₃ = 0.197 by 144×: log³ overtakes log² only for log k > 144.

**Problems.** `least_squares(20, 2, "none", param_dim=1)` (no coupling) and `ridge(20, 2)`
(coupling), seed 0, with feature scales 1 and 1/2 (`conditioning = 2`): eigenvalue ratios
λ₂/μ = 3.9 and 3.0. With equal scales (conditioning 1) the ratios are 1.21 and 1.19: at
aμ = 1/2 the second direction then decays like `k^(−2aλ₂)` with `2aλ₂ − 1` = 0.19–0.21,
so its transient and its `1/(2aλ₂ − 1)³`-sized share of the derivative sweep through the
whole reachable range (ridge, K = 10⁷: the iterate's fitted log coefficient 0.0012 against
c₁ = 0.041; the derivative's local log power 2 with c₃L³ ≈ 1% of the curve). The
diagram needs a spectral gap well above `|1 − 2aμ|`; `PhaseSettings.conditioning` sets it.

**Cost** (measured on 2 shared CPU cores): 10⁷ exact steps take 6–9 s for least squares and
8–17 s for ridge, 10⁸ steps of the coupled critical point 80–100 s. Full study (K = 10⁷,
10⁸ at the coupled critical point): 265 s; quick (K = 10⁶, and 10⁷ at the coupled critical
point, since over [10⁴, 10⁶] its log³ improves the fit only 126×, near the threshold, and c₃
comes out 5.6% high): 38 s.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Sequence

import numpy as np

import problems
import rates
from experiments import figures, study
from experiments.progress import SILENT, Progress, progress_bar
from problems import Problem
from rates import exact
from rates import fit as rate_fit
from rates.curves import Curves

QUANTITIES = ("iterate_error", "jacobian_error")
SYMBOLS = {"iterate_error": "E‖x_k − x*‖²", "jacobian_error": "E‖J_k − J*‖²_F"}

# The fits and their criteria (module docstring).
MAX_LOG_POWER = 4
CORRECTION_DEGREE = 2
IMPROVEMENT_RATIO = 100.0
RESIDUAL_FLOOR = 3e-10
EXPONENT_SLACK = 0.03
COEFFICIENT_TOLERANCE = 0.05

# The steps that `log(k)²/k` would need: exponent −1 and log power 2.
LOG_SQUARED_OVER_K = (-1.0, 2)

DEFAULT_GRID = (0.25, 0.375, 0.5, 0.625, 0.75, 1.0, 1.5, 2.0, 3.0, 4.0)


@dataclasses.dataclass(frozen=True)
class PhaseSettings:
    """What the phase diagram runs.

    - `grid`: the values of aμ (each at least 1/8 from 1/2 or exactly 1/2: nearer, the
      correction `k^(−|1−2aμ|)` does not decay within reach).
    - `num_steps`: K; `critical_steps`: K at the coupled critical point (aμ = 1/2 on a
      problem with coupling), or `None` for `num_steps`.
    - `checkpoints_per_decade`: log-spaced checkpoints per decade of k.
    - `window_decades`: the fits use `[K/10^window_decades, K]`.
    - `conditioning`: the feature-scale ratio of both problems (sets their spectral gap).
    """

    grid: tuple[float, ...] = DEFAULT_GRID
    num_steps: int = 10**7
    critical_steps: int | None = 10**8
    checkpoints_per_decade: int = 20
    window_decades: float = 2.0
    conditioning: float = 2.0


FULL = PhaseSettings()
QUICK = PhaseSettings(num_steps=10**6, critical_steps=10**7)


@dataclasses.dataclass(frozen=True)
class Case:
    """A problem of the diagram: its name, how to build it (from the conditioning) and a description."""

    name: str
    make: Callable[[float], Problem]
    description: str


def _least_squares(conditioning: float) -> Problem:
    return problems.least_squares(20, 2, "none", param_dim=1, seed=0, conditioning=conditioning)


def _ridge(conditioning: float) -> Problem:
    return problems.ridge(20, 2, seed=0, conditioning=conditioning)


CASES = (
    Case("least_squares", _least_squares, "least_squares(20, 2, \"none\", param_dim=1): Ḡ = 0, no coupling"),
    Case("ridge", _ridge, "ridge(20, 2), θ = λ: Ḡ = I, coupling"),
)


# ----------------------------------------------------------------------------- fits


@dataclasses.dataclass(frozen=True)
class LogFactorFit:
    """The fits `M(D)`, D = 0…`max_power`, of `y = k^β·v` over the window (module docstring).

    `coefficients[D]` holds c₀…c_D of M(D) in powers of `L = log k`; `residuals[D]` is
    M(D)'s largest relative residual; `correction_share[D]` the largest share of the
    correction `k^(−γ)Σdⱼ Lʲ` in y over the window; `identified_power` the log power the
    residuals identify (`identify_log_power`)."""

    beta: float
    gamma: float | None
    start: float
    stop: float
    num_points: int
    coefficients: tuple[tuple[float, ...], ...]
    residuals: tuple[float, ...]
    correction_share: tuple[float, ...]
    identified_power: int

    def leading(self, power: int) -> float:
        """The coefficient of `L^power` in M(power)."""
        return self.coefficients[power][power]

    def effective_log_power(self, power: int) -> float:
        """`d log P / d log L` at `L = log(stop)`, P the polynomial part of M(power): the log
        power the curve shows at the end of the window."""
        polynomial = np.polynomial.Polynomial(self.coefficients[power])
        L = math.log(self.stop)
        return float(L * polynomial.deriv()(L) / polynomial(L))

    def as_dict(self) -> dict:
        return {**dataclasses.asdict(self), "coefficients": [list(c) for c in self.coefficients],
                "residuals": list(self.residuals), "correction_share": list(self.correction_share)}


def correction_exponent(a_mu: float) -> float:
    """γ of the slowest correction the derivation predicts (module docstring)."""
    if _critical(a_mu):
        return 0.5
    return min(abs(1.0 - 2.0 * a_mu), 1.0)


def _critical(a_mu: float) -> bool:
    return math.isclose(2.0 * a_mu, 1.0, rel_tol=1e-12, abs_tol=1e-12)


def identify_log_power(residuals, *, ratio: float = IMPROVEMENT_RATIO, floor: float = RESIDUAL_FLOOR) -> int:
    """The largest D ≥ 1 with `residuals[D − 1] ≥ ratio·residuals[D]` (each residual at
    least `floor`), or 0: the highest power of log whose term the curve needs."""
    floored = np.maximum(np.asarray(residuals, dtype=np.float64), floor)
    needed = [D for D in range(1, floored.size) if floored[D - 1] >= ratio * floored[D]]
    return max(needed, default=0)


def fit_log_factor(steps, values, *, beta: float, gamma: float | None, start: float,
                   max_power: int = MAX_LOG_POWER, correction_degree: int = CORRECTION_DEGREE) -> LogFactorFit:
    """Fit `k^β·v ≈ Σ_{j≤D} cⱼ Lʲ + k^(−γ)Σ_{j≤correction_degree} dⱼ Lʲ` (L = log k) over
    the checkpoints `k ≥ start`, for D = 0…`max_power`, by least squares on the relative
    residuals; `gamma=None` fits the polynomial alone.

    The basis is a polynomial in `t = (L − L̄)/h` (L̄ the middle, h the half-width of the
    window), so that the fit is well conditioned; the coefficients are returned in powers
    of L. Values are exact expectations, so no weights or intervals: the residuals measure
    misfit only.
    """
    steps = np.asarray(steps, dtype=np.float64)
    values = np.asarray(values, dtype=np.float64)
    keep = (steps >= start) & (steps > 1)
    if keep.sum() < max_power + correction_degree + 3:
        raise ValueError(f"start = {start} leaves {int(keep.sum())} checkpoints; at least "
                         f"{max_power + correction_degree + 3} are needed")
    if np.any(values[keep] <= 0) or not np.all(np.isfinite(values[keep])):
        raise ValueError("values must be finite and > 0 over the window")
    k = steps[keep]
    y = k**beta * values[keep]
    L = np.log(k)
    middle, half = 0.5 * (L[0] + L[-1]), 0.5 * (L[-1] - L[0])
    t = (L - middle) / half
    corrections = [] if gamma is None else [k ** -gamma * t**j for j in range(correction_degree + 1)]
    to_L = np.polynomial.Polynomial([-middle / half, 1.0 / half])
    coefficients, residuals, shares = [], [], []
    for D in range(max_power + 1):
        columns = np.stack([t**j for j in range(D + 1)] + corrections, axis=1) / y[:, None]
        scale = np.linalg.norm(columns, axis=0)
        solution = np.linalg.lstsq(columns / scale, np.ones_like(y), rcond=None)[0] / scale
        residuals.append(float(np.max(np.abs(columns @ solution - 1.0))))
        correction = columns[:, D + 1:] @ solution[D + 1:] if corrections else np.zeros_like(y)
        shares.append(float(np.max(np.abs(correction))))
        in_L = np.polynomial.Polynomial(solution[:D + 1])(to_L).coef
        coefficients.append(tuple(float(c) for c in np.pad(in_L, (0, D + 1 - in_L.size))))
    return LogFactorFit(beta=float(beta), gamma=None if gamma is None else float(gamma), start=float(start),
                        stop=float(k[-1]), num_points=int(k.size), coefficients=tuple(coefficients),
                        residuals=tuple(residuals), correction_share=tuple(shares),
                        identified_power=identify_log_power(residuals))


def log_slope(steps, start: float) -> float:
    """ℓ: the least-squares slope of `log log k` against `log k` over `k ≥ start`, the
    exponent a factor `log k` adds to a log–log fit there."""
    steps = np.asarray(steps, dtype=np.float64)
    logs = np.log(steps[(steps >= start) & (steps > 1)])
    return float(np.polyfit(logs, np.log(logs), 1)[0])


# ----------------------------------------------------------------------------- claims


@dataclasses.dataclass(frozen=True)
class Claim:
    """What the derivation predicts for one quantity: `v ~ coefficient·log(k)^log_power·k^exponent`.

    `coefficient` is `None` where none is predicted; for 2aμ > 1 it is the limit of k·v.
    `coefficient_name` says which constant it is."""

    quantity: str
    exponent: float
    log_power: int
    coefficient: float | None
    coefficient_name: str

    def form(self) -> str:
        return describe_form(self.exponent, self.log_power)

    def as_dict(self) -> dict:
        return dataclasses.asdict(self) | {"form": self.form()}


def describe_form(exponent: float, log_power: int) -> str:
    """`log(k)^3/k`, `k^(-0.75)`, `log(k)^2·k^(-0.5)`, … as text."""
    log = "" if log_power == 0 else ("log(k)" if log_power == 1 else f"log(k)^{log_power}")
    if exponent == -1:
        return f"{log}/k" if log else "1/k"
    power = f"k^({exponent:.4g})"
    return f"{log}·{power}" if log else power


@dataclasses.dataclass(frozen=True)
class Spectrum:
    """The constants of one problem that the claims use (module docstring)."""

    mu: float
    lambda2: float
    L: float
    sigma_u2: float        # uᵀΣ_z u
    sigma_jac_u2: float    # uᵀΣ_J u
    coupling_u2: float     # g² = Σⱼ(uᵀḠⱼu)²
    start_error_u: float   # uᵀ(x₀ − x*) for x₀ = 0

    @property
    def coupled(self) -> bool:
        return self.coupling_u2 > 0.0


def spectrum(problem: Problem) -> Spectrum:
    """μ, λ₂ of H̄, L, and the projections on the μ-eigenvector u that the claims use.

    **Raises:** `ValueError` if μ is not simple, or if Ḡ ≠ 0 but uᵀḠⱼu = 0 for every j (a
    coupling outside the derivation)."""
    dynamics = exact.affine_dynamics(problem)
    eigenvalues, basis = np.linalg.eigh(np.asarray(dynamics.hessian))
    if eigenvalues.size > 1 and eigenvalues[1] - eigenvalues[0] <= 1e-9 * eigenvalues[-1]:
        raise ValueError(f"the smallest eigenvalue of the mean Hessian is not simple: {eigenvalues[:2]}")
    u = basis[:, 0]
    coupling = np.asarray(dynamics.coupling)
    g2 = float(sum((u @ G @ u) ** 2 for G in coupling))
    if bool(dynamics.coupled) and g2 <= 1e-24 * max(1.0, float(np.max(np.abs(coupling))) ** 2):
        raise ValueError("the coupling Ḡ does not act on the μ-eigendirection (uᵀḠu = 0): outside the derivation")
    return Spectrum(
        mu=float(eigenvalues[0]), lambda2=float(eigenvalues[1]) if eigenvalues.size > 1 else math.inf,
        L=float(problem.constants().L),
        sigma_u2=float(u @ np.asarray(dynamics.gradient_covariance) @ u),
        sigma_jac_u2=float(u @ np.asarray(dynamics.jacobian_covariance) @ u),
        coupling_u2=g2 if bool(dynamics.coupled) else 0.0,
        start_error_u=float(-u @ np.asarray(dynamics.x_star)),
    )


def claims(problem: Problem, constants: Spectrum, a_mu: float, *, batch_size: int = 1) -> dict[str, Claim]:
    """The derivation's claims for both errors at aμ (module docstring's table). Below 1/2
    with coupling the derivative's c₂ needs the iterate's limit: its `coefficient` is left
    `None` here and filled in by `check_point`."""
    a = a_mu / constants.mu
    b = float(batch_size)
    g2 = constants.coupling_u2
    if _critical(a_mu):
        iterate = Claim("iterate_error", -1.0, 1, a**2 * constants.sigma_u2 / b, "c₁ = a²uᵀΣ_z u/b")
        jacobian = (Claim("jacobian_error", -1.0, 3, a**4 * g2 * constants.sigma_u2 / (3 * b),
                          "c₃ = a⁴Σⱼ(uᵀḠⱼu)²·uᵀΣ_z u/(3b)") if constants.coupled
                    else Claim("jacobian_error", -1.0, 1, a**2 * constants.sigma_jac_u2 / b, "c = a²uᵀΣ_J u/b"))
    elif 2 * a_mu > 1:
        limit = exact.decreasing_limit(problem, a=a, batch_size=batch_size)
        iterate = Claim("iterate_error", -1.0, 0, limit.iterate, "lim k·v_k (decreasing_limit)")
        jacobian = Claim("jacobian_error", -1.0, 0, limit.jacobian, "lim k·v_k (decreasing_limit)")
    else:
        iterate = Claim("iterate_error", -2.0 * a_mu, 0, None, "—")
        jacobian = (Claim("jacobian_error", -2.0 * a_mu, 2, None, "c₂ = a²Σⱼ(uᵀḠⱼu)²·lim k^(2aμ)E‖e_k‖²")
                    if constants.coupled else Claim("jacobian_error", -2.0 * a_mu, 0, None, "—"))
    return {"iterate_error": iterate, "jacobian_error": jacobian}


# ----------------------------------------------------------------------------- checks


@dataclasses.dataclass(frozen=True)
class RateCheck:
    """One claim against one exact curve (module docstring, "What is checked")."""

    claim: Claim
    fitted_exponent: float
    exponent_band: tuple[float, float]
    fit: LogFactorFit
    end_value: float  # K^β·v_K

    @property
    def exponent_in_band(self) -> bool:
        low, high = self.exponent_band
        return bool(low <= self.fitted_exponent <= high)

    @property
    def identified_power(self) -> int:
        return self.fit.identified_power

    @property
    def log_power_ok(self) -> bool:
        return self.fit.identified_power == self.claim.log_power

    @property
    def coefficient(self) -> float:
        """The fitted leading coefficient: c_m of M(m), m the claimed log power."""
        return self.fit.leading(self.claim.log_power)

    @property
    def coefficient_error(self) -> float | None:
        """`fitted/predicted − 1`, or `None` where nothing is predicted."""
        if self.claim.coefficient is None:
            return None
        return self.coefficient / self.claim.coefficient - 1.0

    @property
    def coefficient_ok(self) -> bool | None:
        error = self.coefficient_error
        return None if error is None else bool(abs(error) <= COEFFICIENT_TOLERANCE)

    @property
    def matched(self) -> bool:
        """The asymptotic form: log power identified and coefficient (if predicted) within tolerance."""
        return self.log_power_ok and self.coefficient_ok is not False

    @property
    def exponent_status(self) -> str:
        """`"pass"` (slope in the band), `"crossover"` (outside, but the asymptotic form is
        matched: the correction has not decayed at K) or `"FAIL"`."""
        if self.exponent_in_band:
            return "pass"
        return "crossover" if self.matched else "FAIL"

    @property
    def effective_log_power(self) -> float | None:
        return self.fit.effective_log_power(self.claim.log_power) if self.claim.log_power > 0 else None

    @property
    def identified_form(self) -> tuple[float, int]:
        """(exponent, log power) as measured: the claimed exponent when the slope is in its
        band or the form is matched, else the fitted slope."""
        exponent = self.claim.exponent if self.exponent_status != "FAIL" else self.fitted_exponent
        return exponent, self.fit.identified_power

    def as_dict(self) -> dict:
        return {"claim": self.claim.as_dict(), "fitted_exponent": self.fitted_exponent,
                "exponent_band": list(self.exponent_band), "exponent_status": self.exponent_status,
                "identified_log_power": self.identified_power, "log_power_ok": self.log_power_ok,
                "coefficient": self.coefficient, "coefficient_error": self.coefficient_error,
                "coefficient_ok": self.coefficient_ok, "effective_log_power": self.effective_log_power,
                "end_value": self.end_value, "matched": self.matched, "fit": self.fit.as_dict()}


def check_claim(steps, values, claim: Claim, *, gamma: float | None, start: float) -> RateCheck:
    """Judge `claim` on the exact curve `(steps, values)` over `k ≥ start`: the exponent band,
    the log-factor fits with correction exponent `gamma`, the coefficient."""
    steps = np.asarray(steps, dtype=np.float64)
    values = np.asarray(values, dtype=np.float64)
    window = steps >= start
    slope = rate_fit.fit_power_law(steps[window], values[window], start=start, correlated=False).slope[1]
    beta = -claim.exponent
    shift = claim.log_power * log_slope(steps, start)
    band = (claim.exponent - EXPONENT_SLACK, claim.exponent + shift + EXPONENT_SLACK)
    fit = fit_log_factor(steps, values, beta=beta, gamma=gamma, start=start)
    return RateCheck(claim=claim, fitted_exponent=float(slope), exponent_band=band, fit=fit,
                     end_value=float(steps[-1] ** beta * values[-1]))


@dataclasses.dataclass(frozen=True)
class PhasePoint:
    """One problem at one aμ: the schedule, the run and both checks. `seconds`: the wall time
    of the batch of exact runs the point was computed in (`run_points`)."""

    problem: str
    a_mu: float
    a: float
    k0: float
    num_steps: int
    window_start: float
    gamma: float
    seconds: float
    iterate: RateCheck
    jacobian: RateCheck

    @property
    def checks(self) -> tuple[RateCheck, RateCheck]:
        return self.iterate, self.jacobian

    def as_dict(self) -> dict:
        return {"problem": self.problem, "a_mu": self.a_mu, "a": self.a, "k0": self.k0,
                "num_steps": self.num_steps, "window": [self.window_start, float(self.num_steps)],
                "correction_exponent": self.gamma, "seconds": self.seconds,
                "iterate_error": self.iterate.as_dict(), "jacobian_error": self.jacobian.as_dict()}


def check_point(problem: Problem, name: str, constants: Spectrum, a_mu: float, curves: Curves, *,
                window_decades: float, seconds: float = 0.0) -> PhasePoint:
    """Both checks of one exact run at aμ (`curves` from `run_point`'s schedule)."""
    steps = np.asarray(curves.steps, dtype=np.float64)
    num_steps = int(steps[-1])
    start = num_steps / 10.0**window_decades
    gamma = correction_exponent(a_mu)
    claimed = claims(problem, constants, a_mu)
    iterate = check_claim(steps, curves.iterate_error, claimed["iterate_error"], gamma=gamma, start=start)
    jacobian_claim = claimed["jacobian_error"]
    if jacobian_claim.log_power == 2 and jacobian_claim.coefficient is None:
        a = a_mu / constants.mu
        jacobian_claim = dataclasses.replace(jacobian_claim,
                                             coefficient=a**2 * constants.coupling_u2 * iterate.coefficient)
    jacobian = check_claim(steps, curves.jacobian_error, jacobian_claim, gamma=gamma, start=start)
    a = a_mu / constants.mu
    return PhasePoint(problem=name, a_mu=float(a_mu), a=float(a), k0=float(2 * a * constants.L),
                      num_steps=num_steps, window_start=float(start), gamma=float(gamma), seconds=float(seconds),
                      iterate=iterate, jacobian=jacobian)


def run_point(problem: Problem, constants: Spectrum, a_mu: float, num_steps: int, checkpoints_per_decade: int,
              ) -> Curves:
    """The exact curves at aμ: `αₖ = a/(k + k0)`, `a = aμ/μ`, `k0 = 2aL`, b = 1, x₀ = 0."""
    return run_points(problem, constants, (a_mu,), num_steps, checkpoints_per_decade)[0]


def run_points(problem: Problem, constants: Spectrum, a_mus: tuple[float, ...], num_steps: int,
               checkpoints_per_decade: int) -> list[Curves]:
    """`run_point` at each of `a_mus`, as one batch of `rates.exact.moment_curves_batch`
    (the runs share one loop over steps)."""
    count = round(checkpoints_per_decade * math.log10(num_steps)) + 1
    schedules = [rates.inverse_time(a_mu / constants.mu, 2 * a_mu / constants.mu * constants.L) for a_mu in a_mus]
    dynamics = exact.affine_dynamics(problem)
    return exact.moment_curves_batch([dynamics] * len(a_mus), step_sizes=schedules, num_steps=num_steps,
                                     num_checkpoints=count)


# ----------------------------------------------------------------------------- the diagram


@dataclasses.dataclass(frozen=True)
class ProblemSummary:
    name: str
    description: str
    constants: Spectrum

    def as_dict(self) -> dict:
        return {"name": self.name, "description": self.description, "coupled": self.constants.coupled,
                **dataclasses.asdict(self.constants)}


@dataclasses.dataclass(frozen=True)
class PhaseDiagram:
    """The phase diagram: every point's checks, the verdicts, and writers (markdown, JSON, figure)."""

    settings: PhaseSettings
    problems: tuple[ProblemSummary, ...]
    points: tuple[PhasePoint, ...]
    seconds: float

    def statements(self) -> dict[str, list[RateCheck]]:
        """The derived statements, each with the checks that bear on it (empty ones dropped)."""
        coupled = {p.name: p.constants.coupled for p in self.problems}
        groups: dict[str, list[RateCheck]] = {
            "2aμ > 1: k·v_k → decreasing_limit, both errors": [],
            "aμ = 1/2: iterate ~ c₁ log(k)/k, c₁ = a²uᵀΣ_z u/b": [],
            "aμ = 1/2, no coupling: derivative ~ c log(k)/k, c = a²uᵀΣ_J u/b": [],
            "aμ = 1/2, coupling: derivative ~ c₃ log³(k)/k, c₃ = a⁴g²uᵀΣ_z u/(3b)": [],
            "2aμ < 1: iterate ~ c k^(−2aμ)": [],
            "2aμ < 1, no coupling: derivative ~ c k^(−2aμ)": [],
            "2aμ < 1, coupling: derivative ~ c₂ log²(k) k^(−2aμ), c₂ = a²g²·lim k^(2aμ)E‖e_k‖²": [],
        }
        names = list(groups)
        for point in self.points:
            couple = coupled[point.problem]
            if 2 * point.a_mu > 1 and not _critical(point.a_mu):
                groups[names[0]] += [point.iterate, point.jacobian]
            elif _critical(point.a_mu):
                groups[names[1]].append(point.iterate)
                groups[names[3 if couple else 2]].append(point.jacobian)
            else:
                groups[names[4]].append(point.iterate)
                groups[names[6 if couple else 5]].append(point.jacobian)
        return {name: checks for name, checks in groups.items() if checks}

    def log_squared_over_k(self) -> list[str]:
        """Where the measured form is `log(k)²/k` (exponent −1, log power 2): `problem aμ quantity`."""
        return [f"{point.problem} aμ={point.a_mu:g} {check.claim.quantity}" for point in self.points
                for check in point.checks if check.identified_form == LOG_SQUARED_OVER_K]

    def verdicts(self) -> dict[str, bool]:
        """Each derived statement matched at every grid point it covers; every exponent in
        its band or in a matched crossover; and log(k)²/k measured nowhere."""
        result = {name: all(check.matched for check in checks) for name, checks in self.statements().items()}
        result["exponent −min(1, 2aμ): every slope in its band, or a matched crossover"] = all(
            check.exponent_status != "FAIL" for point in self.points for check in point.checks)
        result["log(k)²/k measured at no grid point"] = not self.log_squared_over_k()
        return result

    @property
    def passed(self) -> bool:
        return all(self.verdicts().values())

    def exponents(self) -> dict:
        """Per problem: aμ, the predicted exponent −min(1, 2aμ) and both fitted exponents."""
        table = {}
        for summary in self.problems:
            points = [p for p in self.points if p.problem == summary.name]
            table[summary.name] = {
                "a_mu": [p.a_mu for p in points],
                "predicted": [-min(1.0, 2 * p.a_mu) for p in points],
                **{q: [p.iterate.fitted_exponent if q == "iterate_error" else p.jacobian.fitted_exponent
                       for p in points] for q in QUANTITIES},
                **{f"{q}_identified_log_power": [(p.iterate if q == "iterate_error" else p.jacobian).identified_power
                                                 for p in points] for q in QUANTITIES},
            }
        return table

    def as_dict(self) -> dict:
        """JSON-ready: settings, grid, problems, exponents, every point's fits, verdicts."""
        return {"settings": dataclasses.asdict(self.settings), "grid": list(self.settings.grid),
                "seconds": self.seconds, "problems": {p.name: p.as_dict() for p in self.problems},
                "exponents": self.exponents(), "points": [p.as_dict() for p in self.points],
                "log_squared_over_k_at": self.log_squared_over_k(), "verdicts": self.verdicts(),
                "passed": self.passed}

    def markdown(self) -> str:
        """A section for report.md: setup, the table, where log(k)²/k is attained, verdicts."""
        s = self.settings
        names = ", ".join(f"`{p.name}` ({p.description}; μ = {p.constants.mu:.4g}, "
                          f"λ₂/μ = {p.constants.lambda2 / p.constants.mu:.3g}, L = {p.constants.L:.4g})"
                          for p in self.problems)
        critical = (f", K = {s.critical_steps:.0e} at the coupled critical point" if s.critical_steps else "")
        lines = [
            "## Phase diagram of decreasing steps α_k = a/(k + k0)", "",
            f"Exact expectations (`rates.exact_curves`, no seeds) of both errors on {names}, with feature scales "
            f"1 and 1/{s.conditioning:g}; k0 = 2aL (a/k0 = 1/(2L)), x₀ = 0, J₀ = 0, batch size 1; K = "
            f"{s.num_steps:.0e}{critical}; fits over the last {s.window_decades:g} decades; {self.seconds:.0f} s. "
            "Claimed (derivation in `experiments/phase.py`): exponent −min(1, 2aμ); log power 1 at aμ = 1/2 "
            "(3 for the derivative with coupling), 2 below 1/2 for the derivative with coupling, 0 elsewhere.", "",
            "*Slope*: the log–log slope over the window, with its band (the claimed exponent plus what the claimed "
            "log power adds over the window, ± 0.03); *log power*: identified from exact polynomial-in-log k fits of "
            "k^β·v_k with the predicted k^(−γ) correction (claimed in brackets); *coefficient*: the fitted leading "
            "coefficient against the prediction (for 2aμ > 1 the extrapolated limit of k·v_k against "
            "`decreasing_limit`, with the raw K·v_K/limit); *matched*: log power identified and coefficient "
            f"within {COEFFICIENT_TOLERANCE:.0%}.", "",
            "| problem | aμ | quantity | claimed form | slope [band] | status | log power (claimed) "
            "| coefficient: fitted / predicted (error) | matched |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for point in self.points:
            for check in point.checks:
                claim = check.claim
                low, high = check.exponent_band
                if claim.coefficient is None:
                    coefficient = f"{check.coefficient:.4g} / —"
                else:
                    coefficient = f"{check.coefficient:.4g} / {claim.coefficient:.4g} ({check.coefficient_error:+.2%})"
                    if claim.log_power == 0 and claim.exponent == -1:
                        coefficient += f"; K·v_K/limit {check.end_value / claim.coefficient:.3f}"
                quantity = "iterate" if claim.quantity == "iterate_error" else "derivative"
                lines.append(
                    f"| {point.problem} | {point.a_mu:g} | {quantity} | {claim.form()} "
                    f"| {check.fitted_exponent:.3f} [{low:.3f}, {high:.3f}] | {check.exponent_status} "
                    f"| {check.identified_power} ({claim.log_power}) | {coefficient} "
                    f"| {'yes' if check.matched else 'NO'} |")
        lines += ["", "### Where is log(k)²/k attained?", "", self._log_squared_statement(), "", "### Verdicts", ""]
        lines += [f"- {name}: {'pass' if passed else 'FAIL'}" for name, passed in self.verdicts().items()]
        return "\n".join(lines) + "\n"

    def _log_squared_statement(self) -> str:
        found = self.log_squared_over_k()
        if found:
            return "The measured form is log(k)²/k at: " + "; ".join(found) + "."
        text = ("Nowhere on the grid: every error with exponent −1 has log power 0 (2aμ > 1) or, at aμ = 1/2, "
                "1 (iterate; derivative without coupling) or 3 (derivative with coupling); log² appears only with "
                "k^(−2aμ), 2aμ < 1, for the derivative with coupling.")
        for point in self.points:
            check = point.jacobian
            if _critical(point.a_mu) and check.claim.log_power == 3:
                c = check.fit.coefficients[3]
                crossing = abs(c[2] / c[3]) if c[3] else math.inf
                text += (f" Caveat ({point.problem}, aμ = 1/2): the leading log³ term has c₃ = {c[3]:.4g} "
                         f"(predicted {check.claim.coefficient:.4g}) but the log² term c₂ = {c[2]:.4g}, so log³ "
                         f"overtakes log² only for log k > {crossing:.0f}; up to K = {point.num_steps:.0e} the curve's "
                         f"local log power is {check.effective_log_power:.2f}: over the reachable range the curve "
                         "looks like log(k)²/k, while its asymptotic form is log³(k)/k.")
        return text

    def figure(self):
        """The exponents of both errors against aμ: fitted (markers), claimed (line), both problems."""
        figure = figures.new_figure(10.0, 4.2)
        axes = figure.subplots(1, 2, sharey=True)
        grid = np.geomspace(min(self.settings.grid) * 0.9, max(self.settings.grid) * 1.1, 400)
        markers = {summary.name: marker for summary, marker in zip(self.problems, "os^Dv")}
        for axis, quantity in zip(axes, QUANTITIES):
            axis.axvspan(1.0, grid[-1], color="0.93", lw=0, zorder=0, label="aμ > 1: certified bounds apply")
            axis.axvline(0.5, color="0.4", ls=":", lw=1.2, label="critical point aμ = 1/2")
            axis.plot(grid, -np.minimum(1.0, 2 * grid), "k-", lw=1.2, label="claimed −min(1, 2aμ)")
            for index, summary in enumerate(self.problems):
                points = [p for p in self.points if p.problem == summary.name]
                checks = [p.iterate if quantity == "iterate_error" else p.jacobian for p in points]
                color = f"C{index}"
                a_mu = np.array([p.a_mu for p in points])
                slopes = np.array([c.fitted_exponent for c in checks])
                axis.plot(a_mu, slopes, ls="none", marker=markers[summary.name], color=color, ms=6, mfc="none",
                          label=f"{summary.name}: fitted slope")
                crossover = np.array([c.exponent_status != "pass" for c in checks])
                axis.plot(a_mu[crossover], slopes[crossover], ls="none", marker="x", color="k", ms=4,
                          label="outside its band: crossover, asymptotic form matched (or FAIL: table)")
                for x, check in zip(a_mu, checks):
                    low, high = check.exponent_band
                    axis.plot([x, x], [low, high], color=color, lw=3, alpha=0.25)
                    if check.identified_power:
                        axis.annotate(f"log{_superscript(check.identified_power)}", (x, check.fitted_exponent),
                                      textcoords="offset points", xytext=(6, 4 + 10 * index), fontsize=7,
                                      color=color)
            highest = max(max(c.exponent_band[1], c.fitted_exponent) for p in self.points for c in p.checks)
            lowest = min(min(c.exponent_band[0], c.fitted_exponent) for p in self.points for c in p.checks)
            axis.set_ylim(lowest - 0.03, highest + 0.08)  # room for the log-power labels
            axis.set_xscale("log")
            axis.set_xticks(list(self.settings.grid), [f"{x:g}" for x in self.settings.grid], fontsize=7,
                            rotation=45)
            axis.minorticks_off()
            axis.set_xlabel("aμ")
            axis.set_title(f"{SYMBOLS[quantity]}: slope over the last {self.settings.window_decades:g} decades "
                           "before K", fontsize=9)
            axis.grid(True, alpha=0.3)
        axes[0].set_ylabel("exponent (log–log slope)")
        entries = {}  # each label once: the crossover marks may appear in one panel only
        for axis in axes:
            for handle, label in zip(*axis.get_legend_handles_labels()):
                entries.setdefault(label, handle)
        labels, handles = list(entries), list(entries.values())
        handles.append(_band_handle())
        labels.append("band: claimed exponent + claimed log factor ± 0.03")
        figure.legend(handles, labels, loc="outside lower center", ncol=3, fontsize=8, frameon=False)
        figure.suptitle("Decreasing steps a/(k + k0): exponent of the exact errors against aμ", fontsize=10)
        return figure

    def draw(self, path) -> None:
        """Write `figure()` to `path` (PNG by its suffix)."""
        figures.save(self.figure(), path)


def _band_handle():
    from matplotlib.lines import Line2D

    return Line2D([], [], color="0.5", lw=3, alpha=0.4)


def _superscript(power: int) -> str:
    return str(power).translate(str.maketrans("0123456789", "⁰¹²³⁴⁵⁶⁷⁸⁹"))


def num_tasks(settings: PhaseSettings) -> int:
    return len(CASES) * len(settings.grid)


def run(settings: PhaseSettings, progress: Progress = SILENT, cases: tuple[Case, ...] = CASES) -> PhaseDiagram:
    """Every case at every aμ of `settings.grid`, calling `progress.advance` after each."""
    start = time.perf_counter()
    summaries, points = [], []
    for case in cases:
        problem = case.make(settings.conditioning)
        constants = spectrum(problem)
        summaries.append(ProblemSummary(case.name, case.description, constants))
        lengths = {a_mu: (settings.critical_steps if _critical(a_mu) and constants.coupled
                          and settings.critical_steps is not None else settings.num_steps) for a_mu in settings.grid}
        # One batch per run length; the points keep the order of the grid.
        done = {}
        for num_steps in sorted(set(lengths.values())):
            batch = tuple(a_mu for a_mu in settings.grid if lengths[a_mu] == num_steps)
            began = time.perf_counter()
            curves = run_points(problem, constants, batch, num_steps, settings.checkpoints_per_decade)
            seconds = time.perf_counter() - began
            for a_mu, curve in zip(batch, curves):
                done[a_mu] = check_point(problem, case.name, constants, a_mu, curve,
                                         window_decades=settings.window_decades, seconds=seconds)
                progress.advance(f"{case.name} aμ={a_mu:g} K={num_steps:.0e} ({seconds:.0f} s, {len(batch)} in the "
                                 f"batch)")
        points += [done[a_mu] for a_mu in settings.grid]
    return PhaseDiagram(settings, tuple(summaries), tuple(points), time.perf_counter() - start)


def merge(diagrams: Sequence[PhaseDiagram]) -> PhaseDiagram:
    """One diagram of the cases of `diagrams` (each `run` on some of the cases at the same
    settings), in their order; its seconds are the sum of theirs."""
    settings = diagrams[0].settings
    if any(diagram.settings != settings for diagram in diagrams):
        raise ValueError("only diagrams run at the same settings can be merged")
    return PhaseDiagram(settings, tuple(p for d in diagrams for p in d.problems),
                        tuple(p for d in diagrams for p in d.points), sum(d.seconds for d in diagrams))


def run_phase_diagram(quick: bool, progress: Progress | None = None, *,
                      settings: PhaseSettings | None = None) -> PhaseDiagram:
    """Run the phase diagram: `QUICK` (K = 10⁶, about 30 s) or `FULL` (K = 10⁷, 10⁸ at the
    coupled critical point, minutes), or `settings` if given.

    `progress`: where each finished grid point is reported; `None` reports on stderr
    (`experiments.progress.progress_bar`: a bar on a terminal, at most 8 lines elsewhere);
    pass `experiments.progress.SILENT` for nothing.
    """
    settings = (QUICK if quick else FULL) if settings is None else settings
    if progress is not None:
        return run(settings, progress)
    with progress_bar(num_tasks(settings), "phase diagram") as bar:
        return run(settings, bar)


STUDY = study.Study(
    name="phase diagram", quick=QUICK, full=FULL, num_tasks=num_tasks, run=run,
    markdown=lambda outcome: outcome.result.markdown(), document=lambda outcome: outcome.result.as_dict(),
    figures=lambda outcome: {"phase_diagram.png": outcome.result.figure()},
    verdicts=lambda result: result.verdicts(), markdown_file="phase.md", json_file="phase.json",
)


__all__ = [
    "CASES",
    "FULL",
    "QUICK",
    "STUDY",
    "Case",
    "Claim",
    "LogFactorFit",
    "PhaseDiagram",
    "PhasePoint",
    "PhaseSettings",
    "RateCheck",
    "Spectrum",
    "check_claim",
    "check_point",
    "claims",
    "correction_exponent",
    "describe_form",
    "fit_log_factor",
    "identify_log_power",
    "log_slope",
    "merge",
    "run",
    "run_phase_diagram",
    "run_point",
    "run_points",
    "spectrum",
]
