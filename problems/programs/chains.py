"""Chains of nested ifs whose smoothed-gradient variance is known exactly.

One variational latent `z₁` with `q_θ = N(θ, 1)` (θ the mean, the only parameter; scale
fixed at 1, as in `mixture1d`) and

    log p(z) = log N(z₁; 0, 1) + w · v_ℓ(z),

`v_t` the value of the t-th if of a chain (then-branch 1, else-branch 0), `w` the weight.
Smoothed, each if is `v_t = σ_η(g_t)`, `σ_η(x) = 1/(1 + e^(−x/η))`, with guards:

- **aligned**: `g₁ = z₁`, `g_{t+1} = v_t − ½`. Every guard crosses 0 at `z₁ = 0` and the
  slopes compose: near 0, `g_{t+1} = tanh(g_t/(2η))/2 ≈ g_t/(4η)`, so
  `v_ℓ ≈ σ(z₁/w_ℓ)` with width `w_ℓ = 4^(ℓ−1)η^ℓ` (σ the logistic function).
- **separated**: `g₁ = z₁`, `g_{t+1} = v_t + z₁ − (t + 1)`. Link t + 1 crosses 0 at
  `z₁ ≈ t`, where `v_t` is saturated (`1 − v_t = O(e^(−1/η))`): nesting depth ℓ by the
  syntax, but every spike of `∂v_ℓ/∂z₁` sits where the other links are flat.
- **independent**: `g₁ = z₁`, `g_{t+1} = v_t − ½ + z_{t+1}`, with `z₂ … z_ℓ` auxiliary
  latents `N(0, τ²)` (`τ` = `noise_scale`; fixed mean and scale, in neither log q nor
  log p). Each link has its own continuous noise.

The nesting depth (`Program.nesting_depth`) is ℓ for every kind. With `z = θ + ε`
(`ε₁ ∼ N(0, 1)`) and `log q_θ(θ + ε)` free of θ, the single-sample smoothed
reparameterisation gradient (`derivatives.gradient_samples(…, "smoothed", …)`) is

    G(ε) = −(θ + ε₁) + w · ∂v_ℓ/∂z₁,
    ∂v_ℓ/∂z₁ = Π_{t=1}^{ℓ} σ_η'(g_t)                              (aligned, independent),
    ∂v_{t+1}/∂z₁ = σ_η'(g_{t+1}) · (∂v_t/∂z₁ + 1)                  (separated),

`σ_η'(x) = σ_η(x)(1 − σ_η(x))/η`. Write `M₁ = E[∂v_ℓ]`, `M_ε = E[ε₁ ∂v_ℓ]`,
`M₂ = E[(∂v_ℓ)²]`; then `E[G] = −θ + w M₁` and `Var G = 1 − 2w M_ε + w²(M₂ − M₁²)`.

**Theorem** (θ, w ≠ 0 and τ > 0 fixed; η → 0). `Var G = C η^(−s) (1 + o(1))` with

| kind | s | C = lim η^s Var G |
|---|---|---|
| aligned | ℓ | `w² φ(θ) / (6 · 4^(ℓ−1))` |
| separated | 1 | `w² φ(θ − (ℓ − 1)) / 6` |
| independent | ℓ | `w² φ(θ) I_τ^(ℓ−1) / 6`, `I_τ = ∫_{−½}^{½} (¼ − y²) φ_τ(y) dy` |

φ the standard normal density, φ_τ that of N(0, τ²), and
`I_τ = (¼ − τ²)(2Φ(1/(2τ)) − 1) + τ φ(1/(2τ))`. Since `M₁`, `M_ε = O(1)`, the limit is
`w² lim η^s M₂`; `∫σ'(u)² du = ∫₀¹ x(1 − x) dx = 1/6` (σ the logistic function, `x = σ(u)`).

- aligned: `M₂ = ∫ φ(z − θ) Π σ_η'(g_t)² dz` concentrates on `|z| ≲ w_ℓ`, where
  `∂v_ℓ ≈ σ'(z/w_ℓ)/w_ℓ`, so `M₂ ≈ φ(θ)/(6 w_ℓ)`. The corrections are relative
  `O(η²)` (the cubic term of tanh; `∂v_ℓ` is even in z, so the slope of φ cancels), plus
  the `O(1)` terms of Var: `η^ℓ Var G = C(1 + O(η²)) + O(η^ℓ)`.
- separated: `g_ℓ = v_{ℓ−1} + z − ℓ` is increasing with a single zero, within
  `O(e^(−1/η))` of `z = ℓ − 1`; there `v_{ℓ−1}` is saturated and `∂v_ℓ ≈ σ_η'(z − ℓ + 1)`.
  Elsewhere `|g_ℓ|` is bounded away from 0 and `∂v_ℓ = O(e^(−δ/η)/η^ℓ)`: the spikes of the
  earlier links (at 0, …, ℓ − 2) are multiplied by an exponentially small `σ_η'(g_ℓ)`.
  So `M₂ = φ(ℓ − 1 − θ)/(6η) (1 + O(η²))` and `η Var G = C + O(η)`, whatever ℓ.
- independent: conditionally on `v_t = ½ + c`, `R_t^(k)(c) = E[Π_{r>t} σ_η'(g_r)^k]`
  satisfies `R_ℓ = 1` and, with `c + z_{t+1} = ηu`,
  `R_t^(k)(c) = η^(1−k) ∫ φ_τ(ηu − c) σ'(u)^k R_{t+1}^(k)(tanh(u/2)/2) du` (`v_{t+1} = σ(u)`).
  As η → 0, `η^(ℓ−t) R_t^(2)(c) → φ_τ(c) · I_τ^(ℓ−t−1)/6` (induction, `x = σ(u)`,
  `x(1 − x)dx = σ'(u)² du`, `tanh(u/2)/2 = x − ½`), and `η^ℓ M₂ → φ(θ) I_τ^(ℓ−1)/6`.

**The reference** `chain_variance` computes `M₁`, `M_ε`, `M₂` by numerical quadrature
from a closed-form NumPy implementation of the smoothed chain and of its derivative
(`smoothed_chain`), independent of the expression evaluator and of JAX: exact up to
quadrature error: below 1e-13 relative where tested (against adaptive `scipy.integrate.quad`
and a nested trapezoidal rule without interpolation).

- aligned, separated: composite 20-point Gauss–Legendre in `z₁` over `θ ± 40`, on panels
  of width ≤ ½ refined geometrically (ratio 2) towards each spike, down to a quarter of
  its narrowest width (`w_t = 4^(t−1)η^t` at 0 for aligned; η at 0, …, ℓ − 1 for separated).
- independent: the `R_t^(k)` above, from the innermost link out, each a Chebyshev
  interpolant on `c ∈ [−½, ½]` (degree doubled until its last coefficients fall below
  1e-13 of the largest, above their rounding plateau near 5e-15), each integral in u by
  composite Gauss–Legendre on panels of width `min(1, τ/η)`; then `M_k` by the same rule
  in `u = z₁/η`.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from jax.typing import ArrayLike
from jaxtyping import Float, Real

from problems.programs import expressions as ex
from problems.programs.program import MeanField, Program
from problems.validation import CountLike

CHAIN_KINDS = ("aligned", "separated", "independent")

_GAUSS_NODES, _GAUSS_WEIGHTS = np.polynomial.legendre.leggauss(20)
_HALF_RANGE = 40.0        # φ(40) ≈ 1e-348: beyond θ ± 40 the Gaussian weight is 0 in float64
_BULK_PANEL = 0.5         # panel width away from the spikes
_U_UNDERFLOW = 745.0      # e^(−745) is the smallest positive float64
_TAIL_DECADES = 46.0      # σ'(u)^k < e^(−46) ≈ 1e-20 beyond |u| = 46/k
_MAX_PANELS = 20_000      # about 1/noise_scale panels where noise_scale < η
_CHUNK = 16               # Chebyshev nodes per matrix product (bounds the memory)
_CHEBYSHEV_DEGREES = (32, 64, 128, 256, 512, 1024)
_CHEBYSHEV_TAIL = 1e-13


@dataclasses.dataclass(frozen=True)
class ChainMoments:
    """The moments of the single-sample smoothed gradient `G` (one component) of a chain:
    `mean = E[G]`, `second_moment = E[G²]`, `variance = Var G`."""

    mean: float
    second_moment: float
    variance: float


# --- checks -----------------------------------------------------------------------------

def _check_depth(depth) -> int:
    if isinstance(depth, bool) or not isinstance(depth, numbers.Integral) or depth < 1:
        raise ValueError(f"depth must be an integer >= 1 (the number of ifs in the chain), got {depth!r}")
    return int(depth)


def _check_kind(kind) -> str:
    if kind not in CHAIN_KINDS:
        raise ValueError(f"kind must be one of {CHAIN_KINDS}, got {kind!r}")
    return kind


def _check_real(value, name: str, *, positive: bool = False) -> float:
    if isinstance(value, bool) or np.ndim(value) != 0:
        raise ValueError(f"{name} must be a real scalar, got {value!r}")
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a real scalar, got {value!r}") from None
    if not math.isfinite(value) or (positive and not value > 0):
        raise ValueError(f"{name} must be a finite{' positive' if positive else ''} number, got {value!r}")
    return value


# --- the program ----------------------------------------------------------------------------

def guard_chain(
    depth: CountLike,
    kind: str = "aligned",
    *,
    weight: Real[ArrayLike, ""] = 1.0,
    theta0: Real[ArrayLike, ""] = 0.0,
    noise_scale: Real[ArrayLike, ""] = 1.0,
) -> Program:
    """The chain program of `depth` ifs of `kind` (module docstring).

    **Arguments:**

    - `depth`: ℓ ≥ 1, the number of ifs and the nesting depth.
    - `kind`: one of `CHAIN_KINDS`.
    - `weight`: w, finite, the factor of the last if's value in log p.
    - `theta0`: the initial variational mean of `z₁`, finite.
    - `noise_scale`: τ > 0, the standard deviation of the auxiliary latents `z₂ … z_ℓ`
      (used by "independent" only, checked for every kind).

    **Returns:** a `Program` named `f"chain{depth}_{kind}"`, θ = (mean of z₁,), dimension
    ℓ for "independent" (z₁ variational, the others auxiliary) and 1 otherwise.
    """
    depth, kind = _check_depth(depth), _check_kind(kind)
    weight = _check_real(weight, "weight")
    theta0 = _check_real(theta0, "theta0")
    noise_scale = _check_real(noise_scale, "noise_scale", positive=True)
    dim = depth if kind == "independent" else 1
    z = ex.latent(dim)
    value = ex.step(z[0])
    for t in range(1, depth):
        if kind == "aligned":
            guard = value - 0.5
        elif kind == "separated":
            guard = value + z[0] - float(t + 1)
        else:
            guard = value - 0.5 + z[t]
        value = ex.step(guard)
    log_joint = ex.normal_logpdf(z[0], 0.0, 1.0) + weight * value
    scales = np.full(dim, noise_scale)
    scales[0] = 1.0
    family = MeanField(dim, mean_slots=np.array([0]), scale_slots=np.array([], dtype=np.int64),
                       fixed_mean=np.zeros(dim), fixed_scale=scales)
    return Program(f"chain{depth}_{kind}", log_joint, family, np.array([theta0]))


# --- the closed-form chain -----------------------------------------------------------------

def _logistic(x):
    """σ(x) = 1/(1 + e^(−x)), without overflow."""
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def _logistic_derivative(x):
    """σ'(x) = e^(−|x|)/(1 + e^(−|x|))², accurate in the tails."""
    e = np.exp(-np.abs(x))
    return e / (1.0 + e) ** 2


