"""Parameter: a leaf Tensor that a Module registers as one of its trainable weights."""

import numpy as np

from nbprop.backend import DEVICES, HOST
from nbprop.backend import get as get_device
from nbprop.tensor import Tensor


class Parameter(Tensor):
    """A Tensor that, assigned as a Module attribute, joins the module's `parameters()`.

    `Parameter(data=None, requires_grad=True)` wraps `data`'s storage without copying (an in-place change to
    one is seen by the other, as in PyTorch) and is a leaf. With no data it is an empty float32 tensor.
    """

    __slots__ = ()

    def __init__(self, data=None, requires_grad=True):
        if data is None:
            data = Tensor._make(DEVICES[HOST].empty((0,), np.float32), None, HOST)
        elif not isinstance(data, Tensor):
            raise TypeError(f"Parameter: expects a Tensor as data, got {type(data).__name__}; wrap it with "
                            "nbprop.tensor(...) first")
        if requires_grad and data.dtype.kind != "f":
            raise RuntimeError(f"Parameter: only floating-point tensors can require gradients, got a "
                               f"{data.dtype} tensor; pass requires_grad=False")
        self._data = data._data
        self.requires_grad = bool(requires_grad)
        self.grad = None
        self.grad_fn = None
        self._output_index = 0
        # Shared with `data`, so that in-place changes through either are seen by tensors saved for backward.
        self._version_counter = data._version_counter
        # The parameter owns its values: in-place updates of it are updates of a leaf, not of a view.
        self._is_view = False
        self.device = data.device

    def __repr__(self):
        return "Parameter containing:\n" + super().__repr__()

    def __reduce_ex__(self, protocol):
        # copy.deepcopy / pickle: rebuild from a host copy of the values (the slots carry tape state).
        values = DEVICES[HOST].copy(DEVICES[self.device].to_numpy(self._data))
        return (_rebuild_parameter, (values, self.requires_grad, self.grad, self.device))

    def __deepcopy__(self, memo):
        copied = Parameter(_copy(self), self.requires_grad)
        if self.grad is not None:
            copied.grad = _copy(self.grad)
        memo[id(self)] = copied
        return copied


def _copy(tensor):
    return Tensor._make(DEVICES[tensor.device].copy(tensor._data), None, tensor.device)


def _rebuild_parameter(array, requires_grad, grad, device=None):
    """A parameter of host `array`'s values on `device` (None, as pickles made before devices: the CPU)."""
    device = HOST if device is None else device
    parameter = Parameter(Tensor._make(get_device(device).asarray(array), None, device), requires_grad)
    parameter.grad = grad
    return parameter
