"""Training on the opaque test device: layers, initialisers, factories, every optimizer, gradient clipping, the LR
schedulers and an MLP training step reach their data only through the device and give the CPU's results bit for
bit (the same kernels, the same random draws)."""

import copy
import math
import pickle

import numpy as np
import opaque_device
import pytest

import nbprop
from nbprop import nn, optim
from nbprop.grad_mode import no_grad
from nbprop.nn import init
from nbprop.optim import lr_scheduler
from nbprop.optim import transforms as T

OPAQUE = "opaque"


@pytest.fixture(scope="module", autouse=True)
def opaque():
    return opaque_device.install()


def host(value):
    """A copy of a tensor's values in host memory (on the CPU, numpy() would share the tensor's)."""
    return np.array(value.detach().cpu().numpy())


def assert_bits(actual, expected):
    """The same dtype, shape and bytes (signed zeros and NaNs included)."""
    actual, expected = np.asarray(actual), np.asarray(expected)
    assert actual.dtype == expected.dtype and actual.shape == expected.shape
    assert actual.tobytes() == expected.tobytes(), f"largest difference {np.max(np.abs(actual - expected))}"


def assert_all_bits(actual, expected):
    assert len(actual) == len(expected)
    for one, other in zip(actual, expected):
        assert_bits(one, other)


def _normal(shape, seed, dtype=np.float32):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


# ------------------------------------------------------------------------------------------------ layers


def _sequential(device):
    return nn.Sequential(nn.Linear(4, 8, device=device), nn.GELU(), nn.Dropout(0.2), nn.LayerNorm(8, device=device),
                         nn.Linear(8, 2, device=device))


# name: (make(device), input shapes, dtype)
LAYERS = {
    "Linear": (lambda device: nn.Linear(5, 3, device=device), [(4, 5)], np.float32),
    "Linear-float64-no-bias": (lambda device: nn.Linear(5, 3, bias=False, device=device, dtype=nbprop.float64),
                               [(2, 4, 5)], np.float64),
    "Bilinear": (lambda device: nn.Bilinear(3, 4, 2, device=device), [(5, 3), (5, 4)], np.float32),
    "BatchNorm1d": (lambda device: nn.BatchNorm1d(4, device=device), [(6, 4)], np.float32),
    "BatchNorm1d-3d-cumulative": (lambda device: nn.BatchNorm1d(3, momentum=None, device=device), [(4, 3, 5)],
                                  np.float32),
    "BatchNorm2d": (lambda device: nn.BatchNorm2d(3, device=device), [(2, 3, 4, 4)], np.float32),
    "LayerNorm": (lambda device: nn.LayerNorm((3, 4), device=device), [(2, 3, 4)], np.float32),
    "RMSNorm": (lambda device: nn.RMSNorm(4, device=device), [(3, 4)], np.float32),
    "GroupNorm": (lambda device: nn.GroupNorm(2, 4, device=device), [(3, 4, 5)], np.float32),
    "Dropout": (lambda device: nn.Dropout(0.4), [(6, 7)], np.float32),
    "Sequential": (_sequential, [(5, 4)], np.float32),
}

ACTIVATIONS = {
    "ReLU": nn.ReLU, "LeakyReLU": lambda: nn.LeakyReLU(0.1), "ELU": nn.ELU, "SELU": nn.SELU, "GELU": nn.GELU,
    "GELU-tanh": lambda: nn.GELU("tanh"), "SiLU": nn.SiLU, "Softplus": lambda: nn.Softplus(2.0, 1.0),
    "Sigmoid": nn.Sigmoid, "LogSigmoid": nn.LogSigmoid, "Tanh": nn.Tanh, "Hardtanh": lambda: nn.Hardtanh(-0.5, 0.5),
    "Softmax": lambda: nn.Softmax(dim=1), "LogSoftmax": lambda: nn.LogSoftmax(dim=1), "Identity": nn.Identity,
    "Flatten": nn.Flatten,
}


