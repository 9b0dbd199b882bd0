"""Matrix products (matmul, mm, bmm) with PyTorch's shape rules; the gradients are matrix products too.

Inside an op every operand is a "stack": a C-contiguous (batch, rows, columns) array (a plain matrix without
batch dimensions), a flag saying the matrices are to be read transposed (so `x.mT` costs no copy) and the
batch shape it broadcasts from.
"""

import math

import numpy as np

from nbprop.autograd import Function
from nbprop.backend import DEVICES
from nbprop.ops import movement
from nbprop.ops.broadcast import sum_to_shape
from nbprop.tensor import Tensor


class _Stack:
    """An operand as matrices: `array` C-contiguous, (batch, rows, columns) or, with no batch dimensions, (rows,
    columns); read as its matrices transposed if `transposed`; `batch_shape` is the batch shape before
    flattening, `matrix` the logical (rows, columns)."""

    __slots__ = ("array", "batch_shape", "matrix", "transposed")

    def __init__(self, array, transposed, batch_shape, matrix):
        self.array = array
        self.transposed = transposed
        self.batch_shape = batch_shape
        self.matrix = matrix

    @classmethod
    def of(cls, array, device):
        """The stack of an array of shape (*batch, rows, columns): a view when the array or its transpose is
        C-contiguous, otherwise a contiguous copy."""
        *batch, rows, columns = array.shape
        batch = tuple(batch)
        if device.is_contiguous(array):
            if len(batch) > 1:
                array = device.reshape(array, (math.prod(batch), rows, columns))
            return cls(array, False, batch, (rows, columns))
        swapped = device.transpose_matrices(array)
        if device.is_contiguous(swapped):
            if len(batch) > 1:
                swapped = device.reshape(swapped, (math.prod(batch), columns, rows))
            return cls(swapped, True, batch, (rows, columns))
        array = device.copy(array)
        if len(batch) > 1:
            array = device.reshape(array, (math.prod(batch), rows, columns))
        return cls(array, False, batch, (rows, columns))

    def t(self):
        """The same matrices transposed (no copy)."""
        return _Stack(self.array, not self.transposed, self.batch_shape, self.matrix[::-1])


def _batch_index(device, batch_shape, out_batch_shape):
    """For each entry of the broadcast batch `out_batch_shape`, the flat index of the entry it reads in
    `batch_shape` (int64, on the device): how broadcast batch dimensions are read without copies."""
    flat = device.arange(0, math.prod(batch_shape), 1, np.int64)
    if batch_shape == out_batch_shape:
        return flat
    broadcast = device.expand(device.reshape(flat, batch_shape), out_batch_shape)
    return device.reshape(device.copy(broadcast), (-1,))


def batched_product_work(count, rows, columns, inner):
    """The `work=` of the batched product kernels for `count` (rows, inner) @ (inner, columns) products: they run
    BLAS on Numba's threads from 8 million multiply-adds (about 60 us of one core's SGEMM), which this scales to
    the parallel threshold's 1M elements."""
    return count * rows * columns * inner // 8


def _product(device, left, right, out_batch_shape, target_batch_shape=None):
    """The products left[i] @ right[i] over the broadcast batch `out_batch_shape`, as a C-contiguous array of
    shape (*target_batch_shape, n, m). A smaller target batch (the gradient of a broadcast operand) gets the
    sum of the products of the entries that broadcast onto each of its entries."""
    if target_batch_shape is None:
        target_batch_shape = out_batch_shape
    rows, columns = left.matrix[0], right.matrix[1]
    dtype = left.array.dtype
    if math.prod(out_batch_shape) * rows * columns * left.matrix[1] == 0:
        # Nothing to compute (and no -1 reshapes of empty arrays below): an empty result, or zeros when the
        # contracted dimension is empty.
        return device.zeros(target_batch_shape + (rows, columns), dtype)
    out = device.empty(target_batch_shape + (rows, columns), dtype)
    if dtype.kind != "f":  # integer products are never differentiated, so the target is the output batch
        device.call("matmul_integer", _untransposed(left, device), _untransposed(right, device),
                    _batch_index(device, left.batch_shape, out_batch_shape),
                    _batch_index(device, right.batch_shape, out_batch_shape),
                    device.reshape(out, (-1, rows, columns)))
        return out
    if not left.batch_shape and not right.batch_shape:
        # Both operands and the output are plain matrices.
        device.call("matmul_2d", left.array, right.array, left.transposed, right.transposed, out)
        return out
    unbroadcast = left.batch_shape == out_batch_shape
    if unbroadcast and not right.batch_shape and not left.transposed and target_batch_shape == out_batch_shape:
        # A batch of matrices times one matrix is one taller product: (batch * n, k) @ (k, m).
        device.call("matmul_2d", device.reshape(left.array, (-1, left.matrix[1])), right.array, False,
                    right.transposed, device.reshape(out, (-1, columns)))
        return out
    if unbroadcast and not target_batch_shape and left.transposed and not right.transposed \
            and right.batch_shape == out_batch_shape:
        # The gradient of a matrix shared by a batch: sum_i a_i^T g_i is one wide product (batch * n, k)^T
        # @ (batch * n, m), summed inside BLAS.
        device.call("matmul_2d", device.reshape(left.array, (-1, left.matrix[0])),
                    device.reshape(right.array, (-1, columns)), True, False, out)
        return out
    left_index = _batch_index(device, left.batch_shape, out_batch_shape)
    right_index = _batch_index(device, right.batch_shape, out_batch_shape)
    work = batched_product_work(math.prod(out_batch_shape), rows, columns, left.matrix[1])
    if target_batch_shape == out_batch_shape:
        device.call("matmul_batched", _batched(left, device), _batched(right, device), left_index, right_index,
                    left.transposed, right.transposed, device.reshape(out, (-1, rows, columns)), work=work)
        return out
    device.call("matmul_batched_sum", _batched(left, device), _batched(right, device), left_index, right_index,
                _batch_index(device, target_batch_shape, out_batch_shape), left.transposed, right.transposed,
                device.empty((rows, columns), dtype), device.reshape(out, (-1, rows, columns)), work=work)
    return out


