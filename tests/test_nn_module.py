"""Module and Parameter: the registry, iteration, modes, state dicts, conversion, repr, and the containers."""

import copy

import numpy as np
import pytest

import nbprop
from nbprop.nn.container import ModuleDict, ModuleList, Sequential
from nbprop.nn.dropout import Dropout
from nbprop.nn.linear import Flatten, Identity, Linear
from nbprop.nn.module import Module
from nbprop.nn.parameter import Parameter
from tests.helpers import assert_close


class Block(Module):
    def __init__(self):
        super().__init__()
        self.fc = Linear(3, 4)
        self.scale = Parameter(nbprop.ones(4))
        self.register_buffer("running_mean", nbprop.zeros(4))
        self.register_buffer("scratch", nbprop.zeros(2), persistent=False)

    def forward(self, x):
        return self.fc(x) * self.scale + self.running_mean


class Net(Module):
    def __init__(self):
        super().__init__()
        self.block = Block()
        self.head = Sequential(Linear(4, 2), Dropout(0.5))


# -------------------------------------------------------------------------------------------- Parameter


def test_parameter_shares_storage_and_is_leaf():
    data = nbprop.zeros(3)
    parameter = Parameter(data)
    assert isinstance(parameter, nbprop.Tensor)
    assert parameter.requires_grad and parameter.is_leaf and parameter.grad_fn is None
    with nbprop.no_grad():
        parameter.add_(1.0)
    assert data.tolist() == [1.0, 1.0, 1.0]
    assert Parameter(data, requires_grad=False).requires_grad is False
    assert Parameter().shape == (0,)
    assert repr(parameter).startswith("Parameter containing:\ntensor(")


def test_parameter_errors_and_ops_give_plain_tensors():
    with pytest.raises(TypeError, match="expects a Tensor"):
        Parameter(np.zeros(3))
    with pytest.raises(RuntimeError, match="only floating-point"):
        Parameter(nbprop.arange(3))
    parameter = Parameter(nbprop.ones(2))
    result = parameter * 2
    assert type(result) is nbprop.Tensor and result.grad_fn is not None
    result.sum().backward()
    assert parameter.grad.tolist() == [2.0, 2.0]


def test_parameter_deepcopy():
    parameter = Parameter(nbprop.ones(2))
    copied = copy.deepcopy(parameter)
    assert isinstance(copied, Parameter) and copied.requires_grad
    with nbprop.no_grad():
        copied.mul_(3.0)
    assert parameter.tolist() == [1.0, 1.0]


# --------------------------------------------------------------------------------------------- registry


def test_registry_order_and_names():
    net = Net()
    assert [name for name, _ in net.named_parameters()] == [
        "block.scale", "block.fc.weight", "block.fc.bias", "head.0.weight", "head.0.bias"]
    assert [name for name, _ in net.named_buffers()] == ["block.running_mean", "block.scratch"]
    assert [name for name, _ in net.named_children()] == ["block", "head"]
    assert [name for name, _ in net.named_modules()] == ["", "block", "block.fc", "head", "head.0", "head.1"]
    assert len(list(net.parameters())) == 5 and len(list(net.parameters(recurse=False))) == 0
    assert len(list(net.modules())) == 6 and len(list(net.children())) == 2
    names = [name for name, _ in net.block.named_parameters(prefix="x")]
    assert names == ["x.scale", "x.fc.weight", "x.fc.bias"]


def test_state_dict_keys_persistence_and_sharing():
    net = Net()
    state = net.state_dict()
    assert list(state) == ["block.scale", "block.running_mean", "block.fc.weight", "block.fc.bias",
                           "head.0.weight", "head.0.bias"]
    entry = state["block.fc.weight"]
    assert not entry.requires_grad and type(entry) is nbprop.Tensor
    with nbprop.no_grad():
        net.block.fc.weight.fill_(2.0)
    assert entry.tolist()[0][0] == 2.0  # detached, but sharing storage as in PyTorch
    assert net.state_dict(keep_vars=True)["block.fc.weight"] is net.block.fc.weight


