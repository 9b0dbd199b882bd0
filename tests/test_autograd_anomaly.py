"""Anomaly mode (nbprop.autograd.detect_anomaly / set_detect_anomaly) as PyTorch's, checking forward outputs too."""

import warnings

import numpy as np
import pytest

import nbprop
import nbprop.nn as nn
from nbprop.autograd import detect_anomaly, set_detect_anomaly

F64 = nbprop.float64


@pytest.fixture(autouse=True)
def quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        yield
    assert not nbprop.is_anomaly_enabled()


def test_a_nan_forward_output_names_the_op_and_the_line_that_called_it():
    x = nbprop.tensor([-1.0, 4.0], dtype=F64, requires_grad=True)
    with detect_anomaly(), pytest.raises(RuntimeError) as raised:
        nbprop.sqrt(x)  # the line named
    message = str(raised.value)
    assert "Function 'Sqrt' returned nan values in its 0th output" in message
    assert f"{__file__}:" in message and "test_a_nan_forward_output_names_the_op" in message


def test_a_non_finite_gradient_names_the_backward_and_where_its_forward_ran():
    x = nbprop.tensor([0.0, 4.0], dtype=F64, requires_grad=True)
    with detect_anomaly():
        y = nbprop.sqrt(x)  # finite forward, infinite gradient at 0
        with pytest.raises(RuntimeError, match=r"Function 'SqrtBackward' returned nan or infinite values in its "
                                               r"0th output .*test_autograd_anomaly.py:\d+"):
            y.sum().backward()


def test_infinite_forward_outputs_are_allowed_as_masks():
    scores = nbprop.tensor([[0.0, -np.inf, 1.0]], dtype=F64, requires_grad=True)
    with detect_anomaly():
        scores.softmax(1)[0, 0].backward()
    assert np.isfinite(scores.grad.numpy()).all()


def test_without_anomaly_mode_nothing_is_checked():
    x = nbprop.tensor([-1.0, 0.0], dtype=F64, requires_grad=True)
    nbprop.sqrt(x).sum().backward()
    assert np.isnan(x.grad.numpy()[0]) and np.isinf(x.grad.numpy()[1])


def test_a_diverging_training_run_is_stopped_at_the_first_non_finite_value():
    """The issue's case: lr=1e3 turns the weights to NaN within a few steps; anomaly mode stops it there."""
    nbprop.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 1))
    optimizer = nbprop.optim.SGD(model.parameters(), lr=1e3)
    x, y = nbprop.randn(16, 4), nbprop.randn(16, 1)
    with detect_anomaly(), pytest.raises(RuntimeError, match="returned nan"):
        for _ in range(50):
            optimizer.zero_grad()
            loss = ((model(x) - y) ** 2).mean()
            loss.backward()
            optimizer.step()


def test_an_error_inside_a_backward_carries_the_forward_traceback():
    class Failing(nbprop.Function):
        @staticmethod
        def forward(ctx, x):
            return x * 2

        @staticmethod
        def backward(ctx, grad_output):
            raise ValueError("broken backward")

    x = nbprop.tensor([1.0], dtype=F64, requires_grad=True)
    with detect_anomaly():
        y = Failing.apply(x)
        with pytest.raises(ValueError, match="broken backward") as raised:
            y.sum().backward()
    notes = "".join(getattr(raised.value, "__notes__", []))
    assert "Traceback of the forward call of Failing" in notes and "Failing.apply(x)" in notes


def test_set_detect_anomaly_as_a_function_and_as_a_context_manager():
    assert not nbprop.is_anomaly_enabled()
    with set_detect_anomaly(True, check_nan=False):
        assert nbprop.is_anomaly_enabled() and not nbprop.is_anomaly_check_nan_enabled()
        nbprop.sqrt(nbprop.tensor([-1.0], requires_grad=True))  # check_nan=False: no error
    assert not nbprop.is_anomaly_enabled() and nbprop.is_anomaly_check_nan_enabled()
    set_detect_anomaly(True)
    try:
        assert nbprop.is_anomaly_enabled()
    finally:
        set_detect_anomaly(False)


def test_detect_anomaly_warns_and_decorates():
    @detect_anomaly()
    def step(x):
        return nbprop.log(x)

    with pytest.warns(UserWarning, match="Anomaly Detection has been enabled"), pytest.raises(RuntimeError):
        step(nbprop.tensor([-1.0], requires_grad=True))
    assert not nbprop.is_anomaly_enabled()


@pytest.mark.torch
def test_the_same_backward_nan_is_an_error_in_pytorch_too():
    import torch

    def run(library, mode):
        """NaN from sqrt(-1): PyTorch raises in backward, nbprop already at the forward."""
        x = library.tensor([-1.0, 1.0], requires_grad=True)
        with mode():
            try:
                library.sqrt(x).sum().backward()
            except RuntimeError:
                return "raised"
        return "passed"

    assert run(torch, torch.autograd.detect_anomaly) == run(nbprop, detect_anomaly) == "raised"
