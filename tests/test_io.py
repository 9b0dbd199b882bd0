"""nbprop.io save/load: round trips, atomic writes under failures, clear errors, safetensors.torch interop."""

import fcntl
import os
import re
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import nbprop
from nbprop import io
from nbprop.nn.container import Sequential
from nbprop.nn.embedding import Embedding
from nbprop.nn.linear import Flatten, Linear
from nbprop.nn.module import Module

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _model(seed):
    nbprop.manual_seed(seed)
    return Sequential(Flatten(), Linear(6, 4), Linear(4, 3))


def _same(first, second):
    assert list(first) == list(second)
    for key in first:
        assert first[key].dtype == second[key].dtype, key
        assert np.array_equal(first[key].numpy(), second[key].numpy()), key


def test_round_trip_into_fresh_model(tmp_path):
    path = tmp_path / "model.safetensors"
    model = _model(0)
    io.save(model.state_dict(), path)
    fresh = _model(1)
    x = nbprop.randn(5, 2, 3)
    assert not np.array_equal(fresh(x).detach().numpy(), model(x).detach().numpy())
    loaded = io.load(path)
    _same(loaded, model.state_dict())
    fresh.load_state_dict(loaded)
    assert np.array_equal(fresh(x).detach().numpy(), model(x).detach().numpy())


def test_dtypes_shapes_order_and_writeable(tmp_path):
    path = str(tmp_path / "state.safetensors")
    state = {
        "z.last": nbprop.tensor([[1.5, 2.5]], dtype=nbprop.float64),
        "a.count": nbprop.tensor(7),
        "m.mask": nbprop.tensor([True, False]),
        "b.empty": nbprop.zeros(0, 3),
        "c.view": nbprop.arange(12.0).reshape(3, 4).T,  # non-contiguous: saved as its values
    }
    io.save(state, path)
    loaded = io.load(path)
    assert list(loaded) == list(state)  # the saved order, not safetensors' sorted order
    for key in state:
        assert loaded[key].shape == state[key].shape and loaded[key].dtype == state[key].dtype
        assert np.array_equal(loaded[key].numpy(), state[key].numpy())
    loaded["c.view"].add_(1)  # loaded tensors own writeable memory
    io.save({}, path)
    assert io.load(path) == {}


def test_overwrite_keeps_permissions(tmp_path):
    path = tmp_path / "model.safetensors"
    io.save({"w": nbprop.ones(2)}, path)
    os.chmod(path, 0o640)
    io.save({"w": nbprop.zeros(2)}, path)
    assert os.stat(path).st_mode & 0o777 == 0o640
    assert io.load(path)["w"].tolist() == [0.0, 0.0]
    assert os.listdir(tmp_path) == ["model.safetensors"]


@pytest.mark.parametrize("failing", ["replace", "fsync", "write"])
def test_failed_save_leaves_previous_file(tmp_path, monkeypatch, failing):
    path = tmp_path / "model.safetensors"
    old = _model(0).state_dict()
    io.save(old, path)

    def fail(*args, **kwargs):
        raise OSError(28, "No space left on device")

    if failing == "write":
        # The bytes themselves fail to be produced half-way: nothing reaches the disk.
        monkeypatch.setattr(io.safetensors.numpy, "save", fail)
    else:
        monkeypatch.setattr(io.os, failing, fail)
    with pytest.raises(OSError, match="No space left"):
        io.save(_model(1).state_dict(), path)
    monkeypatch.undo()
    _same(io.load(path), old)
    assert os.listdir(tmp_path) == ["model.safetensors"]  # the temporary file was removed


@pytest.mark.parametrize("killed_at", ["fsync", "replace"])
def test_process_killed_mid_save_leaves_previous_file(tmp_path, killed_at):
    path = tmp_path / "model.safetensors"
    old = _model(0).state_dict()
    io.save(old, path)
    script = textwrap.dedent(f"""
        import os, signal
        import nbprop
        from nbprop import io

        def die(*args, **kwargs):
            os.kill(os.getpid(), signal.SIGKILL)

        state = {{"0.weight": nbprop.ones(1000, 1000)}}
        io.os.{killed_at} = die
        io.save(state, {str(path)!r})
    """)
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, timeout=120)
    assert result.returncode == -9, result.stderr.decode()
    _same(io.load(path), old)
    # The killed save left its full temporary file (4 MB here, hundreds in real life); the next save removes it.
    (litter,) = [name for name in os.listdir(tmp_path) if name != "model.safetensors"]
    assert re.fullmatch(r"\.model\.safetensors\.\d+\.[a-z0-9_]+\.tmp", litter)
    assert os.path.getsize(tmp_path / litter) > 4_000_000
    new = _model(1).state_dict()
    io.save(new, path)
    assert os.listdir(tmp_path) == ["model.safetensors"]
    _same(io.load(path), new)


