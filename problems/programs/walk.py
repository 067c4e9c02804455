"""walk: a bounded random walk observed through the distance it travelled.

From DSGD (Wagner, Khajwal & Ong, *Diagonalisation SGD*, AISTATS 2024); not among the
LYY18 benchmarks. It resembles the pedestrian example of Mak, Ong, Paquet & Wagner
(ESOP 2021), with Gaussian start and steps and at most L = 15 steps.

**Program.** `log p(z) = log N(z_0; 3, 1) + W(1, z_0, 0)` with the recursion, unrolled to
depth 16,

    W(i, x, δ) = if x then                                                [P_{i−1}]
                     (i = 16 ? Pen
                             : log N(z_i; 0, 1) + W(i + 1, x + z_i, δ + (if z_i then z_i else −z_i)))
                 else log N(3.75; δ, 1)                                   [A_i inside]

(normal distributions written with their standard deviation). While the position is
≥ 0 the walk takes the next step, scoring its prior and adding its absolute value (itself
an if) to the distance; at the first negative position the distance is observed as
`D = L/4 = 3.75`. A walk still at a position ≥ 0 after 15 steps scores
`Pen = log N(1000; 7.5, 1)` instead, which effectively rejects it. Steps not taken have no
prior term in log p (log q still covers all 16 coordinates). The positions are the plain
partial sums, never smoothed; the smoothed absolute value is `z_i·(2σ_η(z_i) − 1)`.

**Latents.** The start `z_0 = z[0]` and the steps `z_1..z_15 = z[1..15]`.

**Constants.** L = 15, start prior N(L/5, 1), step prior N(0, 1), observed distance L/4
with noise 1, `Pen`; initial means `(L/3, 0, …, 0)` and ρ = 1 (σ = softplus(1)).

**Ifs.** The absolute values are one vector if `A_1..A_15` (ifs 0–14, guard `z_i`); the
position ifs are nested scalar ifs, built from the innermost out: `P_15, …, P_0` are ifs
15–30, `P_k` with guard `z_0 + … + z_k`, solved for `z_0`.

**Facts.** d = 16, |θ| = 32, K = 31, ℓ_guard = 1, affine guards: yes.
"""

from __future__ import annotations

import math

import numpy as np

from problems.programs import expressions as ex
from problems.programs.program import MeanField, Program

MAX_STEPS = 15
START_MEAN = MAX_STEPS / 5.0
DISTANCE = MAX_STEPS / 4.0
# log N(1000; L/2, 1): the weight of a walk that has not stopped after L steps.
PENALTY = -0.5 * (1000.0 - MAX_STEPS / 2.0) ** 2 - 0.5 * math.log(2.0 * math.pi)


def walk() -> Program:
    """The walk model.

    **Returns:** the `Program`, θ = (means (5, 0, …, 0), ρ = 1).
    """
    n = MAX_STEPS
    z = ex.latent(n + 1)
    steps = z[1:n + 1]
    absolute = ex.if_(steps, steps, -steps)              # A_1..A_15
    prior = ex.normal_logpdf(steps, 0.0, 1.0)            # log N(z_i; 0, 1), i = 1..15
    # Positions x_k = z_0 + … + z_k and distances δ_k = |z_1| + … + |z_k|, k = 0..15, as
    # running sums (cheaper than products with a triangular matrix).
    positions, distances = [z[0]], [ex.const(0.0)]
    for i in range(1, n + 1):
        positions.append(positions[-1] + z[i])
        distances.append(distances[-1] + absolute[i - 1])
    stop = ex.normal_logpdf(DISTANCE, ex.stack(distances), 1.0)   # the else-value of P_k

    # W(16, ·) first, then W(i, ·) for i = 15..1, each in the then-branch of the next one out.
    rest = ex.if_(positions[n], PENALTY, stop[n], solve_for=0)
    for k in range(n - 1, -1, -1):
        rest = ex.if_(positions[k], prior[k] + rest, stop[k], solve_for=0)
    log_joint = ex.normal_logpdf(z[0], START_MEAN, 1.0) + rest

    means = np.zeros(n + 1)
    means[0] = MAX_STEPS / 3.0
    theta0 = np.concatenate([means, np.ones(n + 1)])
    return Program("walk", log_joint, MeanField.full(n + 1), theta0)
