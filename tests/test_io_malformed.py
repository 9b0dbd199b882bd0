"""nbprop.io.load on hostile safetensors files: every malformed header gets the documented error naming the path."""

import json
import struct

import numpy as np
import pytest

import nbprop
from nbprop import io


def _file(header, data=b"", length=None):
    """A safetensors file: 8-byte little-endian header length, header (a dict, or raw bytes), data."""
    raw = header if isinstance(header, bytes) else json.dumps(header).encode()
    return struct.pack("<Q", len(raw) if length is None else length) + raw + data


def _entry(dtype="F32", shape=(1,), offsets=(0, 4)):
    return {"dtype": dtype, "shape": list(shape), "data_offsets": list(offsets)}


FOUR = b"\0" * 4
MALFORMED = {
    # The JSON itself.
    "deep_array": _file(b"[" * 100_000 + b"]" * 100_000),
    "deep_object": _file(b'{"a":' * 100_000 + b"1" + b"}" * 100_000),
    "deep_in_entry": _file(b'{"a": {"dtype": "F32", "shape": ' + b"[" * 100_000 + b"]" * 100_000 + b"}}"),
    "not_json": _file(b"{this is not json}"),
    "trailing_bytes": _file(b"{} x"),
    "not_utf8": _file(b'{"\xff\xfe": 1}'),
    "nan": _file(b'{"a": NaN}'),
    "huge_integer": _file(b'{"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, ' + b"9" * 5000 + b"]}}", FOUR),
    # The header length.
    "huge_length": _file({}, length=2**64 - 1),
    "length_past_end": _file({"a": _entry()}, FOUR, length=10_000),
    # The header's shape.
    "array_header": _file([1, 2]),
    "string_header": _file("text"),
    "null_header": _file(None),
    "entry_not_object": _file({"a": 5}),
    "missing_offsets": _file({"a": {"dtype": "F32", "shape": [1]}}, FOUR),
    "duplicate_metadata": _file(b'{"__metadata__": {"a": "b"}, "__metadata__": {"a": "c"}}'),
    "metadata_list": _file({"__metadata__": [1], "a": _entry()}, FOUR),
    "metadata_number_value": _file({"__metadata__": {"x": 1}, "a": _entry()}, FOUR),
    # Wrong types for dtype, shape and data_offsets.
    "dtype_number": _file({"a": _entry(dtype=5)}, FOUR),
    "dtype_unknown": _file({"a": _entry(dtype="Q9")}, FOUR),
    "shape_string": _file({"a": {"dtype": "F32", "shape": "x", "data_offsets": [0, 4]}}, FOUR),
    "shape_negative": _file({"a": _entry(shape=(-1,))}, FOUR),
    "shape_float": _file({"a": _entry(shape=(1.0,))}, FOUR),
    "shape_bool": _file({"a": _entry(shape=(True,))}, FOUR),
    "shape_overflow": _file({"a": _entry(shape=(2**63, 2), offsets=(0, 0))}),
    "shape_huge": _file({"a": _entry(shape=(2**40, 2**40))}, FOUR),
    "offsets_string": _file({"a": {"dtype": "F32", "shape": [1], "data_offsets": "ab"}}, FOUR),
    "offsets_three": _file({"a": _entry(offsets=(0, 4, 8))}, FOUR),
    "offsets_negative": _file({"a": _entry(offsets=(-4, 0))}, FOUR),
    # Offsets against the data.
    "offsets_past_end": _file({"a": _entry(offsets=(0, 400))}, FOUR),
    "offsets_reversed": _file({"a": _entry(offsets=(4, 0))}, FOUR),
    "offsets_overlap": _file({"a": _entry(), "b": _entry()}, FOUR),
    "offsets_gap": _file({"a": _entry(offsets=(4, 8))}, b"\0" * 8),
    "size_mismatch": _file({"a": _entry(shape=(2,))}, FOUR),
    "uncovered_tail": _file({"a": _entry()}, b"\0" * 8),
    # Truncated files.
    "truncated_data": _file({"a": _entry(shape=(4,), offsets=(0, 16))}, b"\0" * 10),
    "truncated_header": _file({"a": _entry()}, FOUR)[:20],
    "truncated_length": b"\x10\0\0",
    "empty": b"",
}


@pytest.mark.parametrize("name", list(MALFORMED))
def test_malformed_file_raises_the_documented_error_naming_the_path(tmp_path, name):
    path = tmp_path / f"{name}.safetensors"
    path.write_bytes(MALFORMED[name])
    with pytest.raises(RuntimeError, match=f"{name}\\.safetensors' is not a valid safetensors checkpoint"):
        io.load(path)


@pytest.mark.torch
@pytest.mark.parametrize("name", ["deep_array", "offsets_overlap", "shape_negative", "truncated_data"])
def test_safetensors_torch_rejects_the_same_files(tmp_path, name):
    from safetensors.torch import load_file

    path = tmp_path / f"{name}.safetensors"
    path.write_bytes(MALFORMED[name])
    with pytest.raises(Exception):  # noqa: B017 - only that PyTorch's reader refuses them too
        load_file(str(path))


def test_damaged_key_order_falls_back_to_sorted_order(tmp_path):
    path = tmp_path / "model.safetensors"
    for order in ("[" * 100_000, "not json", '["a"]', '["b", "a", "a"]', "[1, 2]", "{}"):
        header = {"__metadata__": {"nbprop.key_order": order}, "b": _entry(), "a": _entry(offsets=(4, 8))}
        path.write_bytes(_file(header, struct.pack("<2f", 1.0, 2.0)))
        loaded = io.load(path)
        assert list(loaded) == ["a", "b"] and loaded["a"].tolist() == [2.0], order
    path.write_bytes(_file({"__metadata__": None}))
    assert io.load(path) == {}


def test_bool_bytes_other_than_one_load_as_true(tmp_path):
    path = tmp_path / "mask.safetensors"
    path.write_bytes(_file({"m": _entry(dtype="BOOL", shape=(4,))}, bytes([0, 1, 2, 255])))
    mask = io.load(path)["m"]
    assert mask.dtype == nbprop.bool and mask.tolist() == [False, True, True, True]
    # The bytes themselves are 0 or 1, so that kernels reading them as numbers count correctly.
    assert mask.numpy().view(np.uint8).tolist() == [0, 1, 1, 1]
    assert mask.sum().item() == 3
