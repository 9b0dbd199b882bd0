"""float16 and bfloat16 as checkpoint storage dtypes: PyTorch's F16/BF16 safetensors files load into float32
tensors exactly; nbprop.save(..., dtype=) writes them rounded bit for bit as PyTorch's .half()/.bfloat16();
as tensor dtypes they give float32 (nbprop computes in float32/float64)."""

import pickle

import numpy as np
import pytest

import nbprop
from nbprop import dtypes


def _float32_values():
    """float32 values over the whole range: random bit patterns (no NaN), ties of both roundings, and the
    special values and boundaries of float16 and bfloat16."""
    rng = np.random.default_rng(0)
    bits = rng.integers(0, 2**32, 4000, dtype=np.uint64).astype(np.uint32)
    upper = rng.integers(0, 2**15, 200, dtype=np.uint64).astype(np.uint32) << 16
    ties = np.concatenate([upper | 0x8000, upper | 0x18000, upper | 0x7FFF, upper | 0x8001])  # bfloat16 ties
    values = np.concatenate([bits, ties]).view(np.float32)
    special = np.array([0.0, -0.0, 1.0, -1.0, np.inf, -np.inf, 65504.0, 65519.99, 65520.0, 1e5, 6.1e-5, 6e-8,
                        2.98e-8, 1e-9, 3.4028235e38, -3.4028235e38, 1.1754944e-38, 1e-45,
                        1 + 2.0**-11, 1 + 3 * 2.0**-11, 1 + 2.0**-8, 1 + 3 * 2.0**-8], dtype=np.float32)
    values = np.concatenate([values, special])
    # float16 ties (midpoints of neighbouring float16 values, exact in float32) and their float32 neighbours
    halves = rng.integers(0, 2**16, 500, dtype=np.uint64).astype(np.uint16).view(np.float16)
    halves = halves[np.isfinite(halves) & (np.abs(halves) < np.float16(65504))]
    middles = (halves.astype(np.float32) + np.nextafter(halves, np.float16(np.inf)).astype(np.float32)) / 2
    values = np.concatenate([values, middles, np.nextafter(middles, np.float32(np.inf)),
                             np.nextafter(middles, np.float32(-np.inf))])
    return values[~np.isnan(values)]


def _bits(torch_tensor):
    import torch

    return torch_tensor.view(torch.int16).numpy()


@pytest.mark.torch
@pytest.mark.parametrize(("dtype", "torch_name"), [(nbprop.bfloat16, "bfloat16"), (nbprop.float16, "float16"),
                                                   ("bfloat16", "bfloat16"), ("half", "float16")])
def test_save_rounds_as_torch_and_torch_reads_it(tmp_path, dtype, torch_name):
    import torch
    from safetensors.torch import load_file

    values = _float32_values()
    wide = np.random.default_rng(1).standard_normal(300) * 10.0 ** np.random.default_rng(2).integers(-9, 9, 300)
    wide = np.concatenate([wide, [1 + 2.0**-11 + 2.0**-40, 1 + 2.0**-8 + 2.0**-40]])  # float64 double rounding
    path = tmp_path / "half.safetensors"
    state = {"single": nbprop.tensor(values), "double": nbprop.tensor(wide), "nan": nbprop.tensor([np.nan, -np.nan]),
             "steps": nbprop.tensor([1, 2, 3]), "mask": nbprop.tensor([True, False])}
    nbprop.save(state, path, dtype=dtype)
    loaded = load_file(path)
    torch_dtype = getattr(torch, torch_name)
    for key, source in (("single", values), ("double", wide)):
        assert loaded[key].dtype == torch_dtype
        np.testing.assert_array_equal(_bits(loaded[key]), _bits(torch.tensor(source).to(torch_dtype)))
    assert loaded["nan"].dtype == torch_dtype and torch.isnan(loaded["nan"]).all()
    assert loaded["steps"].dtype == torch.int64 and loaded["steps"].tolist() == [1, 2, 3]
    assert loaded["mask"].dtype == torch.bool and loaded["mask"].tolist() == [True, False]
    # nbprop reads its own file back into float32, exactly the rounded values.
    ours = nbprop.load(path)
    assert list(ours) == list(state)
    assert ours["single"].dtype == nbprop.float32 and ours["double"].dtype == nbprop.float32
    np.testing.assert_array_equal(ours["single"].numpy(), torch.tensor(values).to(torch_dtype).float().numpy())
    np.testing.assert_array_equal(ours["double"].numpy(), torch.tensor(wide).to(torch_dtype).float().numpy())
    assert ours["steps"].dtype == nbprop.int64