def smoothed_chain(
    depth: CountLike,
    z: Real[ArrayLike, "*batch d"],
    eta: Real[ArrayLike, ""],
    kind: str = "aligned",
) -> tuple[Float[np.ndarray, "*batch"], Float[np.ndarray, "*batch"]]:
    """The smoothed chain's value `v_ℓ(z)` and its derivative `∂v_ℓ/∂z₁`, in closed form
    (NumPy, no expression evaluator): the chain rule of the module docstring, with the
    centred values `v_t − ½ = tanh(g_t/(2η))/2` and `1 − v_t = σ(−g_t/η)` computed without
    cancellation.

    **Arguments:** `z` of shape `(..., d)`, d = ℓ for "independent" (z₁ then the auxiliary
    latents) and 1 otherwise; `eta` > 0.

    **Returns:** `(value, derivative)`, each of shape `z.shape[:-1]`.
    """
    depth, kind = _check_depth(depth), _check_kind(kind)
    eta = _check_real(eta, "eta", positive=True)
    z = np.asarray(z, dtype=np.float64)
    dim = depth if kind == "independent" else 1
    if z.ndim < 1 or z.shape[-1] != dim:
        raise ValueError(f"z must have shape (..., {dim}) for a chain of depth {depth} of kind {kind!r}, "
                         f"got shape {z.shape}")
    z1 = z[..., 0]
    guard = z1
    derivative = _logistic_derivative(guard / eta) / eta
    for t in range(1, depth):
        if kind == "aligned":
            guard = 0.5 * np.tanh(guard / (2 * eta))
            derivative = derivative * _logistic_derivative(guard / eta) / eta
        elif kind == "separated":
            guard = (z1 - t) - _logistic(-guard / eta)
            derivative = _logistic_derivative(guard / eta) / eta * (derivative + 1.0)
        else:
            guard = 0.5 * np.tanh(guard / (2 * eta)) + z[..., t]
            derivative = derivative * _logistic_derivative(guard / eta) / eta
    return np.asarray(_logistic(guard / eta)), np.asarray(derivative)


