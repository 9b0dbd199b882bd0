"""Matrix product kernels: float32/float64 through BLAS (`np.dot` into a passed-in output), int64 by loops.

Operands cross the boundary as C-contiguous matrices or stacks of matrices with a `transpose` flag: inside
the kernel `matrix.T` of a C-contiguous matrix is typed F-contiguous, which BLAS takes without a copy. So a
transposed view in the frontend costs no copy, and only C layouts are ever compiled (bounded specialisations).
Loops over a batch stay serial: each BLAS call is already multithreaded, and a prange around them would
oversubscribe the cores.
"""

import numpy as np
from numba import prange

from nbprop.kernels._jit import cpu_kernel, parallel_cpu_kernel


@cpu_kernel
def _product_into(a, b, transpose_a, transpose_b, out):
    """out = op(a) @ op(b) for C-contiguous 2-D a, b, out, where op transposes when its flag is set."""
    if transpose_a:
        if transpose_b:
            np.dot(a.T, b.T, out)
        else:
            np.dot(a.T, b, out)
    elif transpose_b:
        np.dot(a, b.T, out)
    else:
        np.dot(a, b, out)


@cpu_kernel
def matmul_2d(a, b, transpose_a, transpose_b, out):
    """out (n, m) = op(a) @ op(b); a is (n, k) or, transposed, (k, n); b is (k, m) or (m, k). BLAS gemm.

    float32 or float64, one dtype for all three; all C-contiguous.
    """
    _product_into(a, b, transpose_a, transpose_b, out)


@cpu_kernel
def matmul_batched(a, b, a_index, b_index, transpose_a, transpose_b, out):
    """out[i] = op(a[a_index[i]]) @ op(b[b_index[i]]) for every i of the batch.

    a (batch_a, ., .), b (batch_b, ., .) and out (batch, n, m) are C-contiguous stacks; the int64 index
    arrays (batch,) say which matrix of each operand meets output i, which is how a broadcast batch
    dimension is read without being copied.
    """
    for index in range(out.shape[0]):
        _product_into(a[a_index[index]], b[b_index[index]], transpose_a, transpose_b, out[index])


@cpu_kernel
def matmul_batched_sum(a, b, a_index, b_index, out_index, transpose_a, transpose_b, scratch, out):
    """out[j] = sum over i with out_index[i] == j of op(a[a_index[i]]) @ op(b[b_index[i]]).

    The gradient of an operand whose batch dimensions were broadcast: the products of every output batch
    entry that read it are summed back. Serial over i, so the sum's order (and result) is fixed. `scratch`
    is one (n, m) C-contiguous matrix; out (batch_out, n, m) is overwritten.
    """
    out[...] = 0
    for index in range(a_index.shape[0]):
        _product_into(a[a_index[index]], b[b_index[index]], transpose_a, transpose_b, scratch)
        out[out_index[index]] += scratch


@parallel_cpu_kernel
def matmul_integer(a, b, a_index, b_index, out):
    """out[i] = a[a_index[i]] @ b[b_index[i]] for int64 stacks (no BLAS for integers); exact, wraps on overflow.

    a (batch_a, n, k), b (batch_b, k, m), out (batch, n, m), all C-contiguous; parallel over output rows.
    """
    rows = out.shape[1]
    for flat_row in prange(out.shape[0] * rows):
        index = flat_row // rows
        row = flat_row % rows
        left = a[a_index[index], row]
        right = b[b_index[index]]
        for column in range(out.shape[2]):
            total = 0
            for inner in range(left.shape[0]):
                total += left[inner] * right[inner, column]
            out[index, row, column] = total