@pytest.mark.torch
def test_torch_half_checkpoints_load_exactly_into_float32(tmp_path):
    import torch
    from safetensors.torch import save_file

    values = torch.tensor(_float32_values())
    path = tmp_path / "torch.safetensors"
    save_file({"half": values.half(), "brain": values.bfloat16().reshape(-1, 2)[:, 0].contiguous(),
               "nan_half": torch.tensor([float("nan")]).half(), "nan_brain": torch.tensor([float("nan")]).bfloat16()},
              path)
    loaded = nbprop.load(path)
    assert loaded["half"].dtype == nbprop.float32 and loaded["brain"].dtype == nbprop.float32
    np.testing.assert_array_equal(loaded["half"].numpy(), values.half().float().numpy())
    np.testing.assert_array_equal(loaded["brain"].numpy(), values.bfloat16().reshape(-1, 2)[:, 0].float().numpy())
    assert np.isnan(loaded["nan_half"].numpy()).all() and np.isnan(loaded["nan_brain"].numpy()).all()


@pytest.mark.torch
def test_half_state_dict_of_a_model_round_trips(tmp_path):
    import torch

    nbprop.manual_seed(0)
    model = nbprop.nn.Linear(5, 3)
    path = tmp_path / "model.safetensors"
    nbprop.save(model.state_dict(), path, dtype=nbprop.bfloat16)
    float32_path = tmp_path / "model32.safetensors"
    nbprop.save(model.state_dict(), float32_path)
    assert path.stat().st_size < float32_path.stat().st_size  # two bytes a value instead of four
    restored = nbprop.nn.Linear(5, 3)
    restored.load_state_dict(nbprop.load(path))
    expected = torch.tensor(model.weight.detach().numpy()).bfloat16().float().numpy()
    np.testing.assert_array_equal(restored.weight.detach().numpy(), expected)
    torch_model = torch.nn.Linear(5, 3)
    from safetensors.torch import load_file

    torch_model.load_state_dict({key: value.float() for key, value in load_file(path).items()})
    np.testing.assert_array_equal(torch_model.weight.detach().numpy(), expected)


def test_float16_numpy_arrays_are_saved_as_float16(tmp_path):
    import safetensors

    path = tmp_path / "numpy.safetensors"
    halves = np.array([0.5, -2.0, 65504.0], np.float16)
    nbprop.save({"h": halves}, path)
    with safetensors.safe_open(path, "numpy") as handle:
        assert handle.get_tensor("h").dtype == np.float16
    loaded = nbprop.load(path)["h"]
    assert loaded.dtype == nbprop.float32 and loaded.tolist() == halves.astype(np.float32).tolist()
    nbprop.save({"h": halves}, path, dtype=nbprop.float32)
    with safetensors.safe_open(path, "numpy") as handle:
        assert handle.get_tensor("h").dtype == np.float32


def test_save_dtype_errors(tmp_path):
    path = tmp_path / "x.safetensors"
    for bad in (nbprop.int64, "int64", "bfloat", nbprop.bool, object()):
        with pytest.raises(TypeError, match="save: dtype must be a floating dtype"):
            nbprop.save({"x": nbprop.ones(2)}, path, dtype=bad)
    assert not path.exists()


def test_storage_dtypes_as_tensor_dtypes_give_float32():
    """No half-precision kernels: a tensor asked for in float16 or bfloat16 holds float32."""
    assert nbprop.float16 == np.float16 and nbprop.half is nbprop.float16
    assert repr(nbprop.bfloat16) == "nbprop.bfloat16" and nbprop.bfloat16.itemsize == 2
    assert pickle.loads(pickle.dumps(nbprop.bfloat16)) is nbprop.bfloat16
    for dtype in (nbprop.float16, nbprop.bfloat16, "float16", "half", "bfloat16", np.float16):
        assert dtypes.as_dtype(dtype) == nbprop.float32
        assert nbprop.tensor([1.5], dtype=dtype).dtype == nbprop.float32
        if not isinstance(dtype, str):  # to() reads a string as a device, as PyTorch does
            assert nbprop.ones(2).to(dtype).dtype == nbprop.float32
    assert nbprop.from_numpy(np.ones(2, np.float16)).dtype == nbprop.float32
