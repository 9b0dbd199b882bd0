"""Matrix product kernels: float32/float64 through BLAS (`np.dot` into a passed-in output), int64 by loops.

Operands cross the boundary as C-contiguous matrices or stacks of matrices with a `transpose` flag: inside
the kernel `matrix.T` of a C-contiguous matrix is typed F-contiguous, which BLAS takes without a copy. So a
transposed view in the frontend costs no copy, and only C layouts are ever compiled (bounded specialisations).
Batched products run over a prange of (matrix, block of output rows) items, each block small enough
(m * n * k <= 262,144 multiply-adds) that OpenBLAS computes it on the calling thread: a product above that size
called from a prange thread starts BLAS's threads against Numba's (nbprop/ops/attention.py saw a 1.1 s step
instead of 6 ms). One BLAS call per matrix in a serial loop, BLAS threading each small product, took 1.43 ms
for 64 x (128x64 @ 64x128) float32 at 2 threads against 1.02 ms for blocks over the prange. Matrices whose
rows are too long to cut into blocks of _MIN_BLOCK_ROWS rows keep one multithreaded BLAS call each, serially.
The blocks depend only on the shapes, so the serial and parallel variants make the same BLAS calls and agree
bit for bit.
"""

import numpy as np
from numba import prange

from nbprop.kernels._jit import cpu_kernel, parallel_cpu_kernel

# OpenBLAS's single-thread size (m * n * k <= 65,536 * GEMM_MULTITHREAD_THRESHOLD of 4), as in
# nbprop/ops/attention.py.
SINGLE_THREAD_PRODUCT = 262_144
# Row blocks thinner than this waste BLAS's register tiles (16 rows for float32 on AVX-512).
_MIN_BLOCK_ROWS = 16


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
def _rows_into(a, b, transpose_a, transpose_b, start, stop, out):
    """out = rows start:stop of op(a) @ op(b), out (stop - start, m) C-contiguous. Rows of a transposed `a` are
    its columns, copied into a C-contiguous block first (n * k copies against the product's n * k * m)."""
    if not transpose_a:
        _product_into(a[start:stop], b, False, transpose_b, out)
        return
    block = np.empty((stop - start, a.shape[0]), a.dtype)
    for row in range(stop - start):
        for inner in range(a.shape[0]):
            block[row, inner] = a[inner, start + row]
    _product_into(block, b, False, transpose_b, out)


@cpu_kernel
def block_rows(inner, columns, rows):
    """Output rows per block of a batched product with `inner` contracted and `columns` output columns (at most
    `rows`), or 0 when blocks of _MIN_BLOCK_ROWS would exceed SINGLE_THREAD_PRODUCT: whole products then."""
    block = SINGLE_THREAD_PRODUCT // max(inner * columns, 1)
    return 0 if block < min(_MIN_BLOCK_ROWS, rows) else min(block, rows)


@parallel_cpu_kernel
def matmul_batched(a, b, a_index, b_index, transpose_a, transpose_b, out):
    """out[i] = op(a[a_index[i]]) @ op(b[b_index[i]]) for every i of the batch.

    a (batch_a, ., .), b (batch_b, ., .) and out (batch, n, m) are C-contiguous stacks; the int64 index
    arrays (batch,) say which matrix of each operand meets output i, which is how a broadcast batch
    dimension is read without being copied. Parallel over (i, block of rows of out[i]).
    """
    batch, rows, columns = out.shape
    block = block_rows(a.shape[1] if transpose_a else a.shape[2], columns, rows)
    if block == 0:
        for index in range(batch):
            _product_into(a[a_index[index]], b[b_index[index]], transpose_a, transpose_b, out[index])
        return
    blocks = (rows + block - 1) // block
    for item in prange(batch * blocks):
        index = item // blocks
        start = (item - index * blocks) * block
        stop = min(start + block, rows)
        _rows_into(a[a_index[index]], b[b_index[index]], transpose_a, transpose_b, start, stop,
                   out[index, start:stop])


@parallel_cpu_kernel
def matmul_batched_sum(a, b, a_index, b_index, out_index, transpose_a, transpose_b, scratch, out):
    """out[j] = sum over i with out_index[i] == j of op(a[a_index[i]]) @ op(b[b_index[i]]).

    The gradient of an operand whose batch dimensions were broadcast: the products of every output batch
    entry that read it are summed back, in the order of i, so the sum's order (and result) is fixed.
    Parallel over (j, block of rows of out[j]), each block with a scratch of its own; `scratch` is one (n, m)
    C-contiguous matrix, used where the rows are too long for blocks. out (batch_out, n, m) is overwritten.
    """
    targets, rows, columns = out.shape
    block = block_rows(a.shape[1] if transpose_a else a.shape[2], columns, rows)
    if block == 0:
        out[...] = 0
        for index in range(a_index.shape[0]):
            _product_into(a[a_index[index]], b[b_index[index]], transpose_a, transpose_b, scratch)
            out[out_index[index]] += scratch
        return
    blocks = (rows + block - 1) // block
    for item in prange(targets * blocks):
        target = item // blocks
        start = (item - target * blocks) * block
        stop = min(start + block, rows)
        total = out[target, start:stop]
        total[...] = 0
        product = np.empty((stop - start, columns), out.dtype)
        for index in range(a_index.shape[0]):
            if out_index[index] == target:
                _rows_into(a[a_index[index]], b[b_index[index]], transpose_a, transpose_b, start, stop, product)
                total += product


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
