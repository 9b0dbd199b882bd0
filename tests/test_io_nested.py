"""nbprop.save/load of nested checkpoints: the structure comes back as saved, no pickle, clear errors, atomic."""

import json
import math
import os
import struct
from collections import OrderedDict

import numpy as np
import pytest
import safetensors.numpy

import nbprop
from nbprop import io, nn, optim


def _trained(seed=0):
    """A model, its Adam optimizer and StepLR scheduler after two steps."""
    nbprop.manual_seed(seed)
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    optimizer = optim.Adam(model.parameters(), lr=1e-2, betas=(0.8, 0.9))
    scheduler = optim.lr_scheduler.StepLR(optimizer, 1, gamma=0.5)
    inputs = nbprop.randn(5, 3)
    for _ in range(2):
        optimizer.zero_grad()
        model(inputs).pow(2).mean().backward()
        optimizer.step()
        scheduler.step()
    return model, optimizer, scheduler, inputs


def _assert_same(saved, loaded, where="obj"):
    """Equal structure, container types, key types and order, values and tensor dtypes (NaN equal to NaN)."""
    assert type(loaded) is (dict if type(saved) not in (OrderedDict, list, tuple) and isinstance(saved, dict)
                            else type(saved)) or isinstance(saved, nbprop.Tensor), where
    if isinstance(saved, nbprop.Tensor):
        assert isinstance(loaded, nbprop.Tensor) and loaded.dtype == saved.dtype and loaded.shape == saved.shape, where
        assert np.array_equal(loaded.numpy(), saved.numpy(), equal_nan=saved.dtype.kind == "f"), where
    elif isinstance(saved, dict):
        assert list(loaded) == list(saved) and [type(key) for key in loaded] == [type(key) for key in saved], where
        for key in saved:
            _assert_same(saved[key], loaded[key], f"{where}[{key!r}]")
    elif isinstance(saved, (list, tuple)):
        assert len(loaded) == len(saved), where
        for index, (first, second) in enumerate(zip(saved, loaded)):
            _assert_same(first, second, f"{where}[{index}]")
    elif isinstance(saved, float) and math.isnan(saved):
        assert isinstance(loaded, float) and math.isnan(loaded), where
    else:
        assert type(loaded) is type(saved) and loaded == saved, where
        if isinstance(saved, float):
            assert math.copysign(1.0, loaded) == math.copysign(1.0, saved), where


def test_checkpoint_round_trips_with_its_types_and_resumes_the_optimizer(tmp_path):
    model, optimizer, scheduler, inputs = _trained()
    plateau = optim.lr_scheduler.ReduceLROnPlateau(optimizer)  # holds best = inf and mode_worse = inf
    checkpoint = {
        "model": model.state_dict(), "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
        "plateau": plateau.state_dict(), "epoch": 3, "rng": nbprop.get_rng_state(),
        "misc": (1, [2.5, None, True, "text"], {"nested": (), "empty": [], 7: -0.0}, float("nan"), -math.inf,
                 2**70, np.float32(0.5), np.int64(4), np.ones(2)),
    }
    path = tmp_path / "checkpoint.safetensors"
    io.save(checkpoint, path)
    loaded = io.load(path)
    expected = dict(checkpoint)
    expected["misc"] = checkpoint["misc"][:6] + (0.5, 4, nbprop.ones(2, dtype=nbprop.float64))  # NumPy -> Python
    _assert_same(expected, loaded)
    assert type(loaded["model"]) is OrderedDict and list(loaded["optimizer"]["state"]) == [0, 1, 2, 3]
    assert loaded["optimizer"]["param_groups"][0]["betas"] == (0.8, 0.9)

    # The loaded state continues training exactly as the original does.
    fresh_model, fresh_optimizer, fresh_scheduler, _ = _trained(seed=1)
    fresh_model.load_state_dict(loaded["model"])
    fresh_optimizer.load_state_dict(loaded["optimizer"])
    fresh_scheduler.load_state_dict(loaded["scheduler"])
    for current_model, current_optimizer, current_scheduler in ((model, optimizer, scheduler),
                                                                (fresh_model, fresh_optimizer, fresh_scheduler)):
        current_optimizer.zero_grad()
        current_model(inputs).pow(2).mean().backward()
        current_optimizer.step()
        current_scheduler.step()
    for key, value in model.state_dict().items():
        assert np.array_equal(value.numpy(), fresh_model.state_dict()[key].numpy()), key
    assert fresh_optimizer.param_groups[0]["lr"] == optimizer.param_groups[0]["lr"]


