"""nbprop.compile: replays equal eager steps bit for bit; every pattern a plan cannot hold is caught and explained."""

import inspect
import warnings

import numpy as np
import pytest

import nbprop
from nbprop import nn, optim
from nbprop.backend import CpuDevice
from nbprop.capture.recording import INHERITED_METHODS, RecordingCpuDevice
from nbprop.nn.utils import clip_grad_norm_


def _batches(count, features=8, classes=3, batch=16, seed=1):
    rng = np.random.default_rng(seed)
    return [(nbprop.tensor(rng.standard_normal((batch, features)).astype(np.float32)),
             nbprop.tensor(rng.integers(0, classes, batch))) for _ in range(count)]


def _training(model_factory, compiled, seed=0, steps=100, batches=None):
    """Train a fresh model from `seed` with Adam, a cosine schedule and clip_grad_norm_ (eagerly or compiled);
    the losses and the final state dict."""
    nbprop.manual_seed(seed)
    model = model_factory()
    optimizer = optim.Adam(model.parameters(), lr=1e-2)
    scheduler = optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=steps)

    def step(x, y):
        optimizer.zero_grad()
        loss = nn.functional.cross_entropy(model(x), y)
        loss.backward()
        clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        scheduler.step()
        return loss

    run = nbprop.compile(step, fullgraph=True) if compiled else step
    nbprop.manual_seed(seed + 1)  # the dropout stream
    losses = [run(x, y).item() for x, y in (batches or _batches(steps))]
    return losses, {key: value.numpy().copy() for key, value in model.state_dict().items()}, run


def _mlp():
    return nn.Sequential(nn.Linear(8, 32), nn.BatchNorm1d(32), nn.ReLU(), nn.Dropout(0.3), nn.Linear(32, 3))


def _assert_same_training(model_factory, steps, batches=None):
    eager_losses, eager_state, _ = _training(model_factory, False, steps=steps, batches=batches)
    losses, state, run = _training(model_factory, True, steps=steps, batches=batches)
    assert losses == eager_losses
    assert state.keys() == eager_state.keys()
    for key in state:
        np.testing.assert_array_equal(state[key], eager_state[key], err_msg=key)
    return run


def test_100_steps_of_an_mlp_with_dropout_and_batch_norm_equal_eager_ones_bit_for_bit():
    run = _assert_same_training(_mlp, 100)
    (entry,) = run._entries.values()
    assert entry.plan is not None and entry.calls == 2  # one eager call, one capture, then 98 replays
    assert entry.plan.bytes_shared > 0  # intermediates share buffers


def test_a_small_cnn_and_an_lstm_replay_as_they_run_eagerly():
    images = [(nbprop.tensor(np.random.default_rng(i).standard_normal((4, 1, 8, 8)).astype(np.float32)),
               nbprop.tensor(np.arange(4) % 3)) for i in range(6)]
    _assert_same_training(lambda: nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(64, 3)), 6, images)

    class Recurrent(nn.Module):
        def __init__(self):
            super().__init__()
            self.lstm, self.head = nn.LSTM(5, 8, batch_first=True), nn.Linear(8, 3)

        def forward(self, x):
            return self.head(self.lstm(x)[0][:, -1])

    sequences = [(nbprop.tensor(np.random.default_rng(i).standard_normal((4, 7, 5)).astype(np.float32)),
                  nbprop.tensor(np.arange(4) % 3)) for i in range(6)]
    _assert_same_training(Recurrent, 6, sequences)


def test_each_signature_gets_its_own_plan_and_replays_return_fresh_tensors():
    nbprop.manual_seed(0)
    model = nn.Linear(4, 2)

    @nbprop.compile
    def forward(x, scale):
        with nbprop.no_grad():
            return model(x) * scale

    small, large = nbprop.ones(3, 4), nbprop.ones(5, 4)
    outputs = [forward(small, 2.0) for _ in range(4)]
    assert len(forward._entries) == 1
    with nbprop.no_grad():
        expected = (model(small) * 2.0).numpy()
    for output in outputs:
        np.testing.assert_array_equal(output.numpy(), expected)
    assert outputs[2] is not outputs[3] and not np.shares_memory(outputs[2].numpy(), outputs[3].numpy())
    assert forward(large, 2.0).shape == (5, 2)
    forward(small, 3.0)
    assert len(forward._entries) == 3
    # New input values are copied into the plan's input buffers.
    np.testing.assert_array_equal(forward(small * 0, 2.0).numpy(), (model.bias * 2.0).detach().expand(3, 2).numpy())


