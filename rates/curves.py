"""Error curves of SGD iterates and their derivatives, streamed over many seeds.

For S seeds and K steps, the mean and standard error over seeds of

- `‖x_k − x*‖²`           (`iterate_error`),
- `‖J_k − J*‖²_F`         (`jacobian_error`, `J_k = ∂θ x_k` by the Hessian-free tangent
                           recursion `derivatives.sgd.TangentRecursion`, or by the
                           problem's closed-form step, `ClosedFormRecursion`, when it
                           has one),
- `F(x_k) − F(x*)`        (`suboptimality`),

are recorded at log-spaced checkpoints, together with a fourth per-seed statistic,
`⟨J_k − J*, J*⟩_F` (`jacobian_cross`): with it, the derivative error of an engine that
returned `(1 + δ)J_k` is known exactly, seed by seed, without rerunning anything
(`SeedStatistics.scaled_jacobian_error`; `seed_statistics` returns the per-seed values,
`error_curves` their means). The steps are those of `derivatives.unrolled`
(`mode="tangent"`): the same SGD step and loop (`derivatives.sgd.iterate_segments`, a
`fori_loop` between checkpoints), and the same minibatches for the same key. Memory
holds the iterates and Jacobians of the seeds in flight and the C checkpoint
statistics, whatever K is.

**Scale-out.** The seed axis is split over every JAX device (`jax.devices()`: all
local GPUs, or every device of every process after `jax.distributed.initialize()`)
with `shard_map`; each device runs its seeds in chunks (`lax.map` over `vmap`ped
chunks, sized to stay in cache on a CPU). The per-seed statistics (S × C × 4 numbers)
are gathered and reduced on the host in seed order. Seed s always uses
`split(key, S)[s]`, so the curves are the same whatever the number of devices,
processes or the chunk size, up to the rounding of differently compiled batch shapes
(relative 1e-9 at most; bit for bit where every device runs the same program: see
`docs/performance.md`).
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.experimental import multihost_utils
from jax.sharding import Mesh, PartitionSpec
from jaxtyping import ArrayLike, Float, Int, Real

from derivatives.schedules import StepSize
from derivatives.sgd import (
    ClosedFormRecursion,
    DirectionalTangents,
    MinibatchSGD,
    TangentRecursion,
    check_run,
    divergence_error,
    has_closed_form_step,
    iterate_segments,
    stepwise_advance,
)
from problems import Problem
from problems.validation import KeyLike, check_count
from rates.probes import PROBE_FOLD, Probes, default_probe_count

STATISTICS = ("iterate_error", "jacobian_error", "suboptimality")
# What each seed records at each checkpoint: the statistics of the curves, and ⟨J_k − J*, J*⟩_F.
SEED_STATISTICS = STATISTICS + ("jacobian_cross",)

SEED_AXIS = "seeds"

AUTO = "auto"   # jacobian_probes: m from rates.probes.default_probe_count

# The derivative: forward-mode tangents without the Hessian, stored as Jᵀ; or, for a problem
# with a `jacobian_step`, that closed form, stored as J.
METHOD = TangentRecursion()
CLOSED_FORM = ClosedFormRecursion()

# On a CPU, chunks whose Jacobians stay in cache run faster than all seeds at once, and
# they bound the memory of a run with many seeds: at d = p = 64, 256 seeds, chunks of 32
# seeds (1 MiB) took 3.3 s against 5.1 s for chunks of 64 and 4.0 s for 16. Fewer than 16
# seeds a chunk lose more to the loop than they gain (d = p = 256: 2 seeds 6.8 s, 16
# seeds 4.0 s), and small sketches (m ≤ 16 rows) ran fastest in chunks of about 128.
CPU_CHUNK_BYTES = 2**20
CPU_CHUNK_SEEDS = (16, 128)   # the fewest and the most seeds a chunk
CPU_CHUNK_MAX_BYTES = 2**26   # the fewest seeds only while they fit in this


@dataclasses.dataclass(frozen=True)
class Curves:
    """Means over seeds (and their standard errors) at the checkpoints `steps`.

    `num_seeds` is `None` for exact expectations (`rates.exact_curves`), whose standard
    errors are zero."""

    steps: Int[np.ndarray, " C"]
    iterate_error: Float[np.ndarray, " C"]
    jacobian_error: Float[np.ndarray, " C"]
    suboptimality: Float[np.ndarray, " C"]
    iterate_error_se: Float[np.ndarray, " C"]
    jacobian_error_se: Float[np.ndarray, " C"]
    suboptimality_se: Float[np.ndarray, " C"]
    num_seeds: int | None
    batch_size: int | None
    jacobian_probes: int | None = None   # probes per seed of a sketched jacobian_error; None: exact

    def as_dict(self) -> dict:
        return {
            field.name: (value.tolist() if isinstance(value, np.ndarray) else value)
            for field in dataclasses.fields(self)
            for value in [getattr(self, field.name)]
        }


@dataclasses.dataclass(frozen=True)
class SeedStatistics:
    """What each seed of `error_curves` recorded: `values[s, c, i]` is statistic
    `SEED_STATISTICS[i]` of seed s at checkpoint `steps[c]`.

    `jac_star_sq` is `‖J*‖²_F`, or with probes each seed's sketch of it,
    `(1/m)Σᵢ‖J* vᵢ‖²`; `curves()` reduces the seeds to the `Curves` of `error_curves`.
    With probes (`probes`, a `rates.probes.Probes`), `jacobian_error` and `jacobian_cross`
    are each seed's averages over its m probes, and `probe_variance[s, c]` is the sample
    variance of seed s's m per-probe errors (m ≥ 2; `None` otherwise)."""

    steps: Int[np.ndarray, " C"]
    values: Float[np.ndarray, "S C N"]
    jac_star_sq: float | Float[np.ndarray, " S"]
    batch_size: int | None
    probes: Probes | None = None
    probe_variance: Float[np.ndarray, "S C"] | None = None

    @property
    def num_seeds(self) -> int:
        return int(self.values.shape[0])

    def statistic(self, name: str) -> Float[np.ndarray, "S C"]:
        """The per-seed values of one of `SEED_STATISTICS`."""
        return self.values[:, :, SEED_STATISTICS.index(name)]

    def curves(self) -> Curves:
        """Means over seeds and their standard errors: what `error_curves` returns."""
        means, standard_errors = mean_and_standard_error(self.values[:, :, :len(STATISTICS)])
        return Curves(
            steps=self.steps,
            **{name: means[:, i] for i, name in enumerate(STATISTICS)},
            **{f"{name}_se": standard_errors[:, i] for i, name in enumerate(STATISTICS)},
            num_seeds=self.num_seeds,
            batch_size=self.batch_size,
            jacobian_probes=None if self.probes is None else self.probes.count,
        )

    def variance_components(self) -> tuple[Float[np.ndarray, " C"], Float[np.ndarray, " C"]]:
        """`(σ_s², σ_p²)` of the sketched `jacobian_error` at each checkpoint: the variance
        over seeds of the exact `‖J_k − J*‖²_F`, and one probe's variance averaged over seeds,
        from `Var(estimate) = σ_s² + σ_p²/m` (`rates.probes`). σ_s² is the difference of two
        estimates and may come out negative when it is small against σ_p²/m."""
        if self.probes is None or self.probe_variance is None:
            raise ValueError("the variance components need a sketched run with at least 2 probes per seed")
        probe = self.probe_variance.mean(axis=0)
        total = self.statistic("jacobian_error").var(axis=0, ddof=1)
        return total - probe / self.probes.count, probe

    def scaled_jacobian_error(self, delta: float) -> Float[np.ndarray, "S C"]:
        """Per seed, `‖(1 + δ)J_k − J*‖²_F`: the derivative error of an engine that returned
        `(1 + δ)J_k` instead of `J_k` (the iterates unchanged), from

            ‖(1 + δ)J_k − J*‖² = (1 + δ)²‖J_k − J*‖² + 2δ(1 + δ)⟨J_k − J*, J*⟩ + δ²‖J*‖²,

        exact up to rounding, seed by seed (`tests/test_report_power.py` compares it with a
        mutated run). `δ = 0` gives the recorded `jacobian_error`."""
        delta = float(delta)
        error, cross = self.statistic("jacobian_error"), self.statistic("jacobian_cross")
        if delta == 0.0:
            return error
        jac_star_sq = np.reshape(self.jac_star_sq, (-1, 1)) if np.ndim(self.jac_star_sq) else self.jac_star_sq
        return (1 + delta) ** 2 * error + 2 * delta * (1 + delta) * cross + delta**2 * jac_star_sq


