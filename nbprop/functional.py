"""The `nbprop.<op>(tensor, ...)` forms of the Tensor methods, with PyTorch's signatures."""

from nbprop.ops import binary_math as _binary_math
from nbprop.ops import elementwise as _elementwise
from nbprop.ops import movement as _movement
from nbprop.ops import unary as _unary
from nbprop.tensor import Tensor as _Tensor

# Unary and binary math: the ops' own functions take PyTorch's arguments.
add = _Tensor.add
sub = subtract = _Tensor.sub
mul = multiply = _Tensor.mul
div = divide = _Tensor.div
pow = _elementwise.pow  # noqa: A001 - PyTorch's name
# The unary ops of ops/unary.py's table under their names (exp, log, tanh, floor, sign, ...).
globals().update({name: function for name, function in _unary.UNARY.items() if name != "logsigmoid"})
negative = _unary.neg
atan2 = arctan2 = _binary_math.atan2
hypot = _binary_math.hypot
floor_divide = _binary_math.floor_divide
remainder = _binary_math.remainder
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


# Gather and scatter, sorting, running sums, logical reductions (their op modules load here, before any
# Tensor method reaches them as ops.gather, ops.sort, ops.scan, ops.logical).
from nbprop.ops import einsum as _einsum  # noqa: E402
from nbprop.ops import gather as _gather  # noqa: E402
from nbprop.ops import logical as _logical  # noqa: E402
from nbprop.ops import sampling as _sampling  # noqa: E402
from nbprop.ops import scan as _scan  # noqa: E402
from nbprop.ops import sort as _sort  # noqa: E402

all = _logical.all  # noqa: A001 - PyTorch's name
any = _logical.any  # noqa: A001
bernoulli = _sampling.bernoulli
einsum = _einsum.einsum
gather = _gather.gather
scatter = _gather.scatter
scatter_add = _gather.scatter_add
index_select = _gather.index_select
masked_fill = _gather.masked_fill
multinomial = _sampling.multinomial
sort = _sort.sort
argsort = _sort.argsort
topk = _sort.topk
cumprod = _scan.cumprod
cumsum = _scan.cumsum