def _linear_training(compiled, reload_at=None, replace_at=None):
    nbprop.manual_seed(0)
    model = nn.Linear(4, 2)
    optimizer = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)

    def step(x):
        optimizer.zero_grad()
        loss = (model(x) ** 2).sum()
        loss.backward()
        optimizer.step()
        return loss

    run = nbprop.compile(step, fullgraph=True) if compiled else step
    losses = []
    for index, x in enumerate(nbprop.randn(12, 3, 4)):
        if index == reload_at:  # the optimizer rebuilds its flat buffers: new arrays under the parameters
            optimizer.load_state_dict(optimizer.state_dict())
        if index == replace_at:  # a new Parameter object: Python state the plan cannot see, hence reset()
            model.weight = nn.Parameter(nbprop.zeros(2, 4) + 0.5)
            optimizer.param_groups[0]["params"][0] = model.weight
            if compiled:
                run.reset()
        losses.append(run(x).item())
    return losses, run


def test_parameters_on_new_arrays_are_captured_again_and_reset_forgets_plans():
    eager, _ = _linear_training(False, reload_at=5)
    losses, run = _linear_training(True, reload_at=5)
    assert losses == eager
    (entry,) = run._entries.values()
    assert entry.calls == 3  # eager, capture, and a capture again after the reload
    assert all(tensor._data is array for tensor, array in entry.leaves)
    eager, _ = _linear_training(False, replace_at=6)
    assert _linear_training(True, replace_at=6)[0] == eager


def test_a_compiled_function_inside_a_captured_step_and_a_custom_optimizer_step_replay_right():
    class HalvingSGD(optim.SGD):
        """An optimizer whose own step() reads Python state that changes: it must rerun on each replay."""

        def step(self, closure=None):
            for group in self.param_groups:
                group["lr"] /= 2
            return super().step(closure)

    def run(compiled):
        nbprop.manual_seed(0)
        model = nn.Linear(3, 1)
        optimizer = HalvingSGD(model.parameters(), lr=1.0)
        inner = nbprop.compile(lambda x: (model(x) ** 2).mean()) if compiled else (lambda x: (model(x) ** 2).mean())

        def step(x):
            optimizer.zero_grad()
            loss = inner(x)
            loss.backward()
            optimizer.step()
            return loss

        step = nbprop.compile(step, fullgraph=True) if compiled else step
        return [step(x).item() for x in nbprop.randn(8, 4, 3)], optimizer.param_groups[0]["lr"]

    assert run(True) == run(False)
    assert run(True)[1] == 2.0 ** -8


# ------------------------------------------------------------------------------------ capture errors


def _compiled(body, fullgraph=True):
    nbprop.manual_seed(0)
    model = nn.Linear(4, 3)
    return model, nbprop.compile(lambda x: body(model, x), fullgraph=fullgraph)


@pytest.mark.parametrize("body, message", [
    (lambda model, x: model(x).sum().item(), r"reading a tensor's value in Python \(.item\(\)"),
    (lambda model, x: model(x).detach().numpy(), r"copying a tensor to host memory \(.numpy\(\)"),
    (lambda model, x: model(x) if model(x).sum() > 0 else -model(x), r"reading a tensor's value in Python"),
    (lambda model, x: model(x) + nbprop.randn(3), r"randn drawing random numbers in Python"),
    (lambda model, x: nbprop.bernoulli(model(x).sigmoid()), r"bernoulli drawing random numbers in Python"),
    (lambda model, x: nn.Linear(4, 3)(x).sum().backward(), r"drawing random numbers|a new parameter"),
])
def test_a_step_the_plan_cannot_hold_is_explained_after_it_ran_eagerly(body, message):
    _, step = _compiled(body)
    x = nbprop.ones(2, 4)
    step(x)  # the first call runs eagerly
    with pytest.raises(nbprop.CaptureError, match=message) as caught:
        step(x)
    assert "this call ran eagerly and completed" in str(caught.value)


