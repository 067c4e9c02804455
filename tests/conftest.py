"""Test settings: float64, strict dtype promotion, explicit hypothesis profiles, and
compiled programs released between tests that compile many of them.

Profiles (choose with HYPOTHESIS_PROFILE): `ci` (default; few examples, derandomised
so that CI is reproducible), `thorough` (for local runs before a release).
"""

import gc
import os
from datetime import timedelta

import jax
import pytest
from hypothesis import HealthCheck, is_hypothesis_test, settings

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


# JAX keeps every compiled executable in its caches for the life of the process, and
# each drawn problem shape, step count or schedule type compiles new ones: a property test
# compiles up to a few hundred, each a few MB and 40 to 110 memory mappings (a JIT-compiled
# CPU executable maps its code and constants separately). Over a whole `thorough` run they
# piled up past Linux's default limit of 65530 mappings per process (vm.max_map_count),
# and XLA then aborted or crashed while compiling. Releasing them after every property
# test and every module bounds the growth by the largest single test; recompiling what
# the next test shares costs no measurable time.
def _release_compiled_programs():
    jax.clear_caches()
    gc.collect()  # and what only reference cycles (tracebacks, closures) still hold


@pytest.fixture(autouse=True)
def _release_after_property_tests(request):
    yield
    if is_hypothesis_test(getattr(request.node, "function", None)):
        _release_compiled_programs()


@pytest.fixture(autouse=True, scope="module")
def _release_after_each_module():
    yield
    _release_compiled_programs()