def _dead_pid():
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_save_removes_only_stale_temporaries_of_its_own_path(tmp_path):
    path = tmp_path / "model.safetensors"
    dead = _dead_pid()
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        stale = [f".model.safetensors.{dead}.abcd1234.tmp", f".model.safetensors.{dead}.x_9.tmp"]
        kept = [
            f".model.safetensors.{sleeper.pid}.abcd1234.tmp",  # a save in progress in another process
            f".model.safetensors.{os.getpid()}.abcd1234.tmp",  # ... or in another thread of this one
            f".other.safetensors.{dead}.abcd1234.tmp",  # another path's
            f".model.safetensors.other.{dead}.abcd1234.tmp",  # the path model.safetensors.other's
            f"model.safetensors.{dead}.abcd1234.tmp",  # not hidden: not ours
            f".model.safetensors.{dead}.abcd1234",
            f".model.safetensors.{dead}.ab.cd.tmp",
            "unrelated.txt",
        ]
        for name in stale + kept:
            (tmp_path / name).write_bytes(b"partial")
        (tmp_path / f".model.safetensors.{dead}.folder00.tmp").mkdir()
        os.symlink("unrelated.txt", tmp_path / f".model.safetensors.{dead}.link0000.tmp")
        kept += [f".model.safetensors.{dead}.folder00.tmp", f".model.safetensors.{dead}.link0000.tmp"]
        # A dead pid here, but a live lock: a save in another pid namespace (a container, another host).
        locked = f".model.safetensors.{dead}.locked00.tmp"
        (tmp_path / locked).write_bytes(b"partial")
        with open(tmp_path / locked, "rb") as handle:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
            io.save({"w": nbprop.ones(2)}, path)
            assert sorted(os.listdir(tmp_path)) == sorted(kept + [locked, "model.safetensors"])
        io.save({"w": nbprop.zeros(2)}, path)
        assert sorted(os.listdir(tmp_path)) == sorted(kept + ["model.safetensors"])
        assert (tmp_path / kept[0]).read_bytes() == b"partial"
        assert io.load(path)["w"].tolist() == [0.0, 0.0]
    finally:
        sleeper.kill()
        sleeper.wait()


def test_save_through_a_symlink_replaces_its_target(tmp_path):
    store = tmp_path / "store"
    store.mkdir()
    target = store / "weights.safetensors"
    io.save({"w": nbprop.ones(2)}, target)
    os.chmod(target, 0o640)
    link = tmp_path / "latest.safetensors"
    os.symlink(os.path.join("store", "weights.safetensors"), link)
    # A killed save through the link left its temporary beside the target.
    (store / f".weights.safetensors.{_dead_pid()}.abcd1234.tmp").write_bytes(b"partial")
    io.save({"w": nbprop.zeros(2)}, link)
    assert os.path.islink(link) and os.readlink(link) == os.path.join("store", "weights.safetensors")
    assert io.load(target)["w"].tolist() == [0.0, 0.0] and io.load(link)["w"].tolist() == [0.0, 0.0]
    assert os.stat(target).st_mode & 0o777 == 0o640
    assert sorted(os.listdir(tmp_path)) == ["latest.safetensors", "store"]
    assert os.listdir(store) == ["weights.safetensors"]
    # A dangling link gets its target created, as open(path, "wb") (and so torch.save) does.
    dangling = tmp_path / "next.safetensors"
    os.symlink(store / "next.safetensors", dangling)
    io.save({"w": nbprop.ones(1)}, dangling)
    assert os.path.islink(dangling) and io.load(store / "next.safetensors")["w"].tolist() == [1.0]
    loop = tmp_path / "loop.safetensors"
    os.symlink("loop.safetensors", loop)
    with pytest.raises(OSError, match="too many levels of symbolic links"):
        io.save({"w": nbprop.ones(1)}, loop)
    assert os.path.islink(loop)


def test_truncated_and_foreign_files_raise_naming_the_path(tmp_path):
    path = tmp_path / "model.safetensors"
    io.save(_model(0).state_dict(), path)
    data = path.read_bytes()
    cases = {
        "truncated_data": data[:-10],
        "truncated_header": data[:20],
        "tiny": data[:3],
        "empty": b"",
        "text": b"hello, this is not a checkpoint at all" * 3,
        "pickle": b"\x80\x04\x95" + bytes(range(200)),
    }
    for name, content in cases.items():
        broken = tmp_path / f"{name}.safetensors"
        broken.write_bytes(content)
        with pytest.raises(RuntimeError, match=f"{name}.safetensors.*not a valid safetensors checkpoint"):
            io.load(broken)
    with pytest.raises(FileNotFoundError):
        io.load(tmp_path / "missing.safetensors")