def _run_layer(make, shapes, dtype, device, placement):
    """The layer built (seed 0) on `device`, or on the CPU and then moved there; a training-mode forward (seed 1,
    for dropout), backward of a fixed random gradient, and an eval-mode forward. Returns the outputs, the inputs'
    and parameters' gradients and the buffers, in host memory."""
    nbprop.manual_seed(0)
    layer = make(device) if placement == "constructed" else make(None).to(device)
    for tensor in [*layer.parameters(), *layer.buffers()]:
        assert tensor.device == device
    inputs = [nbprop.tensor(_normal(shape, index), device=device, dtype=dtype, requires_grad=True)
              for index, shape in enumerate(shapes)]
    nbprop.manual_seed(1)
    output = layer(*inputs)
    output.backward(nbprop.tensor(_normal(output.shape, 9, output.dtype), device=device))
    layer.eval()
    results = [output, *[x.grad for x in inputs], *[p.grad for p in layer.parameters()], *layer.buffers(),
               layer(*inputs)]
    for value in results:
        assert value.device == device
    return [host(value) for value in results]


@pytest.mark.parametrize("placement", ["constructed", "moved"])
@pytest.mark.parametrize("name", sorted(LAYERS))
def test_layers_give_the_cpu_results(name, placement):
    make, shapes, dtype = LAYERS[name]
    expected = _run_layer(make, shapes, dtype, "cpu", "constructed")
    assert_all_bits(_run_layer(make, shapes, dtype, OPAQUE, placement), expected)


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_activation_modules_give_the_cpu_results(name):
    def make(device):
        return ACTIVATIONS[name]()

    expected = _run_layer(make, [(4, 6)], np.float64, "cpu", "constructed")
    assert_all_bits(_run_layer(make, [(4, 6)], np.float64, OPAQUE, "moved"), expected)


def test_dropout_draws_the_cpu_mask_and_scales_in_place():
    results = {}
    for device in ("cpu", OPAQUE):
        x = nbprop.tensor(_normal((50, 40), 3), device=device)
        nbprop.manual_seed(4)
        dropped = nn.Dropout(0.3)(x)
        nbprop.manual_seed(4)
        nn.Dropout(0.3, inplace=True)(x)
        results[device] = [host(dropped), host(x)]
    assert_all_bits(results[OPAQUE], results["cpu"])
    assert (results["cpu"][0] == 0).any()


def test_penalties_give_the_cpu_results():
    results = {}
    for device in ("cpu", OPAQUE):
        parameters = [nn.Parameter(nbprop.tensor(_normal(shape, seed), device=device))
                      for seed, shape in enumerate([(3, 4), (5,)])]
        total = nn.l1_penalty(parameters) + 0.5 * nn.l2_penalty(parameters)
        total.backward()
        results[device] = [host(total), *[host(parameter.grad) for parameter in parameters]]
    assert_all_bits(results[OPAQUE], results["cpu"])


# ---------------------------------------------------------------------------------- initialisers, factories

INITIALISERS = {
    "uniform_": lambda tensor: init.uniform_(tensor, -0.5, 2.0),
    "normal_": lambda tensor: init.normal_(tensor, 1.0, 3.0),
    "constant_": lambda tensor: init.constant_(tensor, 0.25),
    "zeros_": init.zeros_,
    "ones_": init.ones_,
    "xavier_uniform_": lambda tensor: init.xavier_uniform_(tensor, gain=2.0),
    "xavier_normal_": init.xavier_normal_,
    "kaiming_uniform_": lambda tensor: init.kaiming_uniform_(tensor, a=math.sqrt(5)),
    "kaiming_normal_": lambda tensor: init.kaiming_normal_(tensor, mode="fan_out", nonlinearity="relu"),
    "orthogonal_": lambda tensor: init.orthogonal_(tensor, gain=2.0),
}


@pytest.mark.parametrize("dtype", [nbprop.float32, nbprop.float64])
@pytest.mark.parametrize("name", sorted(INITIALISERS))
def test_initialisers_write_the_cpu_values(name, dtype):
    results = {}
    for device in ("cpu", OPAQUE):
        nbprop.manual_seed(3)
        tensor = nbprop.empty(4, 6, dtype=dtype, device=device)
        with no_grad():
            assert INITIALISERS[name](tensor) is tensor
        assert tensor.device == device
        results[device] = host(tensor)
    assert_bits(results[OPAQUE], results["cpu"])


