"""from_transform: an Optimizer (param groups, step, zero_grad, state_dict) driven by a composable transform."""

import numpy as np

from nbprop.backend import DEVICES, HOST
from nbprop.grad_mode import enable_grad
from nbprop.optim.optimizer import Optimizer
from nbprop.optim.transforms import DeviceArrays


def _is_device_array(value):
    """Whether a leaf of a transform state is an array of a device other than the host's (the host's and the
    counters are NumPy arrays)."""
    return not isinstance(value, (np.ndarray, np.generic)) and hasattr(value, "shape") and hasattr(value, "dtype")


def _copy_tree(state, device):
    """A copy of a transform state in host memory: NumPy arrays copied, `device`'s arrays fetched."""
    host = DEVICES[HOST]
    if isinstance(state, np.ndarray):
        return host.copy(state)
    if _is_device_array(state):
        return host.copy(device.to_numpy(state))
    if isinstance(state, tuple) and hasattr(state, "_fields"):
        return type(state)(*[_copy_tree(item, device) for item in state])
    if isinstance(state, (tuple, list)):
        return type(state)(_copy_tree(item, device) for item in state)
    return state


def _load_tree(target, source, device, where="state"):
    """Copy the saved `source` (host arrays, as `_copy_tree` makes them) into the live state `target`."""
    on_device = _is_device_array(target)
    if on_device or isinstance(target, np.ndarray):
        source = DEVICES[HOST].asarray(source)
        if source.shape != target.shape:
            raise ValueError(f"TransformOptimizer.load_state_dict: {where} has shape {source.shape}, expected "
                             f"{target.shape}")
        owner = device if on_device else DEVICES[HOST]
        owner.copy_into(target, owner.asarray(source, target.dtype))
        return
    if isinstance(target, (tuple, list)):
        if len(source) != len(target):
            raise ValueError(f"TransformOptimizer.load_state_dict: {where} has {len(source)} entries, expected "
                             f"{len(target)}")
        for index, (inner, saved) in enumerate(zip(target, source)):
            _load_tree(inner, saved, device, f"{where}[{index}]")


class TransformOptimizer(Optimizer):
    """Each step: updates = transform.update(grads, state, params) over the group's parameters (as arrays),
    then param -= lr * update. A parameter without a gradient gets a zero gradient. One transform state per
    group, made by `transform.init` at construction (or when the group is added) on the device of the group's
    parameters, which hands the transform its arrays as `DeviceArrays`."""

    _has_step = False
    _lends_grads = False  # transforms write their updates over the gathered gradients

    def __init__(self, params, transform, lr=1e-3):
        self.transform = transform
        self._transform_states = []
        self._devices = []
        self._steps = []
        super().__init__(params, dict(lr=lr))

    def add_param_group(self, param_group):
        super().add_param_group(param_group)
        group = self.param_groups[-1]
        names = sorted({parameter.device for parameter in group["params"]})
        if len(names) > 1:
            raise ValueError(f"TransformOptimizer: the parameters of a group must be on one device, got {names}")
        device = DEVICES[names[0] if names else HOST]
        self._transform_states.append(
            self.transform.init(DeviceArrays([device.copy(p._data) for p in group["params"]], device)))
        self._devices.append(device)
        self._steps.append(0)

    def _arrays(self, group_index):
        buckets = self._current_buckets(group_index)
        by_id = {}
        for bucket in buckets:
            for index, parameter in enumerate(bucket.params):
                by_id[id(parameter)] = (bucket.views[index], bucket.grad_views[index])
        params = self.param_groups[group_index]["params"]
        device = self._devices[group_index]
        if any(bucket.device is not device for bucket in buckets):
            raise RuntimeError("TransformOptimizer.step: the parameters moved to another device after the "
                               "transform's state was made; make the optimizer after moving the model")
        return (buckets, DeviceArrays([by_id[id(p)][0] for p in params], device),
                DeviceArrays([by_id[id(p)][1] for p in params], device))

    def step(self, closure=None):
        loss = None
        if closure is not None:
            with enable_grad():
                loss = closure()
        for group_index, group in enumerate(self.param_groups):
            buckets, params, grads = self._arrays(group_index)
            device = params.device
            for bucket in buckets:
                if not bucket.gather_grads("TransformOptimizer"):
                    device.fill(bucket.flat_grad, 0)
                for index in (~bucket.active).nonzero()[0]:
                    device.fill(bucket.grad_views[index], 0)
            lr = group["lr"]
            lr = float(lr(self._steps[group_index]) if callable(lr) else lr)
            updates, self._transform_states[group_index] = self.transform.update(
                grads, self._transform_states[group_index], params)
            if all(update is grad for update, grad in zip(updates, grads)):
                # Updates written in place over the gathered gradients: one call per flat bucket.
                for bucket in buckets:
                    device.call("add_scaled", bucket.flat_grad, -lr, bucket.flat_param)
            else:
                for param, update in zip(params, updates):
                    if param.size:
                        if update.dtype != param.dtype:
                            update = device.astype(update, param.dtype)
                        device.call("add_scaled", device.reshape(update, (param.size,)), -lr,
                                    device.view(param, (param.size,)))
            for parameter in group["params"]:
                parameter._version_counter[0] += 1
            self._steps[group_index] += 1
        return loss

    def state_dict(self):
        """Param groups as `Optimizer.state_dict`, the per-group transform states (copied) and step counts."""
        packed = super().state_dict()
        packed["transform_state"] = [_copy_tree(state, device)
                                     for state, device in zip(self._transform_states, self._devices)]
        packed["steps"] = list(self._steps)
        return packed

    def load_state_dict(self, state_dict):
        super().load_state_dict(state_dict)
        for target, source, device in zip(self._transform_states, state_dict["transform_state"], self._devices):
            _load_tree(target, source, device)
        self._steps = list(state_dict["steps"])


def from_transform(params, transform, lr=1e-3):
    """An Optimizer applying `transform` (see nbprop.optim.transforms) then param -= lr * update; `lr` is a
    float or a schedule step -> lr evaluated at the number of steps taken. Example::

        optimizer = from_transform(model.parameters(), chain(clip_by_global_norm(1.0), scale_by_adam()), 1e-3)
    """
    return TransformOptimizer(params, transform, lr)