def test_tensors_are_named_by_their_place_and_the_rest_is_json_metadata(tmp_path):
    model, optimizer, _, _ = _trained()
    path = tmp_path / "checkpoint.safetensors"
    io.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(), "epoch": 2}, path)
    stored = safetensors.numpy.load_file(str(path))  # any safetensors reader sees the tensors
    assert sorted(stored) == sorted(["model.0.weight", "model.0.bias", "model.2.weight", "model.2.bias"]
                                    + [f"optimizer.state.{index}.{name}" for index in range(4)
                                       for name in ("step", "exp_avg", "exp_avg_sq")])
    np.testing.assert_array_equal(stored["model.0.weight"], model[0].weight.detach().numpy())
    (length,) = struct.unpack("<Q", path.read_bytes()[:8])
    metadata = json.loads(path.read_bytes()[8:8 + length])["__metadata__"]
    assert set(metadata) == {"nbprop.structure"}
    assert "pickle" not in metadata["nbprop.structure"] and '"epoch", 2' in metadata["nbprop.structure"]


def test_a_flat_state_dict_keeps_the_plain_layout(tmp_path):
    model, _, _, _ = _trained()
    path = tmp_path / "model.safetensors"
    io.save(model.state_dict(), path)
    (length,) = struct.unpack("<Q", path.read_bytes()[:8])
    header = json.loads(path.read_bytes()[8:8 + length])
    assert set(header) == {"__metadata__", "0.weight", "0.bias", "2.weight", "2.bias"}
    assert set(header["__metadata__"]) == {"nbprop.key_order"}
    loaded = io.load(path)
    assert type(loaded) is OrderedDict and list(loaded) == list(model.state_dict())


@pytest.mark.torch
def test_pytorch_reads_the_tensors_of_a_nested_checkpoint(tmp_path):
    from safetensors.torch import load_file

    model, optimizer, _, _ = _trained()
    path = tmp_path / "checkpoint.safetensors"
    io.save({"model": model.state_dict(), "optimizer": optimizer.state_dict()}, path)
    theirs = load_file(str(path))
    assert theirs["model.2.bias"].tolist() == model[2].bias.tolist()
    assert theirs["optimizer.state.0.step"].item() == 2.0


def test_save_errors_name_the_place_and_the_type_and_write_nothing(tmp_path):
    path = tmp_path / "x.safetensors"
    model, optimizer, _, _ = _trained()
    state = optimizer.state_dict()
    state["param_groups"][0]["lr"] = lambda step: 0.1
    with pytest.raises(TypeError, match=r"save: obj\['optimizer'\]\['param_groups'\]\[0\]\['lr'\] has type "
                                        r"function; a checkpoint holds Tensors"):
        io.save({"optimizer": state}, path)
    with pytest.raises(TypeError, match=r"save: obj\['a'\] has the key \(1, 2\) of type tuple; checkpoint keys must "
                                        "be str or int"):
        io.save({"a": {(1, 2): 3}}, path)
    with pytest.raises(TypeError, match=r"obj\['m'\] has type Sequential;.*pass model.state_dict\(\)"):
        io.save({"m": model}, path)
    with pytest.raises(TypeError, match=r"obj\['x'\]\[1\] has type set"):
        io.save({"x": [1, {2}]}, path)
    with pytest.raises(TypeError, match=r"obj\['a'\]\[0\] has dtype int32"):
        io.save({"a": [np.zeros(2, np.int32)]}, path)
    loop = [1]
    loop.append(loop)
    with pytest.raises(ValueError, match=r"obj\['l'\]\[1\] contains itself"):
        io.save({"l": loop}, path)
    with pytest.raises(TypeError, match="has type"):
        io.save({"a": object()}, path)
    assert os.listdir(tmp_path) == []


