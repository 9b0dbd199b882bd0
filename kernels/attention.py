"""Fused scaled dot-product attention: a forward by online softmax over key blocks, and a flash backward.

Arrays are C-contiguous float32/float64 stacks of heads: query (heads, L, E), key (key_heads, S, E), value
(key_heads, S, Ev), out (heads, L, Ev). Query head h reads key head h // group (grouped-query attention;
group 1 otherwise). An additive mask is a stack (masks, L, S) of which head h adds mask[mask_index[h]].
`causal` hides key j from query i where j > i (PyTorch's top-left alignment). The forward never holds more
than one (block_queries, block_keys) tile of scores per thread and keeps only the per-row logsumexp (float64)
for the backward, which recomputes the probabilities tile by tile from it. A row whose every key is masked
gives an output of 0 and a logsumexp of +inf, so that its recomputed probabilities and gradients are 0, as in
PyTorch.

Tiles are multiplied by BLAS (`np.dot`); the frontend picks block sizes whose products stay under OpenBLAS's
multithreading threshold (m * n * k <= 262,144), so a product called from a prange thread runs on that
thread and does not start BLAS threads against Numba's. Each forward thread owns whole query heads, each
backward thread a whole key head with its group of query heads, so every output is written by one thread in
a fixed order: results are bit-identical on reruns and between the serial and parallel variants.
"""

import math

import numpy as np
from numba import prange

from nbprop.kernels import scalar
from nbprop.kernels._jit import FASTMATH_UNFUSED, cpu_kernel, parallel_cpu_kernel


@cpu_kernel(fastmath=FASTMATH_UNFUSED)
def _scaled_row(scores, query_position, column_start, mask, has_mask, causal, scale):
    """One row of scores = scores * scale + mask row, -inf right of the causal diagonal, in place; returns the
    row's largest value (float64). A row that needs neither mask nor diagonal takes a loop of its own, which
    LLVM keeps free of branches."""
    largest = -math.inf
    columns = scores.shape[0]
    visible = columns
    if causal:
        visible = min(max(query_position + 1 - column_start, 0), columns)
    if has_mask:
        mask_row = mask[query_position]
        for column in range(visible):
            value = scores[column] * scale + mask_row[column_start + column]
            scores[column] = value
            largest = max(largest, np.float64(scores[column]))
    else:
        for column in range(visible):
            value = scores[column] * scale
            scores[column] = value
            largest = max(largest, np.float64(value))
    for column in range(visible, columns):
        scores[column] = -math.inf
    return largest


@cpu_kernel(fastmath=FASTMATH_UNFUSED)
def _attention_head(query, key, value, mask, has_mask, causal, scale, block_queries, block_keys, out,
                    logsumexp):
    """One query head: query (L, E), key (S, E), value (S, Ev), mask (L, S) -> out (L, Ev), logsumexp (L,)."""
    length, keys, value_width = query.shape[0], key.shape[0], value.shape[1]
    scores_buffer = np.empty(block_queries * block_keys, query.dtype)
    product_buffer = np.empty(block_queries * value_width, query.dtype)
    accumulator = np.empty((block_queries, value_width), np.float64)
    maxima = np.empty(block_queries, np.float64)
    totals = np.empty(block_queries, np.float64)
    rounding = np.empty(1, query.dtype)  # a float64 rounded to the data's dtype through memory
    for row_start in range(0, length, block_queries):
        row_end = min(row_start + block_queries, length)
        rows = row_end - row_start
        accumulator[:rows] = 0.0
        maxima[:rows] = -math.inf
        totals[:rows] = 0.0
        key_end = min(keys, row_end) if causal else keys  # causal: no row of the block sees a key >= row_end
        for column_start in range(0, key_end, block_keys):
            column_end = min(column_start + block_keys, key_end)
            columns = column_end - column_start
            scores = scores_buffer[:rows * columns].reshape((rows, columns))
            np.dot(query[row_start:row_end], key[column_start:column_end].T, scores)
            for row in range(rows):
                row_scores = scores[row]
                new_max = max(maxima[row], _scaled_row(row_scores, row_start + row, column_start, mask, has_mask,
                                                       causal, scale))
                if new_max == -math.inf:  # every key so far masked: nothing to add
                    row_scores[:] = 0.0
                    continue
                # The shift in the data's dtype, so that a float32 row's exponentials stay float32 (and vectorise).
                rounding[0] = new_max
                shift = rounding[0]
                total = 0.0
                for column in range(columns):
                    probability = scalar.exp(row_scores[column] - shift)
                    row_scores[column] = probability
                    total += probability
                correction = scalar.exp(maxima[row] - shift)
                totals[row] = totals[row] * correction + total
                maxima[row] = shift
                for index in range(value_width):
                    accumulator[row, index] *= correction
            product = product_buffer[:rows * value_width].reshape((rows, value_width))
            np.dot(scores, value[column_start:column_end], product)
            for row in range(rows):
                for index in range(value_width):
                    accumulator[row, index] += product[row, index]
        for row in range(rows):
            if totals[row] == 0.0:  # a fully masked row: output 0, probabilities 0 in the backward
                logsumexp[row_start + row] = math.inf
                for index in range(value_width):
                    out[row_start + row, index] = 0.0
            else:
                logsumexp[row_start + row] = maxima[row] + math.log(totals[row])
                inverse = 1.0 / totals[row]
                for index in range(value_width):
                    out[row_start + row, index] = accumulator[row, index] * inverse