FACTORIES = {
    "tensor": lambda device: nbprop.tensor([[1.5, -2.0], [3.0, 4.25]], device=device),
    "tensor-int": lambda device: nbprop.tensor([1, 2, 3], device=device),
    "tensor-float64": lambda device: nbprop.tensor(np.array([0.1, 0.2]), device=device),
    "tensor-as-float32": lambda device: nbprop.tensor(np.array([0.1, 0.2]), dtype=nbprop.float32, device=device),
    "zeros": lambda device: nbprop.zeros(2, 3, device=device),
    "ones": lambda device: nbprop.ones((2, 3), dtype=nbprop.int64, device=device),
    "full": lambda device: nbprop.full((2, 3), 1.5, device=device),
    "arange": lambda device: nbprop.arange(0, 1, 0.1, device=device),
    "arange-int": lambda device: nbprop.arange(5, device=device),
    "linspace": lambda device: nbprop.linspace(-1, 1, 7, device=device),
    "eye": lambda device: nbprop.eye(3, 4, dtype=nbprop.float64, device=device),
    "randn": lambda device: nbprop.randn(3, 4, device=device),
    "rand": lambda device: nbprop.rand(3, 4, dtype=nbprop.float64, device=device),
    "randint": lambda device: nbprop.randint(0, 10, (5,), device=device),
    "zeros_like": lambda device: nbprop.zeros_like(nbprop.ones(2, 3, device=device)),
    "ones_like": lambda device: nbprop.ones_like(nbprop.zeros(2, 3, device=device), dtype=nbprop.float64),
    "full_like": lambda device: nbprop.full_like(nbprop.zeros(2, device=device), 7.0),
    "randn_like": lambda device: nbprop.randn_like(nbprop.zeros(2, 3, device=device)),
    "rand_like": lambda device: nbprop.rand_like(nbprop.zeros(2, 3, device=device)),
    "tensor-of-tensor": lambda device: nbprop.tensor(nbprop.tensor([1.0, 2.0], device=device), dtype=nbprop.float64),
}


@pytest.mark.parametrize("name", sorted(FACTORIES))
def test_factories_allocate_on_the_device(name):
    results = {}
    for device in ("cpu", OPAQUE):
        nbprop.manual_seed(5)
        made = FACTORIES[name](device)
        assert made.device == device
        results[device] = host(made)
    assert_bits(results[OPAQUE], results["cpu"])


def test_empty_and_transfers_between_devices():
    made = nbprop.empty(2, 3, dtype=nbprop.float64, device=OPAQUE)
    assert made.device == OPAQUE and made.shape == (2, 3) and made.dtype == nbprop.float64
    source = nbprop.tensor([[1.0, 2.0], [3.0, 4.0]], device=OPAQUE)
    moved = nbprop.tensor(source, device="cpu")
    assert moved.device == "cpu"
    assert_bits(moved.numpy(), np.array([[1.0, 2.0], [3.0, 4.0]], np.float32))
    back = nbprop.tensor(moved, device=OPAQUE)
    assert back.device == OPAQUE and back._data is not source._data
    assert_bits(host(back), moved.numpy())
    with pytest.raises(RuntimeError, match="Linear: device 'nowhere' is not available"):
        nn.Linear(2, 3, device="nowhere")


def test_parameters_copy_and_pickle_on_the_device():
    parameter = nn.Parameter(nbprop.tensor(_normal((3, 4), 0), device=OPAQUE))
    parameter.grad = nbprop.tensor(_normal((3, 4), 1), device=OPAQUE)
    copied = copy.deepcopy(parameter)
    assert copied.device == OPAQUE and copied.grad.device == OPAQUE and copied._data is not parameter._data
    assert_bits(host(copied), host(parameter))
    assert_bits(host(copied.grad), host(parameter.grad))
    parameter.grad = None
    restored = pickle.loads(pickle.dumps(parameter))
    assert restored.device == OPAQUE and restored.requires_grad
    assert_bits(host(restored), host(parameter))
    assert nn.Parameter().device == "cpu" and nn.Parameter().shape == (0,)