def test_shared_and_awkward_names_stay_apart(tmp_path):
    ones, twos = nbprop.ones(2), nbprop.full((2,), 2.0)
    saved = {"a.b": ones, "a": {"b": twos}, "__metadata__": {"x": ones}, "": [twos, ones]}
    path = tmp_path / "names.safetensors"
    io.save(saved, path)
    _assert_same(saved, io.load(path))
    top = [nbprop.zeros(1), (nbprop.arange(3),)]
    io.save(top, path)
    _assert_same(top, io.load(path))
    io.save(nbprop.eye(2), path)
    _assert_same(nbprop.eye(2), io.load(path))


def test_dtype_applies_to_nested_floats_only(tmp_path):
    path = tmp_path / "half.safetensors"
    io.save({"w": [nbprop.tensor([1.0 + 2**-10, 3.0])], "count": nbprop.tensor([5]), "lr": 0.1},
            path, dtype=nbprop.bfloat16)
    loaded = io.load(path)
    assert loaded["w"][0].dtype == nbprop.float32 and loaded["w"][0].tolist() == [1.0, 3.0]
    assert loaded["count"].dtype == nbprop.int64 and loaded["lr"] == 0.1


def test_failed_nested_save_leaves_the_previous_file(tmp_path, monkeypatch):
    path = tmp_path / "checkpoint.safetensors"
    io.save({"epoch": 1, "w": nbprop.ones(2)}, path)

    def refuse(*args):
        raise OSError("replace refused")

    monkeypatch.setattr(io.os, "replace", refuse)
    with pytest.raises(OSError, match="replace refused"):
        io.save({"epoch": 2, "w": nbprop.zeros(2)}, path)
    monkeypatch.undo()
    assert io.load(path)["epoch"] == 1 and os.listdir(tmp_path) == ["checkpoint.safetensors"]


def _with_structure(tmp_path, name, structure, tensors=None):
    path = tmp_path / f"{name}.safetensors"
    text = structure if isinstance(structure, str) else json.dumps(structure)
    path.write_bytes(safetensors.numpy.save(tensors or {"t": np.ones(1, np.float32)},
                                            metadata={"nbprop.structure": text}))
    return path


@pytest.mark.parametrize("name, structure", [
    ("missing_tensor", {"tensor": "nowhere"}),
    ("unknown_tag", {"__reduce__": ["os.system", ["echo hi"]]}),
    ("two_tags", {"tuple": [], "dict": []}),
    ("bad_pair", {"dict": [["a", 1, 2]]}),
    ("bool_key", {"dict": [[True, 1]]}),
    ("float_key", {"dict": [[1.5, 1]]}),
    ("bad_float", {"float": "1e999"}),
    ("tuple_body", {"tuple": "ab"}),
    ("not_json", "{not json"),
    ("non_standard_nan", "NaN"),
    ("deep", "[" * 50_000 + "]" * 50_000),
])
def test_tampered_structures_raise_naming_the_path(tmp_path, name, structure):
    path = _with_structure(tmp_path, name, structure)
    with pytest.raises(RuntimeError, match=f"{name}\\.safetensors' is not a valid safetensors checkpoint"):
        io.load(path)


def test_a_structure_of_plain_values_loads(tmp_path):
    path = _with_structure(tmp_path, "plain", {"OrderedDict": [["w", {"tensor": "t"}], [0, [1, {"float": "-inf"}]]]})
    loaded = io.load(path)
    assert type(loaded) is OrderedDict and loaded[0] == [1, -math.inf] and loaded["w"].tolist() == [1.0]