# --- quadrature ------------------------------------------------------------------------------

def _gauss_legendre(edges):
    """Nodes and weights of the composite 20-point Gauss–Legendre rule on the panels
    between consecutive `edges` (sorted)."""
    left, right = edges[:-1], edges[1:]
    half, middle = (right - left) / 2, (right + left) / 2
    nodes = middle[:, None] + half[:, None] * _GAUSS_NODES
    weights = half[:, None] * _GAUSS_WEIGHTS
    return nodes.ravel(), weights.ravel()


def _spike_edges(lo: float, hi: float, spikes: Sequence[tuple[float, float]]):
    """Panel edges on [lo, hi]: width ≤ `_BULK_PANEL`, plus edges at `c ± w·2^j`
    (j ≥ −2, up to 2) around each spike `(c, w)`."""
    count = math.ceil((hi - lo) / _BULK_PANEL)
    pieces = [np.linspace(lo, hi, count + 1)]
    for centre, width in spikes:
        steps = width * 2.0 ** np.arange(-2, math.ceil(math.log2(2.0 / width)) + 1)
        pieces.append(np.concatenate([[centre], centre - steps, centre + steps]))
    edges = np.unique(np.concatenate(pieces))
    return edges[(edges >= lo) & (edges <= hi)]


def _single_latent_moments(depth: int, eta: float, kind: str, theta: float):
    """`(M₁, M_ε, M₂)` for the aligned and separated chains: 1-D quadrature in z₁."""
    if kind == "aligned":
        widths = [4.0 ** (t - 1) * eta**t for t in range(1, depth + 1)]
        spikes = [(0.0, min(widths))]
    else:
        spikes = [(float(t), eta) for t in range(depth)]
    if min(width for _, width in spikes) < 1e-280:
        raise ValueError(f"the spike of the chain is narrower than float64 resolves (eta={eta}, depth={depth})")
    z, weights = _gauss_legendre(_spike_edges(theta - _HALF_RANGE, theta + _HALF_RANGE, spikes))
    density = weights * np.exp(-0.5 * (z - theta) ** 2) / math.sqrt(2 * math.pi)
    _, derivative = smoothed_chain(depth, z[:, None], eta, kind)
    return (float(density @ derivative), float(density @ ((z - theta) * derivative)),
            float(density @ derivative**2))


