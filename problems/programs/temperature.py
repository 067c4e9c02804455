"""temperature: a thermostatically controlled load observed with noise.

The TCL model of Soudjani et al. (QEST 2017) as encoded in the benchmarks of LYY18 (Lee,
Yu & Yang, *Reparameterization Gradient for Non-differentiable Models*, NeurIPS 2018) and
copied by DSGD (Wagner, Khajwal & Ong, *Diagonalisation SGD*, AISTATS 2024), whose variant
is the default.

**Program.** With `q_0 = 0`, `t_0 ~ N(20, 0.001)`, `y_0 ~ N(t_0, 1)` and, for `i = 1..20`,

    κ_i = if 18 − t_{i−1} then 0 else (if t_{i−1} − 22 then 1 else q_{i−1})     [A_i, B_i]
    q̃_i ~ N(κ_i, 0.001)
    q_i = if q̃_i − 0.5 then 1 else 0                                            [C_i]
    s_i = if q̃_i − 0.5 then 0.22 else 0.2                                       [D_i]
    t_i ~ N(t_{i−1} + (32 − (t_{i−1} + 21·q_i))/15, s_i + 2)    (DSGD; LYY18: s_i · 2)
    y_i ~ N(t_i, 1)

(normal distributions written with their standard deviation). Smoothing mixes the
parameters `κ_i`, `q_i` and `s_i`; the fractional `q_i` feeds `b_i` and `κ_{i+1}`.

**Latents.** `t_0..t_20 = z[0..20]`, `q̃_1..q̃_20 = z[21..40]`.

**Constants.** Set point 20, dead band 4 (thresholds 18, 22), ambient 32, `1/(CR) = 1/15`,
`RP = 21`, noise scales 0.2 / 0.22, `h = 2`, observations `y_0..y_20` and initial
parameters from LYY18's benchmark suite.

**Ifs.** Vector ifs over the 20 steps, numbered C (0–19), D (20–39), B (40–59), A
(60–79); each guard involves one coordinate: A_i `−t_{i−1} + 18`, B_i `t_{i−1} − 22`,
C_i and D_i `q̃_i − 0.5` (two ifs on one hyperplane).

**Facts.** d = 41, |θ| = 82, K = 80, ℓ_guard = 1, affine guards: yes.
"""

from __future__ import annotations

import numpy as np

from problems.programs import expressions as ex
from problems.programs.program import MeanField, Program, softplus_inverse

T_LOW, T_HIGH = 18.0, 22.0
T_AMBIENT = 32.0
INV_CR = 1.0 / 15.0
RP = 21.0
SCALE_OFF, SCALE_ON = 0.2, 0.22
H = 2.0
INIT_SCALE, SWITCH_SCALE, OBS_SCALE = 0.001, 0.001, 1.0
STEPS = 20

OBSERVATIONS = (
    19.793315726903277, 20.57447277591924, 23.318166935159923, 21.732074976392273,
    23.419968943481056, 23.45150129902584, 20.849568706918458, 20.547137185277485,
    18.211539341750292, 18.505305155632083, 16.33716312726332, 16.381854726212698,
    19.404931063949995, 19.042584619340943, 20.646440471252035, 22.021474886012076,
    21.767275215344945, 22.59452466844986, 20.437738111776696, 21.478557643265425,
    18.513733108301032,
)

TRANSITIONS = ("sum", "product")


def temperature(transition: str = "sum") -> Program:
    """The temperature model.

    **Arguments:** `transition`: `"sum"` for the transition std `s_i + h` of the DSGD
    repository, `"product"` for `s_i · h` of the LYY18 original.

    **Returns:** the `Program`, θ initialised as in both repositories.
    """
    if transition not in TRANSITIONS:
        raise ValueError(f"transition must be one of {TRANSITIONS}, got {transition!r}")
    y = np.asarray(OBSERVATIONS)
    z = ex.latent(2 * STEPS + 1)
    t = z[0:STEPS + 1]
    t_prev, t_next = t[0:STEPS], t[1:STEPS + 1]
    switch = z[STEPS + 1:2 * STEPS + 1]

    heater = ex.if_(switch - 0.5, 1.0, 0.0)                                 # C_i: q_i
    scale = ex.if_(switch - 0.5, SCALE_ON, SCALE_OFF)                      # D_i: s_i
    # q_{i−1} for i = 1..20, with q_0 = 0.
    heater_prev = ex.stack([0.0, heater[0:STEPS - 1]])
    upper = ex.if_(t_prev - T_HIGH, 1.0, heater_prev)                      # B_i
    target = ex.if_(T_LOW - t_prev, 0.0, upper)                            # A_i: κ_i

    drift = INV_CR * (T_AMBIENT - (t_prev + RP * heater))
    step_scale = scale + H if transition == "sum" else scale * H
    log_joint = (
        ex.normal_logpdf(t[0], 20.0, INIT_SCALE)
        + ex.normal_logpdf(y, t, OBS_SCALE).sum()
        + ex.normal_logpdf(switch, target, SWITCH_SCALE).sum()
        + ex.normal_logpdf(t_next, t_prev + drift, step_scale).sum()
    )

    means = np.concatenate([[20.0], y[0:STEPS], np.full(STEPS, 0.5)])
    scales = np.concatenate([[INIT_SCALE], np.full(STEPS, SCALE_OFF * H), np.full(STEPS, SWITCH_SCALE)])
    theta0 = np.concatenate([means, softplus_inverse(scales)])
    name = "temperature" if transition == "sum" else "temperature-product"
    return Program(name, log_joint, MeanField.full(2 * STEPS + 1), theta0)
