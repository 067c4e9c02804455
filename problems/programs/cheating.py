"""cheating: a randomised-response survey of cheating students.

The "privacy algorithm" survey of *Bayesian Methods for Hackers* (Davidson-Pilon, ch. 2),
encoded with Gaussian thresholds by DSGD (Wagner, Khajwal & Ong, *Diagonalisation SGD*,
AISTATS 2024); not among the LYY18 benchmarks.

**Program.** A cheating threshold `τ` with an improper flat prior (log density 0) and,
for each of the N = 100 students, three standard normal auxiliary variables:

    cheat_j = if u_j − τ then 1 else 0                   [if j − 1]
    coin1_j = if s_j then 1 else 0                       [if 100 + j − 1]
    coin2_j = if r_j then 1 else 0                       [if 200 + j − 1]
    ans_j   = coin1_j · cheat_j + (1 − coin1_j) · coin2_j
    p̂ = (1/N) Σ_j ans_j,     log p = 35 · log p̂ + 65 · log(1 − p̂)

(Y = 35 "yes" answers, binomial coefficient dropped). So a student cheats with
probability `1 − Φ(τ)`.

**Latents.** `τ = z[0]`, `u_j = z[j]`, `s_j = z[100 + j]`, `r_j = z[200 + j]`, j = 1..100.

**Variational family.** Only `τ` is variational, `θ = (m_0, ρ_0)`, initially (0, 1).
The auxiliary coordinates are drawn from a fixed N(0, 1) and left out of both log p and
log q (their prior equals their q). Each cheat guard `u_j − τ` is solved for `u_j`.

**Facts.** d = 301 (1 variational), |θ| = 2, K = 300, ℓ_guard = 1, affine guards: yes.
"""

from __future__ import annotations

import numpy as np

from problems.programs import expressions as ex
from problems.programs.program import MeanField, Program

STUDENTS = 100
YES = 35


def cheating() -> Program:
    """The cheating model.

    **Returns:** the `Program`, θ = (m_0, ρ_0) = (0, 1).
    """
    n = STUDENTS
    z = ex.latent(3 * n + 1)
    threshold = z[0]
    noise, first, second = z[1:n + 1], z[n + 1:2 * n + 1], z[2 * n + 1:3 * n + 1]
    cheat = ex.if_(noise - threshold, 1.0, 0.0, solve_for=np.arange(1, n + 1))
    coin1 = ex.step(first)
    coin2 = ex.step(second)
    answer = coin1 * cheat + (1.0 - coin1) * coin2
    rate = answer.sum() / float(n)
    log_joint = float(YES) * ex.log(rate) + float(n - YES) * ex.log(1.0 - rate)
    family = MeanField(3 * n + 1, mean_slots=np.array([0]), scale_slots=np.array([0]),
                       fixed_mean=np.zeros(3 * n + 1), fixed_scale=np.ones(3 * n + 1))
    return Program("cheating", log_joint, family, np.array([0.0, 1.0]))