def test_shared_parameters_listed_once():
    shared = Linear(2, 2)
    model = Sequential(shared, shared)
    assert len(list(model.parameters())) == 2
    assert [name for name, _ in model.named_modules()] == ["", "0"]
    assert list(model.state_dict()) == ["0.weight", "0.bias", "1.weight", "1.bias"]
    tied = Module()
    tied.a = Parameter(nbprop.ones(1))
    tied.b = tied.a
    assert [name for name, _ in tied.named_parameters()] == ["a"]
    assert len(list(tied.named_parameters(remove_duplicate=False))) == 2


def test_setattr_getattr_delattr():
    module = Module()
    module.weight = Parameter(nbprop.ones(2))
    module.child = Linear(1, 1)
    module.register_buffer("stat", nbprop.zeros(1))
    module.plain = 3
    assert "weight" in module._parameters and "child" in module._modules and "stat" in module._buffers
    assert "weight" not in module.__dict__ and module.plain == 3
    module.stat = nbprop.ones(1)
    assert module._buffers["stat"].tolist() == [1.0]
    module.weight = None
    assert module.weight is None and list(module.parameters()) == list(module.child.parameters())
    # Re-assigning a name as another kind moves it between registries.
    module.child = Parameter(nbprop.zeros(1))
    assert "child" not in module._modules and "child" in module._parameters
    del module.child
    del module.stat
    with pytest.raises(AttributeError, match="no attribute 'child'"):
        module.child  # noqa: B018
    assert "stat" not in module._buffers
    with pytest.raises(AttributeError, match="no attribute 'missing'"):
        module.missing  # noqa: B018


def test_registry_errors():
    module = Module()
    module.weight = Parameter(nbprop.ones(2))
    with pytest.raises(TypeError, match=r"cannot assign 'Tensor' as parameter 'weight'"):
        module.weight = nbprop.ones(2)
    with pytest.raises(TypeError, match="Parameter or None required"):
        module.register_parameter("other", nbprop.ones(2))
    with pytest.raises(KeyError, match='contain "\\."'):
        module.register_buffer("a.b", nbprop.ones(1))
    with pytest.raises(KeyError, match="be empty string"):
        module.register_parameter("", None)
    with pytest.raises(KeyError, match="already exists"):
        module.register_buffer("weight", nbprop.ones(1))
    with pytest.raises(TypeError, match="buffer 'buf'"):
        module.register_buffer("buf", [1.0])
    with pytest.raises(TypeError, match="is not a Module subclass"):
        module.add_module("child", 3)
    with pytest.raises(ValueError, match="non-leaf"):
        module.register_parameter("derived", _non_leaf_parameter())

    class Early(Module):
        def __init__(self):
            self.weight = Parameter(nbprop.ones(1))

    with pytest.raises(AttributeError, match="before Module.__init__"):
        Early()
    with pytest.raises(NotImplementedError, match="missing the required \"forward\""):
        Module()(1)


def _non_leaf_parameter():
    parameter = Parameter(nbprop.ones(1))
    parameter.grad_fn = (nbprop.ones(1, requires_grad=True) * 2).grad_fn
    return parameter


# -------------------------------------------------------------------------------------- modes and grads


def test_train_eval_apply_requires_grad_zero_grad():
    net = Net()
    assert all(module.training for module in net.modules())
    assert net.eval() is net and not any(module.training for module in net.modules())
    net.train()
    assert net.head[1].training
    with pytest.raises(ValueError, match="boolean"):
        net.train("no")
    visited = []
    net.apply(lambda module: visited.append(type(module).__name__))
    assert visited == ["Linear", "Block", "Linear", "Dropout", "Sequential", "Net"]
    net.requires_grad_(False)
    assert not any(parameter.requires_grad for parameter in net.parameters())
    net.requires_grad_()
    net.eval()
    net.block(nbprop.ones(2, 3)).sum().backward()
    weight = net.block.fc.weight
    gradient = weight.grad
    net.zero_grad(set_to_none=False)
    assert weight.grad is gradient and not gradient.numpy().any()
    net.zero_grad()
    assert weight.grad is None


# --------------------------------------------------------------------------------------- load_state_dict


