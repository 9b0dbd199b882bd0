"""The device boundary holds in the source: above nbprop/backend.py no NumPy call touches tensor data, no array
method beyond shape/dtype/ndim/size is used on it, and no device is named by a literal."""

import pathlib
import re

import pytest

PACKAGE = pathlib.Path(__file__).resolve().parent.parent / "nbprop"
# tensor_repr.py is left out: it formats a host copy of the values (device.to_numpy), as printing must.
CHECKED = sorted(
    [*PACKAGE.glob("ops/*.py"), *PACKAGE.glob("nn/*.py"), *PACKAGE.glob("optim/*.py"), PACKAGE / "tensor.py",
     PACKAGE / "tensor_operators.py", *PACKAGE.glob("autograd/*.py"), PACKAGE / "backward_pass.py",
     PACKAGE / "creation.py"]
)

# NumPy as a library of dtype names and constants is fine; anything else of NumPy is a call on data.
NUMPY_NAMES = re.compile(r"\bnp\.(?!(?:float16|float32|float64|int8|int16|int32|int64|uint8|uint16|uint32|uint64|"
                         r"bool_|dtype|iinfo|finfo|ndarray\b(?!\()|generic|integer|floating|number)\b)\w+")
# What a device array offers beyond the device's methods.
ARRAY_ATTRIBUTES = re.compile(r"_data\.(?!(?:shape|dtype|ndim|size)\b)\w+|_data\[")


def _code_lines(path):
    """(number, line) of the file's code, without comments and docstring-only lines."""
    for number, line in enumerate(path.read_text().splitlines(), 1):
        code = line.split("#", 1)[0]
        if code.strip() and not code.strip().startswith(('"""', "'")):
            yield number, code


@pytest.mark.parametrize("path", CHECKED, ids=lambda path: str(path.relative_to(PACKAGE)))
def test_no_numpy_call_on_tensor_data_and_no_device_literal(path):
    offences = []
    for number, code in _code_lines(path):
        for pattern, what in ((NUMPY_NAMES, "NumPy call"), (ARRAY_ATTRIBUTES, "array method on tensor data")):
            offences += [f"{path.name}:{number}: {what}: {match.group(0)}" for match in pattern.finditer(code)]
        if re.search(r"""["']cpu["']""", code):
            offences.append(f"{path.name}:{number}: a 'cpu' literal")
    assert not offences, "\n".join(offences)


def test_the_check_sees_what_it_forbids(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text('x = np.reshape(t._data, (2,))\ny = t._data.flags\nz = "cpu"\nw = np.float32\n')
    found = [code for _, code in _code_lines(sample) if NUMPY_NAMES.search(code) or ARRAY_ATTRIBUTES.search(code)
             or "cpu" in code]
    assert len(found) == 3


def test_the_core_imports_no_op_family():
    """Tensor and the tape import no op family at module level (the ops import them; Tensor's methods reach
    the families through the `nbprop.ops` namespace when called), and Tensor does not import the tape."""
    import ast

    forbidden = {"tensor.py": ("nbprop.ops.", "nbprop.autograd", "nbprop.backward_pass"),
                 "tensor_operators.py": ("nbprop.ops.",), "autograd/__init__.py": ("nbprop.ops.",),
                 "autograd/function.py": ("nbprop.ops.",),
                 "backward_pass.py": ("nbprop.ops.",)}
    for name, prefixes in forbidden.items():
        imported = []
        for node in ast.parse((PACKAGE / name).read_text()).body:
            if isinstance(node, ast.Import):
                imported += [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                imported += [f"{node.module}.{alias.name}" for alias in node.names]
        offending = [module for module in imported if module.startswith(prefixes)]
        assert not offending, f"{name} imports {offending}"
