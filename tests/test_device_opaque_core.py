"""The core on the opaque test device: every elementwise op of the table, arithmetic with broadcasting and
promotion, comparisons, movement, reductions and in-place ops give the CPU's results bit for bit; moving
between devices is differentiable; mixing devices in one op is an error naming both."""

import operator

import numpy as np
import opaque_device
import pytest
from opaque_device import assert_same_on_opaque

import nbprop
from nbprop.ops.unary import UNARY

F64 = np.float64


@pytest.fixture(scope="module", autouse=True)
def opaque():
    return opaque_device.install()


def _values(*shape, low=-2.0, high=2.0, dtype=F64, seed=0):
    return np.random.default_rng(seed).uniform(low, high, shape).astype(dtype)


@pytest.mark.parametrize("name", sorted(UNARY))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_every_unary_op_of_the_table(name, dtype):
    low = 0.1 if name in ("log", "sqrt", "rsqrt", "log1p") else -2.0
    assert_same_on_opaque(UNARY[name], _values(3, 5, low=low, dtype=dtype))
    assert_same_on_opaque(lambda x: UNARY[name](x.t()), _values(4, 3, low=low, dtype=dtype))  # strided input


@pytest.mark.parametrize("operation", [operator.add, operator.sub, operator.mul, operator.truediv, operator.pow,
                                       operator.mod, nbprop.maximum, nbprop.minimum, nbprop.atan2, nbprop.hypot])
def test_binary_ops_with_broadcasting(operation):
    first, second = _values(3, 1, 4, low=0.5), _values(5, 1, low=0.5, seed=1)
    assert_same_on_opaque(operation, first, second)
    assert_same_on_opaque(lambda a: operation(a, 1.5), first)
    assert_same_on_opaque(lambda a: operation(2.5, a), first)


def test_comparisons_logic_where_clamp_and_promotion():
    a, b = _values(4, 3), _values(4, 3, seed=1)
    assert_same_on_opaque(lambda x, y: ((x < y) & (x > 0)) | ~(x == y), a, b)
    assert_same_on_opaque(lambda x, y: nbprop.where(x > y, x, y * 2), a, b)
    assert_same_on_opaque(lambda x: x.clamp(-0.5, 0.5) + x.clamp(min=0.0), a)
    assert_same_on_opaque(lambda x, n: x * n + n // 2 + n % 3, a, np.arange(12).reshape(4, 3), grads=[True, False])
    assert_same_on_opaque(lambda x: x.to(nbprop.float32).exp().double(), a)


def test_movement_ops():
    a = _values(2, 3, 4)
    assert_same_on_opaque(lambda x: x.reshape(6, 4).t().reshape(-1) * 2, a)
    assert_same_on_opaque(lambda x: x.permute(2, 0, 1).flatten(1).unsqueeze(0).squeeze(0), a)
    assert_same_on_opaque(lambda x: nbprop.cat([x, x * 2], 1).split(2, 1)[1], a)
    assert_same_on_opaque(lambda x: nbprop.stack([x, -x], 3).chunk(2, 2)[1], a)
    assert_same_on_opaque(lambda x: x[:, :1].expand(2, 5, 4) + 1, a)
    assert_same_on_opaque(lambda x: x.transpose(0, 2).contiguous().view(4, 6), a)
    assert_same_on_opaque(lambda x: x[1, ::2, 1:3], a)


@pytest.mark.parametrize("reduction", ["sum", "mean", "prod", "var", "std", "logsumexp"])
def test_reductions_over_dims(reduction):
    a = _values(3, 4, 5, low=0.5)
    for dim in (None, 0, (0, 2), -1):
        if reduction == "logsumexp" and dim is None:
            continue
        assert_same_on_opaque(lambda x, dim=dim: getattr(x, reduction)(*(() if dim is None else (dim,))), a)
    assert_same_on_opaque(lambda x: x.sum(1, keepdim=True) * x, a)


def test_in_place_ops_and_accumulation():
    def chain(x):
        y = x * 1
        y.add_(1).mul_(2).clamp_(-1.0, 3.0)
        y.exp_()
        y[0] = 7.0
        return y.sin() + (x * x).sum()

    assert_same_on_opaque(chain, _values(3, 2))


def test_moving_between_devices_is_differentiable_and_copies():
    x = nbprop.tensor(_values(3), requires_grad=True)
    moved = x.to("opaque")
    assert moved.device == "opaque" and moved.requires_grad
    (moved.exp().cpu() * 2).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), (x.detach().exp() * 2).numpy())
    assert x.grad.device == "cpu"
    host = nbprop.tensor([1.0, 2.0])
    on_device = host.to("opaque", nbprop.float64)
    host.add_(1)  # a transfer copies: the device copy keeps the old values
    assert on_device.dtype == nbprop.float64 and on_device.cpu().tolist() == [1.0, 2.0]
    assert repr(on_device) == "tensor([1., 2.], device='opaque', dtype=nbprop.float64)"
    assert on_device.to("opaque") is on_device and on_device.sum().item() == 3.0


def test_mixing_devices_names_both_and_host_conversion_refuses():
    host, device = nbprop.ones(2), nbprop.ones(2, device="opaque")
    for operation in (operator.add, operator.mul, nbprop.maximum, lambda a, b: nbprop.cat([a, b])):
        with pytest.raises(RuntimeError, match="cpu and opaque|opaque and cpu"):
            operation(host, device)
    with pytest.raises(RuntimeError, match="cpu and opaque|opaque and cpu"):
        host.requires_grad_() @ device
    with pytest.raises(TypeError, match="numpy\\(\\): cannot convert a tensor on device 'opaque'"):
        device.numpy()
    with pytest.raises(TypeError, match="on device 'opaque' to a NumPy array"):
        np.asarray(device)
    with pytest.raises(RuntimeError, match="to\\(\\): device 'cuda' is not available"):
        host.to("cuda")
    with pytest.raises(TypeError):
        np.exp(device._data)  # the harness itself: NumPy on device data fails loudly
    with pytest.raises(opaque_device.OpaqueError):
        device._data.reshape(2)
