"""Broadcasting as an explicit expand (a stride-0 view) whose backward sums back to the input's shape."""

from nbprop.autograd import Function
from nbprop.backend import DEVICES
from nbprop.tensor import Tensor


def broadcast_shapes(first, second, op):
    """NumPy's broadcast of two shapes; a RuntimeError (as in PyTorch) naming `op` and both shapes otherwise."""
    if first == second:
        return first
    length = max(len(first), len(second))
    first_padded = (1,) * (length - len(first)) + tuple(first)
    second_padded = (1,) * (length - len(second)) + tuple(second)
    shape = []
    for size_a, size_b in zip(first_padded, second_padded):
        if size_a == size_b or size_b == 1:
            shape.append(size_a)
        elif size_a == 1:
            shape.append(size_b)
        else:
            raise RuntimeError(f"{op}: shapes {tuple(first)} and {tuple(second)} cannot be broadcast together")
    return tuple(shape)


def _checked_shape(shape, input_shape):
    lead = len(shape) - len(input_shape)
    if lead < 0:
        raise RuntimeError(f"expand: the target shape {tuple(shape)} has fewer dimensions than the tensor's "
                         f"{tuple(input_shape)}")
    resolved = list(shape)
    for index, size in enumerate(shape):
        if index < lead:
            if size < 0:
                raise RuntimeError(f"expand: -1 is not allowed for the new leading dimension {index} in {tuple(shape)}")
            continue
        current = input_shape[index - lead]
        if size == -1:
            resolved[index] = current
        elif size != current and current != 1:
            raise RuntimeError(f"expand: the tensor of shape {tuple(input_shape)} cannot be expanded to "
                             f"{tuple(shape)} (dimension {index}: size {current} is not 1)")
    return tuple(resolved)


class Expand(Function):
    @staticmethod
    def forward(ctx, x, shape):
        ctx.input_shape = x.shape
        return Tensor._make(DEVICES[x.device].expand(x._data, shape), x._version_counter, x.device)

    @staticmethod
    def backward(ctx, grad_output):
        return sum_to_shape(grad_output, ctx.input_shape), None

    backward_graph = backward


def expand(x, shape):
    """`x.expand(*shape)`: a broadcast view (no copy); -1 keeps a dimension's size."""
    shape = _checked_shape(tuple(shape), x.shape)
    if shape == x.shape:
        return x
    return Expand.apply(x, shape)


def sum_to_shape(tensor, shape):
    """Sum `tensor` over the dimensions along which `shape` was broadcast to reach `tensor.shape`."""
    if tensor.shape == tuple(shape):
        return tensor
    lead = tensor.ndim - len(shape)
    dims = tuple(range(lead)) + tuple(
        lead + index for index, size in enumerate(shape) if size == 1 and tensor.shape[lead + index] != 1
    )
    summed = reduce.sum(tensor, dims, keepdim=True) if dims else tensor
    return movement.reshape(summed, tuple(shape))


from nbprop.ops import movement, reduce  # noqa: E402  (they import this module's neighbours)
