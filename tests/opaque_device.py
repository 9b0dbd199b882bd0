"""A test device whose arrays are opaque: proof that nbprop reaches array data only through the device table.

Its arrays wrap CPU arrays and offer only `shape`, `dtype`, `ndim` and `size`; any NumPy call on them, indexing,
arithmetic or attribute beyond those raises. Its methods unwrap their arguments, run the CPU device's method
(the same kernels) and wrap array results.
"""

import numpy as np

import nbprop
from nbprop import backend


class OpaqueError(TypeError):
    """Raised by any use of an opaque array that does not go through its device."""


class OpaqueArray:
    __slots__ = ("_hidden",)
    __array_ufunc__ = None  # NumPy's ufuncs raise TypeError on it

    def __init__(self, array):
        assert isinstance(array, np.ndarray)
        object.__setattr__(self, "_hidden", array)

    shape = property(lambda self: self._hidden.shape)
    dtype = property(lambda self: self._hidden.dtype)
    ndim = property(lambda self: self._hidden.ndim)
    size = property(lambda self: self._hidden.size)

    def __array__(self, *args, **kwargs):
        raise OpaqueError("a NumPy call on an opaque device array")

    def __array_function__(self, *args, **kwargs):
        raise OpaqueError("a NumPy function called on an opaque device array")

    def __getattr__(self, name):
        raise OpaqueError(f"an opaque device array has no {name!r}; use the device's methods")

    def __getitem__(self, key):
        raise OpaqueError("indexing an opaque device array; use the device's region()")

    def __setitem__(self, key, value):
        raise OpaqueError("writing into an opaque device array; use the device's write_region()")

    def __iter__(self):
        raise OpaqueError("iterating over an opaque device array")

    def __len__(self):
        raise OpaqueError("len() of an opaque device array")

    def __bool__(self):
        raise OpaqueError("truth value of an opaque device array")

    def __repr__(self):
        return f"OpaqueArray(shape={self.shape}, dtype={self.dtype})"


def _unwrap(value):
    if value.__class__ is OpaqueArray:
        return value._hidden
    if isinstance(value, np.ndarray):
        raise OpaqueError(f"a host NumPy array (shape {value.shape}) passed to the opaque device")
    if isinstance(value, (list, tuple)):
        return type(value)(_unwrap(item) for item in value)
    return value


def _wrap(value):
    if isinstance(value, np.ndarray):
        return OpaqueArray(value)
    if isinstance(value, tuple):
        return tuple(_wrap(item) for item in value)
    return value


class OpaqueDevice:
    """The CPU device's methods and kernels behind opaque arrays. Like a real accelerator, it shares no memory
    with the host: transfers copy."""

    name = "opaque"
    # A view of an opaque array does not hold the wrapper it came from (as on a real accelerator, whose views
    # hold the device memory, not the array object): reference counts cannot see views, so nothing is lent.
    views_hold_their_base = False

    @staticmethod
    def asarray(data, dtype=None):
        return OpaqueArray(np.array(data, dtype=dtype, order="C"))

    @staticmethod
    def to_numpy(array):
        return np.array(_unwrap(array), order="C")

    @staticmethod
    def item(array):
        return backend.cpu.item(_unwrap(array))

    def __getattr__(self, name):
        method = getattr(backend.cpu, name)

        def through_cpu(*args, **kwargs):
            return _wrap(method(*_unwrap(args), **{key: _unwrap(value) for key, value in kwargs.items()}))

        return through_cpu


def install():
    """Register the opaque device (idempotent); returns it."""
    return backend.DEVICES.setdefault(OpaqueDevice.name, OpaqueDevice())


def _run(device, function, arrays, grads, seed, sum_backward):
    """function(*leaves) on `device`; its outputs, the leaves' gradients and the leaves, all as host arrays.

    A float output is differentiated with a random gradient of its shape (or through .sum(), which hands
    the op a stride-0 gradient); integer outputs (indices) are compared only.
    """
    leaves = [nbprop.tensor(array, device=device, requires_grad=grad) for array, grad in zip(arrays, grads)]
    outputs = function(*leaves)
    outputs = outputs if isinstance(outputs, tuple) else (outputs,)
    for output in outputs:
        assert output.device == device
    differentiable = [output for output in outputs if output.requires_grad]
    rng = np.random.default_rng(seed)
    for index, output in enumerate(differentiable):
        retain = index < len(differentiable) - 1
        if sum_backward:
            output.sum().backward(retain_graph=retain)
        else:
            gradient = rng.standard_normal(output.shape).astype(output.dtype)
            output.backward(nbprop.tensor(gradient, device=device), retain_graph=retain)
    host = [output.detach().cpu().numpy() for output in outputs]
    if not differentiable:  # argmax and argmin: nothing flows back
        return host, [None] * len(leaves)
    for leaf, grad in zip(leaves, grads):
        assert not grad or leaf.grad.device == device
    return host, [leaf.grad.cpu().numpy() if grad else None for leaf, grad in zip(leaves, grads)]


def assert_same_on_opaque(function, *arrays, grads=None, seed=0, sum_backward=False):
    """function gives the same outputs and input gradients, bit for bit, on the opaque device as on the CPU."""
    grads = [np.asarray(array).dtype.kind == "f" for array in arrays] if grads is None else grads
    expected_outputs, expected_gradients = _run("cpu", function, arrays, grads, seed, sum_backward)
    outputs, gradients = _run("opaque", function, arrays, grads, seed, sum_backward)
    assert len(outputs) == len(expected_outputs)
    for actual, expected in zip(outputs, expected_outputs):
        assert actual.dtype == expected.dtype and actual.shape == expected.shape
        np.testing.assert_array_equal(actual, expected)
    for actual, expected in zip(gradients, expected_gradients):
        if expected is not None:
            assert actual.dtype == expected.dtype and actual.shape == expected.shape
            np.testing.assert_array_equal(actual, expected)
    return outputs, gradients
