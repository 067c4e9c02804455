"""textmsg: a switchpoint in daily text-message counts.

The text-message example of *Bayesian Methods for Hackers* (Davidson-Pilon, ch. 1) as
modified in the benchmarks of LYY18 (Lee, Yu & Yang, NeurIPS 2018) and used by DSGD
(Wagner, Khajwal & Ong, AISTATS 2024), whose variant is the default.

**Program.** Log-normal rates and a Gaussian switchpoint variable mapped through normal
quantiles; only the 37 even days `k = 2, 4, …, 74` are observed:

    x_1, x_2 ~ N(μ_LN, σ_LN),   w ~ N(0, 1)
    for k = 2, 4, …, 74:
        λ^(k) = if w − τ_k then exp(x_1) else exp(x_2)
        c_k ~ Pois(λ^(k))

with `τ_k = Φ⁻¹(k/75)`, so day `k` uses the first rate when `k ≤ 75·Φ(w)`. The if selects
the rate (DSGD), so smoothing mixes the rates and scores the Poisson pmf at the mix.

**Latents.** `x_1 = z[0]`, `x_2 = z[1]`, `w = z[2]`.

**Constants.** `c̄ = 1461/74`, the mean of all 74 counts; `σ_LN = √(ln 2)` and
`μ_LN = ln c̄ − (ln 2)/2`, so that `e^x` has mean and standard deviation `c̄`; the counts
and initial parameters of LYY18's benchmark suite, `w` starting at std `softplus(1)`
(DSGD) or 1 (LYY18).

**Ifs.** One vector if over the observed days; if `k/2 − 1` has guard `w − τ_k`.

**Facts.** d = 3, |θ| = 6, K = 37, ℓ_guard = 1, affine guards: yes.
"""

from __future__ import annotations

import math

import numpy as np

from problems.programs import expressions as ex
from problems.programs.program import MeanField, Program, softplus_inverse

COUNTS = (
    13, 24, 8, 24, 7, 35, 14, 11, 15, 11,
    22, 22, 11, 57, 11, 19, 29, 6, 19, 12,
    22, 12, 18, 72, 32, 9, 7, 13, 19, 23,
    27, 20, 6, 17, 13, 10, 14, 6, 16, 15,
    7, 2, 15, 15, 19, 70, 49, 7, 53, 22,
    21, 31, 19, 11, 18, 20, 12, 35, 17, 23,
    17, 4, 2, 31, 30, 13, 27, 0, 39, 37,
    5, 14, 13, 22,
)
OBSERVED = COUNTS[1::2]  # days 2, 4, …, 74

MEAN_COUNT = sum(COUNTS) / len(COUNTS)
SCALE_LN = math.sqrt(math.log(2.0))
MEAN_LN = math.log(MEAN_COUNT) - math.log(2.0) / 2.0

# Φ⁻¹(k/75) for k = 2, 4, …, 74.
THRESHOLDS = (
    -1.9322120917982581, -1.6133583946523027, -1.4050715603096329, -1.2444517867714135,
    -1.1107716166367854, -0.994457883209753, -0.8902468872703804, -0.7949086079321857,
    -0.7063025628400874, -0.6229257232100878, -0.5436727802988202, -0.46769879911450823,
    -0.39433553210082267, -0.3230377319818257, -0.2533471031357997, -0.1848670276194425,
    -0.11724404253797363, -0.05015358346473367, 0.016711632998748692, 0.08365173390712909,
    0.1509692154967774, 0.21897866582755993, 0.2880175125636401, 0.3584587932511938,
    0.43072729929545744, 0.5053210885138513, 0.5828415072712162, 0.6640369430943553,
    0.7498694537406553, 0.8416212335729143, 0.941074530352976, 1.0508372738832272,
    1.1749867920660904, 1.3205044038672804, 1.501085946044025, 1.7506860712521692,
    2.216362779224399,
)

INITS = ("dsgd", "lyy18")


def textmsg(init: str = "dsgd") -> Program:
    """The text-message model.

    **Arguments:** `init`: `"dsgd"` starts `w` at ρ = 1 (σ = softplus(1)), `"lyy18"` at σ = 1.

    **Returns:** the `Program`.
    """
    if init not in INITS:
        raise ValueError(f"init must be one of {INITS}, got {init!r}")
    z = ex.latent(3)
    switch = z[2]
    rate = ex.if_(switch - np.asarray(THRESHOLDS), ex.exp(z[0]), ex.exp(z[1]))
    log_joint = (
        ex.normal_logpdf(z[0], MEAN_LN, SCALE_LN)
        + ex.normal_logpdf(z[1], MEAN_LN, SCALE_LN)
        + ex.normal_logpdf(switch, 0.0, 1.0)
        + ex.poisson_logpmf(OBSERVED, rate).sum()
    )
    rho_ln = float(softplus_inverse(SCALE_LN))
    rho_w = 1.0 if init == "dsgd" else float(softplus_inverse(1.0))
    theta0 = np.array([MEAN_LN, MEAN_LN, 0.0, rho_ln, rho_ln, rho_w])
    name = "textmsg" if init == "dsgd" else "textmsg-lyy18"
    return Program(name, log_joint, MeanField.full(3), theta0)
