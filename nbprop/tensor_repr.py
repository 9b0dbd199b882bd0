"""How a tensor prints: PyTorch's repr (torch/_tensor_str.py) on host values, and its grad_fn names."""

import math
from dataclasses import asdict, dataclass

import numpy as np

from nbprop import dtypes
from nbprop.backend import DEVICES, HOST


@dataclass
class PrintOptions:
    """PyTorch's print options (torch.set_printoptions) and their defaults."""

    precision: int = 4
    threshold: float = 1000
    edgeitems: int = 3
    linewidth: int = 80
    sci_mode: bool | None = None


PRINT_OPTIONS = PrintOptions()
_PROFILES = {
    "default": {"precision": 4, "threshold": 1000, "edgeitems": 3, "linewidth": 80},
    "short": {"precision": 2, "threshold": 1000, "edgeitems": 2, "linewidth": 80},
    "full": {"precision": 4, "threshold": math.inf, "edgeitems": 3, "linewidth": 80},
}


def set_printoptions(precision=None, threshold=None, edgeitems=None, linewidth=None, profile=None, sci_mode=None):
    """PyTorch's set_printoptions: digits after the point, the element count above which a tensor prints
    summarised (`...`), items kept at each edge then, line width, a profile ("default", "short", "full") and
    scientific notation forced on or off (None: chosen from the values, as PyTorch does)."""
    if profile is not None:
        if profile not in _PROFILES:
            raise ValueError(f"set_printoptions: unknown profile {profile!r}; expected one of {sorted(_PROFILES)}")
        for name, value in _PROFILES[profile].items():
            setattr(PRINT_OPTIONS, name, value)
    for name, value in (("precision", precision), ("threshold", threshold), ("edgeitems", edgeitems),
                        ("linewidth", linewidth)):
        if value is not None:
            setattr(PRINT_OPTIONS, name, value)
    PRINT_OPTIONS.sci_mode = sci_mode


def get_printoptions():
    """The current print options as a dict that set_printoptions accepts."""
    return asdict(PRINT_OPTIONS)


# ------------------------------------------------------------------------------------------- values


class _Formatter:
    """One width and notation for every element printed, chosen from the values as PyTorch chooses them."""

    def __init__(self, values, floating):
        self.floating = floating
        self.int_mode = True
        self.sci_mode = False
        self.max_width = 1
        if not floating:
            self.max_width = max((len(str(value)) for value in values.tolist()), default=1)
            return
        finite = values[np.isfinite(values) & (values != 0)]
        if not finite.size:
            return
        magnitudes = np.abs(finite).astype(np.float64)
        smallest, largest = magnitudes.min(), magnitudes.max()
        self.int_mode = bool(np.all(finite == np.ceil(finite)))
        self.sci_mode = (largest / smallest > 1000.0 or largest > 1.0e8 or smallest < 1.0e-4
                         if PRINT_OPTIONS.sci_mode is None else PRINT_OPTIONS.sci_mode)
        precision = PRINT_OPTIONS.precision
        if self.sci_mode:
            texts = (f"{value:.{precision}e}" for value in finite.tolist())
        elif self.int_mode:  # "3." : one more for the point that marks a floating tensor
            texts = (f"{value:.0f}." for value in finite.tolist())
        else:
            texts = (f"{value:.{precision}f}" for value in finite.tolist())
        self.max_width = max(len(text) for text in texts)

    def format(self, value):
        if self.floating:
            if self.sci_mode:
                text = f"{value:{self.max_width}.{PRINT_OPTIONS.precision}e}"
            elif self.int_mode:
                text = f"{value:.0f}"
                if not (math.isinf(value) or math.isnan(value)):
                    text += "."
            else:
                text = f"{value:.{PRINT_OPTIONS.precision}f}"
        else:
            text = f"{value}"
        return text.rjust(self.max_width)


def _vector_text(values, indent, summarize, formatter):
    element_length = formatter.max_width + 2  # with the comma and the space after it
    per_line = max(1, math.floor((PRINT_OPTIONS.linewidth - indent) / element_length))
    edge = PRINT_OPTIONS.edgeitems
    if summarize and not edge:
        data = ["..."]
    elif summarize and values.shape[0] > 2 * edge:
        data = ([formatter.format(value) for value in values[:edge].tolist()] + [" ..."]
                + [formatter.format(value) for value in values[-edge:].tolist()])
    else:
        data = [formatter.format(value) for value in values.tolist()]
    lines = [", ".join(data[start:start + per_line]) for start in range(0, len(data), per_line)]
    return "[" + (",\n" + " " * (indent + 1)).join(lines) + "]"


