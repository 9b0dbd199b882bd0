"""Dense-layer ops: linear (one BLAS product plus a fused bias pass), bilinear and dropout."""

import math
import numbers

from nbprop.autograd import Function
from nbprop.backend import DEVICES
from nbprop.ops import movement, reduce
from nbprop.ops.elementwise_base import gradient_map
from nbprop.ops.inplace import in_place
from nbprop.ops.matmul import matmul
from nbprop.random import generator
from nbprop.tensor import Tensor

# ------------------------------------------------------------------------------------------------ linear


def _weight_operand(weight_array, device):
    """(array, transposed): W^T as matmul_2d reads it: W itself with the transpose flag when W is
    C-contiguous, W's C-contiguous transpose without the flag, or else a contiguous copy of W."""
    if device.is_contiguous(weight_array):
        return weight_array, True
    transposed = device.transpose_matrices(weight_array)
    if device.is_contiguous(transposed):
        return transposed, False
    return device.copy(weight_array), True


def _rows(tensor, rows, columns, device):
    """The tensor's data as a C-contiguous (rows, columns) matrix: a view, or a copy if its strides need one."""
    return device.contiguous(device.reshape(tensor._data, (rows, columns)))


class Linear(Function):
    @staticmethod
    def forward(ctx, input, weight, bias):
        device = DEVICES[input.device]
        out_features, in_features = weight.shape
        lead_shape = input.shape[:-1]
        rows = math.prod(lead_shape)
        inputs = _rows(input, rows, in_features, device)
        ctx.save_for_backward(input if ctx.needs_input_grad[1] else None,
                              weight if ctx.needs_input_grad[0] else None)
        if rows and out_features and in_features:
            out = device.empty((rows, out_features), input.dtype)
            weight_matrix, transposed = _weight_operand(weight._data, device)
            device.call("matmul_2d", inputs, weight_matrix, False, transposed, out)
        else:
            out = device.zeros((rows, out_features), input.dtype)
        if bias is not None and out.size:
            device.call("linear_bias_add", bias._data, out)
        return Tensor._make(device.reshape(out, lead_shape + (out_features,)), None, input.device)

    @staticmethod
    def backward(ctx, grad_output):
        input, weight = ctx.saved_tensors
        device = DEVICES[grad_output.device]
        rows, out_features = math.prod(grad_output.shape[:-1]), grad_output.shape[-1]
        gradients = _rows(grad_output, rows, out_features, device)
        grad_input = grad_weight = grad_bias = None
        if ctx.needs_input_grad[0]:
            # d(x W^T)/dx: grad_output @ W, (rows, out) @ (out, in).
            in_features = weight.shape[1]
            if rows and out_features and in_features:
                grad_input = device.empty((rows, in_features), grad_output.dtype)
                weight_matrix, transposed = _weight_operand(weight._data, device)
                device.call("matmul_2d", gradients, weight_matrix, False, not transposed, grad_input)
            else:
                grad_input = device.zeros((rows, in_features), grad_output.dtype)
            grad_input = Tensor._make(device.reshape(grad_input, grad_output.shape[:-1] + (in_features,)), None,
                                      grad_output.device)
        if ctx.needs_input_grad[1]:
            # d(x W^T)/dW: grad_output^T @ x, (out, rows) @ (rows, in), summed over every leading index.
            in_features = input.shape[-1]
            inputs = _rows(input, rows, in_features, device)
            if rows and out_features and in_features:
                # Straight into the storage an optimizer lends for the weight's .grad, when it does.
                grad_weight = ctx.gradient_destination(1)
                if grad_weight is None:
                    grad_weight = device.empty((out_features, in_features), grad_output.dtype)
                device.call("matmul_2d", gradients, inputs, True, False, grad_weight)
            else:
                grad_weight = device.zeros((out_features, in_features), grad_output.dtype)
            grad_weight = Tensor._make(grad_weight, None, grad_output.device)
        if ctx.needs_input_grad[2]:
            grad_bias = ctx.gradient_destination(2)
            if grad_bias is None:
                grad_bias = device.empty((out_features,), grad_output.dtype)
            if out_features:
                device.call("linear_bias_grad", gradients, grad_bias, work=gradients.size)
            grad_bias = Tensor._make(grad_bias, None, grad_output.device)
        return grad_input, grad_weight, grad_bias

    @staticmethod
    def backward_graph(ctx, grad_output):
        # backward's products as recorded matmuls over the rows (every leading index) of the input.
        input, weight = ctx.saved_tensors
        gradients = movement.reshape(grad_output, (-1, grad_output.shape[-1]))
        grad_input = grad_weight = grad_bias = None
        if ctx.needs_input_grad[0]:
            grad_input = movement.reshape(matmul(gradients, weight), grad_output.shape[:-1] + (weight.shape[1],))
        if ctx.needs_input_grad[1]:
            grad_weight = matmul(movement.transpose(gradients, 0, 1), movement.reshape(input, (-1, input.shape[-1])))
        if ctx.needs_input_grad[2]:
            grad_bias = reduce.sum(gradients, 0)
        return grad_input, grad_weight, grad_bias


def _check_floating(op, **tensors):
    """The common floating dtype of the named tensors (None entries skipped), or a clear error."""
    dtype = None
    for name, tensor in tensors.items():
        if tensor is None:
            continue
        if not isinstance(tensor, Tensor):
            raise TypeError(f"{op}: argument '{name}' must be a Tensor, not {type(tensor).__name__}")
        if tensor.dtype.kind != "f":
            raise RuntimeError(f"{op}: expects floating-point tensors, but '{name}' is {tensor.dtype}")
        if dtype is not None and tensor.dtype != dtype:
            described = ", ".join(f"{key}: {value.dtype}" for key, value in tensors.items()
                                  if value is not None)
            raise RuntimeError(f"{op}: expected all tensors to have the same dtype, got {described}")
        dtype = tensor.dtype
    devices = {tensor.device for tensor in tensors.values() if tensor is not None}
    if len(devices) > 1:
        raise RuntimeError(f"{op}: expected all tensors to be on the same device, got {sorted(devices)}")