def _u_rule(eta: float, scale: float, centre_bound: float, power: int):
    """Nodes and weights in `u` for `∫ φ_scale(ηu − c) σ'(u)^power h(u) du`, |c| ≤
    `centre_bound`: uniform panels of width `min(1, scale/η)` over |u| ≤ U, with U where
    σ'(u)^power, relative to its weight near u = 0, or φ_scale(ηu − c) has vanished."""
    ratio = centre_bound**2 / (2 * scale**2)        # log of max φ_scale / φ_scale(c)
    half_range = min((_TAIL_DECADES + ratio) / power, _U_UNDERFLOW / power,
                     (centre_bound + _HALF_RANGE * scale) / eta)
    width = min(1.0, scale / eta)
    count = math.ceil(2 * half_range / width)
    if count > _MAX_PANELS:
        raise ValueError(f"noise_scale={scale} is too small for the quadrature at eta={eta}: {count} panels "
                         f"of width {width:.3g} (at most {_MAX_PANELS})")
    return _gauss_legendre(np.linspace(-half_range, half_range, count + 1))


def _link_expectation(eta: float, scale: float, power: int, inner: Callable | None) -> Callable:
    """`R_t^(k)` from `R_{t+1}^(k)` (`inner`, None for the constant 1), as a Chebyshev
    interpolant on c ∈ [−½, ½]:
    `R_t(c) = η^(1−k) ∫ φ_τ(ηu − c) σ'(u)^k R_{t+1}(tanh(u/2)/2) du`, τ = `scale`."""
    u, weights = _u_rule(eta, scale, 0.5, power)
    factor = weights * _logistic_derivative(u) ** power * eta ** (1 - power) / (scale * math.sqrt(2 * math.pi))
    if inner is not None:
        factor = factor * inner(0.5 * np.tanh(u / 2))

    def values(c):
        return np.concatenate([np.exp(-0.5 * ((eta * u[None, :] - chunk[:, None]) / scale) ** 2) @ factor
                               for chunk in np.array_split(c, math.ceil(len(c) / _CHUNK))])

    for degree in _CHEBYSHEV_DEGREES:
        interpolant = np.polynomial.Chebyshev.interpolate(values, degree, domain=(-0.5, 0.5))
        coefficients = np.abs(interpolant.coef)
        if coefficients[-4:].max() <= _CHEBYSHEV_TAIL * coefficients.max():
            return interpolant
    raise ValueError(f"the link expectation does not resolve at noise_scale={scale}, eta={eta}: "
                     f"use a larger noise_scale")


