"""The device boundary holds in the source: above nbprop/backend.py no NumPy call touches tensor data, no array
method beyond shape/dtype/ndim/size is used on it, and no device is named by a literal."""

import pathlib
import re

import pytest

PACKAGE = pathlib.Path(__file__).resolve().parent.parent / "nbprop"
# Subpackages that handle tensor storage (ops, layers, optimizer state, the tape, gradient all-reduce, the
# training loop), walked recursively so that nested packages such as nn/utils are checked too.
CHECKED_PACKAGES = ("autograd", "distributed", "nn", "ops", "optim", "train")
# Subpackages whose NumPy is on host data of their own, never on tensor storage: data builds host arrays
# (datasets, batches, splits, samplers) that reach a device only through device.asarray; scalar is the scalar
# engine, whose tape is its own flat host arrays, not Tensors.
HOST_PACKAGES = ("data", "scalar")
# Subpackages below the boundary, beside backend.py: capture is the recording device (the CPU device that writes
# down a step's calls, and the plans that replay them on buffers of their own), which owns array memory.
DEVICE_PACKAGES = ("capture",)
# tensor_repr.py is left out: it formats a host copy of the values (device.to_numpy), as printing must.
CHECKED = sorted(
    [*(path for package in CHECKED_PACKAGES for path in PACKAGE.glob(f"{package}/**/*.py")),
     PACKAGE / "tensor.py", PACKAGE / "tensor_operators.py", PACKAGE / "backward_pass.py", PACKAGE / "creation.py"]
)
# Lines of checked files that use NumPy or a device name on host values that are no tensor storage (file,
# the start of the code on the line): the MPI flags of which parameters got a gradient, and the default of
# the command line's --device option.
HOST_LINES = {"distributed/parallel.py": ("flags = np.array([p.grad is not None for p in self.params]",),
              "train/cli.py": ('arguments.add_argument("--device", default="cpu")',)}

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
    host_lines = HOST_LINES.get(path.relative_to(PACKAGE).as_posix(), ())
    for number, code in _code_lines(path):
        if code.strip().startswith(host_lines):
            continue
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


def test_every_subpackage_is_checked_or_declared_outside_the_check():
    """A new subpackage is not silently left out of the check: it is listed in CHECKED_PACKAGES or, with the
    reason, in HOST_PACKAGES or DEVICE_PACKAGES."""
    subpackages = sorted(path.parent.name for path in PACKAGE.glob("*/__init__.py"))
    unclassified = [name for name in subpackages if name not in CHECKED_PACKAGES + HOST_PACKAGES + DEVICE_PACKAGES]
    assert not unclassified, f"classify {unclassified} (nbprop/) in CHECKED_PACKAGES, HOST_PACKAGES or DEVICE_PACKAGES"
    assert PACKAGE / "nn" / "utils" / "rnn.py" in CHECKED


def test_every_host_line_exemption_is_still_used():
    for name, starts in HOST_LINES.items():
        lines = [code.strip() for _, code in _code_lines(PACKAGE / name)]
        for start in starts:
            assert any(line.startswith(start) for line in lines), f"{name}: no line starts with {start!r}"


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
