"""Shared pytest configuration: hypothesis profiles and generic fixtures.

Keep this file generic: fixtures that one test module needs belong in that module.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

# "default": quick and deterministic enough for every run; "thorough": many more examples,
# e.g. HYPOTHESIS_PROFILE=thorough pytest tests/test_gradients.py
settings.register_profile(
    "default", deadline=None, derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "thorough", deadline=None, max_examples=1000,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


@pytest.fixture
def rng() -> np.random.Generator:
    """A freshly seeded NumPy generator, so that every test sees the same numbers."""
    return np.random.default_rng(20240601)