def _independent_moments(depth: int, eta: float, theta: float, scale: float):
    """`(M₁, M_ε, M₂)` for the independent chain: nested 1-D quadratures."""
    moments = []
    for power in (1, 2):
        inner = None
        for _ in range(depth - 1):
            inner = _link_expectation(eta, scale, power, inner)
        u, weights = _u_rule(eta, 1.0, abs(theta), power)
        epsilon = eta * u - theta
        factor = (weights * np.exp(-0.5 * epsilon**2) / math.sqrt(2 * math.pi)
                  * _logistic_derivative(u) ** power * eta ** (1 - power))
        if inner is not None:
            factor = factor * inner(0.5 * np.tanh(u / 2))
        moments.append((float(factor.sum()), float(factor @ epsilon)))
    (first, first_epsilon), (second, _) = moments
    return first, first_epsilon, second


# --- the exact moments and their limits ---------------------------------------------------------

def chain_variance(
    depth: CountLike,
    eta: Real[ArrayLike, ""],
    kind: str = "aligned",
    *,
    weight: Real[ArrayLike, ""] = 1.0,
    theta: Real[ArrayLike, ""] = 0.0,
    noise_scale: Real[ArrayLike, ""] = 1.0,
) -> ChainMoments:
    """The exact moments of the smoothed single-sample gradient of `guard_chain(depth,
    kind, weight=weight, noise_scale=noise_scale)` at θ and accuracy η, by quadrature
    (module docstring; relative error below 1e-13 where tested):
    `E[G] = −θ + w M₁`, `Var G = 1 − 2w M_ε + w²(M₂ − M₁²)`, `E[G²] = Var G + E[G]²`.

    **Returns:** a `ChainMoments`.
    """
    depth, kind = _check_depth(depth), _check_kind(kind)
    eta = _check_real(eta, "eta", positive=True)
    weight = _check_real(weight, "weight")
    theta = _check_real(theta, "theta")
    noise_scale = _check_real(noise_scale, "noise_scale", positive=True)
    if kind == "independent":
        first, first_epsilon, second = _independent_moments(depth, eta, theta, noise_scale)
    else:
        first, first_epsilon, second = _single_latent_moments(depth, eta, kind, theta)
    mean = -theta + weight * first
    variance = 1.0 - 2.0 * weight * first_epsilon + weight**2 * (second - first**2)
    return ChainMoments(mean=mean, second_moment=variance + mean**2, variance=variance)