def test_module_state_dicts_load_across_devices():
    def model():
        return nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))

    nbprop.manual_seed(0)
    source = model()
    with no_grad():
        source[1].running_mean.add_(0.5)
    nbprop.manual_seed(1)
    target = model().to(OPAQUE)
    target.load_state_dict(source.state_dict())
    for (key, value), expected in zip(target.state_dict().items(), source.state_dict().values()):
        assert value.device == OPAQUE, key
        assert_bits(host(value), host(expected))
    back = model()
    back.load_state_dict(target.state_dict())
    arrays = {key: host(value) for key, value in back.state_dict().items()}
    for key, value in source.state_dict().items():
        assert_bits(arrays[key], host(value))
    target.load_state_dict(arrays)  # NumPy arrays from host memory
    assert_bits(host(target[0].weight), arrays["0.weight"])


# ------------------------------------------------------------------------------------------------ optimizers

# Options per optimizer class: the defaults and a variant with weight decay, momentum or other options on.
OPTIONS = {
    "SGD": [dict(lr=0.1), dict(lr=0.05, momentum=0.9, dampening=0.1, weight_decay=0.01),
            dict(lr=0.05, momentum=0.9, nesterov=True, maximize=True)],
    "Adam": [dict(), dict(lr=0.01, weight_decay=0.1, amsgrad=True),
             dict(lr=0.01, decoupled_weight_decay=True, weight_decay=0.05, maximize=True)],
    "AdamW": [dict(), dict(lr=0.02, weight_decay=0.3, amsgrad=True)],
    "Adagrad": [dict(), dict(lr=0.1, lr_decay=0.01, weight_decay=0.1, initial_accumulator_value=0.5)],
    "RMSprop": [dict(), dict(lr=0.01, alpha=0.9, weight_decay=0.1, momentum=0.8, centered=True)],
    "Adadelta": [dict(), dict(lr=0.5, rho=0.8, weight_decay=0.1, maximize=True)],
    "Adamax": [dict(), dict(weight_decay=0.1)],
    "NAdam": [dict(), dict(weight_decay=0.1, decoupled_weight_decay=True)],
    "RAdam": [dict(), dict(weight_decay=0.1, decoupled_weight_decay=True)],
    "ASGD": [dict(), dict(lr=0.05, lambd=1e-3, t0=2, weight_decay=0.1)],
    "LAMB": [dict(), dict(weight_decay=0.1, maximize=True)],
    "Lion": [dict(), dict(weight_decay=0.1)],
    "Rprop": [dict(), dict(lr=0.05, etas=(0.4, 1.3), maximize=True)],
    "Adafactor": [dict(), dict(weight_decay=0.1, eps=(1e-30, 1e-3), maximize=True)],
    "OptaxAdafactor": [dict(), dict(min_dim_size_to_factor=2, momentum=0.9, weight_decay_rate=0.01)],
}

# Shapes and dtypes of the parameters: two dtypes make two flat buckets; (3, 4) and (2, 3, 4) are factored.
PARAMETERS = [((3, 4), np.float32), ((5,), np.float32), ((), np.float32), ((2, 3, 4), np.float32),
              ((2, 3), np.float64)]


def _optimizer_classes():
    classes = {name: getattr(optim, name) for name in optim.__all__}
    return {name: cls for name, cls in classes.items()
            if isinstance(cls, type) and issubclass(cls, optim.Optimizer)
            and cls not in (optim.Optimizer, optim.TransformOptimizer)}


def test_every_optimizer_class_is_covered():
    assert sorted(_optimizer_classes()) == sorted(OPTIONS)


OPTIMIZER_CASES = [(name, index) for name in sorted(OPTIONS) for index in range(len(OPTIONS[name]))]


