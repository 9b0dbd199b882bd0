"""Cold start: a fresh process's import and first MLP train step, with an empty and with a warm kernel cache.

Run: .venv/bin/python -m tests.benchmarks.run -k cold_start (or pytest with --benchmark-enable).
Each round runs a new Python process that imports the framework and takes two SGD steps of an MLP
64-64-10 at batch 16; the time measured is the whole process. nbprop's process gets its own
NUMBA_CACHE_DIR: a new empty one each round ("empty kernel cache": every kernel the step needs is
compiled) or one filled by an earlier process ("warm kernel cache": kernels are loaded from disk). PyTorch
has no such cache: its entry is the same process in both groups, the floor a compiled library starts at.
extra_info holds the child's own split: import, first step (compilation included), second step.
"""

import json
import os
import subprocess
import sys
import tempfile

import pytest

# One MLP step in a fresh process; prints the split of its time as JSON. {framework} is nbprop or torch.
CHILD = """
import json, time
start = time.perf_counter()
import numpy as np
import {framework} as framework
imported = time.perf_counter()
functional = framework.nn.functional
generator = np.random.default_rng(0)
inputs = framework.from_numpy(generator.standard_normal((16, 64), dtype=np.float32))
targets = framework.from_numpy(generator.integers(0, 10, 16))
model = framework.nn.Sequential(framework.nn.Linear(64, 64), framework.nn.ReLU(), framework.nn.Linear(64, 10))
def step():
    model.zero_grad()
    loss = functional.cross_entropy(model(inputs), targets)
    loss.backward()
    with framework.no_grad():
        for parameter in model.parameters():
            parameter.sub_(parameter.grad, alpha=0.01)
    return float(loss.detach())
first_loss = step()
first = time.perf_counter()
second_loss = step()
second = time.perf_counter()
print(json.dumps({{"import_s": imported - start, "first_step_s": first - imported,
                  "second_step_s": second - first, "losses": [first_loss, second_loss]}}))
"""
GROUPS = {
    "empty": "cold start: import + first MLP 64-64-10 step, empty kernel cache",
    "warm": "cold start: import + first MLP 64-64-10 step, warm kernel cache",
}
ROUNDS = {"empty": 2, "warm": 3}


def _run_child(framework, cache_directory=None):
    environment = dict(os.environ)
    if cache_directory is not None:
        environment["NUMBA_CACHE_DIR"] = cache_directory
    completed = subprocess.run(
        [sys.executable, "-c", CHILD.format(framework=framework)],
        env=environment, capture_output=True, text=True, check=False,
    )
    if completed.returncode != 0:
        raise RuntimeError(f"cold-start child for {framework} failed:\n{completed.stderr}")
    return json.loads(completed.stdout.strip().splitlines()[-1])


def _record(benchmark, split):
    for key in ("import_s", "first_step_s", "second_step_s"):
        benchmark.extra_info[key] = split[key]
    first_loss, second_loss = split["losses"]
    assert second_loss < first_loss


@pytest.mark.parametrize("cache", GROUPS)
def test_cold_start_nbprop(benchmark, cache, tmp_path):
    benchmark.group = GROUPS[cache]
    warm_directory = str(tmp_path / "warm")
    if cache == "warm":
        _run_child("nbprop", warm_directory)  # fills the cache the timed rounds load from

    def arguments():
        directory = warm_directory if cache == "warm" else tempfile.mkdtemp(dir=tmp_path)
        return ("nbprop", directory), {}

    split = benchmark.pedantic(_run_child, setup=arguments, rounds=ROUNDS[cache])
    _record(benchmark, split)


@pytest.mark.torch
@pytest.mark.parametrize("cache", GROUPS)
def test_cold_start_torch(benchmark, cache):
    benchmark.group = GROUPS[cache]
    split = benchmark.pedantic(_run_child, args=("torch",), rounds=ROUNDS[cache])
    _record(benchmark, split)
