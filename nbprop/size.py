"""Size: a tensor's shape as PyTorch's torch.Size, a tuple of ints that prints as `nbprop.Size([2, 3])`."""

import math
import operator

_tuple_new = tuple.__new__
_tuple_getitem = tuple.__getitem__
_tuple_add = tuple.__add__
_tuple_multiply = tuple.__mul__


class Size(tuple):
    """The sizes of a tensor's dimensions (`tensor.shape`, `tensor.size()`): a tuple, so it compares equal to
    and works wherever a tuple of ints does; its slices, sums and repeats are Sizes again, as PyTorch's are."""

    __slots__ = ()

    def __new__(cls, sizes=()):
        sizes = tuple(sizes)
        for position, size in enumerate(sizes):
            if size.__class__ is not int:
                try:
                    size = operator.index(size)
                except TypeError:
                    raise TypeError(f"nbprop.Size() takes an iterable of 'int' (item {position} is "
                                    f"'{type(sizes[position]).__name__}')") from None
                sizes = sizes[:position] + (size,) + sizes[position + 1:]
        return _tuple_new(cls, sizes)

    def numel(self):
        """The number of elements of a tensor of this shape (1 for the shape of a 0-d tensor)."""
        return math.prod(self)

    def __getitem__(self, key):
        item = _tuple_getitem(self, key)
        return _tuple_new(Size, item) if key.__class__ is slice else item

    def __add__(self, other):
        return _tuple_new(Size, _tuple_add(self, other))

    def __radd__(self, other):
        if not isinstance(other, tuple):
            return NotImplemented
        return _tuple_new(Size, _tuple_add(other, self))

    def __mul__(self, count):
        return _tuple_new(Size, _tuple_multiply(self, count))

    __rmul__ = __mul__

    def __repr__(self):
        return f"nbprop.Size({list(self)})"

    __str__ = __repr__

