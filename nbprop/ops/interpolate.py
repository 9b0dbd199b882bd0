"""torch.nn.functional.interpolate: nearest and (bi)linear resampling of (N, C, L) and (N, C, H, W) inputs.

The source positions and weights of each output row and column depend on the sizes only: small kernels make
them as tables in PyTorch's arithmetic (its `nearest_idx` in float32, its linear source index and weights in
the input's precision, floorf included), which the plane kernels of kernels/interpolate.py then read.
"""

import numbers

from nbprop import dtypes
from nbprop.backend import DEVICES
from nbprop.ops.plane_functions import PlaneFunction
from nbprop.ops.pool import adaptive_avg_pool1d, adaptive_avg_pool2d
from nbprop.tensor import Tensor

_SUPPORTED = "'nearest', 'linear' (3-D input), 'bilinear' (4-D input) and 'area'"


def _nearest_table(device, input_size, output_size, scale):
    """The (output_size,) int64 source index of every output position (kernels/interpolate.py nearest_sources)."""
    table = device.empty((output_size,), dtypes.int64)
    device.call("nearest_sources", input_size, output_size, float(scale or 0.0), table)
    return table


def _linear_tables(device, input_size, output_size, scale, align_corners, dtype):
    """((2, output_size) int64 source indices, (2, output_size) weights in `dtype`) of every output position
    (kernels/interpolate.py linear_sources)."""
    indices, weights = device.empty((2, output_size), dtypes.int64), device.empty((2, output_size), dtype)
    device.call("linear_sources", input_size, output_size, float(scale or 0.0), bool(align_corners),
                dtype == dtypes.float32, indices, weights)
    return indices, weights


def _output_sizes(input, size, scale_factor, recompute_scale_factor, dims):  # noqa: A002 - PyTorch's argument name
    """(output sizes, scales handed to the index arithmetic or None), as F.interpolate works them out."""
    spatial = list(input.shape[2:])
    if size is not None and scale_factor is not None:
        raise ValueError("interpolate: only one of size or scale_factor should be defined")
    if size is not None:
        if isinstance(size, (list, tuple)):
            if len(size) != dims:
                raise ValueError(f"interpolate: Input and output must have the same number of spatial dimensions, but "
                                 f"got input with spatial dimensions of {spatial} and output size of {size}. Please "
                                 f"provide input tensor in (N, C, d1, d2, ...,dK) format and output size in "
                                 f"(o1, o2, ...,oK) format.")
            if not all(isinstance(item, numbers.Integral) and not isinstance(item, bool) for item in size):
                raise TypeError(f"interpolate: expected size to be one of int or Tuple[int] or Tuple[int, int] or "
                                f"Tuple[int, int, int], but got size with types {[type(item) for item in size]}")
            sizes = [int(item) for item in size]
        else:
            sizes = [int(size)] * dims
        if recompute_scale_factor:
            raise ValueError("interpolate: recompute_scale_factor is not meaningful with an explicit size.")
        return sizes, None
    if scale_factor is None:
        raise ValueError("interpolate: either size or scale_factor should be defined")
    if isinstance(scale_factor, (list, tuple)):
        if len(scale_factor) != dims:
            raise ValueError(f"interpolate: Input and scale_factor must have the same number of spatial dimensions, "
                             f"but got input with spatial dimensions of {spatial} and scale_factor of shape "
                             f"{scale_factor}. Please provide input tensor in (N, C, d1, d2, ...,dK) format and "
                             f"scale_factor in (s1, s2, ...,sK) format.")
        scales = [float(item) for item in scale_factor]
    else:
        scales = [float(scale_factor)] * dims
    # The size is the product truncated, as PyTorch's static_cast<int64_t>.
    sizes = [int(length * scale) for length, scale in zip(spatial, scales)]
    return sizes, None if recompute_scale_factor else scales


