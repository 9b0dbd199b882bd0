"""nbprop: a Numba-compiled scalar and tensor autodiff engine with PyTorch's names and semantics."""

import sys  # noqa: I001 - not sorted: Tensor comes first, the modules it needs import it back

from nbprop.tensor import Tensor
# The op families next: Tensor's methods reach them as ops.<family>, and the tables install their methods.
from nbprop.ops import (
    binary_math, broadcast, elementwise, extrema, gather, indexing, inplace, logical, matmul, movement, reduce, scan,
    softmax, sort, unary,
)
from nbprop import autograd, nn, optim, scalar
from nbprop.autograd import (
    Function, enable_grad, is_anomaly_check_nan_enabled, is_anomaly_enabled, is_grad_enabled, no_grad,
    set_grad_enabled,
)
from nbprop.creation import (
    arange, as_tensor, empty, empty_like, eye, from_numpy, full, full_like, linspace, ones, ones_like, rand,
    rand_like, randint, randn, randn_like, tensor, zeros, zeros_like,
)
from nbprop.dtypes import (
    bool_ as bool, double, float32, float64, get_default_dtype, int64, long, set_default_dtype,  # noqa: A004
)
from nbprop.dtypes import float32 as float  # noqa: A004 - PyTorch's alias
from nbprop.functional import *  # noqa: F403 - the torch.<op> function forms
from nbprop.gradcheck import GradcheckError, gradcheck
from nbprop.io import load, save
from nbprop.random import initial_seed, manual_seed
from nbprop.scalar import Value
from nbprop.warmup import warmup

# The scalar engine lives in nbprop/scalar/; `nbprop.value` stays its public name (`nbprop.value.compile`,
# `from nbprop.value import Tape`): the same module under a second name, as `os.path` is `posixpath`.
value = sys.modules["nbprop.value"] = scalar

__version__ = "0.1.0"
