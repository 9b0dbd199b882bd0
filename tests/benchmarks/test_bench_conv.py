"""conv2d forward + backward and a small CNN's train step, nbprop beside PyTorch on the same float32 workloads.

Run: .venv/bin/python -m pytest tests/benchmarks/test_bench_conv.py --benchmark-enable --benchmark-only
Groups: 3->16 3x3 pad 1 on (64, 3, 32, 32); 64->64 3x3 pad 1 on (8, 64, 56, 56); 1x1 256->64 on
(16, 256, 28, 28). Each step is the convolution with bias, then backward of a fixed grad_output into the input,
weight and bias. Then issue 12's CNN train step (conv 1->16 3x3 pad 1, ReLU, max pool 2, conv 16->32 3x3 pad 1,
ReLU, max pool 2, flatten, linear 1568->10, cross-entropy, SGD; batch 64 of 1x28x28) in nbprop and PyTorch,
beside its GEMM floor: the step's im2col products alone, by NumPy's BLAS. Compare the medians within a group
(not asserted: timings on a shared machine are too noisy for a test).
"""

import numpy as np
import pytest

import nbprop
from nbprop.nn import functional
from nbprop.optim import SGD

# name: (input shape, weight shape, padding)
WORKLOADS = {
    "small": ((64, 3, 32, 32), (16, 3, 3, 3), 1),
    "wide": ((8, 64, 56, 56), (64, 64, 3, 3), 1),
    "pointwise": ((16, 256, 28, 28), (64, 256, 1, 1), 0),
}
GROUPS = {
    name: f"conv2d {weight[1]}->{weight[0]} {weight[2]}x{weight[3]} pad {padding} on {shape} float32, "
          "forward + backward"
    for name, (shape, weight, padding) in WORKLOADS.items()
}


def _flops(name):
    """Forward, input gradient and weight gradient: three products of 2 * output elements * K flops each."""
    shape, weight, padding = WORKLOADS[name]
    height = shape[2] + 2 * padding - weight[2] + 1
    width = shape[3] + 2 * padding - weight[3] + 1
    return 3 * 2 * shape[0] * weight[0] * height * width * weight[1] * weight[2] * weight[3]


def _arrays(name):
    shape, weight, padding = WORKLOADS[name]
    generator = np.random.default_rng(0)
    values = generator.standard_normal(shape).astype(np.float32)
    weights = (generator.standard_normal(weight) * 0.1).astype(np.float32)
    bias = generator.standard_normal(weight[0]).astype(np.float32)
    height = shape[2] + 2 * padding - weight[2] + 1
    grad_output = generator.standard_normal((shape[0], weight[0], height, height)).astype(np.float32)
    return values, weights, bias, grad_output, padding


def _step(conv2d, x, weight, bias, grad_output, padding):
    x.grad = weight.grad = bias.grad = None
    conv2d(x, weight, bias, padding=padding).backward(grad_output)
    return x.grad


def _bench(benchmark, name):
    values, weights, bias, grad_output, padding = _arrays(name)
    tensors = [nbprop.tensor(array, requires_grad=True) for array in (values, weights, bias)]
    arguments = (functional.conv2d, *tensors, nbprop.tensor(grad_output), padding)
    _step(*arguments)  # compile outside the timing
    benchmark.extra_info["flops"] = _flops(name)
    result = benchmark(_step, *arguments)
    assert result.shape == values.shape and np.isfinite(result.numpy()).all()


def _bench_torch(benchmark, torch, name):
    values, weights, bias, grad_output, padding = _arrays(name)
    tensors = [torch.from_numpy(array).requires_grad_(True) for array in (values, weights, bias)]
    result = benchmark(_step, torch.nn.functional.conv2d, *tensors, torch.from_numpy(grad_output), padding)
    assert tuple(result.shape) == values.shape


@pytest.mark.benchmark(group=GROUPS["small"])
def test_conv_small_nbprop(benchmark):
    _bench(benchmark, "small")


@pytest.mark.torch
@pytest.mark.benchmark(group=GROUPS["small"])
def test_conv_small_torch(benchmark, torch):
    _bench_torch(benchmark, torch, "small")


@pytest.mark.benchmark(group=GROUPS["wide"])
def test_conv_wide_nbprop(benchmark):
    _bench(benchmark, "wide")


@pytest.mark.torch
@pytest.mark.benchmark(group=GROUPS["wide"])
def test_conv_wide_torch(benchmark, torch):
    _bench_torch(benchmark, torch, "wide")


@pytest.mark.benchmark(group=GROUPS["pointwise"])
def test_conv_pointwise_nbprop(benchmark):
    _bench(benchmark, "pointwise")


@pytest.mark.torch
@pytest.mark.benchmark(group=GROUPS["pointwise"])
def test_conv_pointwise_torch(benchmark, torch):
    _bench_torch(benchmark, torch, "pointwise")


