"""The `nbprop.<op>(tensor, ...)` forms of the Tensor methods, with PyTorch's signatures."""

from nbprop.ops import elementwise as _elementwise
from nbprop.ops import movement as _movement
from nbprop.tensor import Tensor as _Tensor

# Unary and binary math: the ops' own functions take PyTorch's arguments.
add = _Tensor.add
sub = subtract = _Tensor.sub
mul = multiply = _Tensor.mul
div = divide = _Tensor.div
pow = _elementwise.pow  # noqa: A001 - PyTorch's name
neg = negative = _elementwise.neg
abs = _elementwise.abs  # noqa: A001
exp = _elementwise.exp
log = _elementwise.log
sqrt = _elementwise.sqrt
rsqrt = _elementwise.rsqrt
sin = _elementwise.sin
cos = _elementwise.cos
tanh = _elementwise.tanh
sigmoid = _elementwise.sigmoid
relu = _elementwise.relu
clamp = clip = _elementwise.clamp
maximum = _elementwise.maximum
minimum = _elementwise.minimum
where = _elementwise.where
eq = _Tensor.eq
ne = _Tensor.ne
lt = _Tensor.lt
le = _Tensor.le
gt = _Tensor.gt
ge = _Tensor.ge
logical_not = _elementwise.logical_not

# Reductions.
sum = _Tensor.sum  # noqa: A001
mean = _Tensor.mean
prod = _Tensor.prod
max = _Tensor.max  # noqa: A001
min = _Tensor.min  # noqa: A001
amax = _Tensor.amax
amin = _Tensor.amin
var = _Tensor.var
std = _Tensor.std
argmax = _Tensor.argmax
argmin = _Tensor.argmin
logsumexp = _Tensor.logsumexp
softmax = _Tensor.softmax
log_softmax = _Tensor.log_softmax

# Movement.
reshape = _Tensor.reshape
flatten = _Tensor.flatten
transpose = _Tensor.transpose
permute = _Tensor.permute
squeeze = _Tensor.squeeze
unsqueeze = _Tensor.unsqueeze
split = _Tensor.split
chunk = _Tensor.chunk
matmul = _Tensor.matmul
mm = _Tensor.mm
bmm = _Tensor.bmm
clone = _Tensor.clone
detach = _Tensor.detach


def cat(tensors, dim=0):
    """Join tensors along an existing dimension."""
    return _movement.cat(tensors, dim)


concat = concatenate = cat


def stack(tensors, dim=0):
    """Join tensors along a new dimension."""
    return _movement.stack(tensors, dim)


def broadcast_to(input, size):  # noqa: A002 - PyTorch's argument name
    return input.expand(size)


def numel(input):  # noqa: A002
    return input.numel()

