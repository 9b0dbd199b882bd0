"""Scalar-engine kernels: walk a flat tape of scalar operations forward and backward, eagerly or replayed.

A tape is four columns of equal length: `codes` (int64, one of the op codes below), `lefts` and `rights`
(int64, the indices of the operands; a unary node repeats its operand in `rights`, a leaf names itself) and
`constants` (float64, the number of a `*_CONSTANT`/`CONSTANT_*` op, or a leaf's initial value). Operands
always come before the node that uses them, so one pass in index order is a topological order.
"""

import math

from numba import prange

from nbprop.kernels import scalar
from nbprop.kernels._jit import cpu_kernel, parallel_cpu_kernel, scalar_function

# Op codes. The binary ops of two nodes come first, so that `code <= LAST_BINARY` tells them apart.
LEAF = 0
ADD = 1  # a + b
SUB = 2  # a - b
MUL = 3  # a * b
DIV = 4  # a / b
POW = 5  # a ** b
LAST_BINARY = POW
ADD_CONSTANT = 6  # a + c (a - c is a + (-c), bit for bit)
CONSTANT_SUB = 7  # c - a
MUL_CONSTANT = 8  # a * c
DIV_CONSTANT = 9  # a / c
CONSTANT_DIV = 10  # c / a
POW_CONSTANT = 11  # a ** c
CONSTANT_POW = 12  # c ** a
NEG = 13
EXP = 14
LOG = 15
TANH = 16
SIGMOID = 17
RELU = 18
NUMBER_OF_CODES = 19


@scalar_function
def node_value(code, first, second, constant):
    """The value of one node from its operands' values `first`, `second` and its constant (IEEE: no errors)."""
    if code == MUL_CONSTANT:
        return first * constant
    if code == ADD:
        return first + second
    if code == MUL:
        return first * second
    if code == ADD_CONSTANT:
        return first + constant
    if code == RELU:
        return 0.0 if first <= 0 else first
    if code == TANH:
        return math.tanh(first)
    if code == SUB:
        return first - second
    if code == DIV:
        return first / second
    if code == POW:
        return scalar.power(first, second)
    if code == CONSTANT_SUB:
        return constant - first
    if code == DIV_CONSTANT:
        return first / constant
    if code == CONSTANT_DIV:
        return constant / first
    if code == POW_CONSTANT:
        return scalar.power(first, constant)
    if code == CONSTANT_POW:
        return scalar.power(constant, first)
    if code == NEG:
        return -first
    if code == EXP:
        return scalar.exp(first)
    if code == LOG:
        return math.log(first)
    if code == SIGMOID:
        return scalar.sigmoid(first)
    return constant  # LEAF


@scalar_function
def node_gradients(code, grad_output, first, second, constant, result):
    """The gradient one node sends to its first and second operand, given the gradient `grad_output` of
    the node, the operands' values, the constant and the node's own value `result`.

    d(a+b) = (1, 1); d(a-b) = (1, -1); d(a*b) = (b, a); d(a/b) = (1/b, -a/b^2);
    d(a^b) = (b a^(b-1), a^b ln a); d(c-a) = -1; d(c/a) = -c/a^2; d(c^a) = c^a ln c; d exp a = exp a;
    d ln a = 1/a; d tanh a = 1 - tanh^2 a; d sigmoid a = s (1 - s); d relu a = [relu a > 0].
    The second gradient is only meaningful for binary ops (code <= LAST_BINARY).
    """
    if code == MUL_CONSTANT:
        return grad_output * constant, 0.0
    if code == ADD:
        return grad_output, grad_output
    if code == MUL:
        return grad_output * second, grad_output * first
    if code == ADD_CONSTANT:
        return grad_output, 0.0
    if code == RELU:
        return (0.0 if result <= 0 else grad_output), 0.0
    if code == TANH:
        return grad_output * (1.0 - result * result), 0.0
    if code == SUB:
        return grad_output, -grad_output
    if code == DIV:
        return grad_output / second, -grad_output * (first / second) / second
    if code == POW:
        return (grad_output * scalar.power_base_derivative(first, second),
                grad_output * scalar.power_exponent_derivative(first, second, result))
    if code == CONSTANT_SUB:
        return -grad_output, 0.0
    if code == DIV_CONSTANT:
        return grad_output / constant, 0.0
    if code == CONSTANT_DIV:
        return -grad_output * (constant / first) / first, 0.0
    if code == POW_CONSTANT:
        return grad_output * scalar.power_base_derivative(first, constant), 0.0
    if code == CONSTANT_POW:
        return grad_output * scalar.power_exponent_derivative(constant, first, result), 0.0
    if code == NEG:
        return -grad_output, 0.0
    if code == EXP:
        return grad_output * result, 0.0
    if code == LOG:
        return grad_output / first, 0.0
    if code == SIGMOID:
        return grad_output * result * (1.0 - result), 0.0
    return 0.0, 0.0  # LEAF: nothing below it


@scalar_function
def send_gradients(node, code, left, right, constant, values, grads):
    """Add to the gradients of the operands `left` and `right` of node `node` (op `code`) what the node sends
    them from grads[node]; a leaf sends nothing.

    The caller reads the tape's columns: passing them in as arrays made replay_gradients 2.4x slower
    (reference counting inside the loop, measured).
    """
    if code != LEAF:
        to_first, to_second = node_gradients(code, grads[node], values[left], values[right], constant, values[node])
        grads[left] += to_first
        if code <= LAST_BINARY:
            grads[right] += to_second


