"""Module hooks against PyTorch: forward pre-hooks and hooks, full backward (pre-)hooks, call order, values,
gradients, replacement by return values, removal, always_call, and their errors."""

import warnings

import numpy as np
import pytest

import nbprop
from nbprop.hooks import RemovableHandle
from tests.helpers import assert_close

X = np.array([[0.5, -1.0, 2.0], [1.5, 0.25, -0.5]], dtype=np.float32)
Y = np.array([[2.0, -1.0], [0.5, 3.0]], dtype=np.float32)


def _mixer(lib):
    """A module with two tensor arguments, a number and a keyword, holding a Linear (PyTorch's weights)."""

    class Mixer(lib.nn.Module):
        def __init__(self):
            super().__init__()
            self.linear = lib.nn.Linear(3, 2)

        def forward(self, x, y, scale=1.0, *, shift=0.0):
            return self.linear(x) * y * scale + shift

    return Mixer()


def _pair():
    """The same Mixer in nbprop and PyTorch, and a function building the inputs in either library."""
    import torch

    torch.manual_seed(0)
    theirs = _mixer(torch)
    ours = _mixer(nbprop)
    ours.load_state_dict(theirs.state_dict())

    def inputs(lib, x_grad=True, y_grad=False):
        return lib.tensor(X, requires_grad=x_grad), lib.tensor(Y, requires_grad=y_grad)

    return ours, theirs, inputs


def _numpy(value):
    if value is None:
        return None
    return value.detach().numpy() if hasattr(value, "detach") else value


def _assert_same_structure(ours, theirs):
    """Two tuples (or values) of tensors/None/numbers with the same entries and values."""
    if isinstance(theirs, tuple):
        assert isinstance(ours, tuple) and len(ours) == len(theirs)
        for our_item, their_item in zip(ours, theirs):
            _assert_same_structure(our_item, their_item)
    elif theirs is None or not hasattr(theirs, "detach"):
        assert ours == theirs
    else:
        assert_close(_numpy(ours), _numpy(theirs))


# --------------------------------------------------------------------------------------------- forward


@pytest.mark.torch
def test_forward_hooks_replace_arguments_and_output_as_pytorch():
    ours, theirs, inputs = _pair()
    results = []
    for module, lib in ((ours, nbprop), (theirs, __import__("torch"))):
        module.register_forward_pre_hook(lambda m, args: (args[0] * 2,) + args[1:])  # tuple: replaces args
        module.register_forward_pre_hook(lambda m, args: None)  # None: keeps them
        module.register_forward_pre_hook(lambda m, args, kwargs: (args, {**kwargs, "shift": 1.0}), with_kwargs=True)
        module.register_forward_hook(lambda m, args, output: output - args[2])
        module.register_forward_hook(lambda m, args, kwargs, output: output * kwargs["shift"] * 3, with_kwargs=True)
        x, y = inputs(lib)
        output = module(x, y, 0.5)
        output.sum().backward()
        results.append((output, x.grad, module.linear.weight.grad))
    for our_value, their_value in zip(*results):
        assert_close(_numpy(our_value), _numpy(their_value))


@pytest.mark.torch
def test_a_single_value_from_a_pre_hook_becomes_the_only_argument():
    import torch

    for lib in (nbprop, torch):
        module = lib.nn.Linear(3, 2)
        module.register_forward_pre_hook(lambda m, args: lib.ones(1, 3))
        assert tuple(module(lib.zeros(5, 3)).shape) == (1, 2)


def _record_order(lib, module, events):
    """Hooks of every kind on `module` and its children that append what ran to `events`; their handles."""
    handles = []
    for name, child in module.named_modules():
        name = name or "top"
        handles += [
            child.register_forward_pre_hook(lambda m, args, name=name: events.append(f"pre {name}")),
            child.register_forward_pre_hook(lambda m, args, name=name: events.append(f"pre first {name}"),
                                            prepend=True),
            child.register_forward_hook(lambda m, args, output, name=name: events.append(f"forward {name}")),
            child.register_forward_hook(lambda m, args, output, name=name: events.append(f"forward first {name}"),
                                        prepend=True),
            child.register_full_backward_pre_hook(lambda m, grad_output, name=name: events.append(f"bpre {name}")),
            child.register_full_backward_hook(
                lambda m, grad_input, grad_output, name=name: events.append(f"backward {name}")),
            child.register_full_backward_hook(
                lambda m, grad_input, grad_output, name=name: events.append(f"backward first {name}"), prepend=True),
        ]
    return handles