def test_a_new_parameter_made_inside_the_step_is_named():
    def body(model, x):
        weight = nbprop.ones(3, 4, requires_grad=True)
        (x @ weight.T).sum().backward()
        return weight.grad

    _, step = _compiled(body)
    x = nbprop.ones(2, 4)
    step(x)
    with pytest.raises(nbprop.CaptureError, match="a new parameter"):
        step(x)


def test_without_fullgraph_the_step_warns_once_and_stays_eager():
    _, step = _compiled(lambda model, x: model(x).sum().item(), fullgraph=False)
    x = nbprop.ones(2, 4)
    values = [step(x)]
    with pytest.warns(UserWarning, match="runs eagerly for these arguments"):
        values.append(step(x))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        values += [step(x), step(x)]
    assert len(set(values)) == 1 and isinstance(values[-1], float)


def test_a_check_that_fails_on_replayed_data_raises():
    model, step = _compiled(lambda model, x: nn.functional.cross_entropy(model(x[:, :4]), x[:, 4].long()))
    good = nbprop.tensor([[1.0, 2.0, 3.0, 4.0, 2.0]])
    for _ in range(3):
        step(good)
    with pytest.raises(nbprop.CaptureError, match="a check of the data"):
        step(nbprop.tensor([[1.0, 2.0, 3.0, 4.0, 7.0]]))  # class 7 of 3


def test_a_count_that_changes_on_replay_raises_and_ignored_targets_replay_right():
    divide = nbprop.compile(lambda a, b: a // b, fullgraph=True)
    a, b = nbprop.tensor([7, 8]), nbprop.tensor([2, 3])
    assert divide(a, b).tolist() == divide(a, b).tolist() == divide(a, b).tolist() == [3, 2]
    with pytest.raises(nbprop.CaptureError, match="count_nonzero"):
        divide(a, nbprop.tensor([2, 0]))  # eagerly a ZeroDivisionError; the capture's check saw no zero

    nbprop.manual_seed(0)
    model = nn.Linear(4, 3)
    loss = nbprop.compile(lambda x, y: nn.functional.cross_entropy(model(x), y), fullgraph=True)
    x = nbprop.randn(2, 4)
    loss(x, nbprop.tensor([0, 1]))
    loss(x, nbprop.tensor([0, 1]))
    for targets in ([0, -100], [2, 1]):
        expected = nn.functional.cross_entropy(model(x), nbprop.tensor(targets)).item()
        assert loss(x, nbprop.tensor(targets)).item() == expected


def test_the_error_names_the_line_of_the_step_and_a_boolean_mask_is_host_data():
    def body(model, x):
        return model(x)[model(x) > 0].sum()

    _, step = _compiled(body)
    step(nbprop.ones(2, 4))
    line = body.__code__.co_firstlineno + 1
    with pytest.raises(nbprop.CaptureError, match=rf"host memory .*test_capture.py:{line}\)"):
        step(nbprop.ones(2, 4))


def test_bad_arguments_are_refused_with_their_reason():
    _, step = _compiled(lambda model, x: model(x))
    with pytest.raises(TypeError, match="neither a tensor nor hashable"):
        step([1.0, 2.0])
    step(nbprop.ones(2, 4, requires_grad=True))
    with pytest.raises(nbprop.CaptureError, match="requires grad"):
        step(nbprop.ones(2, 4, requires_grad=True))
    with pytest.raises(TypeError, match="expects a function"):
        nbprop.compile(3)
    assert nbprop.compile(len, disable=True) is len


def test_gradient_state_that_differs_from_the_capture_is_named():
    nbprop.manual_seed(0)
    model = nn.Linear(4, 3)

    @nbprop.compile(fullgraph=True)
    def step(x):
        model(x).sum().backward()  # no zero_grad: gradients accumulate, as eagerly

    x = nbprop.ones(2, 4)
    for _ in range(4):
        step(x)
    np.testing.assert_array_equal(model.bias.grad.numpy(), np.full(3, 8.0, np.float32))
    model.zero_grad()  # now None: the capture saw an accumulated gradient
    with pytest.raises(nbprop.CaptureError, match="same gradient state every step"):
        step(x)


def test_the_recording_device_overrides_every_cpu_method_that_writes_or_reads_data():
    methods = {name for name, _ in inspect.getmembers(CpuDevice, callable) if not name.startswith("__")}
    overridden = {name for name in methods if name in vars(RecordingCpuDevice)}
    assert methods - overridden == INHERITED_METHODS