@cpu_kernel
def tape_forward(codes, lefts, rights, constants, values, start, stop):
    """values[start:stop] = the values of nodes start..stop-1 (earlier values must be computed).

    codes, lefts, rights: int64 (capacity,); constants, values: float64 (capacity,).
    """
    for node in range(start, stop):
        values[node] = node_value(codes[node], values[lefts[node]], values[rights[node]], constants[node])


@cpu_kernel
def tape_backward(codes, lefts, rights, constants, values, grads, reached, root):
    """Backpropagate from node `root`, micrograd's way: grads[root] = 1, the gradients of the interior
    (non-leaf) nodes that root reaches are recomputed from zero, and the leaves it reaches accumulate.

    First a downward pass marks the nodes root reaches (stopping below the lowest one) and zeroes the
    interior ones; then a second pass over the same range propagates. `reached` (uint8, capacity,) must be
    all zero on entry and is all zero again on return. grads: float64 (capacity,), written in place.
    """
    reached[root] = 1
    unvisited = 1
    lowest = root
    node = root
    while unvisited > 0:
        if reached[node]:
            unvisited -= 1
            lowest = node
            if codes[node] != LEAF:
                grads[node] = 0.0
                left = lefts[node]
                if not reached[left]:
                    reached[left] = 1
                    unvisited += 1
                right = rights[node]
                if not reached[right]:
                    reached[right] = 1
                    unvisited += 1
        node -= 1
    grads[root] = 1.0
    for node in range(root, lowest - 1, -1):
        if reached[node]:
            reached[node] = 0
            send_gradients(node, codes[node], lefts[node], rights[node], constants[node], values, grads)


@cpu_kernel
def tape_reachable(codes, lefts, rights, roots, reached, stop):
    """reached[node] = 1 for every node below `stop` that one of `roots` (int64) depends on, roots included.

    reached: uint8 (>= stop,), zero on entry below stop.
    """
    for root in roots:
        reached[root] = 1
    for node in range(stop - 1, -1, -1):
        if reached[node] and codes[node] != LEAF:
            reached[lefts[node]] = 1
            reached[rights[node]] = 1


@parallel_cpu_kernel
def replay_forward(codes, lefts, rights, constants, outputs, fixed_values, inputs, values_scratch, results):
    """Evaluate a recorded program for each row of `inputs`.

    A program of n nodes holds, in order, `fixed` = len(fixed_values) captured nodes (their values, the
    same for every sample), then inputs.shape[1] input nodes, then its operations. Samples are cut into
    values_scratch.shape[0] chunks, one per parallel iteration, each with its own scratch row.
    codes, lefts, rights, constants: (n,); outputs: int64 (n_outputs,); fixed_values: float64 (fixed,);
    inputs: float64 (batch, n_inputs); values_scratch: float64 (chunks, n); results: float64 (batch, n_outputs).
    """
    batch, input_count = inputs.shape
    fixed = fixed_values.shape[0]
    first_operation = fixed + input_count
    chunks = values_scratch.shape[0]
    per_chunk = (batch + chunks - 1) // max(chunks, 1)
    for chunk in prange(chunks):
        values = values_scratch[chunk]
        for node in range(fixed):
            values[node] = fixed_values[node]
        for sample in range(chunk * per_chunk, min(batch, (chunk + 1) * per_chunk)):
            for index in range(input_count):
                values[fixed + index] = inputs[sample, index]
            for node in range(first_operation, codes.shape[0]):
                values[node] = node_value(codes[node], values[lefts[node]], values[rights[node]], constants[node])
            for index in range(outputs.shape[0]):
                results[sample, index] = values[outputs[index]]


@parallel_cpu_kernel
def replay_gradients(codes, lefts, rights, constants, outputs, fixed_values, inputs, grad_outputs,
                     values_scratch, grads_scratch, fixed_grad_partials, results, input_grads):
    """Evaluate a recorded program and backpropagate `grad_outputs` for each row of `inputs`.

    Layout and chunks as in replay_forward. Per sample: results[sample] = the outputs, input_grads[sample] =
    d(sum_k grad_outputs[sample, k] * output_k)/d inputs[sample]. The gradients of the captured nodes are
    summed over the samples of each chunk, in sample order, into fixed_grad_partials[chunk] (the caller
    sums the chunks in order: deterministic whatever the thread count).
    grad_outputs: float64 (batch, n_outputs); grads_scratch: float64 (chunks, n);
    fixed_grad_partials: float64 (chunks, fixed); input_grads: float64 (batch, n_inputs).
    """
    batch, input_count = inputs.shape
    fixed = fixed_values.shape[0]
    first_operation = fixed + input_count
    node_count = codes.shape[0]
    chunks = values_scratch.shape[0]
    per_chunk = (batch + chunks - 1) // max(chunks, 1)
    for chunk in prange(chunks):
        values = values_scratch[chunk]
        grads = grads_scratch[chunk]
        partials = fixed_grad_partials[chunk]
        for node in range(fixed):
            values[node] = fixed_values[node]
            partials[node] = 0.0
        for sample in range(chunk * per_chunk, min(batch, (chunk + 1) * per_chunk)):
            for index in range(input_count):
                values[fixed + index] = inputs[sample, index]
            for node in range(first_operation, node_count):
                values[node] = node_value(codes[node], values[lefts[node]], values[rights[node]], constants[node])
            for node in range(node_count):
                grads[node] = 0.0
            for index in range(outputs.shape[0]):
                results[sample, index] = values[outputs[index]]
                grads[outputs[index]] += grad_outputs[sample, index]
            for node in range(node_count - 1, first_operation - 1, -1):
                send_gradients(node, codes[node], lefts[node], rights[node], constants[node], values, grads)
            for index in range(input_count):
                input_grads[sample, index] = grads[fixed + index]
            for node in range(fixed):
                partials[node] += grads[node]