def mean_and_standard_error(per_seed: Float[ArrayLike, "S ..."]) -> tuple[np.ndarray, np.ndarray]:
    """The mean over the seed axis (the first) and its standard error `sd/√S` (`ddof=1`)."""
    per_seed = np.asarray(per_seed, dtype=np.float64)
    return per_seed.mean(axis=0), per_seed.std(axis=0, ddof=1) / np.sqrt(per_seed.shape[0])


def checkpoints(num_steps: int, num_checkpoints: int) -> Int[np.ndarray, " C"]:
    """`0` and about `num_checkpoints − 1` distinct log-spaced steps in `[1, num_steps]`, the
    last one `num_steps` (with two checkpoints: 0 and K)."""
    if num_steps == 0:
        return np.zeros(1, dtype=np.int64)
    count = max(num_checkpoints - 1, 1)
    # geomspace with a single point returns its start: the last checkpoint must be K.
    spaced = np.unique(np.round(np.geomspace(1, num_steps, count) if count > 1 else [num_steps]).astype(np.int64))
    return np.concatenate([[0], spaced])


def seed_mesh(devices: Sequence[jax.Device] | np.ndarray | None = None) -> Mesh:
    """A one-axis mesh named `"seeds"` over `devices` (default: every device of every process)."""
    return Mesh(np.asarray(jax.devices() if devices is None else devices), (SEED_AXIS,))


