"""nbprop.warmup compiles the kernels a dense network uses, for each dtype asked."""

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
