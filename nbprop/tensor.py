"""Tensor: an array with its gradient and the tape node that made it; operators and methods."""

from nbprop import dtypes, ops
from nbprop.backend import DEVICES, HOST
from nbprop.size import Size
from nbprop.tensor_operators import TensorOperators
from nbprop.tensor_repr import tensor_text

_new = object.__new__
_tuple_new = tuple.__new__  # a Size of an array's shape without Size()'s checks: .shape is read per op


class Tensor(TensorOperators):
    """An n-dimensional array on a device that can record the ops applied to it for backpropagation.

    Make one with `nbprop.tensor(data)` or a factory (`zeros`, `randn`, ...). `grad` holds the accumulated
    gradient of a leaf after `backward()`; `grad_fn` is the tape node that produced a non-leaf tensor.
    """

    # `_grad_lender` (unset on most tensors): a leaf's source of preallocated .grad storage, see
    # Context.gradient_destination.
    __slots__ = ("_data", "requires_grad", "grad", "grad_fn", "_output_index", "_version_counter", "_is_view",
                 "device", "_grad_lender", "__weakref__")
    __array_priority__ = 1000  # NumPy scalars and arrays defer to Tensor's reflected operators

    def __init__(self, data, dtype=None, requires_grad=False):
        from nbprop.creation import tensor

        made = tensor(data, dtype=dtype, requires_grad=requires_grad)
        self._data = made._data
        self.requires_grad = made.requires_grad
        self.grad = None
        self.grad_fn = None
        self._output_index = 0
        self._version_counter = [0]
        self._is_view = False
        self.device = made.device

    @staticmethod
    def _make(array, version_counter, device):
        """Wrap a device array without copying or checking (the ops' fast path).

        A view of another tensor's storage passes that tensor's `version_counter`, so that in-place changes
        through either are seen by both.
        """
        tensor = _new(Tensor)
        tensor._data = array
        tensor.requires_grad = False
        tensor.grad = None
        tensor.grad_fn = None
        tensor._output_index = 0
        if version_counter is None:
            tensor._version_counter = [0]
            tensor._is_view = False
        else:
            tensor._version_counter = version_counter
            tensor._is_view = True
        tensor.device = device
        return tensor

    # ------------------------------------------------------------------------------------- attributes

    @property
    def shape(self):
        """The sizes of the dimensions, an `nbprop.Size` (ops inside nbprop read `_data.shape`, a plain tuple)."""
        return _tuple_new(Size, self._data.shape)

    @property
    def ndim(self):
        return self._data.ndim

    @property
    def dtype(self):
        return self._data.dtype

    @property
    def is_leaf(self):
        return self.grad_fn is None

    @property
    def _version(self):
        """How many in-place changes this tensor's storage has seen (shared with its views)."""
        return self._version_counter[0]

    @property
    def data(self):
        """The same storage as a tensor that does not require grad."""
        return Tensor._make(self._data, self._version_counter, self.device)

    @data.setter
    def data(self, value):
        if not isinstance(value, Tensor):
            raise TypeError(f"Tensor.data must be set to a Tensor, got {type(value).__name__}")
        self._data = value._data

    @property
    def T(self):  # noqa: N802 - PyTorch's name
        return ops.movement.permute(self, tuple(range(self.ndim - 1, -1, -1)))

    @property
    def mT(self):  # noqa: N802 - PyTorch's name
        return ops.movement.transpose(self, -2, -1)

    def size(self, dim=None):
        """The shape as an `nbprop.Size`, or the size of dimension `dim` (negative counts from the end)."""
        if dim is None:
            return _tuple_new(Size, self._data.shape)
        if dim.__class__ is not int:
            dim = _dimension_index(dim, "size")
        shape = self._data.shape
        if not shape:  # PyTorch: a 0-d tensor has no dimension to ask about, not even 0 or -1
            raise IndexError(f"size: dimension specified as {dim} but tensor has no dimensions")
        return shape[_wrap_dim(dim, len(shape), "size")]

    def dim(self):
        return self._data.ndim

    def numel(self):
        return self._data.size

    def __len__(self):
        if self._data.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return self._data.shape[0]

    def is_contiguous(self):
        return DEVICES[self.device].is_contiguous(self._data)

    def is_floating_point(self):
        return self._data.dtype.kind == "f"

    def numpy(self):
        """The NumPy array of a CPU tensor that does not require grad (it shares storage)."""
        if self.requires_grad:
            raise RuntimeError("numpy(): cannot call on a tensor that requires grad; use tensor.detach().numpy()")
        if self.device != HOST:
            raise TypeError(f"numpy(): cannot convert a tensor on device {self.device!r} to NumPy; copy it to the "
                            "host first with .cpu()")
        return DEVICES[HOST].to_numpy(self._data)

    def item(self):
        if self._data.size != 1:
            raise RuntimeError(f"item(): a tensor with {self._data.size} elements cannot be converted to a scalar")
        return DEVICES[self.device].item(self._data)

    def tolist(self):
        return DEVICES[self.device].to_numpy(self._data).tolist()

    def __repr__(self):
        return tensor_text(self)

    def __bool__(self):
        if self._data.size != 1:
            raise RuntimeError(f"the truth value of a tensor with {self._data.size} elements is ambiguous")
        return bool(self.item())

    def __float__(self):
        return float(self.item())

    def __int__(self):
        return int(self.item())

    def __index__(self):
        if self._data.dtype.kind not in "iub" or self._data.size != 1:
            raise TypeError("only integer tensors of a single element can be converted to an index")
        return int(self.item())

    def __hash__(self):
        return id(self)

    def __array__(self, dtype=None, copy=None):
        if self.device != HOST:
            raise TypeError(f"cannot convert a tensor on device {self.device!r} to a NumPy array; use .cpu() first")
        return self._data if dtype is None else DEVICES[self.device].astype(self._data, dtype)

    def __iter__(self):
        if self._data.ndim == 0:
            raise TypeError("iteration over a 0-d tensor")
        return (self[index] for index in range(self._data.shape[0]))

    # ----------------------------------------------------------------------------- autograd interface

    # backward() is installed by backward_pass.py: the tape depends on Tensor, not the other way.

    def detach(self):
        """The same storage, cut from the tape."""
        return Tensor._make(self._data, self._version_counter, self.device)

    def detach_(self):
        self.grad_fn = None
        self.requires_grad = False
        return self

    def requires_grad_(self, requires_grad=True):
        if requires_grad and self._data.dtype.kind != "f":
            raise RuntimeError(f"requires_grad_: only floating-point tensors can require gradients, this one is "
                               f"{self._data.dtype}")
        if not requires_grad and self.grad_fn is not None:
            raise RuntimeError("requires_grad_(False): cannot be called on a non-leaf tensor; use detach()")
        self.requires_grad = bool(requires_grad)
        return self

    def retain_grad(self):
        """Keep this non-leaf tensor's gradient in `.grad` during backward."""
        import weakref

        if self.grad_fn is None:
            if not self.requires_grad:
                raise RuntimeError("retain_grad: cannot retain the gradient of a tensor that does not require grad")
            return
        if self.grad_fn._retained is None:
            self.grad_fn._retained = {}
        self.grad_fn._retained[self._output_index] = weakref.ref(self)

    # ------------------------------------------------------------------------------- dtype and copies

    def to(self, dtype=None, device=None, copy=False):
        """A tensor of `dtype` and/or on `device` (`to(device)`, `to(dtype)`, `to(device, dtype)` as PyTorch);
        self when nothing changes, unless copy. Moving is recorded: gradients flow back to the source device."""
        if isinstance(dtype, str) and dtype not in dtypes.ALIASES:
            dtype, device = device, dtype
        result = self
        if device is not None and str(device) != self.device:
            result = ops.movement.to_device(self, str(device))
        if dtype is not None and dtypes.as_dtype(dtype) != result._data.dtype:
            return ops.elementwise.cast(result, dtypes.as_dtype(dtype))
        return result.clone() if copy and result is self else result

    def float(self):
        return self.to(dtypes.float32)

    def double(self):
        return self.to(dtypes.float64)

    def long(self):
        return self.to(dtypes.int64)

    def int(self):
        return self.to(dtypes.int64)

    def bool(self):
        return self.to(dtypes.bool_)

    def type_as(self, other):
        return self.to(other.dtype)

    def clone(self):
        return ops.elementwise.clone(self)

    def contiguous(self):
        return self if DEVICES[self.device].is_contiguous(self._data) else ops.elementwise.clone(self)

    def cpu(self):
        return self.to(HOST)


def _dimension_index(dim, op):
    """`dim` as an int (a NumPy integer or a one-element integer tensor too); a TypeError naming the op otherwise."""
    if isinstance(dim, bool) or not hasattr(dim, "__index__"):
        raise TypeError(f"{op}(): argument 'dim' (position 1) must be int, not {type(dim).__name__}")
    return dim.__index__()


def _wrap_dim(dim, ndim, op):
    """A dimension index in [0, ndim), from one in [-ndim, ndim); an IndexError naming the op otherwise."""
    bound = max(ndim, 1)
    if not -bound <= dim < bound:
        raise IndexError(f"{op}: dimension {dim} is out of range for a tensor of {ndim} dimensions "
                         f"(expected in [{-bound}, {bound - 1}])")
    return dim % bound