@pytest.mark.torch
def test_call_order_and_removal_as_pytorch():
    import torch

    torch.manual_seed(0)
    theirs = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 2))
    ours = nbprop.nn.Sequential(nbprop.nn.Linear(3, 4), nbprop.nn.Tanh(), nbprop.nn.Linear(4, 2))
    ours.load_state_dict(theirs.state_dict())
    runs = []
    for lib, module in ((nbprop, ours), (torch, theirs)):
        events = []
        handles = _record_order(lib, module, events)
        x = lib.tensor(X, requires_grad=True)
        module(x).sum().backward()
        with_all = list(events)
        for handle in handles[::2]:
            handle.remove()
        handles[0].remove()  # a second time changes nothing
        events.clear()
        x.grad = None
        module(x).sum().backward()
        with_half = list(events)
        for handle in handles:
            handle.remove()
        events.clear()
        module(x).sum().backward()
        runs.append((with_all, with_half, events, x.grad))
    (our_all, our_half, our_none, our_grad), (their_all, their_half, their_none, their_grad) = runs
    assert our_all == their_all and len(our_all) == 4 * 7
    assert our_half == their_half and 0 < len(our_half) < len(our_all)
    assert our_none == their_none == []
    assert_close(_numpy(our_grad), _numpy(their_grad))


@pytest.mark.torch
def test_removing_some_hooks_keeps_the_others_in_order():
    import torch

    runs = []
    for lib in (nbprop, torch):
        module = lib.nn.Tanh()
        events = []
        handles = [module.register_forward_hook(lambda m, args, output, index=index: events.append(index))
                   for index in range(4)]
        handles[1].remove()
        with module.register_forward_hook(lambda m, args, output: events.append("scoped"), prepend=True):
            module(lib.zeros(2))
        module(lib.zeros(2))
        runs.append(events)
    assert runs[0] == runs[1] == ["scoped", 0, 2, 3, 0, 2, 3]


def test_handle_ids_increase_and_handles_remove_flags():
    module = nbprop.nn.Tanh()
    first = module.register_forward_hook(lambda *args: None, with_kwargs=True, always_call=True)
    second = module.register_forward_pre_hook(lambda *args: None, with_kwargs=True)
    assert isinstance(first, RemovableHandle) and second.id > first.id
    assert first.id in module._forward_hooks_with_kwargs and first.id in module._forward_hooks_always_called
    first.remove()
    second.remove()
    assert not (module._forward_hooks or module._forward_hooks_with_kwargs or module._forward_hooks_always_called
                or module._forward_pre_hooks or module._forward_pre_hooks_with_kwargs)


@pytest.mark.torch
def test_always_call_hooks_run_when_forward_raises():
    import torch

    runs = []
    for lib in (nbprop, torch):
        class Failing(lib.nn.Module):
            def forward(self, x):
                raise ValueError("forward failed")

        module = Failing()
        events = []
        module.register_forward_hook(lambda m, args, output: events.append(("plain", output)))
        module.register_forward_hook(lambda m, args, output: events.append(("always", output)), always_call=True)

        def failing_hook(m, args, output):
            raise KeyError("ignored")

        module.register_forward_hook(failing_hook, always_call=True)
        with pytest.raises(ValueError, match="forward failed"), warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            module(lib.zeros(1))
        runs.append((events, [str(warning.message) for warning in caught]))
    assert runs[0][0] == runs[1][0] == [("always", None)]
    assert len(runs[0][1]) == len(runs[1][1]) == 1 and "'ignored'" in runs[0][1][0]


def test_pre_hook_with_kwargs_must_return_args_and_kwargs():
    module = nbprop.nn.Tanh()
    module.register_forward_pre_hook(lambda m, args, kwargs: args, with_kwargs=True)
    with pytest.raises(RuntimeError, match=r"forward pre-hook must return None or a tuple of \(new_args, new_kwargs"):
        module(nbprop.zeros(2))


def test_modules_without_hooks_call_forward_directly():
    module = nbprop.nn.Tanh()
    handle = module.register_forward_hook(lambda m, args, output: output + 1)
    assert module(nbprop.zeros(1)).item() == 1.0
    handle.remove()
    assert module(nbprop.zeros(1)).item() == 0.0 and not module._forward_hooks


# -------------------------------------------------------------------------------------------- backward


def _backward_run(lib, module, inputs, replace_input=False, replace_output=False, x_grad=True, y_grad=False):
    """Backward through `module` with full backward hooks recording what they see; returns what they saw and
    the gradients that arrived."""
    seen = []

    def pre_hook(m, grad_output):
        seen.append(("pre", grad_output))
        return (grad_output[0] * 3,) if replace_output else None

    def hook(m, grad_input, grad_output):
        seen.append(("hook", grad_input, grad_output))
        if replace_input:
            return (None if grad_input[0] is None else grad_input[0] * -2,) + grad_input[1:]
        return None

    module.register_full_backward_pre_hook(pre_hook)
    module.register_full_backward_hook(hook)
    x, y = inputs(lib, x_grad=x_grad, y_grad=y_grad)
    output = module(x, y, 0.5, shift=0.25)
    (output * lib.tensor([[1.0, 2.0], [3.0, -1.0]])).sum().backward()
    return seen, (x.grad, y.grad, module.linear.weight.grad, module.linear.bias.grad)