def error_curves(
    problem: Problem,
    theta: Real[ArrayLike, ...] | None = None,
    *,
    step_size: StepSize,
    num_steps: int,
    num_seeds: int,
    batch_size: int | None = 1,
    key: KeyLike | None = None,
    num_checkpoints: int = 32,
    x_init: Float[ArrayLike, " d"] | None = None,
    mesh: Mesh | None = None,
    seeds_per_chunk: int | None = None,
    jacobian_probes: int | str | None = None,
    probe_distribution: str | Any = "rademacher",
) -> Curves:
    """Run SGD and its derivative (forward mode, by the tangent recursion) from `num_seeds`
    seeds; return the curves.

    **Arguments:**

    - `problem`: a `problems.Problem`; `theta` defaults to `problem.theta0`.
    - `step_size`: a number, a `rates` schedule or a function `k ↦ α_k`.
    - `num_steps`: K; `num_seeds`: S; `batch_size`: b, or `None` for full batch.
    - `key`: the JAX key, typed or legacy `PRNGKey` (default `jax.random.key(0)`); seed s
      uses `split(key, S)[s]`, the same minibatches as `derivatives.unrolled` with that key.
    - `num_checkpoints`: about how many log-spaced steps to record (k = 0 included).
    - `x_init`: the common starting point (default 0); `J_0 = 0`.
    - `mesh`: the devices to split the seeds over, a one-axis mesh named `"seeds"`
      (default `seed_mesh()`: all devices, across hosts under `jax.distributed`).
    - `seeds_per_chunk`: how many seeds each device advances together. Default: on a
      CPU, as many as keep their Jacobians within 1 MiB, 16 to 128 seeds (`default_chunk`);
      on an accelerator, all of that device's seeds. S is padded up to a multiple of (devices × chunk) with
      repeated keys whose results are discarded.
    - `jacobian_probes`: m, to sketch `jacobian_error` with m random probes per seed
      (`rates.probes`): each seed carries `J_k vᵢ` for its own `vᵢ ∈ Rᵖ` (drawn from its
      key, the same minibatches as without probes), at m Jacobian-vector products per
      step instead of p, and records `(1/m)Σᵢ‖(J_k − J*)vᵢ‖²`, unbiased for
      `‖J_k − J*‖²_F`; its standard error includes the probe noise. `None` (the default)
      carries the full Jacobian. The other statistics are unchanged. `"auto"`:
      `rates.probes.default_probe_count(p)`, the m of least variance × cost under a
      measured model of the two noises, or the full Jacobian where that is cheaper
      (always for p ≤ 16).
    - `probe_distribution`: `"rademacher"` (the default; never a larger variance),
      `"gaussian"`, or a function `(key, shape) ↦ array` with `E[v vᵀ] = I`.

    **Returns:** a `Curves`.

    **Raises:** as `derivatives.unrolled` (bad arguments, a step size that is not finite
    and > 0 where it is used, a step above 2/L warns), and `DivergenceError` naming the
    first checkpoint whose statistics are not finite.
    """
    return _seed_statistics(problem, theta, step_size, num_steps, num_seeds, batch_size, key, num_checkpoints, x_init,
                            mesh, seeds_per_chunk, jacobian_probes, probe_distribution).curves()


