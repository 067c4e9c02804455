"""The installed JAX computes what the toolkit's checks rely on.

jaxlib 0.10.2 fuses a vmapped matrix-vector product and the sum after it into one CPU
kernel that returns wrong numbers at some sizes, silently (jax-ml/jax#39103); in this
toolkit it made σ_J² of weighted ridge 2–15% wrong at some shapes. `pyproject.toml`
excludes that release; this test is the reproducer, so that a release allowed later is
checked before it is trusted. On jaxlib 0.10.2 it fails (jit 266342400 against
268435456); on 0.10.1 both agree exactly.
"""

import jax
import jax.numpy as jnp
import numpy as np


def test_a_vmapped_product_and_sum_compile_to_the_right_numbers():
    n = 16_385  # the size of the upstream reproducer
    row_index = jnp.arange(n, dtype=jnp.float64)
    rows = jnp.stack((row_index, jnp.zeros(n), jnp.zeros(n)), axis=1)
    identity = jnp.eye(3)

    def squared_norms(rows):
        return jax.vmap(lambda row: jnp.sum((identity @ row) ** 2))(rows)

    # Squares of integers below 2^14.1 are exact in float64: the answer is exact too.
    expected = np.arange(n, dtype=np.float64) ** 2
    np.testing.assert_array_equal(np.asarray(jax.jit(squared_norms)(rows)), expected)