@parallel_cpu_kernel(fastmath=FASTMATH_UNFUSED)
def attention_forward(query, key, value, group, mask, mask_index, has_mask, causal, scale, block_queries,
                      block_keys, out, logsumexp):
    """out[h] = softmax(query[h] @ key[h // group]^T * scale + mask[mask_index[h]]) @ value[h // group].

    query (heads, L, E), key (heads / group, S, E), value (heads / group, S, Ev), mask (masks, L, S) read
    only if has_mask, mask_index (heads,) int64; out (heads, L, Ev) in query's dtype, logsumexp (heads, L)
    float64 (log of each row's softmax denominator, +inf for a fully masked row). Parallel over heads.
    """
    for head in prange(query.shape[0]):
        _attention_head(query[head], key[head // group], value[head // group], mask[mask_index[head]], has_mask,
                        causal, scale, block_queries, block_keys, out[head], logsumexp[head])


@cpu_kernel(fastmath=FASTMATH_UNFUSED)
def _attention_head_backward(grad_output, query, key, value, out, logsumexp, mask, has_mask, causal, scale,
                             block_queries, block_keys, grad_query, grad_key, grad_value):
    """One query head's contributions: grad_query (L, E) is written, grad_key (S, E) and grad_value (S, Ev)
    are added to (the caller zeroes them once per key head)."""
    length, keys, width, value_width = query.shape[0], key.shape[0], query.shape[1], value.shape[1]
    probabilities_buffer = np.empty(block_queries * block_keys, query.dtype)
    scores_gradient_buffer = np.empty(block_queries * block_keys, query.dtype)
    product_buffer = np.empty(max(block_queries, block_keys) * max(width, value_width), query.dtype)
    # delta[i] = sum_k dO[i, k] O[i, k] = sum_j P[i, j] dP[i, j]: the softmax backward's row term.
    delta = np.empty(length, np.float64)
    rounding = np.empty(1, query.dtype)
    for row in range(length):
        total = 0.0
        for index in range(value_width):
            total += np.float64(grad_output[row, index]) * out[row, index]
        delta[row] = total
    grad_query[:] = 0.0
    for column_start in range(0, keys, block_keys):
        column_end = min(column_start + block_keys, keys)
        columns = column_end - column_start
        key_block, value_block = key[column_start:column_end], value[column_start:column_end]
        first_row = (column_start // block_queries) * block_queries if causal else 0  # earlier rows see none
        for row_start in range(first_row, length, block_queries):
            row_end = min(row_start + block_queries, length)
            rows = row_end - row_start
            probabilities = probabilities_buffer[:rows * columns].reshape((rows, columns))
            np.dot(query[row_start:row_end], key_block.T, probabilities)
            for row in range(rows):
                row_probabilities = probabilities[row]
                _scaled_row(row_probabilities, row_start + row, column_start, mask, has_mask, causal, scale)
                rounding[0] = logsumexp[row_start + row]
                shift = rounding[0]
                for column in range(columns):
                    row_probabilities[column] = scalar.exp(row_probabilities[column] - shift)
            grad_rows = grad_output[row_start:row_end]
            # dV_j += P^T dO_i
            value_product = product_buffer[:columns * value_width].reshape((columns, value_width))
            np.dot(probabilities.T, grad_rows, value_product)
            for column in range(columns):
                for index in range(value_width):
                    grad_value[column_start + column, index] += value_product[column, index]
            # dS = P * (dO_i V_j^T - delta) * scale, the gradient of the scaled scores' pre-scale products
            scores_gradient = scores_gradient_buffer[:rows * columns].reshape((rows, columns))
            np.dot(grad_rows, value_block.T, scores_gradient)
            for row in range(rows):
                row_delta = delta[row_start + row]
                for column in range(columns):
                    scores_gradient[row, column] = (probabilities[row, column]
                                                    * (scores_gradient[row, column] - row_delta) * scale)
            # dQ_i += dS K_j
            query_product = product_buffer[:rows * width].reshape((rows, width))
            np.dot(scores_gradient, key_block, query_product)
            for row in range(rows):
                for index in range(width):
                    grad_query[row_start + row, index] += query_product[row, index]
            # dK_j += dS^T Q_i
            key_product = product_buffer[:columns * width].reshape((columns, width))
            np.dot(scores_gradient.T, query[row_start:row_end], key_product)
            for column in range(columns):
                for index in range(width):
                    grad_key[column_start + column, index] += key_product[column, index]


@parallel_cpu_kernel(fastmath=FASTMATH_UNFUSED)
def attention_backward(grad_output, query, key, value, group, out, logsumexp, mask, mask_index, has_mask, causal,
                       scale, block_queries, block_keys, grad_query, grad_key, grad_value):
    """The gradients of attention_forward from its output and logsumexp, recomputing each tile's
    probabilities: grad_query (heads, L, E), grad_key (heads / group, S, E), grad_value (heads / group, S, Ev)
    overwritten. Parallel over key heads; a key head's thread also handles its group of query heads (in order),
    so no gradient is summed across threads.
    """
    for key_head in prange(key.shape[0]):
        grad_key[key_head] = 0.0
        grad_value[key_head] = 0.0
        for member in range(group):
            head = key_head * group + member
            _attention_head_backward(grad_output[head], query[head], key[key_head], value[key_head], out[head],
                                     logsumexp[head], mask[mask_index[head]], has_mask, causal, scale, block_queries,
                                     block_keys, grad_query[head], grad_key[key_head], grad_value[key_head])