def _check_sizes(input, sizes):  # noqa: A002 - PyTorch's argument name
    spatial = input.shape[2:]
    if min(spatial) > 0 and min(sizes) > 0:
        return
    names = ("H", "W")[2 - len(spatial):]
    given = ", ".join(f"{name}: {length}" for name, length in zip(names, spatial))
    wanted = ", ".join(f"{name}: {length}" for name, length in zip(names, sizes))
    joint = " and" if len(spatial) == 1 else ""
    raise RuntimeError(f"interpolate: Input and output sizes should be greater than 0, but got input ({given}){joint} "
                       f"output ({wanted})")


def interpolate(input, size=None, scale_factor=None, mode="nearest", align_corners=None,  # noqa: A002
                recompute_scale_factor=None, antialias=False):
    """torch.nn.functional.interpolate of (N, C, L) or (N, C, H, W) input to `size` or by `scale_factor`.

    mode 'nearest' (PyTorch's: source index floor(i * in / out), or floor(i / scale_factor)), 'linear' (3-D),
    'bilinear' (4-D), with align_corners (corner pixels' centres aligned) or not (edges aligned, sources
    clamped at 0), and 'area' (adaptive average pooling). Other modes raise NotImplementedError.
    """
    if not isinstance(input, Tensor):
        raise TypeError(f"interpolate: expects a Tensor, got {type(input).__name__}")
    if mode in ("nearest", "area", "nearest-exact"):
        if align_corners is not None:
            raise ValueError("interpolate: align_corners option can only be set with the interpolating modes: "
                             "linear | bilinear | bicubic | trilinear")
    elif align_corners is None:
        align_corners = False
    dims = input.ndim - 2
    sizes, scales = _output_sizes(input, size, scale_factor, recompute_scale_factor, dims)
    if antialias:
        raise NotImplementedError(f"interpolate: antialias=True (mode {mode!r}) is not supported")
    if input.ndim not in (3, 4) or mode not in ("nearest", "linear", "bilinear", "area"):
        raise NotImplementedError(f"interpolate: mode {mode!r} with a {input.ndim}-D input of shape "
                                  f"{tuple(input.shape)} is not supported; nbprop supports {_SUPPORTED}")
    if (mode == "linear" and input.ndim != 3) or (mode == "bilinear" and input.ndim != 4):
        raise NotImplementedError(f"interpolate: Got {input.ndim}D input, but {mode} mode needs "
                                  f"{3 if mode == 'linear' else 4}D input")
    if input.dtype.kind != "f":
        raise RuntimeError(f"interpolate: expects a floating point input (float32 or float64), got {input.dtype}")
    if mode == "area":
        return (adaptive_avg_pool1d if dims == 1 else adaptive_avg_pool2d)(input, tuple(sizes))
    _check_sizes(input, sizes)
    device = DEVICES[input.device]
    spatial = tuple(input.shape[2:])
    scales = scales or [None] * dims
    if mode == "nearest":
        tables = [_nearest_table(device, length, out, scale) for length, out, scale in zip(spatial, sizes, scales)]
        rows = tables[0] if dims == 2 else device.zeros((1,), dtypes.int64)
        arguments = (rows, tables[-1])
        kernels = ("upsample_nearest_forward", "upsample_nearest_backward")
    else:
        tables = [_linear_tables(device, length, out, scale, align_corners, input.dtype)
                  for length, out, scale in zip(spatial, sizes, scales)]
        # A 1-D input is one row: the kernels then interpolate along the columns only.
        rows = tables[0] if dims == 2 else (device.zeros((2, 1), dtypes.int64),
                                            device.asarray([[1.0], [0.0]], input.dtype))
        arguments = (dims == 2, rows[0], rows[1], tables[-1][0], tables[-1][1])
        kernels = ("upsample_linear_forward", "upsample_linear_backward")
    return PlaneFunction.apply(input, kernels, arguments, dims, tuple(sizes))
