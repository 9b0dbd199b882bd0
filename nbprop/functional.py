"""The `nbprop.<op>(tensor, ...)` forms of the Tensor methods, with PyTorch's signatures."""

from nbprop.ops import elementwise, movement, reduce
from nbprop.ops import matmul as _matmul
from nbprop.ops import softmax as _softmax
from nbprop.tensor import Tensor

# Unary and binary math: the ops' own functions take PyTorch's arguments.
add = Tensor.add
sub = subtract = Tensor.sub
mul = multiply = Tensor.mul
div = divide = Tensor.div
pow = elementwise.pow  # noqa: A001 - PyTorch's name
neg = negative = elementwise.neg
abs = elementwise.abs  # noqa: A001
exp = elementwise.exp
log = elementwise.log
sqrt = elementwise.sqrt
rsqrt = elementwise.rsqrt
sin = elementwise.sin
cos = elementwise.cos
tanh = elementwise.tanh
sigmoid = elementwise.sigmoid
relu = elementwise.relu
clamp = clip = elementwise.clamp
maximum = elementwise.maximum
minimum = elementwise.minimum
where = elementwise.where
eq = Tensor.eq
ne = Tensor.ne
lt = Tensor.lt
le = Tensor.le
gt = Tensor.gt
ge = Tensor.ge
logical_not = elementwise.logical_not

# Reductions.
sum = Tensor.sum  # noqa: A001
mean = Tensor.mean
prod = Tensor.prod
max = Tensor.max  # noqa: A001
min = Tensor.min  # noqa: A001
amax = Tensor.amax
amin = Tensor.amin
var = Tensor.var
std = Tensor.std
argmax = Tensor.argmax
argmin = Tensor.argmin
logsumexp = Tensor.logsumexp
softmax = Tensor.softmax
log_softmax = Tensor.log_softmax

# Movement.
reshape = Tensor.reshape
flatten = Tensor.flatten
transpose = Tensor.transpose
permute = Tensor.permute
squeeze = Tensor.squeeze
unsqueeze = Tensor.unsqueeze
split = Tensor.split
chunk = Tensor.chunk
matmul = Tensor.matmul
mm = Tensor.mm
bmm = Tensor.bmm
clone = Tensor.clone
detach = Tensor.detach


def cat(tensors, dim=0):
    """Join tensors along an existing dimension."""
    return movement.cat(tensors, dim)


concat = concatenate = cat


def stack(tensors, dim=0):
    """Join tensors along a new dimension."""
    return movement.stack(tensors, dim)


def broadcast_to(input, size):  # noqa: A002 - PyTorch's argument name
    return input.expand(size)


def numel(input):  # noqa: A002
    return input.numel()


del elementwise, _matmul, reduce, _softmax
