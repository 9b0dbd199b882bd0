"""nbprop: a Numba-compiled scalar and tensor autodiff engine with PyTorch's names and semantics."""

import importlib  # noqa: I001 - not sorted: Tensor comes first, the modules it needs import it back
import sys

from nbprop.tensor import Tensor
# The op families next: Tensor's methods reach them as ops.<family>, and the tables install their methods.
from nbprop.ops import (
    binary_math, broadcast, elementwise, extrema, gather, indexing, inplace, logical, matmul, movement, reduce, scan,
    softmax, sort, unary,
)
from nbprop import autograd, nn, optim, scalar
from nbprop import data  # torch.utils.data's names: nbprop.data.DataLoader, ...
from nbprop import distributed  # data-parallel training over MPI; mpi4py is imported by distributed.init() only
from nbprop import plot, train  # fit and the main job (~10 ms); plot imports matplotlib only when it draws
from nbprop.autograd import (
    Function, enable_grad, is_anomaly_check_nan_enabled, is_anomaly_enabled, is_grad_enabled, no_grad,
    set_grad_enabled,
)
from nbprop.capture.compiled import CaptureError, compile  # noqa: A004 - torch.compile's name
from nbprop.creation import (
    arange, as_tensor, empty, empty_like, eye, from_numpy, full, full_like, linspace, ones, ones_like, rand,
    rand_like, randint, randn, randn_like, randperm, tensor, zeros, zeros_like,
)
from nbprop.dtypes import (
    bfloat16, bool_ as bool, double, float16, float32, float64, get_default_dtype, half, int64, long,  # noqa: A004
    set_default_dtype,
)
from nbprop.dtypes import float32 as float  # noqa: A004 - PyTorch's alias
from nbprop.functional import *  # noqa: F403 - the torch.<op> function forms
from nbprop.grad_mode import inference_mode, is_inference_mode_enabled
from nbprop.gradcheck import GradcheckError, gradcheck, gradgradcheck
from nbprop.io import load, save
from nbprop.random import (
    Generator, default_generator, get_rng_state, initial_seed, manual_seed, seed, set_rng_state,
)
from nbprop.scalar import Value
from nbprop.size import Size
from nbprop.tensor_repr import get_printoptions, set_printoptions
from nbprop.warmup import warmup

importlib.import_module("nbprop.autograd.functional")  # nbprop.autograd.functional: loaded with nbprop, as in torch

# The scalar engine lives in nbprop/scalar/; `nbprop.value` stays its public name (`nbprop.value.compile`,
# `from nbprop.value import Tape`): the same module under a second name, as `os.path` is `posixpath`.
value = sys.modules["nbprop.value"] = scalar

__version__ = "0.1.0"  # the one version number: pyproject.toml reads it from here
