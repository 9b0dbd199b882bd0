"""nbprop.warmup compiles the kernels a dense network uses, for each dtype asked."""

import os
import subprocess
import sys

import numpy as np

import nbprop
from nbprop.backend import cpu


def _compiled_dtypes(kernel_name):
    kernel = cpu.kernel(kernel_name)
    dispatcher = getattr(kernel, "serial", kernel)  # a ParallelKernel, or a serial-only dispatcher
    return {signature[0].dtype for signature in dispatcher.signatures}


def test_warmup_compiles_the_common_kernels_for_both_float_dtypes():
    seconds = nbprop.warmup()
    assert seconds >= 0
    for name in ("add", "mul", "relu", "relu_backward", "tanh", "exp", "log", "sqrt", "clamp", "matmul_2d"):
        compiled = {str(dtype) for dtype in _compiled_dtypes(name)}
        assert {"float32", "float64"} <= compiled, (name, compiled)


def test_warmup_leaves_grad_mode_and_seed_alone():
    nbprop.manual_seed(3)
    expected = nbprop.randn(4).numpy().copy()
    nbprop.manual_seed(3)
    nbprop.warmup(dtypes_to_compile=(nbprop.float64,))
    assert nbprop.is_grad_enabled()
    np.testing.assert_array_equal(nbprop.randn(4).numpy(), expected)


# In a fresh process, so that only what warmup compiles is compiled (and at the library's default threshold).
PARALLEL_WARMUP_SCRIPT = """
import importlib
import nbprop
from nbprop.backend import FAMILIES
from nbprop.kernels._jit import ParallelKernel

nbprop.warmup(dtypes_to_compile=(nbprop.float64,), parallel=True)
modules = [importlib.import_module(f"nbprop.kernels.{family}") for family in FAMILIES]
kernels = [kernel for module in modules for kernel in vars(module).values()
           if kernel.__class__ is ParallelKernel and kernel.serial.signatures]
missing = sorted(kernel.__name__ for kernel in kernels if kernel.parallel.signatures != kernel.serial.signatures)
print(len(kernels), missing)
"""


def test_warmup_parallel_compiles_the_threaded_variant_of_every_kernel_it_compiles():
    """The exercise runs on arrays far below the 2^20-element threshold: threaded variants compile explicitly."""
    environment = {name: value for name, value in os.environ.items() if name != "NBPROP_PARALLEL_THRESHOLD"}
    completed = subprocess.run([sys.executable, "-c", PARALLEL_WARMUP_SCRIPT], env=environment,
                               capture_output=True, text=True, timeout=600)
    assert completed.returncode == 0, completed.stderr[-3000:]
    count, missing = completed.stdout.split(" ", 1)
    assert int(count) >= 20, completed.stdout  # the dense network's forward and backward kernels
    assert missing.strip() == "[]", completed.stdout