def chain_variances(
    depth: CountLike,
    etas: Real[ArrayLike, " n"] | Sequence[Any],
    kind: str = "aligned",
    *,
    weight: Real[ArrayLike, ""] = 1.0,
    theta: Real[ArrayLike, ""] = 0.0,
    noise_scale: Real[ArrayLike, ""] = 1.0,
) -> Float[np.ndarray, " n"]:
    """`chain_variance(depth, η, …).variance` for each η of `etas` (a 1-D sequence)."""
    etas = np.asarray(etas, dtype=np.float64)
    if etas.ndim != 1:
        raise ValueError(f"etas must be a one-dimensional sequence of accuracies, got shape {etas.shape}")
    return np.array([chain_variance(depth, float(eta), kind, weight=weight, theta=theta,
                                    noise_scale=noise_scale).variance for eta in etas])


def chain_exponent(depth: CountLike, kind: str = "aligned") -> int:
    """The exponent s of `Var G ∼ C η^(−s)` as η → 0: ℓ for "aligned" and "independent",
    1 for "separated" (whatever its nesting depth)."""
    depth, kind = _check_depth(depth), _check_kind(kind)
    return 1 if kind == "separated" else depth


def noise_overlap(noise_scale: Real[ArrayLike, ""]) -> float:
    """`I_τ = ∫_{−½}^{½} (¼ − y²) φ_τ(y) dy = (¼ − τ²)(2Φ(1/(2τ)) − 1) + τ φ(1/(2τ))`, τ = `noise_scale`: the
    factor that each link after the first contributes to the limit constant of an
    independent chain."""
    s = _check_real(noise_scale, "noise_scale", positive=True)
    a = 0.5 / s
    return (0.25 - s**2) * math.erf(a / math.sqrt(2)) + s * math.exp(-0.5 * a**2) / math.sqrt(2 * math.pi)


def chain_limit_constant(
    depth: CountLike,
    kind: str = "aligned",
    *,
    weight: Real[ArrayLike, ""] = 1.0,
    theta: Real[ArrayLike, ""] = 0.0,
    noise_scale: Real[ArrayLike, ""] = 1.0,
) -> float:
    """`C = lim_{η→0} η^s Var G`, s = `chain_exponent(depth, kind)` (module docstring):

    - aligned: `w² φ(θ) / (6 · 4^(ℓ−1))`;
    - separated: `w² φ(θ − (ℓ − 1)) / 6` (only the last link's spike, at z₁ = ℓ − 1);
    - independent: `w² φ(θ) I_τ^(ℓ−1) / 6`, `I_τ = noise_overlap(τ)`, τ = `noise_scale`.
    """
    depth, kind = _check_depth(depth), _check_kind(kind)
    weight = _check_real(weight, "weight")
    theta = _check_real(theta, "theta")
    noise_scale = _check_real(noise_scale, "noise_scale", positive=True)

    def phi(x):
        return math.exp(-0.5 * x**2) / math.sqrt(2 * math.pi)

    if kind == "aligned":
        return weight**2 * phi(theta) / (6.0 * 4.0 ** (depth - 1))
    if kind == "separated":
        return weight**2 * phi(theta - (depth - 1)) / 6.0
    return weight**2 * phi(theta) * noise_overlap(noise_scale) ** (depth - 1) / 6.0