def linear(input, weight, bias=None):  # noqa: A002 - PyTorch's argument name
    """torch.nn.functional.linear: input @ weight.T + bias.

    input (*, in_features), weight (out_features, in_features), bias (out_features,) or None; the result
    is (*, out_features). One BLAS product, the bias added in one fused pass; the backward is two products
    and a column sum.
    """
    _check_floating("linear", input=input, weight=weight, bias=bias)
    if weight.ndim != 2:
        raise RuntimeError(f"linear: weight must be 2-D (out_features, in_features), got shape "
                           f"{tuple(weight.shape)}")
    if input.ndim == 0 or input.shape[-1] != weight.shape[1]:
        raise RuntimeError(f"linear: input of shape {tuple(input.shape)} cannot be multiplied with weight^T "
                           f"of weight shape {tuple(weight.shape)}: the last dimension of the input must be "
                           f"in_features = {weight.shape[1]}")
    if bias is not None and tuple(bias.shape) != (weight.shape[0],):
        raise RuntimeError(f"linear: bias must have shape ({weight.shape[0]},) to match weight shape "
                           f"{tuple(weight.shape)}, got {tuple(bias.shape)}")
    return Linear.apply(input, weight, bias)


def bilinear(input1, input2, weight, bias=None):
    """torch.nn.functional.bilinear: y[..., o] = sum_ij input1[..., i] weight[o, i, j] input2[..., j] + b[o].

    input1 (*, in1), input2 (*, in2) with equal leading shapes, weight (out, in1, in2), bias (out,) or None.
    Composed of one matrix product and a multiply-sum (their backward is the chain rule of those ops).
    """
    _check_floating("bilinear", input1=input1, input2=input2, weight=weight, bias=bias)
    if weight.ndim != 3:
        raise RuntimeError(f"bilinear: weight must be 3-D (out_features, in1_features, in2_features), got "
                           f"shape {tuple(weight.shape)}")
    out_features, in1, in2 = weight.shape
    if input1.ndim == 0 or input2.ndim == 0 or input1.shape[:-1] != input2.shape[:-1] \
            or input1.shape[-1] != in1 or input2.shape[-1] != in2:
        raise RuntimeError(f"bilinear: inputs of shapes {tuple(input1.shape)} and {tuple(input2.shape)} do "
                           f"not match weight {tuple(weight.shape)}: expected (*, {in1}) and (*, {in2}) with "
                           "the same leading dimensions")
    if bias is not None and tuple(bias.shape) != (out_features,):
        raise RuntimeError(f"bilinear: bias must have shape ({out_features},), got {tuple(bias.shape)}")
    lead_shape = input1.shape[:-1]
    rows = math.prod(lead_shape)
    left = movement.reshape(input1, (rows, in1))
    right = movement.reshape(input2, (rows, 1, in2))
    # (rows, in1) @ (in1, out * in2): every output's quadratic form shares one product with input1.
    mixed = left @ movement.reshape(movement.permute(weight, (1, 0, 2)), (in1, out_features * in2))
    result = (movement.reshape(mixed, (rows, out_features, in2)) * right).sum(-1)
    if bias is not None:
        result = result + bias
    return movement.reshape(result, lead_shape + (out_features,))


# ----------------------------------------------------------------------------------------------- dropout


class Dropout(Function):
    @staticmethod
    def forward(ctx, input, p, scale):
        device = DEVICES[input.device]
        # Draws in the input's dtype from the generator seeded by nbprop.manual_seed: same seed, same mask.
        uniform = device.uniform(generator, input.shape, input.dtype)
        ctx.uniform, ctx.p, ctx.scale = uniform, p, scale
        out = device.empty(input.shape, input.dtype)
        device.map("dropout_apply", input._data, uniform, p, scale, out)
        return Tensor._make(out, None, input.device)

    @staticmethod
    def backward(ctx, grad_output):
        device = DEVICES[grad_output.device]
        grad_input = device.empty(grad_output.shape, grad_output.dtype)
        device.map("dropout_apply", grad_output._data, ctx.uniform, ctx.p, ctx.scale, grad_input)
        return Tensor._make(grad_input, None, grad_output.device), None, None

    @staticmethod
    def backward_graph(ctx, grad_output):
        uniform = Tensor._make(ctx.uniform, None, grad_output.device)
        return gradient_map("dropout_apply", grad_output, uniform, ctx.p, ctx.scale), None, None


def dropout(input, p=0.5, training=True, inplace=False):  # noqa: A002 - PyTorch's argument name
    """torch.nn.functional.dropout: in training, zero each element with probability p and scale the rest by
    1 / (1 - p) (p == 0 gives a copy, p == 1 gives x * 0, so NaN stays NaN); not training, the input itself.
    `inplace` writes the result into the input."""
    if not isinstance(p, numbers.Real) or not 0 <= p <= 1:
        raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")
    if not isinstance(input, Tensor):
        raise TypeError(f"dropout: expects a Tensor, got {type(input).__name__}")
    if not training:
        return input
    if input.dtype.kind != "f":
        raise RuntimeError(f"dropout: expects a floating-point tensor, got {input.dtype}")
    # p == 1: every draw in [0, 1) is below p, so everything is dropped and the scale is never used.
    scale = 1.0 / (1.0 - p) if p < 1 else 0.0
    result = Dropout.apply(input, float(p), scale)
    return in_place(input, result, "dropout_") if inplace else result