def _batched(stack, device):
    """The stack's array as (batch, rows, columns): a batch of one for a plain matrix."""
    return device.reshape(stack.array, (1,) + stack.array.shape) if not stack.batch_shape else stack.array


def _untransposed(stack, device):
    """The stack's matrices as stored C-contiguous (batch, rows, columns), for kernels without a transpose
    flag."""
    if not stack.transposed:
        return _batched(stack, device)
    array = device.copy(device.transpose_matrices(stack.array))
    return device.reshape(array, (1,) + array.shape) if not stack.batch_shape else array


# ----------------------------------------------------------------------------------------------- shapes


def _plan(a_shape, b_shape, op):
    """PyTorch's matmul shape rules: the (*batch, n, k) and (*batch, k, m) views of the operands (1-D ones
    promoted), the broadcast batch shape and the result's shape (promoted dimensions removed)."""
    if not a_shape or not b_shape:
        raise RuntimeError(f"{op}: both arguments need to be at least 1-D, but got shapes {tuple(a_shape)} and "
                           f"{tuple(b_shape)}")
    a_matrix = (1,) + a_shape if len(a_shape) == 1 else a_shape
    b_matrix = b_shape + (1,) if len(b_shape) == 1 else b_shape
    if a_matrix[-1] != b_matrix[-2]:
        raise RuntimeError(f"{op}: shapes {tuple(a_shape)} and {tuple(b_shape)} cannot be multiplied "
                           f"({a_matrix[-1]} != {b_matrix[-2]} in the contracted dimension)")
    a_batch, b_batch = a_matrix[:-2], b_matrix[:-2]
    length = max(len(a_batch), len(b_batch))
    batch = []
    for size_a, size_b in zip((1,) * (length - len(a_batch)) + a_batch, (1,) * (length - len(b_batch)) + b_batch):
        if size_a != size_b and size_a != 1 and size_b != 1:
            raise RuntimeError(f"{op}: the batch dimensions of shapes {tuple(a_shape)} and {tuple(b_shape)} "
                               f"cannot be broadcast together ({size_a} against {size_b})")
        batch.append(size_b if size_a == 1 else size_a)
    batch = tuple(batch)
    result = batch + ((a_matrix[-2],) if len(a_shape) > 1 else ()) + ((b_matrix[-1],) if len(b_shape) > 1 else ())
    return a_matrix, b_matrix, batch, result


# --------------------------------------------------------------------------------------------- the op


