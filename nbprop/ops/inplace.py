"""In-place writes: copy_/fill_, and the checks and tape bookkeeping shared by every op that writes in place."""

import numbers

from nbprop.autograd import Function, is_grad_enabled
from nbprop.backend import DEVICES
from nbprop.ops.broadcast import expand
from nbprop.ops.elementwise_base import scalar_tensor
from nbprop.tensor import Tensor


def check_writable(target, op, source_requires_grad):
    """Raise the error PyTorch would (or a clear 'not supported') before `op` writes into `target`."""
    recording = is_grad_enabled() and (target.requires_grad or source_requires_grad)
    if recording and target.grad_fn is None and target.requires_grad:
        raise RuntimeError(f"{op}: a leaf tensor that requires grad (shape {tuple(target.shape)}) cannot be "
                           "changed in place; wrap the update in `with nbprop.no_grad():`")
    device = DEVICES[target.device]
    if any(stride == 0 and size > 1 for stride, size in zip(device.strides(target._data), target.shape)):
        raise RuntimeError(f"{op}: the tensor written to is an expanded view in which several elements share "
                           "one memory location; clone() it first")
    if not device.is_writeable(target._data):
        raise RuntimeError(f"{op}: the memory of the tensor written to (shape {tuple(target.shape)}) is "
                           "read-only, for example a tensor made by from_numpy of a read-only NumPy array or a "
                           "view of one; clone() it first")
    if recording and target._is_view:
        raise RuntimeError(f"{op}: changing a view (shape {tuple(target.shape)}) in place while gradients are "
                           "recorded is not supported: the tensor it views would not see the change on the "
                           "tape; write into that tensor, or clone() the view first")


class Overwrite(Function):
    """`target.copy_(source)` / `fill_`: the values come from source; target's old values get a zero gradient."""

    @staticmethod
    def forward(ctx, target, source):
        return Tensor._make(DEVICES[source.device].copy(source._data), None, source.device)

    @staticmethod
    def backward(ctx, grad_output):
        # Zeros, not None, for the overwritten values: PyTorch's CopyBackwards and FillBackward do the same.
        overwritten = Tensor._make(DEVICES[grad_output.device].zeros(grad_output.shape, grad_output.dtype),
                                   None, grad_output.device)
        return overwritten if ctx.needs_input_grad[0] else None, grad_output if ctx.needs_input_grad[1] else None

    # The zeros are constants and the source's gradient passes through: already a recorded backward.
    backward_graph = backward


def copy_source(target, source):
    """What `target.copy_(source)` / `fill_(value)` writes: `source` cast to target's dtype and broadcast."""
    if isinstance(source, Tensor):
        if source.dtype.kind == "f" and target.dtype.kind != "f":
            raise RuntimeError(f"copy_: cannot copy a {source.dtype} tensor into a {target.dtype} tensor")
        source = expand(source.to(target.dtype), target.shape)
    elif isinstance(source, numbers.Number):
        source = scalar_tensor(source, target.dtype, target.shape, target.device)
    else:
        raise TypeError(f"copy_/fill_: expects a Tensor or a number, got {type(source).__name__}")
    # A new node even when nothing is cast or broadcast, so that target gets a grad_fn of its own that cuts
    # the gradient to its old values (also when the new values are constants).
    return Overwrite.apply(target, source)


def in_place(target, result, op):
    """Write `result` into `target`'s storage, bump its version and let `target` take result's tape node."""
    if result.shape != target.shape:
        raise RuntimeError(f"{op}: the result has shape {tuple(result.shape)} but the tensor written to has "
                           f"shape {tuple(target.shape)}; in-place ops cannot broadcast the output")
    if result.dtype.kind == "f" and target.dtype.kind != "f":
        raise RuntimeError(f"{op}: the {result.dtype} result cannot be written into a {target.dtype} tensor")
    check_writable(target, op, result.requires_grad)
    if result.grad_fn is not None:
        # mul_, div_, clamp_ ... need target's values from before the write (PyTorch saves `original_self`).
        result.grad_fn.copy_saved_sharing(target._version_counter)
    DEVICES[target.device].copy_into(target._data, result._data)
    target._version_counter[0] += 1
    if result.grad_fn is not None:
        target.grad_fn = result.grad_fn
        target._output_index = result._output_index
        target.requires_grad = True
    return target
