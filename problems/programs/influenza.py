"""influenza: a switching state-space model of influenza mortality.

Shumway & Stoffer, *Time Series Analysis and Its Applications*, Example 6.22 (monthly
pneumonia and influenza mortality), in the encoding of the LYY18 benchmarks (Lee, Yu &
Yang, NeurIPS 2018), as used by DSGD (Wagner, Khajwal & Ong, AISTATS 2024), whose variant
is the one written here. The first 12 months are observed.

**Program.** With `a_0 = b_0 = c_0 = 0`, `f_0 ~ N(0, 1)` and, for `i = 1..12`,

    v_i ~ N(0, 0.023),   w_i ~ N(0, 0.112)
    a_i = 1.406·a_{i−1} − 0.622·b_{i−1} + v_i,   b_i = a_{i−1}       (AR(2) component)
    c_i = 0.210 − 0.312·c_{i−1} + w_i                                 (epidemic component)
    f_i ~ N(if f_{i−1} then 0.67 else −0.67, 1)                        [if i − 1]
    y_i ~ N(if f_i then a_i else a_i + c_i, 0.002)                     [if 12 + i − 1]

(normal distributions written with their standard deviation). The sources also carry a
component that stays 0 and is added to both observation means; it is left out. The ifs
select the means (DSGD), so smoothing mixes the means.

**Latents.** `f_0..f_12 = z[0..12]`, `v_1..v_12 = z[13..24]`, `w_1..w_12 = z[25..36]`.

**Constants.** The AR coefficients, noise scales and regime means of LYY18's encoding;
observations: the first 12 months of the series of Shumway & Stoffer. All initial
variational parameters are 0 (means 0, σ = ln 2).

**Ifs.** Two vector ifs: the regime means (guards `f_0..f_11`) and the observation means
(guards `f_1..f_12`); each `f_1..f_11` is the guard of two ifs.

**Facts.** d = 37, |θ| = 74, K = 24, ℓ_guard = 1, affine guards: yes.
"""

from __future__ import annotations

import numpy as np

from problems.programs import expressions as ex
from problems.programs.program import MeanField, Program

AR1, AR2 = 1.406, -0.622
EPIDEMIC_INTERCEPT, EPIDEMIC_COEFFICIENT = 0.210, -0.312
SCALE_V, SCALE_W, SCALE_OBS = 0.023, 0.112, 0.002
REGIME_MEAN = 0.67
MONTHS = 12

# The first 12 months of the monthly pneumonia and influenza mortality series.
OBSERVATIONS = (
    0.2902977, 0.5702096, 0.6384278, 0.3135166, 0.2047724, 0.1885323,
    0.1798065, 0.1867087, 0.1871117, 0.2157304, 0.2385934, 0.2572363,
)


def influenza() -> Program:
    """The influenza model.

    **Returns:** the `Program`, θ = 0.
    """
    n = MONTHS
    z = ex.latent(3 * n + 1)
    f, v, w = z[0:n + 1], z[n + 1:2 * n + 1], z[2 * n + 1:3 * n + 1]
    # The two components, unrolled: linear in the noises, no ifs.
    ar_prev, ar_prev2, epidemic_prev = ex.const(0.0), ex.const(0.0), ex.const(0.0)
    ar_parts, epidemic_parts = [], []
    for i in range(n):
        ar_i = AR1 * ar_prev + AR2 * ar_prev2 + v[i]
        epidemic_i = EPIDEMIC_INTERCEPT + EPIDEMIC_COEFFICIENT * epidemic_prev + w[i]
        ar_parts.append(ar_i)
        epidemic_parts.append(epidemic_i)
        ar_prev, ar_prev2, epidemic_prev = ar_i, ar_prev, epidemic_i
    ar, epidemic = ex.stack(ar_parts), ex.stack(epidemic_parts)

    regime_mean = ex.if_(f[0:n], REGIME_MEAN, -REGIME_MEAN)
    obs_mean = ex.if_(f[1:n + 1], ar, ar + epidemic)
    log_joint = (
        ex.normal_logpdf(f[0], 0.0, 1.0)
        + ex.normal_logpdf(v, 0.0, SCALE_V).sum()
        + ex.normal_logpdf(w, 0.0, SCALE_W).sum()
        + ex.normal_logpdf(f[1:n + 1], regime_mean, 1.0).sum()
        + ex.normal_logpdf(np.asarray(OBSERVATIONS), obs_mean, SCALE_OBS).sum()
    )
    return Program("influenza", log_joint, MeanField.full(3 * n + 1), np.zeros(2 * (3 * n + 1)))