def test_load_state_dict_round_trip_in_place():
    source, target = Net(), Net()
    with nbprop.no_grad():
        source.block.running_mean.fill_(0.5)
    weight = target.block.fc.weight
    version = weight._version
    result = target.load_state_dict(source.state_dict())
    assert result.missing_keys == [] and result.unexpected_keys == []
    assert target.block.fc.weight is weight and weight._version > version
    for (name, a), (_, b) in zip(source.state_dict().items(), target.state_dict().items()):
        assert np.array_equal(a.numpy(), b.numpy()), name
    x = nbprop.randn(2, 3)
    assert np.array_equal(source.block(x).detach().numpy(), target.block(x).detach().numpy())


def test_load_state_dict_strict_errors_list_every_key():
    net = Net()
    state = net.state_dict()
    del state["block.fc.bias"]
    state["block.extra"] = nbprop.zeros(1)
    state["head.0.weight"] = nbprop.zeros(3, 3)
    before = net.block.scale.tolist()
    state["block.scale"] = nbprop.full((4,), 7.0)
    with pytest.raises(RuntimeError) as error:
        net.load_state_dict(state)
    message = str(error.value)
    assert message.startswith("Error(s) in loading state_dict for Net:")
    assert 'Missing key(s) in state_dict: "block.fc.bias".' in message
    assert 'Unexpected key(s) in state_dict: "block.extra".' in message
    assert ("size mismatch for head.0.weight: copying a param with shape (3, 3) from checkpoint, the shape "
            "in current model is (2, 4).") in message
    assert net.block.scale.tolist() == before  # nothing is copied when the load fails


def test_load_state_dict_non_strict():
    net = Net()
    state = {"block.scale": nbprop.full((4,), 2.0), "nonsense": nbprop.zeros(1)}
    result = net.load_state_dict(state, strict=False)
    assert result.unexpected_keys == ["nonsense"]
    assert "block.fc.weight" in result.missing_keys and len(result.missing_keys) == 5
    assert net.block.scale.tolist() == [2.0] * 4
    with pytest.raises(RuntimeError, match="size mismatch for block.scale"):
        net.load_state_dict({"block.scale": nbprop.zeros(5)}, strict=False)
    with pytest.raises(RuntimeError, match="expected a Tensor or array-like"):
        net.load_state_dict({"block.scale": "text"}, strict=False)
    with pytest.raises(TypeError, match="dict-like"):
        net.load_state_dict([1, 2])


def test_load_state_dict_non_persistent_and_casts():
    block = Block()
    assert "scratch" not in block.state_dict()
    result = block.load_state_dict({**block.state_dict(), "scratch": nbprop.ones(2)}, strict=False)
    assert result.unexpected_keys == ["scratch"]
    state = {key: np.asarray(value.numpy(), dtype=np.float64) for key, value in block.state_dict().items()}
    state["scale"][:] = 3.0
    block.load_state_dict(state)
    assert block.scale.dtype == np.float32 and block.scale.tolist() == [3.0] * 4


@pytest.mark.torch
def test_load_pytorch_state_dict_directly():
    import torch

    torch_model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2))
    model = Sequential(Linear(3, 4), Identity(), Linear(4, 2))
    assert list(model.state_dict()) == list(torch_model.state_dict())
    model.load_state_dict(torch_model.state_dict())
    assert_close(model[2].weight, torch_model[2].weight.detach().numpy())


# ------------------------------------------------------------------------------------------- conversion


def test_to_double_keeps_parameter_objects():
    net = Net()
    weight = net.block.fc.weight
    net.block(nbprop.ones(1, 3)).sum().backward()
    assert net.double() is net
    assert net.block.fc.weight is weight and weight.dtype == np.float64 and weight.grad.dtype == np.float64
    assert net.block.running_mean.dtype == np.float64
    net.to(nbprop.float32)
    assert weight.dtype == np.float32
    net.to("cpu", dtype="float64")
    assert weight.dtype == np.float64
    net.float()
    net.to(nbprop.zeros(1, dtype=nbprop.float64))
    assert weight.dtype == np.float64
    with pytest.raises(TypeError, match="floating point dtypes"):
        net.to(nbprop.int64)
    with pytest.raises(RuntimeError, match="not available"):
        net.to("cuda")
    index = Module()
    index.register_buffer("count", nbprop.zeros(1, dtype=nbprop.int64))
    index.double()
    assert index.count.dtype == np.int64


