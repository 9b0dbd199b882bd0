"""inference_mode: records nothing (even under enable_grad), nests with the grad modes and restores them as
PyTorch's does, as a context manager and as a decorator with and without arguments."""

import threading

import pytest

import nbprop


def _state(lib):
    return lib.is_grad_enabled(), lib.is_inference_mode_enabled()


def _scenario(lib):
    """The modes seen in a nesting of inference_mode with the grad modes, and whether ops recorded."""
    x = lib.ones(2, requires_grad=True)
    seen = [_state(lib)]
    with lib.inference_mode():
        seen.append(_state(lib))
        seen.append((x * 2).requires_grad)
        with lib.inference_mode(False):
            seen.append(_state(lib))
            seen.append((x * 2).requires_grad)
        with lib.no_grad():
            seen.append(_state(lib)[1])
        seen.append(_state(lib))
    with lib.no_grad():
        with lib.inference_mode(False):
            seen.append(_state(lib))
            seen.append((x * 2).requires_grad)
        with lib.inference_mode(True):
            seen.append(_state(lib))
        seen.append(_state(lib))
    with lib.inference_mode(mode=False):
        seen.append(_state(lib))
    seen.append(_state(lib))
    return seen


@pytest.mark.torch
def test_modes_nest_as_in_pytorch():
    import torch

    assert _scenario(nbprop) == _scenario(torch)


@pytest.mark.torch
def test_decorators_as_in_pytorch():
    import torch

    results = []
    for lib in (nbprop, torch):
        @lib.inference_mode
        def bare(x):
            return (x * 2).requires_grad, _state(lib)

        @lib.inference_mode()
        def called(x):
            return (x * 2).requires_grad, _state(lib)

        @lib.inference_mode(False)
        def off(x):
            return (x * 2).requires_grad, _state(lib)

        x = lib.ones(1, requires_grad=True)
        results.append((bare(x), called(x), off(x), _state(lib), bare.__name__))
    assert results[0] == results[1]
    assert results[0][0] == (False, (False, True)) and results[0][-1] == "bare"


def test_enable_grad_inside_inference_mode_records_nothing():
    x = nbprop.ones(2, requires_grad=True)
    with nbprop.inference_mode():
        with nbprop.enable_grad():
            assert not (x * 2).requires_grad
        with nbprop.set_grad_enabled(True):
            assert not (x * 2).requires_grad

        @nbprop.enable_grad()
        def decorated():
            return (x * 2).requires_grad

        assert not decorated()
    assert (x * 2).requires_grad


def test_tensors_made_in_inference_mode_are_ordinary_tensors():
    """The documented difference: no inference tensors, so results can be used in recorded ops afterwards."""
    weight = nbprop.tensor([1.0, 2.0], requires_grad=True)
    with nbprop.inference_mode():
        features = nbprop.tensor([3.0, 4.0]) * 2
    loss = (features * weight).sum()
    loss.backward()
    assert weight.grad.tolist() == [6.0, 8.0]
    features.add_(1.0)  # PyTorch refuses in-place changes of an inference tensor outside inference mode
    assert features.tolist() == [7.0, 9.0]


def test_modes_are_restored_after_an_error_and_are_per_thread():
    with pytest.raises(ValueError), nbprop.inference_mode():
        raise ValueError("inside")
    assert _state(nbprop) == (True, False)

    seen = []
    with nbprop.inference_mode():
        thread = threading.Thread(target=lambda: seen.append(_state(nbprop)))
        thread.start()
        thread.join()
    assert seen == [(True, False)]


def test_clone_gives_the_same_mode():
    mode = nbprop.inference_mode(False)
    clone = mode.clone()
    assert isinstance(clone, nbprop.inference_mode) and clone.mode is False
