"""Benchmark set-up: the `torch` fixture, and the runner's thread count applied to Numba and PyTorch just
before each test runs."""

import os
import sys

import pytest

# Set by `python -m tests.benchmarks.run` in each per-thread-count process; unset in ordinary test runs.
THREADS_VARIABLE = "NBPROP_BENCH_THREADS"


@pytest.fixture(scope="module")
def torch():
    """PyTorch, with 2 threads outside the runner (which pins its own count in the hook below)."""
    import torch

    torch.set_num_threads(2)
    return torch


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item):
    """Pin the thread count after the fixtures ran, so that a fixture's own torch.set_num_threads loses."""
    threads = os.environ.get(THREADS_VARIABLE)
    if threads:
        count = int(threads)
        import numba

        numba.set_num_threads(count)
        if "torch" in sys.modules:
            sys.modules["torch"].set_num_threads(count)
        benchmark = item.funcargs.get("benchmark")
        if benchmark is not None:
            benchmark.extra_info["threads"] = count
    yield
