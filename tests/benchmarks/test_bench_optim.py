"""One Adam step, nbprop beside torch.optim.Adam (default, foreach=True, fused=True) on the same parameters.

Run: .venv/bin/python -m pytest tests/benchmarks/test_bench_optim.py --benchmark-enable --benchmark-only
Groups: a 10-million-parameter MLP (float32, 784-2560-2560-784 plus biases: 10.05M) and a 100-tensor model
of small tensors (100 tensors of 64 x 64). Gradients are made once, by a backward pass as in training (which
writes them into the optimizer's flat gradient buffer); each round is one `step()`: one fused kernel call.
Beside it, nbprop with gradients assigned to `.grad` (each step copies them into the flat buffer first).
Also an SGD (momentum 0.9) step over the MLP 784-512-512-10. Compare the medians within a group.
"""

import numpy as np
import pytest

import nbprop
from nbprop.nn.parameter import Parameter
from nbprop.optim.adam import Adam

WORKLOADS = {
    "mlp_10m": [(2560, 784), (2560,), (2560, 2560), (2560,), (784, 2560), (784,)],
    "small_100": [(64, 64)] * 100,
}
GROUPS = {
    "mlp_10m": "Adam step, 10M-parameter MLP (6 tensors), float32",
    "small_100": "Adam step, 100 tensors of 64x64, float32",
}



def _arrays(shapes):
    generator = np.random.default_rng(0)
    return [generator.standard_normal(shape).astype(np.float32) for shape in shapes]


def _nbprop_params(arrays, optimizer_class, gradients_by, **options):
    """Parameters of `arrays` with gradients 1e-3 * arrays, from a backward pass or assigned, and their optimizer."""
    params = [Parameter(nbprop.tensor(array)) for array in arrays]
    optimizer = optimizer_class(params, **options)
    for parameter, array in zip(params, arrays):
        if gradients_by == "backward":
            (parameter * nbprop.tensor(array * 1e-3)).sum().backward()
        else:
            parameter.grad = nbprop.tensor(array * 1e-3)
    optimizer.step()  # compiles and allocates state outside the timing
    return optimizer


def _torch_adam_step(benchmark, torch, workload, options):
    benchmark.group = GROUPS[workload]
    arrays = _arrays(WORKLOADS[workload])
    params = [torch.tensor(array, requires_grad=True) for array in arrays]
    for parameter, array in zip(params, arrays):
        parameter.grad = torch.tensor(array * 1e-3)
    optimizer = torch.optim.Adam(params, lr=1e-4, **options)
    optimizer.step()
    benchmark(optimizer.step)


def _torch_sgd_step(benchmark, torch, options):
    benchmark.group = SGD_GROUP
    arrays = _arrays(SGD_SHAPES)
    params = [torch.tensor(array, requires_grad=True) for array in arrays]
    for parameter, array in zip(params, arrays):
        parameter.grad = torch.tensor(array * 1e-3)
    optimizer = torch.optim.SGD(params, lr=1e-3, momentum=0.9, **options)
    optimizer.step()
    benchmark(optimizer.step)


# Paired in the report: nbprop against PyTorch's fastest CPU path (fused); default and foreach beside.
@pytest.mark.parametrize("workload", sorted(WORKLOADS))
def test_adam_step_nbprop(benchmark, workload):
    benchmark.group = GROUPS[workload]
    optimizer = _nbprop_params(_arrays(WORKLOADS[workload]), Adam, "backward", lr=1e-4)
    benchmark(optimizer.step)


@pytest.mark.parametrize("workload", sorted(WORKLOADS))
def test_adam_step_assigned_grads(benchmark, workload):
    benchmark.group = GROUPS[workload]
    benchmark.extra_info["implementation"] = "nbprop, assigned .grad"
    optimizer = _nbprop_params(_arrays(WORKLOADS[workload]), Adam, "assigned", lr=1e-4)
    benchmark(optimizer.step)


@pytest.mark.torch
@pytest.mark.parametrize("workload", sorted(WORKLOADS))
def test_adam_step_torch(benchmark, torch, workload):
    _torch_adam_step(benchmark, torch, workload, {"fused": True})


@pytest.mark.torch
@pytest.mark.parametrize("variant", ["default", "foreach"])
@pytest.mark.parametrize("workload", sorted(WORKLOADS))
def test_adam_step_torch_unfused(benchmark, torch, workload, variant):
    _torch_adam_step(benchmark, torch, workload, {"default": {}, "foreach": {"foreach": True}}[variant])


SGD_SHAPES = [(512, 784), (512,), (512, 512), (512,), (10, 512), (10,)]
SGD_GROUP = "SGD step (momentum 0.9), MLP 784-512-512-10, float32"


def test_sgd_step_nbprop(benchmark):
    from nbprop.optim.sgd import SGD

    benchmark.group = SGD_GROUP
    optimizer = _nbprop_params(_arrays(SGD_SHAPES), SGD, "backward", lr=1e-3, momentum=0.9)
    benchmark(optimizer.step)


@pytest.mark.torch
def test_sgd_step_torch(benchmark, torch):
    _torch_sgd_step(benchmark, torch, {"fused": True})


@pytest.mark.torch
@pytest.mark.parametrize("variant", ["default", "foreach"])
def test_sgd_step_torch_unfused(benchmark, torch, variant):
    _torch_sgd_step(benchmark, torch, {"default": {}, "foreach": {"foreach": True}}[variant])
