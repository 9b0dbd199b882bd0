"""OptaxAdafactor: Adafactor's factored second moments (Shazeer & Stern 2018) as optax.adafactor computes them.

Named apart from torch.optim.Adafactor, whose formulation differs: the PyTorch name is kept for a
PyTorch-compatible class.
"""

import math

import numpy as np

from nbprop.backend import DEVICES, HOST
from nbprop.optim.lamb import _scratch
from nbprop.optim.optimizer import Optimizer
from nbprop.optim.shaped_state import ShapedStateMixin


def factored_dims(shape, factored, min_dim_size_to_factor):
    """optax's choice: the (second largest, largest) axes of `shape` when both have at least
    min_dim_size_to_factor elements (ties broken by position, as NumPy's argsort), else None (no factoring)."""
    if not factored or len(shape) < 2:
        return None
    sorted_dims = sorted(range(len(shape)), key=shape.__getitem__)
    if shape[sorted_dims[-2]] < min_dim_size_to_factor:
        return None
    return int(sorted_dims[-2]), int(sorted_dims[-1])


class OptaxAdafactor(ShapedStateMixin, Optimizer):
    """`OptaxAdafactor(params, lr=None, decay_rate=0.8, decay_offset=0, min_dim_size_to_factor=128, eps=1e-30,
    clipping_threshold=1.0, multiply_by_parameter_scale=True, momentum=None, weight_decay_rate=None,
    factored=True, *, maximize=False, dtype_momentum=None, weight_decay_mask=None)`: optax.adafactor's update
    with its defaults (argument names as optax's; not torch.optim.Adafactor, whose formulation differs).
    One fused kernel call per group and dtype. Per parameter, at its step t, with d = 1 - (t - decay_offset)^-0.8:

    - s = g^2 + eps. A parameter whose two largest axes both have >= min_dim_size_to_factor elements (any
      number of dimensions >= 2; `factored=False` turns this off) keeps 'v_row' (s averaged over the largest
      axis) and 'v_col' (s averaged over the second largest), each decayed by d, and takes
      u = g * (v_row / mean of v_row over the second largest axis)^-1/2 * v_col^-1/2; any other parameter
      keeps 'v' = d v + (1 - d) s and takes u = g v^-1/2.
    - u /= max(1, rms(u) / clipping_threshold) (None: no clipping); u *= lr (None, the default: no scaling);
      u *= max(rms(p), 1e-3) if multiply_by_parameter_scale; with momentum, 'exp_avg' m = momentum m +
      (1 - momentum) u and u = m (optax's ema without debiasing); u += weight_decay_rate p (not scaled by lr,
      as in optax); p -= u.

    Not supported (NotImplementedError): `dtype_momentum` (the momentum is kept in the parameter's dtype) and
    `weight_decay_mask` (use param groups with weight_decay_rate=None instead). The factoring of a parameter
    is fixed when its state is created. State per parameter: 'step', 'v_row' and 'v_col' or 'v', and
    'exp_avg' with momentum.
    """

    _extra_names = ("v_row", "v_col", "v")

    def __init__(self, params, lr=None, decay_rate=0.8, decay_offset=0, min_dim_size_to_factor=128, eps=1e-30,
                 clipping_threshold=1.0, multiply_by_parameter_scale=True, momentum=None, weight_decay_rate=None,
                 factored=True, *, maximize=False, dtype_momentum=None, weight_decay_mask=None):
        if dtype_momentum is not None:
            raise NotImplementedError("Adafactor: dtype_momentum is not supported (the momentum is kept in the "
                                      "parameter's dtype)")
        if weight_decay_mask is not None:
            raise NotImplementedError("Adafactor: weight_decay_mask is not supported (put the parameters without "
                                      "weight decay in a param group with weight_decay_rate=None)")
        defaults = dict(lr=1.0 if lr is None else lr, decay_rate=decay_rate, decay_offset=decay_offset,
                        min_dim_size_to_factor=min_dim_size_to_factor, eps=eps,
                        clipping_threshold=clipping_threshold,
                        multiply_by_parameter_scale=multiply_by_parameter_scale, momentum=momentum,
                        weight_decay_rate=weight_decay_rate, factored=factored, maximize=maximize)
        super().__init__(params, defaults)

    def _check_group(self, group):
        if group["lr"] is None:
            group["lr"] = 1.0
        if group["eps"] < 0:
            raise ValueError(f"Invalid epsilon value: {group['eps']}")
        if group["decay_rate"] < 0:
            raise ValueError(f"Invalid decay_rate value: {group['decay_rate']}")
        threshold = group["clipping_threshold"]
        if threshold is not None and threshold <= 0:
            raise ValueError(f"Invalid clipping_threshold value: {threshold} (a positive number or None)")
        momentum = group["momentum"]
        if momentum is not None and not 0.0 <= momentum <= 1.0:
            raise ValueError(f"Invalid momentum value: {momentum}")
        decay = group["weight_decay_rate"]
        if decay is not None and decay < 0:
            raise ValueError(f"Invalid weight_decay_rate value: {decay}")

    def _state_names(self, group):
        return ("exp_avg",) if group["momentum"] is not None else ()

    def _extra_shapes(self, group, parameter):
        shape = parameter._data.shape
        dtype = parameter._data.dtype
        dims = factored_dims(shape, group["factored"], group["min_dim_size_to_factor"])
        if dims is None:
            return {"v": (shape, dtype)}
        second, largest = dims
        return {"v_row": (shape[:largest] + shape[largest + 1:], dtype),
                "v_col": (shape[:second] + shape[second + 1:], dtype)}

    def _layout(self, bucket):
        """The kernel's description of the bucket's factored parameters, made once per bucket (in host memory,
        then on the bucket's device)."""
        layout = getattr(bucket, "adafactor_layout", None)
        if layout is not None:
            return layout
        count = len(bucket.params)
        host = DEVICES[HOST]
        factored = host.zeros((count,), np.bool_)
        info, unit_factor, unit_outer = [], [], []
        for index, shape in enumerate(bucket.shapes):
            if "v_row" not in bucket.extra_shapes[index]:
                continue
            factored[index] = True
            second, largest = factored_dims(shape, True, 0)
            first_axis, last_axis = sorted((second, largest))
            outer = (math.prod(shape[:first_axis]), math.prod(shape[first_axis + 1:last_axis]),
                     math.prod(shape[last_axis + 1:]))
            info.append((index, outer[0], shape[first_axis], outer[1], shape[last_axis], outer[2],
                         bucket.extra_offsets["v_row"][index], bucket.extra_offsets["v_col"][index],
                         int(largest == last_axis)))
            positions = outer[0] * outer[1] * outer[2]
            unit_factor.extend([len(info) - 1] * positions)
            unit_outer.extend(range(positions))
        moment_offsets = bucket.extra_offsets.get("v", host.zeros((count + 1,), np.int64))
        arrays = (factored, host.reshape(host.asarray(info, np.int64), (len(info), 9)),
                  host.asarray(unit_factor, np.int64), host.asarray(unit_outer, np.int64), moment_offsets)
        layout = bucket.adafactor_layout = tuple(bucket.device.asarray(array) for array in arrays)
        return layout

    def _update(self, group, bucket, lr, fresh):
        self._extras(bucket, group)
        factored, info, unit_factor, unit_outer, moment_offsets = self._layout(bucket)
        empty = bucket.empty
        threshold = group["clipping_threshold"]
        momentum = group["momentum"]
        decay = group["weight_decay_rate"]
        device = bucket.device
        device.call(
            "adafactor_step", bucket.flat_param, bucket.flat_grad, _scratch(bucket), bucket.extra.get("v", empty),
            bucket.extra.get("v_row", empty), bucket.extra.get("v_col", empty), bucket.states.get("exp_avg", empty),
            bucket.device_offsets, moment_offsets, factored, info, unit_factor, unit_outer, bucket.chunk_start,
            bucket.chunk_end, bucket.chunk_segment, device.asarray(bucket.active), device.asarray(bucket.steps), lr,
            float(group["decay_rate"]), float(group["decay_offset"]), float(group["eps"]),
            0.0 if threshold is None else float(threshold), 1e-3 if group["multiply_by_parameter_scale"] else 0.0,
            -1.0 if momentum is None else float(momentum), 0.0 if decay is None else float(decay),
            bool(group["maximize"]), work=bucket.size)