@pytest.mark.torch
@pytest.mark.parametrize(("replace_input", "replace_output"), [(False, False), (True, False), (False, True),
                                                               (True, True)])
@pytest.mark.parametrize(("x_grad", "y_grad"), [(True, False), (True, True), (False, True)])
def test_full_backward_hooks_see_and_replace_gradients_as_pytorch(replace_input, replace_output, x_grad, y_grad):
    import torch

    ours, theirs, inputs = _pair()
    options = {"replace_input": replace_input, "replace_output": replace_output, "x_grad": x_grad,
               "y_grad": y_grad}
    our_seen, our_gradients = _backward_run(nbprop, ours, inputs, **options)
    their_seen, their_gradients = _backward_run(torch, theirs, inputs, **options)
    assert [event[0] for event in our_seen] == [event[0] for event in their_seen] == ["pre", "hook"]
    for ours_event, theirs_event in zip(our_seen, their_seen):
        _assert_same_structure(ours_event[1:], theirs_event[1:])
    _assert_same_structure(our_gradients, their_gradients)


@pytest.mark.torch
def test_backward_hook_without_inputs_that_require_grad_as_pytorch():
    import torch

    runs = []
    for lib in (nbprop, torch):
        torch.manual_seed(0)
        module = lib.nn.Linear(3, 2)
        seen = []
        module.register_full_backward_hook(lambda m, grad_input, grad_output: seen.append((grad_input, grad_output)))
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            module(lib.tensor(X)).sum().backward()
        runs.append((seen, [str(warning.message) for warning in caught]))
    (our_seen, our_warnings), (their_seen, their_warnings) = runs
    assert len(our_seen) == len(their_seen) == 1 and our_seen[0][0] == their_seen[0][0] == (None,)
    _assert_same_structure(our_seen[0][1], their_seen[0][1])
    assert len(our_warnings) == len(their_warnings) == 1
    assert our_warnings[0].startswith("Full backward hook is firing when gradients are computed with respect to")


@pytest.mark.torch
def test_tuple_outputs_with_non_tensors_as_pytorch():
    import torch

    runs = []
    for lib in (nbprop, torch):
        class Split(lib.nn.Module):
            def forward(self, x):
                return x * 2, "label", (x ** 2).sum()

        module = Split()
        seen = []
        module.register_full_backward_pre_hook(lambda m, grad_output: seen.append(grad_output))
        module.register_full_backward_hook(lambda m, grad_input, grad_output: seen.append((grad_input, grad_output)))
        x = lib.tensor(X, requires_grad=True)
        first, label, second = module(x)
        assert label == "label"
        (first.sum() + second).backward()
        runs.append((seen, x.grad))
    _assert_same_structure(tuple(runs[0][0]), tuple(runs[1][0]))
    _assert_same_structure(runs[0][1], runs[1][1])


def test_backward_hook_returning_the_wrong_number_of_gradients_raises():
    module = nbprop.nn.Linear(3, 2)
    module.register_full_backward_hook(lambda m, grad_input, grad_output: grad_input + grad_input)
    x = nbprop.tensor(X, requires_grad=True)
    with pytest.raises(RuntimeError, match="Backward hook returned an invalid number of grad_input, got 2, but "
                                           "expected 1"):
        module(x).sum().backward()
    pre = nbprop.nn.Linear(3, 2)
    pre.register_full_backward_pre_hook(lambda m, grad_output: (None, None))
    with pytest.raises(RuntimeError, match="Backward pre hook returned an invalid number of grad_output, got 2"):
        pre(x).sum().backward()


def test_backward_hooks_record_nothing_under_no_grad_and_are_removable():
    module = nbprop.nn.Linear(3, 2)
    calls = []
    handle = module.register_full_backward_hook(lambda *args: calls.append(args))
    with nbprop.no_grad():
        result = module(nbprop.tensor(X, requires_grad=True))
    assert result.grad_fn is None
    handle.remove()
    x = nbprop.tensor(X, requires_grad=True)
    output = module(x)
    assert output.grad_fn is not None and "BackwardHook" not in repr(output.grad_fn)
    output.sum().backward()
    assert calls == []


def test_backward_hooks_on_the_opaque_device():
    import opaque_device

    opaque_device.install()
    gradients = {}
    for device in ("cpu", "opaque"):
        nbprop.manual_seed(0)
        module = nbprop.nn.Linear(3, 2).to(device)
        module.register_full_backward_hook(lambda m, grad_input, grad_output: (grad_input[0] * 2,))
        module.register_full_backward_pre_hook(lambda m, grad_output: (grad_output[0] + 1,))
        x = nbprop.tensor(X, requires_grad=True, device=device)
        module(x).sum().backward()
        gradients[device] = (x.grad.cpu().numpy(), module.weight.grad.cpu().numpy())
    for cpu, opaque in zip(gradients["cpu"], gradients["opaque"]):
        np.testing.assert_array_equal(cpu, opaque)
