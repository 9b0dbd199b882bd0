"""Test helpers: tolerances by dtype, PyTorch conversion, hypothesis strategies for shapes and values."""

import os
import subprocess
import sys

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import nbprop

# Forward results against NumPy/PyTorch: float64 to 1e-12 relative, float32 to 1e-5.
TOLERANCES = {np.dtype(np.float64): dict(rtol=1e-12, atol=1e-12), np.dtype(np.float32): dict(rtol=1e-5, atol=1e-6)}


def assert_close(actual, expected, dtype=None, rtol=None, atol=None):
    """Compare a Tensor/array with an expected array within the dtype's tolerance (NaN equals NaN)."""
    actual = actual.detach().numpy() if isinstance(actual, nbprop.Tensor) else np.asarray(actual)
    expected = expected.detach().numpy() if hasattr(expected, "detach") else np.asarray(expected)
    tolerance = dict(TOLERANCES.get(np.dtype(dtype or actual.dtype), dict(rtol=0, atol=0)))
    if rtol is not None:
        tolerance["rtol"] = rtol
    if atol is not None:
        tolerance["atol"] = atol
    assert actual.shape == expected.shape, f"shape {actual.shape} != expected {expected.shape}"
    np.testing.assert_allclose(actual, expected, equal_nan=True, **tolerance)


def to_torch(tensor, requires_grad=None):
    """A PyTorch leaf tensor with the same values (and requires_grad) as an nbprop tensor."""
    import torch

    array = np.array(tensor.detach().numpy())
    result = torch.from_numpy(array)
    wanted = tensor.requires_grad if requires_grad is None else requires_grad
    return result.requires_grad_(wanted) if wanted else result


def leaf(array, dtype=np.float64, requires_grad=True):
    """A fresh nbprop leaf tensor holding a copy of `array`."""
    return nbprop.tensor(np.array(array, dtype=dtype), requires_grad=requires_grad)


# Shapes with size-1 and empty dimensions; pairs that broadcast against each other.
shapes = hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=4)
nonempty_shapes = hnp.array_shapes(min_dims=0, max_dims=4, min_side=1, max_side=4)
broadcast_pairs = hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=4, min_side=0, max_side=4)


def arrays(shape, dtype=np.float64, low=-3.0, high=3.0):
    """Finite float arrays of `shape` with values in [low, high]."""
    return hnp.arrays(dtype, shape, elements=st.floats(low, high, allow_nan=False, width=np.dtype(dtype).itemsize * 8))


# Optimizer trajectories: the same gradient sequence fed to nbprop's optimizers and to torch.optim's.
OPTIM_TOLERANCE = {np.float64: 1e-10, np.float32: 1e-5}


def optim_problem(dtype, shapes, steps=100, seed=0):
    """Initial parameter values of `shapes` and `steps` lists of gradients, standard normal, in `dtype`."""
    rng = np.random.default_rng(seed)
    initial = [rng.standard_normal(shape).astype(dtype) for shape in shapes]
    gradients = [[rng.standard_normal(shape).astype(dtype) for shape in shapes] for _ in range(steps)]
    return initial, gradients


def set_grads(params, gradients, missing=()):
    """Set each parameter's gradient (nbprop or torch) from arrays; those at indices `missing` get None."""
    for index, (parameter, gradient) in enumerate(zip(params, gradients)):
        if index in missing:
            parameter.grad = None
        elif isinstance(parameter, nbprop.Tensor):
            parameter.grad = nbprop.tensor(gradient.copy())
        else:
            import torch

            parameter.grad = torch.tensor(gradient.copy())


def step_together(runs, gradients):
    """Step every (optimizer, params) of `runs` on the same gradients, one list of arrays per step."""
    for step_gradients in gradients:
        for _, params in runs:
            set_grads(params, step_gradients)
        for optimizer, _ in runs:
            optimizer.step()


def assert_same_params(ours, theirs, dtype):
    """nbprop parameters equal torch's (or another run's) within OPTIM_TOLERANCE[dtype]."""
    tolerance = OPTIM_TOLERANCE[dtype]
    for parameter, tensor in zip(ours, theirs):
        np.testing.assert_allclose(parameter.detach().numpy(), tensor.detach().numpy(), rtol=tolerance,
                                   atol=tolerance)


def fresh_and_cached_results(tmp_path, probe_source):
    """Run a probe script twice against one empty Numba cache, so that its kernels are compiled the first time
    and loaded from the cache the second: the two arrays it saves (to the path in its sys.argv[1])."""
    (tmp_path / "cache_probe.py").write_text(probe_source)
    environment = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "cache"))
    for run in ("fresh", "cached"):
        subprocess.run([sys.executable, "cache_probe.py", f"{run}.npy"], cwd=tmp_path, env=environment, check=True)
    return np.load(tmp_path / "fresh.npy"), np.load(tmp_path / "cached.npy")