def _nested_text(values, indent, summarize, formatter):
    ndim = values.ndim
    if ndim == 0:
        return formatter.format(values.item())
    if ndim == 1:
        return _vector_text(values, indent, summarize, formatter)
    edge = PRINT_OPTIONS.edgeitems
    rows = values.shape[0]
    if summarize and rows > 2 * edge:
        slices = ([_nested_text(values[index], indent + 1, summarize, formatter) for index in range(edge)] + ["..."]
                  + [_nested_text(values[index], indent + 1, summarize, formatter)
                     for index in range(rows - edge, rows)])
    else:
        slices = [_nested_text(values[index], indent + 1, summarize, formatter) for index in range(rows)]
    return "[" + ("," + "\n" * (ndim - 1) + " " * (indent + 1)).join(slices) + "]"


def _summarized(values):
    """The values a summarised print shows (edge items along every dimension), for choosing the format."""
    edge = PRINT_OPTIONS.edgeitems
    if values.ndim == 0:
        return values
    if values.ndim == 1:
        return np.concatenate((values[:edge], values[-edge:])) if values.shape[0] > 2 * edge else values
    if not edge:
        return values[(slice(0, 0),) * values.ndim]
    rows = values.shape[0]
    kept = list(range(edge)) + list(range(rows - edge, rows)) if rows > 2 * edge else range(rows)
    return np.stack([_summarized(values[index]) for index in kept])


def values_text(values, indent):
    """Host array `values` as PyTorch prints a tensor's contents, continuation lines indented by `indent`."""
    if values.size == 0:
        return "[]"
    summarize = values.size > PRINT_OPTIONS.threshold
    formatter = _Formatter((_summarized(values) if summarize else values).reshape(-1), values.dtype.kind == "f")
    return _nested_text(values, indent, summarize, formatter)


# ------------------------------------------------------------------------------------------- suffixes


def dtype_text(dtype):
    """A dtype under its public name: `nbprop.float64`, as PyTorch prints `torch.float64`."""
    return f"nbprop.{dtype.name}"


def _with_suffixes(text, suffixes, indent):
    """PyTorch's layout of `, suffix` items: each on the line if it fits in the line width, else on a new one."""
    parts = [text]
    last_line_length = len(text) - text.rfind("\n") + 1
    for suffix in suffixes:
        if last_line_length + len(suffix) + 2 > PRINT_OPTIONS.linewidth:
            parts.append(",\n" + " " * indent + suffix)
            last_line_length = indent + len(suffix)
        else:
            parts.append(", " + suffix)
            last_line_length += len(suffix) + 2
    parts.append(")")
    return "".join(parts)


def tensor_text(tensor):
    """`repr(tensor)` as PyTorch writes it: values, then device (when not the host), dtype (when not implied by
    the values), and grad_fn or requires_grad."""
    prefix = "tensor("
    indent = len(prefix)
    suffixes = []
    array = tensor._data
    dtype = array.dtype
    if tensor.device != HOST:
        suffixes.append(f"device='{tensor.device}'")
    if array.size == 0:
        # Empty: a shape other than (0,) and any dtype but the default one are not seen in "[]".
        if array.ndim != 1:
            suffixes.append(f"size={tuple(array.shape)}")
        if dtype != dtypes.get_default_dtype():
            suffixes.append(f"dtype={dtype_text(dtype)}")
        body = "[]"
    else:
        if not PRINT_OPTIONS.edgeitems:
            suffixes.append(f"size={tuple(array.shape)}")
        if dtype not in (dtypes.get_default_dtype(), dtypes.int64, dtypes.bool_):
            suffixes.append(f"dtype={dtype_text(dtype)}")
        body = values_text(DEVICES[tensor.device].to_numpy(array), indent)
    if tensor.grad_fn is not None:
        suffixes.append(f"grad_fn=<{backward_name(tensor.grad_fn, tensor)}>")
    elif tensor.requires_grad:
        suffixes.append("requires_grad=True")
    return _with_suffixes(prefix + body, suffixes, indent)


# --------------------------------------------------------------------------------------- grad_fn names