def seed_statistics(problem: Problem, theta: Real[ArrayLike, ...] | None = None, **options: Any) -> SeedStatistics:
    """`error_curves(problem, theta, **options)` before the reduction over seeds: the same run
    (the same arguments, keys, checks and errors), returning every seed's statistics
    (`SeedStatistics`, `SEED_STATISTICS`) rather than their means."""
    return _seed_statistics(**_error_curves_arguments("seed_statistics", problem, theta, options))


def _error_curves_arguments(caller: str, problem, theta, options: dict) -> dict:
    """The arguments of `error_curves`, with its defaults, bound against its own signature so
    that the functions taking them share its defaults and checks."""
    try:
        bound = inspect.signature(error_curves).bind(problem, theta, **options)
    except TypeError as error:
        raise TypeError(f"{caller} takes the arguments of error_curves: {error}") from None
    bound.apply_defaults()
    return bound.arguments


def _seed_statistics(problem, theta, step_size, num_steps, num_seeds, batch_size, key, num_checkpoints, x_init, mesh,
                     seeds_per_chunk, jacobian_probes=None, probe_distribution="rademacher", bilevel=None,
                     stacklevel=5) -> SeedStatistics:
    # check_run ← _plan ← here ← the public function ← its caller: the warning's stacklevel is 5.
    steps, arguments = _plan(problem, theta, step_size, num_steps, num_seeds, batch_size, key, num_checkpoints,
                             x_init, mesh, seeds_per_chunk, jacobian_probes, probe_distribution,
                             stacklevel=stacklevel)
    probes = arguments[-1]
    if bilevel is not None and probes is not None:
        raise ValueError("the hypergradient needs the full Jacobian: jacobian_probes must be None")
    (per_seed, probe_variance), jac_star_sketch = jax.tree.map(
        lambda leaf: _gathered(leaf, arguments[7]), _curves(*arguments, bilevel))
    # per_seed: (S, C, 4), or 5 with a bilevel
    nonfinite = ~np.all(np.isfinite(per_seed), axis=(0, 2))
    if nonfinite.any():
        first = int(steps[np.argmax(nonfinite)])
        raise divergence_error(problem, arguments[1], arguments[3],
                               f"from the checkpoint k = {first} on (in at least one seed)")
    if probes is None:
        jac_star = np.asarray(problem.solution_jacobian(arguments[1]))
        jac_star_sq = float(np.sum(jac_star**2))
    else:
        jac_star_sq = jac_star_sketch
    return SeedStatistics(steps=steps, values=per_seed, jac_star_sq=jac_star_sq, batch_size=batch_size,
                          probes=probes, probe_variance=probe_variance)