def _step(optimizer, params, step, device):
    """One step of fixed gradients: a loss through the tape (one parameter without a gradient at step 1), or, at
    step 3, gradients assigned rather than accumulated (the optimizer copies them in)."""
    optimizer.zero_grad(set_to_none=step != 2)
    if step == 3:
        for index, parameter in enumerate(params):
            parameter.grad = nbprop.tensor(_normal(parameter.shape, 100 * step + index, parameter.dtype),
                                           device=device)
    else:
        loss = 0.0
        for index, parameter in enumerate(params):
            if step == 1 and index == 1:
                continue
            inputs = nbprop.tensor(_normal(parameter.shape, 100 * step + index, parameter.dtype), device=device)
            loss = loss + ((parameter * inputs).tanh() ** 2).sum()
        loss.backward()
    optimizer.step()


def _parameters(device, seed=0):
    return [nn.Parameter(nbprop.tensor(_normal(shape, seed + index, dtype), device=device))
            for index, (shape, dtype) in enumerate(PARAMETERS)]


def _state(optimizer):
    """The state dict's state in host memory, with each entry's device."""
    return {key: {name: (value.device, host(value)) for name, value in entry.items()}
            for key, entry in optimizer.state_dict()["state"].items()}


def _train(make, device, steps, start=0, state_dict=None, initial=None):
    params = _parameters(device) if initial is None else [
        nn.Parameter(nbprop.tensor(array, device=device)) for array in initial]
    optimizer = make(params)
    if state_dict is not None:
        optimizer.load_state_dict(state_dict)
    for step in range(start, start + steps):
        _step(optimizer, params, step, device)
    return params, optimizer


def _assert_same_training(make):
    """Five steps on the CPU and on the opaque device: the same parameters and state; state tensors on the
    parameters' device ('step' and NAdam's 'mu_product' in host memory, as PyTorch's)."""
    expected_params, expected = _train(make, "cpu", 5)
    params, optimizer = _train(make, OPAQUE, 5)
    assert_all_bits([host(p) for p in params], [host(p) for p in expected_params])
    state, expected_state = _state(optimizer), _state(expected)
    assert sorted(state) == sorted(expected_state)
    for key, entry in state.items():
        assert list(entry) == list(expected_state[key])
        for name, (device, values) in entry.items():
            assert device == ("cpu" if name in ("step", "mu_product") else OPAQUE), (key, name)
            assert_bits(values, expected_state[key][name][1])
    for entry in optimizer.state.values():
        for name, value in entry.items():
            assert value.device == ("cpu" if name in ("step", "mu_product") else OPAQUE)
    return expected_params


@pytest.mark.parametrize(("name", "index"), OPTIMIZER_CASES)
def test_optimizers_train_as_on_the_cpu(name, index):
    cls, options = _optimizer_classes()[name], OPTIONS[name][index]
    _assert_same_training(lambda params: cls(params, **options))


@pytest.mark.parametrize("saved_on", ["cpu", OPAQUE])
@pytest.mark.parametrize(("name", "index"), OPTIMIZER_CASES)
def test_optimizer_state_dicts_round_trip_onto_the_device(name, index, saved_on):
    """Two steps (on the CPU or the device), state_dict(); a new optimizer on the device over the same values
    loads it and takes three more steps: the parameters of five unbroken CPU steps."""
    cls, options = _optimizer_classes()[name], OPTIONS[name][index]

    def make(params):
        return cls(params, **options)

    expected, _ = _train(make, "cpu", 5)
    first, optimizer = _train(make, saved_on, 2)
    saved = optimizer.state_dict()
    params, resumed = _train(make, OPAQUE, 3, start=2, state_dict=saved, initial=[host(p) for p in first])
    assert_all_bits([host(p) for p in params], [host(p) for p in expected])


TRANSFORMS = {
    "adam-clipped-decayed": lambda: T.apply_if_finite(
        T.chain(T.clip_by_global_norm(1.0), T.scale_by_adam(), T.add_decayed_weights(1e-2))),
    "rms-trace-values": lambda: T.chain(T.zero_nans(), T.adaptive_grad_clip(0.1), T.trace(0.9, nesterov=True),
                                        T.scale_by_rms(), T.clip_by_value(0.5), T.scale(0.5)),
    "multi-steps-schedule": lambda: T.multi_steps(
        T.chain(T.scale_by_schedule(lambda count: 0.5 ** count), T.scale_by_adam()), 2),
}