def test_save_errors(tmp_path):
    path = tmp_path / "x.safetensors"
    model = _model(0)
    with pytest.raises(TypeError, match=r"pass model.state_dict\(\)"):
        io.save(model, path)
    # Int keys and lists of numbers are checkpoint structure (optimizer state dicts have both); others are not.
    with pytest.raises(TypeError, match="checkpoint keys must be str or int"):
        io.save({(1,): nbprop.ones(1)}, path)
    with pytest.raises(TypeError, match=r"obj\['a'\] has type object"):
        io.save({"a": object()}, path)
    with pytest.raises(TypeError, match="dtype int32"):
        io.save({"a": np.zeros(2, np.int32)}, path)
    # safetensors itself writes this key, into a file that no reader accepts.
    with pytest.raises(ValueError, match="key '__metadata__' is reserved by the safetensors format"):
        io.save({"w": nbprop.ones(1), "__metadata__": nbprop.ones(1)}, path)
    assert os.listdir(tmp_path) == []


@pytest.mark.torch
def test_interop_with_safetensors_torch(tmp_path):
    import torch
    from safetensors.torch import load_file, save_file

    torch.manual_seed(0)
    theirs = torch.nn.Sequential(torch.nn.Embedding(7, 4, padding_idx=0), torch.nn.Flatten(),
                                 torch.nn.Linear(12, 3))
    ours = Sequential(Embedding(7, 4, padding_idx=0), Flatten(), Linear(12, 3))
    path = tmp_path / "from_torch.safetensors"
    save_file(theirs.state_dict(), str(path))
    ours.load_state_dict(io.load(path))
    indices = np.array([[1, 0, 6], [2, 2, 3]])
    expected = theirs(torch.tensor(indices)).detach().numpy()
    np.testing.assert_allclose(ours(nbprop.tensor(indices)).detach().numpy(), expected, rtol=1e-6, atol=1e-6)

    back = tmp_path / "from_nbprop.safetensors"
    with nbprop.no_grad():
        ours[2].bias.fill_(0.25)
    io.save(ours.state_dict(), back)
    fresh = torch.nn.Sequential(torch.nn.Embedding(7, 4), torch.nn.Flatten(), torch.nn.Linear(12, 3))
    fresh.load_state_dict(load_file(str(back)))
    assert fresh[2].bias.tolist() == [0.25] * 3
    torch_state = load_file(str(back))
    assert list(torch_state) == sorted(torch_state)  # safetensors' own order; ours is kept in the metadata
    assert torch_state["0.weight"].dtype == torch.float32


@pytest.mark.torch
def test_load_widens_half_and_narrow_integer_dtypes(tmp_path):
    import torch
    from safetensors.torch import save_file

    path = tmp_path / "mixed.safetensors"
    values = torch.tensor([1.5, -2.25, 3.0e4])
    save_file({"half": values.half(), "brain": values.bfloat16(),
               "small": torch.tensor([3, -4], dtype=torch.int32), "double": values.double()}, str(path))
    loaded = io.load(path)
    assert loaded["half"].dtype == np.float32 and loaded["half"].tolist() == values.half().float().tolist()
    assert loaded["brain"].dtype == np.float32
    assert loaded["brain"].tolist() == values.bfloat16().float().tolist()
    assert loaded["small"].dtype == np.int64 and loaded["small"].tolist() == [3, -4]
    assert loaded["double"].dtype == np.float64
    save_file({"complex": torch.zeros(2, dtype=torch.complex64)}, str(path))
    with pytest.raises(TypeError, match="'complex' has dtype C64"):
        io.load(path)


def test_buffers_round_trip(tmp_path):
    class WithBuffer(Module):
        def __init__(self):
            super().__init__()
            self.fc = Linear(2, 2)
            self.register_buffer("steps", nbprop.tensor(0))
            self.register_buffer("cache", nbprop.zeros(2), persistent=False)

    model = WithBuffer()
    model.steps.add_(5)
    io.save(model.state_dict(), tmp_path / "b.safetensors")
    fresh = WithBuffer()
    fresh.load_state_dict(io.load(tmp_path / "b.safetensors"))
    assert fresh.steps.item() == 5 and "cache" not in io.load(tmp_path / "b.safetensors")
