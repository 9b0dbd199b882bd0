"""Tensor: an array with its gradient and the tape node that made it; operators and methods."""

import numbers

import numpy as np

from nbprop import dtypes

_new = object.__new__


class Tensor:
    """An n-dimensional array on a device that can record the ops applied to it for backpropagation.

    Make one with `nbprop.tensor(data)` or a factory (`zeros`, `randn`, ...). `grad` holds the accumulated
    gradient of a leaf after `backward()`; `grad_fn` is the tape node that produced a non-leaf tensor.
    """

    __slots__ = ("_data", "requires_grad", "grad", "grad_fn", "_output_index", "_version_counter", "_is_view",
                 "device", "__weakref__")
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
        self.device = "cpu"

    @staticmethod
    def _make(array, version_counter=None, device="cpu"):
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
        return self._data.shape

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
        return movement.permute(self, tuple(range(self.ndim - 1, -1, -1)))

    @property
    def mT(self):  # noqa: N802 - PyTorch's name
        return movement.transpose(self, -2, -1)

    def size(self, dim=None):
        if dim is None:
            return self._data.shape
        return self._data.shape[_wrap_dim(dim, self.ndim, "size")]

    def dim(self):
        return self._data.ndim

    def numel(self):
        return self._data.size

    def __len__(self):
        if self._data.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return self._data.shape[0]

    def is_contiguous(self):
        return self._data.flags.c_contiguous

    def is_floating_point(self):
        return self._data.dtype.kind == "f"

    def numpy(self):
        """The NumPy array of a CPU tensor that does not require grad (it shares storage)."""
        if self.requires_grad:
            raise RuntimeError("numpy(): cannot call on a tensor that requires grad; use tensor.detach().numpy()")
        return self._data

    def item(self):
        if self._data.size != 1:
            raise RuntimeError(f"item(): a tensor with {self._data.size} elements cannot be converted to a scalar")
        return self._data.reshape(-1)[0].item()

    def tolist(self):
        return self._data.tolist()

    def __repr__(self):
        body = np.array2string(self._data, separator=", ", prefix="tensor(")
        extras = "" if self._data.dtype == dtypes.get_default_dtype() or self._data.dtype == dtypes.int64 \
            else f", dtype={self._data.dtype}"
        if self.grad_fn is not None:
            extras += f", grad_fn={self.grad_fn!r}"
        elif self.requires_grad:
            extras += ", requires_grad=True"
        return f"tensor({body}{extras})"

    def __bool__(self):
        if self._data.size != 1:
            raise RuntimeError(f"the truth value of a tensor with {self._data.size} elements is ambiguous")
        return bool(self._data.reshape(-1)[0])

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
        return self._data if dtype is None else self._data.astype(dtype)

    def __iter__(self):
        if self._data.ndim == 0:
            raise TypeError("iteration over a 0-d tensor")
        return (self[index] for index in range(self._data.shape[0]))

    # ----------------------------------------------------------------------------- autograd interface

    def backward(self, gradient=None, retain_graph=False):
        """Accumulate d(self)/d(leaf) into every leaf's `.grad`; `gradient` is needed unless self is scalar."""
        autograd.backward(self, gradient, retain_graph=retain_graph)

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
        """A tensor of `dtype` (or on `device`; only 'cpu' now); self when nothing changes, unless copy."""
        if isinstance(dtype, str) and dtype not in dtypes._ALIASES:
            dtype, device = None, dtype
        if device is not None and device != self.device:
            raise RuntimeError(f"to(): device {device!r} is not available; this tensor is on {self.device!r}")
        if dtype is None or dtypes.as_dtype(dtype) == self._data.dtype:
            return self.clone() if copy else self
        return elementwise.cast(self, dtypes.as_dtype(dtype))

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
        return elementwise.clone(self)

    def contiguous(self):
        return self if self._data.flags.c_contiguous else elementwise.clone(self)

    def cpu(self):
        return self

    # ---------------------------------------------------------------------------------- arithmetic

    def __add__(self, other):
        return elementwise.add(self, other)

    def __radd__(self, other):
        return elementwise.add(other, self)

    def __sub__(self, other):
        return elementwise.sub(self, other)

    def __rsub__(self, other):
        return elementwise.sub(other, self)

    def __mul__(self, other):
        return elementwise.mul(self, other)

    def __rmul__(self, other):
        return elementwise.mul(other, self)

    def __truediv__(self, other):
        return elementwise.div(self, other)

    def __rtruediv__(self, other):
        return elementwise.div(other, self)

    def __pow__(self, exponent):
        return elementwise.pow(self, exponent)

    def __rpow__(self, base):
        return elementwise.pow(base, self)

    def __neg__(self):
        return elementwise.neg(self)

    def __pos__(self):
        return self

    def __abs__(self):
        return elementwise.abs(self)

    def __matmul__(self, other):
        return matmul.matmul(self, other)

    def __rmatmul__(self, other):
        return matmul.matmul(other, self)

    def __eq__(self, other):
        return elementwise.compare("equal", self, other)

    def __ne__(self, other):
        return elementwise.compare("not_equal", self, other)

    def __lt__(self, other):
        return elementwise.compare("less", self, other)

    def __le__(self, other):
        return elementwise.compare("less_equal", self, other)

    def __gt__(self, other):
        return elementwise.compare("greater", self, other)

    def __ge__(self, other):
        return elementwise.compare("greater_equal", self, other)

    def __invert__(self):
        return elementwise.logical_not(self)

    def __and__(self, other):
        return elementwise.logical("and", self, other)

    def __or__(self, other):
        return elementwise.logical("or", self, other)

    def __xor__(self, other):
        return elementwise.logical("xor", self, other)

    def __iadd__(self, other):
        return self.add_(other)

    def __isub__(self, other):
        return self.sub_(other)

    def __imul__(self, other):
        return self.mul_(other)

    def __itruediv__(self, other):
        return self.div_(other)

    def add(self, other, alpha=1):
        return elementwise.add(self, other if alpha == 1 else elementwise.mul(other, alpha))

    def sub(self, other, alpha=1):
        return elementwise.sub(self, other if alpha == 1 else elementwise.mul(other, alpha))

    def mul(self, other):
        return elementwise.mul(self, other)

    def div(self, other):
        return elementwise.div(self, other)

    def pow(self, exponent):
        return elementwise.pow(self, exponent)

    def neg(self):
        return elementwise.neg(self)

    def abs(self):
        return elementwise.abs(self)

    def exp(self):
        return elementwise.exp(self)

    def log(self):
        return elementwise.log(self)

    def sqrt(self):
        return elementwise.sqrt(self)

    def rsqrt(self):
        return elementwise.rsqrt(self)

    def sin(self):
        return elementwise.sin(self)

    def cos(self):
        return elementwise.cos(self)

    def tanh(self):
        return elementwise.tanh(self)

    def sigmoid(self):
        return elementwise.sigmoid(self)

    def relu(self):
        return elementwise.relu(self)

    def clamp(self, min=None, max=None):  # noqa: A002 - PyTorch's argument names
        return elementwise.clamp(self, min, max)

    clip = clamp

    def maximum(self, other):
        return elementwise.maximum(self, other)

    def minimum(self, other):
        return elementwise.minimum(self, other)

    def where(self, condition, other):
        return elementwise.where(condition, self, other)

    def eq(self, other):
        return self.__eq__(other)

    def ne(self, other):
        return self.__ne__(other)

    def lt(self, other):
        return self.__lt__(other)

    def le(self, other):
        return self.__le__(other)

    def gt(self, other):
        return self.__gt__(other)

    def ge(self, other):
        return self.__ge__(other)

    # --------------------------------------------------------------- in place (optimizers, initialisers)

    def add_(self, other, alpha=1):
        return inplace.in_place(self, self.add(other, alpha), "add_")

    def sub_(self, other, alpha=1):
        return inplace.in_place(self, self.sub(other, alpha), "sub_")

    def mul_(self, other):
        return inplace.in_place(self, self.mul(other), "mul_")

    def div_(self, other):
        return inplace.in_place(self, self.div(other), "div_")

    def clamp_(self, min=None, max=None):  # noqa: A002 - PyTorch's argument names
        return inplace.in_place(self, self.clamp(min, max), "clamp_")

    def copy_(self, source):
        return inplace.in_place(self, inplace.copy_source(self, source), "copy_")

    def fill_(self, value):
        return inplace.in_place(self, inplace.copy_source(self, value), "fill_")

    def zero_(self):
        return self.fill_(0)

    # --------------------------------------------------------------------------------- reductions

    def sum(self, dim=None, keepdim=False, dtype=None):
        return reduce.sum(self, dim, keepdim, dtype)

    def mean(self, dim=None, keepdim=False, dtype=None):
        return reduce.mean(self, dim, keepdim, dtype)

    def prod(self, dim=None, keepdim=False, dtype=None):
        return reduce.prod(self, dim, keepdim, dtype)

    def max(self, dim=None, keepdim=False):
        if isinstance(dim, Tensor):
            return elementwise.maximum(self, dim)
        return reduce.max(self, dim, keepdim)

    def min(self, dim=None, keepdim=False):
        if isinstance(dim, Tensor):
            return elementwise.minimum(self, dim)
        return reduce.min(self, dim, keepdim)

    def amax(self, dim=(), keepdim=False):
        return reduce.amax(self, dim, keepdim)

    def amin(self, dim=(), keepdim=False):
        return reduce.amin(self, dim, keepdim)

    def var(self, dim=None, unbiased=None, keepdim=False, *, correction=None):
        return reduce.var(self, dim, unbiased, keepdim, correction)

    def std(self, dim=None, unbiased=None, keepdim=False, *, correction=None):
        return reduce.std(self, dim, unbiased, keepdim, correction)

    def argmax(self, dim=None, keepdim=False):
        return reduce.argmax(self, dim, keepdim)

    def argmin(self, dim=None, keepdim=False):
        return reduce.argmin(self, dim, keepdim)

    def logsumexp(self, dim, keepdim=False):
        return softmax.logsumexp(self, dim, keepdim)

    def softmax(self, dim):
        return softmax.softmax(self, dim)

    def log_softmax(self, dim):
        return softmax.log_softmax(self, dim)

    # ----------------------------------------------------------------------------------- movement

    def reshape(self, *shape):
        return movement.reshape(self, _shape_arguments(shape))

    def view(self, *shape):
        return movement.view(self, _shape_arguments(shape))

    def view_as(self, other):
        return movement.view(self, other.shape)

    def reshape_as(self, other):
        return movement.reshape(self, other.shape)

    def flatten(self, start_dim=0, end_dim=-1):
        return movement.flatten(self, start_dim, end_dim)

    def transpose(self, dim0, dim1):
        return movement.transpose(self, dim0, dim1)

    def t(self):
        if self.ndim > 2:
            raise RuntimeError(f"t(): expects a tensor of at most 2 dimensions, got shape {tuple(self.shape)}")
        return movement.transpose(self, 0, -1) if self.ndim == 2 else self

    def permute(self, *dims):
        return movement.permute(self, _shape_arguments(dims))

    def squeeze(self, dim=None):
        return movement.squeeze(self, dim)

    def unsqueeze(self, dim):
        return movement.unsqueeze(self, dim)

    def expand(self, *sizes):
        return broadcast.expand(self, _shape_arguments(sizes))

    def expand_as(self, other):
        return broadcast.expand(self, other.shape)

    def split(self, split_size_or_sections, dim=0):
        return movement.split(self, split_size_or_sections, dim)

    def chunk(self, chunks, dim=0):
        return movement.chunk(self, chunks, dim)

    def __getitem__(self, key):
        return indexing.getitem(self, key)

    def __setitem__(self, key, value):
        indexing.setitem(self, key, value)

    def matmul(self, other):
        return matmul.matmul(self, other)

    def mm(self, other):
        return matmul.mm(self, other)

    def bmm(self, other):
        return matmul.bmm(self, other)


def _shape_arguments(arguments):
    """`f(2, 3)` and `f((2, 3))` both mean the shape (2, 3)."""
    if len(arguments) == 1 and not isinstance(arguments[0], numbers.Integral):
        return tuple(int(size) for size in arguments[0])
    return tuple(int(size) for size in arguments)


def _wrap_dim(dim, ndim, op):
    """A dimension index in [0, ndim), from one in [-ndim, ndim); an IndexError naming the op otherwise."""
    bound = max(ndim, 1)
    if not -bound <= dim < bound:
        raise IndexError(f"{op}: dimension {dim} is out of range for a tensor of {ndim} dimensions "
                         f"(expected in [{-bound}, {bound - 1}])")
    return dim % bound


# The ops import Tensor from this module, so they come after it.
from nbprop import autograd  # noqa: E402
from nbprop.ops import broadcast, elementwise, indexing, inplace, matmul, movement, reduce, softmax  # noqa: E402