# ---------------------------------------------------------------------------------------------- repr


def test_repr_matches_pytorch_layout():
    model = Sequential(Linear(2, 3), Sequential(Dropout(0.25), Flatten()), Identity())
    assert repr(model) == (
        "Sequential(\n"
        "  (0): Linear(in_features=2, out_features=3, bias=True)\n"
        "  (1): Sequential(\n"
        "    (0): Dropout(p=0.25, inplace=False)\n"
        "    (1): Flatten(start_dim=1, end_dim=-1)\n"
        "  )\n"
        "  (2): Identity()\n"
        ")"
    )


@pytest.mark.torch
def test_repr_equals_pytorch():
    import torch

    ours = Sequential(Linear(2, 3, bias=False), Dropout(0.1), ModuleList([Identity(), Flatten(0)]))
    theirs = torch.nn.Sequential(torch.nn.Linear(2, 3, bias=False), torch.nn.Dropout(0.1),
                                 torch.nn.ModuleList([torch.nn.Identity(), torch.nn.Flatten(0)]))
    assert repr(ours) == repr(theirs)


# ----------------------------------------------------------------------------------------- containers


def test_sequential():
    first, second, third = Linear(2, 3), Identity(), Linear(3, 1)
    model = Sequential(first, second, third)
    assert len(model) == 3 and model[0] is first and model[-1] is third
    assert list(model) == [first, second, third]
    sliced = model[1:]
    assert isinstance(sliced, Sequential) and list(sliced) == [second, third]
    x = nbprop.randn(4, 2)
    assert_close(model(x), third(first(x)))
    del model[1]
    assert list(model._modules) == ["0", "1"] and model[1] is third
    model.insert(1, second)
    assert model[1] is second and list(model._modules) == ["0", "1", "2"]
    model.append(Identity())
    model[3] = Flatten()
    assert isinstance(model[3], Flatten)
    with pytest.raises(IndexError, match="out of range"):
        model[7]  # noqa: B018
    from collections import OrderedDict

    named = Sequential(OrderedDict([("fc", Linear(2, 2)), ("out", Identity())]))
    assert list(named.state_dict()) == ["fc.weight", "fc.bias"]


def test_module_list_and_dict():
    layers = ModuleList([Linear(2, 2) for _ in range(3)])
    assert len(layers) == 3 and len(list(layers.parameters())) == 6
    layers.append(Identity())
    layers += [Flatten()]
    assert isinstance(layers[-1], Flatten) and len(layers) == 5
    del layers[0]
    assert list(layers._modules) == ["0", "1", "2", "3"]
    layers.insert(0, Identity())
    assert isinstance(layers[0], Identity) and len(layers) == 5
    assert isinstance(layers.pop(), Flatten)
    with pytest.raises(TypeError, match="iterable"):
        layers.extend(Linear(1, 1))
    with pytest.raises(NotImplementedError):
        layers(1)
    table = ModuleDict({"a": Linear(1, 2), "b": Identity()})
    table["c"] = Flatten()
    assert list(table) == ["a", "b", "c"] and "b" in table and len(table) == 3
    assert list(table.state_dict()) == ["a.weight", "a.bias"]
    assert isinstance(table.pop("c"), Flatten) and list(table.keys()) == ["a", "b"]
    table.update([("d", Identity())])
    assert [key for key, _ in table.items()] == ["a", "b", "d"]
    with pytest.raises(ValueError, match="pair"):
        table.update([Identity()])


def test_deep_nesting_is_iterative():
    model = Identity()
    for _ in range(3000):
        outer = Sequential(model)
        model = outer
    assert len(list(model.modules())) == 3001
    assert model.state_dict() == {}


def test_deepcopy_and_pickle_module():
    import pickle

    model = Sequential(Linear(2, 3), Linear(3, 1))
    for clone in (copy.deepcopy(model), pickle.loads(pickle.dumps(model))):
        assert isinstance(clone[0].weight, Parameter) and clone[0].weight is not model[0].weight
        assert list(clone.state_dict()) == list(model.state_dict())
        x = nbprop.randn(4, 2)
        assert np.array_equal(clone(x).detach().numpy(), model(x).detach().numpy())
