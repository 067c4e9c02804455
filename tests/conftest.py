"""Test settings: float64, strict dtype promotion, and explicit hypothesis profiles.

Profiles (choose with HYPOTHESIS_PROFILE): `ci` (default; few examples, derandomised
so that CI is reproducible), `thorough` (for local runs before a release).
"""

import os
from datetime import timedelta

import jax
from hypothesis import HealthCheck, settings

jax.config.update("jax_enable_x64", True)
jax.config.update("jax_numpy_dtype_promotion", "strict")

# The first example of each shape pays for compilation, hence the generous deadlines.
settings.register_profile(
    "ci", max_examples=8, deadline=timedelta(seconds=60), derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "thorough", max_examples=100, deadline=timedelta(seconds=120),
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