@pytest.mark.parametrize("name", sorted(TRANSFORMS))
def test_transform_optimizers_train_and_round_trip_as_on_the_cpu(name):
    def make(params):
        return optim.from_transform(params, TRANSFORMS[name](), lr=1e-2)

    expected = _assert_same_training(make)
    first, optimizer = _train(make, OPAQUE, 2)
    saved = optimizer.state_dict()
    params, _ = _train(make, OPAQUE, 3, start=2, state_dict=saved, initial=[host(p) for p in first])
    assert_all_bits([host(p) for p in params], [host(p) for p in expected])


def test_optimizer_state_follows_parameters_moved_to_the_device():
    """An optimizer made before its parameters move keeps their state: its buffers are rebuilt on the device."""
    results = {}
    for device in ("cpu", OPAQUE):
        params = _parameters("cpu")
        holder = nn.Module()
        for index, parameter in enumerate(params):
            holder.register_parameter(f"parameter{index}", parameter)
        optimizer = optim.Adam(params, lr=0.01, weight_decay=0.1)
        _step(optimizer, params, 0, "cpu")
        holder.to(device)
        assert all(parameter.device == device for parameter in params)
        for step in (1, 2):
            _step(optimizer, params, step, device)
        assert all(value.device == device for entry in optimizer.state.values()
                   for name, value in entry.items() if name != "step")
        results[device] = [host(p) for p in params]
    assert_all_bits(results[OPAQUE], results["cpu"])


# ------------------------------------------------------------------------------------------------ clipping


def _gradients(device):
    """Parameters with gradients of two dtypes, one transposed (not contiguous) and one large enough for the
    threaded kernels (several blocks)."""
    shapes = [((3, 4), np.float32), ((300, 300), np.float32), ((5,), np.float64), ((4, 3), np.float32)]
    params = []
    for index, (shape, dtype) in enumerate(shapes):
        parameter = nn.Parameter(nbprop.zeros(*shape, dtype=dtype, device=device))
        gradient = nbprop.tensor(_normal(shape[::-1], 50 + index, dtype) * (index + 1), device=device)
        parameter.grad = gradient.T if len(shape) == 2 and index == 3 else gradient.reshape(shape)
        params.append(parameter)
    assert not params[3].grad.is_contiguous()
    return params


@pytest.mark.parametrize("norm_type", [2.0, 1.0, 3.0, 0.0, math.inf, -math.inf])
@pytest.mark.parametrize("max_norm", [0.5, 1e9])
def test_clip_grad_norm_gives_the_cpu_results(norm_type, max_norm):
    results = {}
    for device in ("cpu", OPAQUE):
        params = _gradients(device)
        total = nn.utils.clip_grad_norm_(params, max_norm, norm_type=norm_type)
        assert total.device == device
        results[device] = [host(total), *[host(parameter.grad) for parameter in params]]
    assert_all_bits(results[OPAQUE], results["cpu"])


def test_total_norm_and_value_clipping_give_the_cpu_results():
    results = {}
    for device in ("cpu", OPAQUE):
        params = _gradients(device)
        gradients = [parameter.grad for parameter in params]
        total = nn.utils.get_total_norm(gradients, 2.0)
        nn.utils.clip_grads_with_norm_(params, 1.0, total)
        scaled = [host(gradient) for gradient in gradients]
        nn.utils.clip_grad_value_(params, 0.01)
        tiny = nn.utils.get_total_norm([nbprop.tensor([1e-300, 3e-300], dtype=nbprop.float64, device=device)])
        results[device] = [host(total), *scaled, *[host(parameter.grad) for parameter in params], host(tiny)]
        assert total.device == tiny.device == device
    assert_all_bits(results[OPAQUE], results["cpu"])


def test_clipping_errors_on_the_device():
    parameter = nn.Parameter(nbprop.zeros(3, device=OPAQUE))
    parameter.grad = nbprop.tensor([1.0, math.inf, 2.0], device=OPAQUE)
    with pytest.raises(RuntimeError, match="non-finite"):
        nn.utils.clip_grad_norm_([parameter], 1.0, error_if_nonfinite=True)
    other = nn.Parameter(nbprop.zeros(3))
    other.grad = nbprop.ones(3)
    with pytest.raises(RuntimeError, match=r"clip_grad_norm_: all tensors must be on one device, got \['cpu', "
                                           r"'opaque'\]"):
        nn.utils.clip_grad_norm_([parameter, other], 1.0)


