"""The operators and op methods of Tensor (arithmetic, math, in place, reductions, movement), each a call
into its op family in nbprop/ops."""

import numbers

from nbprop import ops


class TensorOperators:
    """Mixed into Tensor: every method here delegates to the op family that computes it."""

    __slots__ = ()

    # ---------------------------------------------------------------------------------- arithmetic
    # __add__, __sub__, __mul__ and __truediv__ are the ops themselves (installed by ops/elementwise.py).

    def __radd__(self, other):
        return ops.elementwise.add(other, self)

    def __rsub__(self, other):
        return ops.elementwise.sub(other, self)

    def __rmul__(self, other):
        return ops.elementwise.mul(other, self)

    def __rtruediv__(self, other):
        return ops.elementwise.div(other, self)

    def __pow__(self, exponent):
        return ops.elementwise.pow(self, exponent)

    def __rpow__(self, base):
        return ops.elementwise.pow(base, self)

    def __neg__(self):
        return ops.unary.neg(self)

    def __pos__(self):
        return self

    def __abs__(self):
        return ops.unary.abs(self)

    def __floordiv__(self, other):
        return ops.binary_math.floor_divide(self, other)

    def __rfloordiv__(self, other):
        return ops.binary_math.floor_divide(other, self)

    def __mod__(self, other):
        return ops.binary_math.remainder(self, other)

    def __rmod__(self, other):
        return ops.binary_math.remainder(other, self)

    def __matmul__(self, other):
        return ops.matmul.matmul(self, other)

    def __rmatmul__(self, other):
        return ops.matmul.matmul(other, self)

    def __eq__(self, other):
        return ops.elementwise.compare("equal", self, other)

    def __ne__(self, other):
        return ops.elementwise.compare("not_equal", self, other)

    def __lt__(self, other):
        return ops.elementwise.compare("less", self, other)

    def __le__(self, other):
        return ops.elementwise.compare("less_equal", self, other)

    def __gt__(self, other):
        return ops.elementwise.compare("greater", self, other)

    def __ge__(self, other):
        return ops.elementwise.compare("greater_equal", self, other)

    def __invert__(self):
        return ops.elementwise.logical_not(self)

    def __and__(self, other):
        return ops.elementwise.logical("and", self, other)

    def __or__(self, other):
        return ops.elementwise.logical("or", self, other)

    def __xor__(self, other):
        return ops.elementwise.logical("xor", self, other)

    def __iadd__(self, other):
        return self.add_(other)

    def __isub__(self, other):
        return self.sub_(other)

    def __imul__(self, other):
        return self.mul_(other)

    def __itruediv__(self, other):
        return self.div_(other)

    def __ifloordiv__(self, other):
        return ops.inplace.in_place(self, self.floor_divide(other), "floor_divide_")

    def __imod__(self, other):
        return ops.inplace.in_place(self, self.remainder(other), "remainder_")

    def add(self, other, alpha=1):
        return ops.elementwise.add(self, other if alpha == 1 else ops.elementwise.mul(other, alpha))

    def sub(self, other, alpha=1):
        return ops.elementwise.sub(self, other if alpha == 1 else ops.elementwise.mul(other, alpha))

    def mul(self, other):
        return ops.elementwise.mul(self, other)

    def div(self, other):
        return ops.elementwise.div(self, other)

    def pow(self, exponent):
        return ops.elementwise.pow(self, exponent)

    # neg, abs, exp, log, sqrt, tanh, sigmoid, relu, floor, ... and their in-place forms come from the table of
    # unary ops, ops/unary.py's UNARY (which installs them).

    def atan2(self, other):
        return ops.binary_math.atan2(self, other)

    def hypot(self, other):
        return ops.binary_math.hypot(self, other)

    def floor_divide(self, other):
        return ops.binary_math.floor_divide(self, other)

    def remainder(self, other):
        return ops.binary_math.remainder(self, other)

    def clamp(self, min=None, max=None):  # noqa: A002 - PyTorch's argument names
        return ops.elementwise.clamp(self, min, max)

    clip = clamp

    def maximum(self, other):
        return ops.elementwise.maximum(self, other)

    def minimum(self, other):
        return ops.elementwise.minimum(self, other)

    def where(self, condition, other):
        return ops.elementwise.where(condition, self, other)

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
        return ops.inplace.in_place(self, self.add(other, alpha), "add_")

    def sub_(self, other, alpha=1):
        return ops.inplace.in_place(self, self.sub(other, alpha), "sub_")

    def mul_(self, other):
        return ops.inplace.in_place(self, self.mul(other), "mul_")

    def div_(self, other):
        return ops.inplace.in_place(self, self.div(other), "div_")

    def clamp_(self, min=None, max=None):  # noqa: A002 - PyTorch's argument names
        return ops.inplace.in_place(self, self.clamp(min, max), "clamp_")

    def copy_(self, source):
        return ops.inplace.in_place(self, ops.inplace.copy_source(self, source), "copy_")

    def fill_(self, value):
        return ops.inplace.in_place(self, ops.inplace.copy_source(self, value), "fill_")

    def zero_(self):
        return self.fill_(0)

    # --------------------------------------------------------------------------------- reductions

    def sum(self, dim=None, keepdim=False, dtype=None):
        return ops.reduce.sum(self, dim, keepdim, dtype)

    def mean(self, dim=None, keepdim=False, dtype=None):
        return ops.reduce.mean(self, dim, keepdim, dtype)

    def prod(self, dim=None, keepdim=False, dtype=None):
        return ops.reduce.prod(self, dim, keepdim, dtype)

    def max(self, dim=None, keepdim=False):
        if isinstance(dim, TensorOperators):
            return ops.elementwise.maximum(self, dim)
        return ops.extrema.max(self, dim, keepdim)

    def min(self, dim=None, keepdim=False):
        if isinstance(dim, TensorOperators):
            return ops.elementwise.minimum(self, dim)
        return ops.extrema.min(self, dim, keepdim)

    def amax(self, dim=(), keepdim=False):
        return ops.extrema.amax(self, dim, keepdim)

    def amin(self, dim=(), keepdim=False):
        return ops.extrema.amin(self, dim, keepdim)

    def var(self, dim=None, unbiased=None, keepdim=False, *, correction=None):
        return ops.reduce.var(self, dim, unbiased, keepdim, correction)

    def std(self, dim=None, unbiased=None, keepdim=False, *, correction=None):
        return ops.reduce.std(self, dim, unbiased, keepdim, correction)

    def argmax(self, dim=None, keepdim=False):
        return ops.extrema.argmax(self, dim, keepdim)

    def argmin(self, dim=None, keepdim=False):
        return ops.extrema.argmin(self, dim, keepdim)

    def logsumexp(self, dim, keepdim=False):
        return ops.softmax.logsumexp(self, dim, keepdim)

    def softmax(self, dim):
        return ops.softmax.softmax(self, dim)

    def log_softmax(self, dim):
        return ops.softmax.log_softmax(self, dim)

    # ----------------------------------------------------------------------------------- movement

    def reshape(self, *shape):
        return ops.movement.reshape(self, shape_arguments(shape))

    def view(self, *shape):
        return ops.movement.view(self, shape_arguments(shape))

    def view_as(self, other):
        return ops.movement.view(self, other.shape)

    def reshape_as(self, other):
        return ops.movement.reshape(self, other.shape)

    def flatten(self, start_dim=0, end_dim=-1):
        return ops.movement.flatten(self, start_dim, end_dim)

    def transpose(self, dim0, dim1):
        return ops.movement.transpose(self, dim0, dim1)

    def t(self):
        if self.ndim > 2:
            raise RuntimeError(f"t(): expects a tensor of at most 2 dimensions, got shape {tuple(self.shape)}")
        return ops.movement.transpose(self, 0, -1) if self.ndim == 2 else self

    def permute(self, *dims):
        return ops.movement.permute(self, shape_arguments(dims))

    def squeeze(self, dim=None):
        return ops.movement.squeeze(self, dim)

    def unsqueeze(self, dim):
        return ops.movement.unsqueeze(self, dim)

    def expand(self, *sizes):
        return ops.broadcast.expand(self, shape_arguments(sizes))

    def expand_as(self, other):
        return ops.broadcast.expand(self, other.shape)

    def split(self, split_size_or_sections, dim=0):
        return ops.movement.split(self, split_size_or_sections, dim)

    def chunk(self, chunks, dim=0):
        return ops.movement.chunk(self, chunks, dim)

    def __getitem__(self, key):
        return ops.indexing.getitem(self, key)

    def __setitem__(self, key, value):
        ops.indexing.setitem(self, key, value)

    def matmul(self, other):
        return ops.matmul.matmul(self, other)

    def mm(self, other):
        return ops.matmul.mm(self, other)

    def bmm(self, other):
        return ops.matmul.bmm(self, other)

    # ------------------------------------------- gather, scatter, sort, scan, logical reductions (ops.gather, ...)

    def all(self, dim=None, keepdim=False):
        return ops.logical.all(self, dim, keepdim)

    def any(self, dim=None, keepdim=False):
        return ops.logical.any(self, dim, keepdim)

    def gather(self, dim, index, *, sparse_grad=False):
        return ops.gather.gather(self, dim, index, sparse_grad=sparse_grad)

    def scatter(self, dim, index, src=None, value=None, *, reduce=None):
        return ops.gather.scatter(self, dim, index, src, value, reduce=reduce)

    def scatter_(self, dim, index, src=None, value=None, *, reduce=None):
        return ops.gather.scatter_(self, dim, index, src, value, reduce=reduce)

    def scatter_add(self, dim, index, src):
        return ops.gather.scatter_add(self, dim, index, src)

    def scatter_add_(self, dim, index, src):
        return ops.gather.scatter_add_(self, dim, index, src)

    def index_select(self, dim, index):
        return ops.gather.index_select(self, dim, index)

    def masked_fill(self, mask, value):
        return ops.gather.masked_fill(self, mask, value)

    def masked_fill_(self, mask, value):
        return ops.gather.masked_fill_(self, mask, value)

    def sort(self, dim=-1, descending=False, stable=False):
        return ops.sort.sort(self, dim, descending, stable)

    def argsort(self, dim=-1, descending=False, stable=False):
        return ops.sort.argsort(self, dim, descending, stable)

    def topk(self, k, dim=-1, largest=True, sorted=True):  # noqa: A002 - PyTorch's argument name
        return ops.sort.topk(self, k, dim, largest, sorted)

    def cumprod(self, dim, dtype=None):
        return ops.scan.cumprod(self, dim, dtype)

    def cumsum(self, dim, dtype=None):
        return ops.scan.cumsum(self, dim, dtype)


def shape_arguments(arguments):
    """`f(2, 3)` and `f((2, 3))` both mean the shape (2, 3)."""
    if len(arguments) == 1 and not isinstance(arguments[0], numbers.Integral):
        return tuple(int(size) for size in arguments[0])
    return tuple(int(size) for size in arguments)
