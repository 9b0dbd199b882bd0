"""Shared pytest set-up: hypothesis profiles and the PyTorch oracle switch."""

import os

import pytest
from hypothesis import HealthCheck, settings

settings.register_profile(
    "default", max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile(
    "ci", max_examples=60, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


def pytest_configure(config):
    """Before nbprop is imported: tests reach the threaded kernel variants from 65,536 elements of work.

    Benchmark runs keep the library's default threshold (kernels/_jit.py), which is what users get.
    """
    if not (config.getoption("benchmark_enable", False) or config.getoption("benchmark_only", False)):
        os.environ.setdefault("NBPROP_PARALLEL_THRESHOLD", "65536")


def pytest_collection_modifyitems(config, items):
    """Tests marked `torch` need the oracle; CI sets NBPROP_REQUIRE_TORCH=1 so they can never skip there."""
    try:
        import torch  # noqa: F401
    except ImportError:
        if os.environ.get("NBPROP_REQUIRE_TORCH") == "1":
            message = "NBPROP_REQUIRE_TORCH=1 but torch is not installed (pip install -e .[test])"
            raise pytest.UsageError(message) from None
        skip = pytest.mark.skip(reason="PyTorch oracle not installed (pip install -e .[test])")
        for item in items:
            if "torch" in item.keywords:
                item.add_marker(skip)