# ------------------------------------------------------------------------------------------ CNN step

CNN_GROUP = "CNN train step: conv 1->16, pool, conv 16->32, pool, linear 1568->10, SGD, batch 64 of 1x28x28 float32"
CNN_BATCH = 64
LEARNING_RATE = 0.01


def _cnn_weights():
    """PyTorch's default initialisation bounds (1 / sqrt(fan_in)), drawn once for both frameworks, under
    PyTorch's state_dict keys of the Sequential below."""
    generator = np.random.default_rng(2)
    weights = {}
    for index, shape in ((0, (16, 1, 3, 3)), (3, (32, 16, 3, 3)), (7, (10, 1568))):
        bound = 1 / np.sqrt(np.prod(shape[1:]))
        weights[f"{index}.weight"] = generator.uniform(-bound, bound, shape).astype(np.float32)
        weights[f"{index}.bias"] = generator.uniform(-bound, bound, shape[0]).astype(np.float32)
    return weights


def _cnn_data():
    generator = np.random.default_rng(1)
    return (generator.standard_normal((CNN_BATCH, 1, 28, 28), dtype=np.float32),
            generator.integers(0, 10, CNN_BATCH))


def _cnn(library):
    return library.nn.Sequential(
        library.nn.Conv2d(1, 16, 3, padding=1), library.nn.ReLU(), library.nn.MaxPool2d(2),
        library.nn.Conv2d(16, 32, 3, padding=1), library.nn.ReLU(), library.nn.MaxPool2d(2),
        library.nn.Flatten(), library.nn.Linear(1568, 10),
    )


def _cnn_step(library, optimizer_class):
    model = _cnn(library)
    model.load_state_dict({key: library.tensor(value) for key, value in _cnn_weights().items()})
    optimizer = optimizer_class(model.parameters(), lr=LEARNING_RATE)
    inputs, targets = (library.tensor(array) for array in _cnn_data())

    def step():
        optimizer.zero_grad()
        loss = library.nn.functional.cross_entropy(model(inputs), targets)
        loss.backward()
        optimizer.step()
        return loss

    return step


def _cnn_products():
    """The step's products as im2col GEMMs over the whole batch (N = batch * positions), with their outputs: per
    convolution the forward (out, K) @ (K, N) and the weight gradient (out, N) @ (N, K), the input gradient
    (K, out) @ (out, N) of the second only (the images need none); the linear layer's three."""
    generator = np.random.default_rng(3)
    products = []

    def product(left, right):
        a = generator.standard_normal(left, dtype=np.float32)
        b = generator.standard_normal(right, dtype=np.float32)
        products.append((a, b, np.empty((left[0], right[1]), np.float32)))

    for channels, out, positions in ((1, 16, 28 * 28), (16, 32, 14 * 14)):
        taps, columns = channels * 9, CNN_BATCH * positions
        product((out, taps), (taps, columns))
        product((out, columns), (columns, taps))
        if channels > 1:
            product((taps, out), (out, columns))
    product((CNN_BATCH, 1568), (1568, 10))
    product((CNN_BATCH, 10), (10, 1568))
    product((10, CNN_BATCH), (CNN_BATCH, 1568))
    return products


def _cnn_flops():
    return sum(2 * a.shape[0] * a.shape[1] * b.shape[1] for a, b, _ in _cnn_products())


def _losses(step, count=3):
    return [float(step().detach()) for _ in range(count)]


@pytest.mark.benchmark(group=CNN_GROUP)
def test_cnn_step_nbprop(benchmark):
    step = _cnn_step(nbprop, SGD)
    losses = _losses(step)  # also compiles outside the timing
    assert np.isfinite(losses).all() and losses[-1] < losses[0]
    benchmark.extra_info["flops"] = _cnn_flops()
    benchmark(step)


@pytest.mark.torch
@pytest.mark.benchmark(group=CNN_GROUP)
def test_cnn_step_torch(benchmark, torch):
    step = _cnn_step(torch, torch.optim.SGD)
    # The same weights and data: the same losses, step after step.
    np.testing.assert_allclose(_losses(step), _losses(_cnn_step(nbprop, SGD)), rtol=1e-4)
    benchmark(step)


@pytest.mark.benchmark(group=CNN_GROUP)
def test_cnn_step_gemm_floor(benchmark):
    """The floor a step built on these products cannot go under: the products alone (no im2col packing, pooling,
    activations or loss), each one BLAS call into a preallocated output."""
    products = _cnn_products()

    def run():
        for a, b, out in products:
            np.dot(a, b, out)

    benchmark.extra_info["implementation"] = "gemm_floor"
    benchmark(run)
    a, b, out = products[-1]
    np.testing.assert_allclose(out, a @ b, rtol=1e-4, atol=1e-4)