# nbprop's Function -> the name of PyTorch's node for the same op (PyTorch numbers a node by the overload
# it comes from: SumBackward0 for sum(), SumBackward1 for sum(dim)). Ops without an entry print as a custom
# Function does in PyTorch, `<NameBackward>`.
_TORCH_NAMES = {
    "Add": "AddBackward0", "Sub": "SubBackward0", "Mul": "MulBackward0", "Div": "DivBackward0",
    "Maximum": "MaximumBackward0", "Minimum": "MinimumBackward0", "Where": "WhereBackward0",
    "Clamp": "ClampBackward1", "Cast": "ToCopyBackward0", "ToDevice": "ToCopyBackward0", "Clone": "CloneBackward0",
    "Atan2": "Atan2Backward0", "Hypot": "HypotBackward0", "Remainder": "RemainderBackward1",
    "Neg": "NegBackward0", "Abs": "AbsBackward0", "Exp": "ExpBackward0", "Log": "LogBackward0",
    "Sqrt": "SqrtBackward0", "Rsqrt": "RsqrtBackward0", "Sin": "SinBackward0", "Cos": "CosBackward0",
    "Tanh": "TanhBackward0", "Sigmoid": "SigmoidBackward0", "Relu": "ReluBackward0", "Erf": "ErfBackward0",
    "Expm1": "Expm1Backward0", "Log1p": "Log1PBackward0", "Logsigmoid": "LogSigmoidBackward0",
    "Floor": "FloorBackward0", "Ceil": "CeilBackward0", "Round": "RoundBackward0", "Sign": "SignBackward0",
    "LeakyRelu": "LeakyReluBackward0", "Elu": "EluBackward0", "Gelu": "GeluBackward0", "GeluTanh": "GeluBackward0",
    "Silu": "SiluBackward0", "Softplus": "SoftplusBackward0", "Hardtanh": "HardtanhBackward0",
    "Reshape": "ViewBackward0", "Permute": "PermuteBackward0", "Narrow": "SplitBackward0",
    "Cat": "CatBackward0", "Expand": "ExpandBackward0", "BasicIndex": "SliceBackward0",
    "AdvancedIndex": "IndexBackward0", "IndexPut": "CopySlices", "Gather": "GatherBackward0",
    "IndexSelect": "IndexSelectBackward0", "Sort": "SortBackward0", "CumulativeSum": "CumsumBackward0",
    "Softmax": "SoftmaxBackward0", "LogSoftmax": "LogSoftmaxBackward0", "Logsumexp": "LogsumexpBackward0",
    "Dropout": "MulBackward0", "CrossEntropy": "NllLossBackward0", "NllLoss": "NllLossBackward0",
    "BinaryCrossEntropy": "BinaryCrossEntropyBackward0",
    "BinaryCrossEntropyWithLogits": "BinaryCrossEntropyWithLogitsBackward0",
    "LayerNorm": "NativeLayerNormBackward0", "BatchNorm": "NativeBatchNormBackward0",
    "GroupNorm": "NativeGroupNormBackward0", "Embedding": "EmbeddingBackward0",
    "PadConstant": "ConstantPadNdBackward0",
}
# torch.matmul's node by the dimensions of its operands (its batched forms end in a view of bmm's result).
_MATMUL_NAMES = {(2, 2): "MmBackward0", (2, 1): "MvBackward0", (1, 1): "DotBackward0", (1, 2): "SqueezeBackward4"}


def backward_name(node, output=None):
    """The name PyTorch gives the node of the same op (`MulBackward0`, `MmBackward0`, ...); `<Name>Backward` for
    a Function of the user's or one PyTorch has no node for. `output`, a tensor the node made, tells apart
    overloads: sum() and sum(dim), mm and bmm."""
    function = node.function
    name = function.__name__
    if not function.__module__.startswith("nbprop."):
        return f"{name}Backward"
    if name in ("Sum", "Prod"):  # mean is a Sum with a divisor
        kind = "Mean" if getattr(node, "divisor", 1) != 1 else name
        return f"{kind}Backward{0 if output is not None and output.ndim == 0 else 1}"
    if name == "Variance":
        return "StdBackward0" if getattr(node, "root", False) else "VarBackward0"
    if name == "Matmul":
        shapes = getattr(node, "shapes", None)
        dims = None if shapes is None else (len(shapes[3]), len(shapes[4]))
        return _MATMUL_NAMES.get(dims, "UnsafeViewBackward0")
    if name == "Linear":  # addmm, mm or a view of them by the input's dimensions (a bias that does not
        # require grad leaves no trace on the node: such a linear prints as mm)
        with_bias = len(node.needs_input_grad) > 2 and node.needs_input_grad[2]
        ndim = None if output is None else output.ndim
        if ndim == 2:
            return "AddmmBackward0" if with_bias else "MmBackward0"
        return "ViewBackward0" if with_bias else ("SqueezeBackward4" if ndim == 1 else "UnsafeViewBackward0")
    if name == "Pow":  # tensor ** number, tensor ** tensor, number ** tensor
        needs = node.needs_input_grad
        return "PowBackward1" if needs[0] and needs[1] else ("PowBackward2" if needs[1] else "PowBackward0")
    if name == "Scatter":
        return "ScatterAddBackward0" if getattr(node, "accumulate", False) else "ScatterBackward0"
    return _TORCH_NAMES.get(name, f"{name}Backward")