def compiled_memory(problem: Problem, theta: Real[ArrayLike, ...] | None = None, **options: Any) -> int:
    """Bytes that the compiled `error_curves(problem, theta, **options)` allocates on each
    device (arguments, outputs and temporaries, as XLA plans them), without running it.

    The step count K enters only as the values of the checkpoint segment lengths, never as
    a shape, so this figure is the same for every K (`tests/test_scale.py` checks it).
    """
    _, arguments = _plan(**_error_curves_arguments("compiled_memory", problem, theta, options))
    stats = _curves.lower(*arguments).compile().memory_analysis()
    return int(stats.argument_size_in_bytes + stats.output_size_in_bytes + stats.temp_size_in_bytes)


def _plan(problem, theta, step_size, num_steps, num_seeds, batch_size, key, num_checkpoints, x_init, mesh,
          seeds_per_chunk, jacobian_probes=None, probe_distribution="rademacher", stacklevel=4):
    """Check the arguments of `error_curves`; return the checkpoints and `_curves`'s arguments."""
    key = jax.random.key(0) if key is None else key
    theta, key, schedule, x_init = check_run(problem, problem.theta0 if theta is None else theta, key, step_size,
                                             num_steps, batch_size, x_init, stacklevel=stacklevel)
    num_seeds = check_count(num_seeds, "num_seeds", minimum=2)
    check_count(num_checkpoints, "num_checkpoints", minimum=2)
    mesh = seed_mesh() if mesh is None else mesh
    if mesh.axis_names != (SEED_AXIS,):
        raise ValueError(f"mesh must have the single axis {SEED_AXIS!r}, got {mesh.axis_names}")
    probes = None
    if isinstance(jacobian_probes, str):
        if jacobian_probes != AUTO:
            raise ValueError(f"jacobian_probes must be an integer >= 1, None or {AUTO!r}, got {jacobian_probes!r}")
        jacobian_probes = default_probe_count(theta.shape[0])
    if jacobian_probes is not None:
        probes = Probes(check_count(jacobian_probes, "jacobian_probes"), probe_distribution)
        if num_steps >= PROBE_FOLD:
            raise ValueError(f"with jacobian_probes, num_steps must be below {PROBE_FOLD} (the probes' key fold)")
    seeds_per_device = -(-num_seeds // mesh.size)
    if seeds_per_chunk is None:
        tangent_rows = theta.shape[0] if probes is None else probes.count
        seeds_per_chunk = default_chunk(seeds_per_device, problem.dim, tangent_rows, mesh.devices.flat[0].platform)
    chunk = min(check_count(seeds_per_chunk, "seeds_per_chunk"), seeds_per_device)
    padded = mesh.size * chunk * -(-seeds_per_device // chunk)
    steps = checkpoints(num_steps, num_checkpoints)
    segment_lengths = jnp.asarray(np.diff(steps, prepend=0), dtype=jnp.int64)
    return steps, (problem, theta, key, schedule, x_init, segment_lengths, batch_size, num_seeds, padded, chunk,
                   mesh, probes)


def default_chunk(seeds_per_device: int, dim: int, param_dim: int, platform: str) -> int:
    """Seeds advanced together on one device: all of them on an accelerator; on a CPU, as
    many as keep their `(p, d)` Jacobians (`(m, d)` sketches) within `CPU_CHUNK_BYTES`,
    within the bounds `CPU_CHUNK_SEEDS` (the lower one only while those seeds fit in
    `CPU_CHUNK_MAX_BYTES`), evened out so that the last chunk is not mostly padding."""
    if platform != "cpu":
        return seeds_per_device
    fewest, most = CPU_CHUNK_SEEDS
    seed_bytes = 8 * dim * max(param_dim, 1)
    floor = max(1, min(fewest, CPU_CHUNK_MAX_BYTES // seed_bytes))
    largest = min(seeds_per_device, max(floor, min(most, CPU_CHUNK_BYTES // seed_bytes)))
    return -(-seeds_per_device // -(-seeds_per_device // largest))


@functools.partial(jax.jit, static_argnames=("batch_size", "num_seeds", "padded", "chunk", "mesh", "probes"))
def _curves(problem, theta, key, schedule, x_init, segment_lengths, batch_size, num_seeds, padded, chunk, mesh,
            probes=None, bilevel=None):
    x_star = problem.solution(theta)
    jac_star = problem.solution_jacobian(theta)
    value_star = problem.objective(x_star, theta)
    hypergradient_star = None if bilevel is None else bilevel.hypergradient(theta)
    # Padding seeds repeat real keys; their statistics are dropped before the reduction.
    keys = jax.random.split(key, num_seeds)[jnp.arange(padded) % num_seeds]
    sgd = MinibatchSGD(problem, schedule, batch_size)
    closed_form = probes is None and has_closed_form_step(problem)

    def statistics(state, target, weight):
        # Without probes: tangents = Jᵀ against target = J*ᵀ (or J against J* by the closed
        # form), weight 1, compared in their own (contiguous) layout. With probes: rows
        # J_k vᵢ against J* vᵢ, weight 1/m.
        x, tangents = state
        per_row = jnp.sum((tangents - target) ** 2, axis=1)
        values = [
            jnp.sum((x - x_star) ** 2),
            weight * jnp.sum(per_row),
            problem.objective(x, theta) - value_star,
            weight * jnp.sum((tangents - target) * target),
        ]
        if bilevel is not None:
            # The unrolled hypergradient ∇θG(x_k) + J_kᵀ∇ₓG(x_k) against the exact one.
            outer_x, outer_theta = bilevel.outer_gradients(x, theta)
            through_x = outer_x @ tangents if closed_form else tangents @ outer_x     # J_kᵀ∇ₓG
            values.append(jnp.sum((outer_theta + through_x - hypergradient_star) ** 2))
        probe_spread = jnp.var(per_row, ddof=1) if probes is not None and probes.count > 1 else None
        return jnp.stack(values), probe_spread

    def one_seed(key):
        # Each device's iterates are its own ("varying" over the mesh). Left invariant,
        # the gradient in x would be transposed into a sum over devices.
        def varying(tree):
            return jax.tree.map(lambda leaf: leaf if SEED_AXIS in jax.typeof(leaf).manual_axis_type.varying
                                else lax.pcast(leaf, SEED_AXIS, to="varying"), tree)

        theta_ = theta
        if closed_form:
            method, target, weight = CLOSED_FORM, jac_star, 1.0
        elif probes is None:
            method, target, weight = METHOD, jac_star.T, 1.0
        else:
            # The probes come from the seed's key, so they vary over the mesh, and θ, which
            # they are tangent to, must too (as must probes that ignore the key).
            directions, theta_ = varying(probes.draw(key, theta.shape[0])), varying(theta)
            method, target, weight = DirectionalTangents(directions), directions @ jac_star.T, 1.0 / probes.count
        state = varying((x_init, method.init(x_init, theta)))
        records = iterate_segments(stepwise_advance(method, sgd, theta_), state, key, segment_lengths,
                                   lambda state, k, index: statistics(state, target, weight))[1]
        sketch_sq = None if probes is None else weight * jnp.sum(target**2)
        return records, sketch_sq

    def on_device(local_keys):
        chunks = local_keys.reshape(-1, chunk)
        per_seed = lax.map(jax.vmap(one_seed), chunks)
        return jax.tree.map(lambda leaf: leaf.reshape(local_keys.shape[0], *leaf.shape[2:]), per_seed)

    # Left split over the devices, padding included: `_gathered` brings them to the host.
    # A gather here would be a collective, whose rendezvous waits for every device's part:
    # on a CPU, while another program (e.g. on another thread) holds the pool's other
    # thread, that part cannot start and XLA aborts the process after 40 s.
    return jax.shard_map(on_device, mesh=mesh, in_specs=PartitionSpec(SEED_AXIS),
                         out_specs=PartitionSpec(SEED_AXIS))(keys)


def _gathered(leaf: jax.Array | None, num_seeds: int) -> np.ndarray | None:
    """The first `num_seeds` rows of a seed-sharded result, in seed order, on the host of
    every process (the same order whatever the number of devices)."""
    if leaf is None:
        return None
    if jax.process_count() > 1:
        # Each process holds only its own devices' rows.
        leaf = multihost_utils.process_allgather(leaf, tiled=True)
    return np.asarray(leaf)[:num_seeds]
