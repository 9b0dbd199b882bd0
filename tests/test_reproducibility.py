"""Seeded runs are bit-identical across kernel caches, thread counts, parallel thresholds and Python threads.

Each run is a fresh process: Numba's cache directory, thread count, threading layer and nbprop's parallel
threshold are read at import.
"""

import os
import subprocess
import sys

# An MLP of 1,066,000 parameters (above 2^20, so the optimizers' flat group takes the threaded kernel at the
# default threshold), four steps of AdamW and four of SGD with momentum 0.9 from the same seed; prints a
# hash of the raw bytes of the weights after each.
TRAINING_SCRIPT = """
import hashlib
import nbprop
from nbprop import nn

for name in ("AdamW", "SGD"):
    nbprop.manual_seed(0)
    model = nn.Sequential(nn.Linear(1024, 1024), nn.ReLU(), nn.Linear(1024, 16))
    if name == "AdamW":
        optimizer = nbprop.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.01)
    else:
        optimizer = nbprop.optim.SGD(model.parameters(), lr=1e-2, momentum=0.9)
    inputs, targets = nbprop.randn(8, 1024), nbprop.randn(8, 16)
    for _ in range(4):
        optimizer.zero_grad()
        nn.functional.mse_loss(model(inputs), targets).backward()
        optimizer.step()
    digest = hashlib.sha256()
    for parameter in model.parameters():
        digest.update(parameter.detach().numpy().tobytes())
    print(name, digest.hexdigest())
"""

# Two Python threads each run large threaded kernels (forward, backward and an Adam step) at once, and
# print a hash of their results, which must equal a run of the same work in one thread.
THREADS_SCRIPT = """
import hashlib
import threading
import numba
import nbprop

def work(seed, results):
    nbprop.manual_seed(seed)
    weight = nbprop.nn.Parameter(nbprop.randn(256, 512))
    optimizer = nbprop.optim.Adam([weight], lr=1e-2)
    for _ in range(8):
        optimizer.zero_grad()
        (weight.exp() * weight).sum().backward()
        optimizer.step()
    results[seed] = hashlib.sha256(weight.detach().numpy().tobytes()).hexdigest()

alone, together = {}, {}
work(1, alone)
work(2, alone)
threads = [threading.Thread(target=work, args=(seed, together)) for seed in (1, 2)]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
print(numba.threading_layer(), alone == together, len(together))
"""


def _run(script, cache_dir, threads, threshold, layer=None):
    environment = dict(os.environ, NUMBA_NUM_THREADS=str(threads), NBPROP_PARALLEL_THRESHOLD=str(threshold))
    if cache_dir is not None:
        environment["NUMBA_CACHE_DIR"] = str(cache_dir)
    if layer is not None:
        environment["NUMBA_THREADING_LAYER"] = layer
    completed = subprocess.run(
        [sys.executable, "-c", script], env=environment, capture_output=True, text=True, timeout=600
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    return completed.stdout.split("\n")


def test_seeded_training_is_bit_identical_across_caches_threads_and_thresholds(tmp_path):
    """AdamW and SGD with momentum, from an empty kernel cache and a warm one, at 1 and 2 threads, with the
    default parallel threshold (2^20: the optimizer steps threaded, small kernels serial), lowered to 1
    (every kernel threaded) and raised past the model (every kernel serial): the same bytes every time."""
    default = 1 << 20
    runs = {
        "empty cache, 2 threads": (2, default),
        "warm cache, 2 threads": (2, default),
        "warm cache, 1 thread": (1, default),
        "threshold 1, 2 threads": (2, 1),
        "threshold 1, 1 thread": (1, 1),
        "all serial": (2, 1 << 40),
    }
    cache_dir = tmp_path / "numba_cache"
    cache_dir.mkdir()
    outputs = {}
    for label, (threads, threshold) in runs.items():
        outputs[label] = [line for line in _run(TRAINING_SCRIPT, cache_dir, threads, threshold) if line]
        if label.startswith("empty cache"):
            assert any(cache_dir.rglob("*.nbc")), "the first run did not fill the kernel cache"
    reference = outputs["empty cache, 2 threads"]
    assert [line.split()[0] for line in reference] == ["AdamW", "SGD"]
    for label, output in outputs.items():
        assert output == reference, (label, output, reference)


def test_two_python_threads_running_threaded_kernels_under_the_workqueue_layer():
    """Numba's workqueue layer aborts the process on concurrent launches; nbprop launches one at a time."""
    output = _run(THREADS_SCRIPT, None, 2, 1, layer="workqueue")
    assert output[0] == "workqueue True 2", output

