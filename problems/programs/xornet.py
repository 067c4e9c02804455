"""xornet: a Bayesian 2–4–2–1 network of Heaviside units fitted to XOR.

From DSGD (Wagner, Khajwal & Ong, *Diagonalisation SGD*, AISTATS 2024); not among the
LYY18 benchmarks.

**Program.** With `H(x) = if x then 1 else 0` elementwise and every weight and bias
`~ N(0, 1)`, for each of the four XOR points `(x, y)`:

    h1 = H(W1·x + b1)          (4 ifs)
    h2 = H(W2·h1 + b2)         (2 ifs)
    o  = H(W3·h2 + b3)         (1 if)
    y ~ N(o, 0.01)

(normal distributions written with their standard deviation). Smoothing turns it into a
sigmoid network with temperature η.

**Latents** (row-major): `W1` (4×2) = `z[0..7]`, `W2` (2×4) = `z[8..15]`, `W3` (1×2) =
`z[16..17]`, `b1 = z[18..21]`, `b2 = z[22..23]`, `b3 = z[24]`.

**Constants.** The XOR data; initial means: one N(0, 1) draw from JAX's threefry PRNG at
key 0 (non-partitionable mode, float32), initial σ = 1.

**Ifs.** One vector if per layer over the four points: layer 1 (ifs 0–15, point-major),
layer 2 (16–23), layer 3 (24–27). Layers 2 and 3 multiply weights by the previous
layer's steps, so their guards are not affine and there is no boundary table.

**Facts.** d = 25, |θ| = 50, K = 28, ℓ_guard = 3, affine guards: no.
"""

from __future__ import annotations

import numpy as np

from problems.programs import expressions as ex
from problems.programs.program import MeanField, Program, softplus_inverse

INPUTS = ((0.0, 0.0), (0.0, 1.0), (1.0, 0.0), (1.0, 1.0))
TARGETS = (0.0, 1.0, 1.0, 0.0)
OBS_SCALE = 0.01

INITIAL_MEANS = (
    2.5163509845733643, -1.3947193622589111, -0.8633261919021606, 0.6413567066192627,
    -0.37789642810821533, -0.604459822177887, 1.9069000482559204, -0.179184690117836,
    -0.7583423256874084, -0.5160155296325684, 1.2666147947311401, -0.12342126667499542,
    -1.266202688217163, -0.17251171171665192, 1.0661486387252808, 1.58141028881073,
    -2.02846360206604, -0.13168257474899292, -0.14515765011310577, 0.21532312035560608,
    -0.6952506303787231, -0.9314128160476685, -0.8980993628501892, -0.25272107124328613,
    -0.3493717312812805,
)

DIM = 25


def xornet() -> Program:
    """The xornet model.

    **Returns:** the `Program`, θ = (the initial means, ρ = softplus⁻¹(1)).
    """
    z = ex.latent(DIM)
    points = len(INPUTS)
    # Shapes (point, unit, input): each layer is one broadcast product summed over inputs.
    w1 = z[0:8].reshape(1, 4, 2)
    w2 = z[8:16].reshape(1, 2, 4)
    w3 = z[16:18].reshape(1, 1, 2)
    b1, b2, b3 = z[18:22], z[22:24], z[24:25]
    x = ex.const(np.asarray(INPUTS).reshape(points, 1, 2))
    h1 = ex.step((w1 * x).sum(-1) + b1)                              # (4 points, 4 units)
    h2 = ex.step((w2 * h1.reshape(points, 1, 4)).sum(-1) + b2)       # (4, 2)
    out = ex.step((w3 * h2.reshape(points, 1, 2)).sum(-1) + b3)      # (4, 1)
    y = ex.const(np.asarray(TARGETS).reshape(points, 1))
    log_joint = ex.normal_logpdf(z, 0.0, 1.0).sum() + ex.normal_logpdf(y, out, OBS_SCALE).sum()
    theta0 = np.concatenate([np.asarray(INITIAL_MEANS), np.full(DIM, float(softplus_inverse(1.0)))])
    return Program("xornet", log_joint, MeanField.full(DIM), theta0)