# ------------------------------------------------------------------------------------------ LR schedulers

SCHEDULERS = {
    "StepLR": lambda optimizer: lr_scheduler.StepLR(optimizer, step_size=2, gamma=0.5),
    "CosineAnnealingWarmRestarts": lambda optimizer: lr_scheduler.CosineAnnealingWarmRestarts(optimizer, T_0=3),
    "OneCycleLR": lambda optimizer: lr_scheduler.OneCycleLR(optimizer, max_lr=0.1, total_steps=10),
    "SequentialLR": lambda optimizer: lr_scheduler.SequentialLR(
        optimizer, [lr_scheduler.LinearLR(optimizer, 0.1, total_iters=2), lr_scheduler.ExponentialLR(optimizer, 0.9)],
        milestones=[2]),
}


@pytest.mark.parametrize("name", sorted(SCHEDULERS))
def test_lr_schedulers_drive_a_device_optimizer_as_on_the_cpu(name):
    results = {}
    for device in ("cpu", OPAQUE):
        params = _parameters(device)
        optimizer = optim.SGD(params, lr=0.05, momentum=0.9)
        scheduler = SCHEDULERS[name](optimizer)
        rates = []
        for step in range(6):
            _step(optimizer, params, step % 3, device)
            scheduler.step()
            rates.append(optimizer.param_groups[0]["lr"])
        results[device] = (rates, [host(p) for p in params])
    assert results[OPAQUE][0] == results["cpu"][0]
    assert_all_bits(results[OPAQUE][1], results["cpu"][1])


# ------------------------------------------------------------------------------------------------ an MLP step


def _train_mlp(device, batch_norm):
    """model.to(device), then forward, cross-entropy, backward, clipping and an Adam step, three times."""
    nbprop.manual_seed(0)
    layers = [nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 16), nn.Tanh(), nn.Linear(16, 3)]
    if batch_norm:
        layers.insert(1, nn.BatchNorm1d(16))
    model = nn.Sequential(*layers).to(device)
    optimizer = optim.Adam(model.parameters(), lr=1e-2, weight_decay=1e-3)
    rng = np.random.default_rng(0)
    losses = []
    for _ in range(3):
        inputs = nbprop.tensor(rng.standard_normal((8, 6)).astype(np.float32), device=device)
        targets = nbprop.tensor(rng.integers(0, 3, 8), device=device)
        optimizer.zero_grad()
        loss = nn.functional.cross_entropy(model(inputs), targets)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        assert loss.device == device
        losses.append(host(loss))
    model.eval()
    evaluation = model(nbprop.tensor(rng.standard_normal((4, 6)).astype(np.float32), device=device))
    return [*losses, host(evaluation), *[host(tensor) for tensor in [*model.parameters(), *model.buffers()]]]


@pytest.mark.parametrize("batch_norm", [False, True])
def test_an_mlp_trains_as_on_the_cpu(batch_norm):
    assert_all_bits(_train_mlp(OPAQUE, batch_norm), _train_mlp("cpu", batch_norm))


def test_a_view_of_an_old_gradient_keeps_its_values_on_a_device_that_cannot_lend():
    """Reference counts cannot see views of opaque arrays, so optimizers lend no gradient storage there: a view
    kept from the last step's .grad is not overwritten by the next backward pass."""
    model = nn.Linear(3, 2).to(OPAQUE)
    optimizer = optim.Adam(model.parameters(), lr=0.1)
    x = nbprop.tensor(np.arange(6.0, dtype=np.float32).reshape(2, 3), device=OPAQUE)
    model(x).sum().backward()
    optimizer.step()
    kept = model.weight.grad.reshape(-1)
    before = host(kept)
    optimizer.zero_grad()
    (model(x) * 3).sum().backward()
    optimizer.step()
    assert_bits(host(kept), before)