class Matmul(Function):
    @staticmethod
    def forward(ctx, a, b, a_matrix, b_matrix, batch, result_shape):
        device = DEVICES[a.device]
        a_data, b_data = a._data, b._data
        # Only a 1-D operand differs from its matrix shape; its reshape is a view.
        left = _Stack.of(a_data if a_data.shape == a_matrix else device.reshape(a_data, a_matrix), device)
        right = _Stack.of(b_data if b_data.shape == b_matrix else device.reshape(b_data, b_matrix), device)
        ctx.save_for_backward(a if ctx.needs_input_grad[1] else None, b if ctx.needs_input_grad[0] else None)
        ctx.shapes = (a_matrix, b_matrix, batch, a.shape, b.shape)
        out = _product(device, left, right, batch)
        return Tensor._make(out if out.shape == result_shape else device.reshape(out, result_shape), None, a.device)

    @staticmethod
    def backward(ctx, grad_output):
        a, b = ctx.saved_tensors
        a_matrix, b_matrix, batch, a_shape, b_shape = ctx.shapes
        device = DEVICES[grad_output.device]
        grad_data = grad_output._data
        grad_shape = batch + (a_matrix[-2], b_matrix[-1])
        grad = _Stack.of(grad_data if grad_data.shape == grad_shape else device.reshape(grad_data, grad_shape),
                         device)
        grad_a = grad_b = None
        if ctx.needs_input_grad[0]:
            # d(a @ b)/da: grad @ b^T, summed over the batch entries that a was broadcast to.
            b_data = b._data
            right = _Stack.of(b_data if b_data.shape == b_matrix else device.reshape(b_data, b_matrix), device)
            grad_a = _product(device, grad, right.t(), batch, a_matrix[:-2])
            grad_a = Tensor._make(grad_a if a_shape == a_matrix else device.reshape(grad_a, a_shape), None,
                                  grad_output.device)
        if ctx.needs_input_grad[1]:
            # d(a @ b)/db: a^T @ grad, summed over the batch entries that b was broadcast to.
            a_data = a._data
            left = _Stack.of(a_data if a_data.shape == a_matrix else device.reshape(a_data, a_matrix), device)
            grad_b = _product(device, left.t(), grad, batch, b_matrix[:-2])
            grad_b = Tensor._make(grad_b if b_shape == b_matrix else device.reshape(grad_b, b_shape), None,
                                  grad_output.device)
        return grad_a, grad_b, None, None, None, None

    @staticmethod
    def backward_graph(ctx, grad_output):
        # backward's products as recorded matmuls of the operands in their matrix shapes.
        a, b = ctx.saved_tensors
        a_matrix, b_matrix, batch, a_shape, b_shape = ctx.shapes
        grad = movement.reshape(grad_output, batch + (a_matrix[-2], b_matrix[-1]))
        grad_a = grad_b = None
        if ctx.needs_input_grad[0]:
            product = matmul(grad, movement.transpose(movement.reshape(b, b_matrix), -1, -2))
            grad_a = movement.reshape(sum_to_shape(product, a_matrix), a_shape)
        if ctx.needs_input_grad[1]:
            product = matmul(movement.transpose(movement.reshape(a, a_matrix), -1, -2), grad)
            grad_b = movement.reshape(sum_to_shape(product, b_matrix), b_shape)
        return grad_a, grad_b, None, None, None, None


def _operands(a, b, op):
    """The two tensors, checked: on one device, of one dtype (as PyTorch, no promotion), not bool."""
    if not isinstance(a, Tensor) or not isinstance(b, Tensor):
        raise TypeError(f"{op}: expects two Tensors, got {type(a).__name__} and {type(b).__name__}")
    if a.device != b.device:
        raise RuntimeError(f"{op}: tensors on different devices, {a.device} and {b.device}")
    for tensor in (a, b):
        if tensor.dtype.kind == "b":
            raise TypeError(f"{op}: not implemented for bool tensors (shapes {tuple(a.shape)} and "
                            f"{tuple(b.shape)}); convert with .float() or .long() first")
    if a.dtype != b.dtype:
        raise RuntimeError(f"{op}: expected both operands to have the same dtype, got {a.dtype} (shape "
                           f"{tuple(a.shape)}) and {b.dtype} (shape {tuple(b.shape)}); convert one with .to()")
    return a, b


def matmul(a, b):
    """torch.matmul: the dot product of 1-D tensors (0-d result), the matrix product of 2-D ones, a 1-D
    operand promoted to a matrix (a row on the left, a column on the right) whose added dimension is removed
    from the result, and batched products of N-D operands whose batch dimensions broadcast."""
    a, b = _operands(a, b, "matmul")
    a_matrix, b_matrix, batch, result = _plan(a.shape, b.shape, "matmul")
    return Matmul.apply(a, b, a_matrix, b_matrix, batch, result)


def mm(a, b):
    """torch.mm: the product of two matrices, (n, k) @ (k, m) -> (n, m); no broadcasting."""
    if isinstance(a, Tensor) and isinstance(b, Tensor) and (a.ndim != 2 or b.ndim != 2):
        raise RuntimeError(f"mm: expects two 2-D tensors, got shapes {tuple(a.shape)} and {tuple(b.shape)}")
    a, b = _operands(a, b, "mm")
    a_matrix, b_matrix, batch, result = _plan(a.shape, b.shape, "mm")
    return Matmul.apply(a, b, a_matrix, b_matrix, batch, result)


def bmm(a, b):
    """torch.bmm: batched matrix products (batch, n, k) @ (batch, k, m) -> (batch, n, m); equal batch sizes,
    no broadcasting."""
    if isinstance(a, Tensor) and isinstance(b, Tensor) and (a.ndim != 3 or b.ndim != 3 or a.shape[0] != b.shape[0]):
        raise RuntimeError(f"bmm: expects two 3-D tensors with equal batch sizes, got shapes {tuple(a.shape)} "
                           f"and {tuple(b.shape)}")
    a, b = _operands(a, b, "bmm")
    a_matrix, b_matrix, batch, result = _plan(a.shape, b.shape, "bmm")
    return Matmul.apply(a, b, a_matrix, b_matrix, batch, result)
