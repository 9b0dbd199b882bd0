"""from_transform: an Optimizer (param groups, step, zero_grad, state_dict) driven by a composable transform."""

import numpy as np

from nbprop.grad_mode import enable_grad
from nbprop.optim.optimizer import Optimizer


def _copy_tree(state):
    if isinstance(state, np.ndarray):
        return np.array(state)
    if isinstance(state, tuple) and hasattr(state, "_fields"):
        return type(state)(*[_copy_tree(item) for item in state])
    if isinstance(state, (tuple, list)):
        return type(state)(_copy_tree(item) for item in state)
    return state


def _load_tree(target, source, where="state"):
    if isinstance(target, np.ndarray):
        source = np.asarray(source)
        if source.shape != target.shape:
            raise ValueError(f"TransformOptimizer.load_state_dict: {where} has shape {source.shape}, expected "
                             f"{target.shape}")
        target[...] = source
        return
    if isinstance(target, (tuple, list)):
        if len(source) != len(target):
            raise ValueError(f"TransformOptimizer.load_state_dict: {where} has {len(source)} entries, expected "
                             f"{len(target)}")
        for index, (inner, saved) in enumerate(zip(target, source)):
            _load_tree(inner, saved, f"{where}[{index}]")


class TransformOptimizer(Optimizer):
    """Each step: updates = transform.update(grads, state, params) over the group's parameters (as arrays),
    then param -= lr * update. A parameter without a gradient gets a zero gradient. One transform state per
    group, made by `transform.init` at construction (or when the group is added)."""

    _has_step = False
    _lends_grads = False  # transforms write their updates over the gathered gradients

    def __init__(self, params, transform, lr=1e-3):
        self.transform = transform
        self._transform_states = []
        self._steps = []
        super().__init__(params, dict(lr=lr))

    def add_param_group(self, param_group):
        super().add_param_group(param_group)
        group = self.param_groups[-1]
        self._transform_states.append(self.transform.init([np.array(p._data) for p in group["params"]]))
        self._steps.append(0)

    def _arrays(self, group_index):
        buckets = self._current_buckets(group_index)
        by_id = {}
        for bucket in buckets:
            for index, parameter in enumerate(bucket.params):
                gradient = bucket.flat_grad[bucket.offsets[index]:bucket.offsets[index + 1]]
                by_id[id(parameter)] = (bucket.views[index], gradient.reshape(bucket.shapes[index]))
        params = self.param_groups[group_index]["params"]
        return buckets, [by_id[id(p)][0] for p in params], [by_id[id(p)][1] for p in params]

    def step(self, closure=None):
        loss = None
        if closure is not None:
            with enable_grad():
                loss = closure()
        for group_index, group in enumerate(self.param_groups):
            buckets, params, grads = self._arrays(group_index)
            for bucket in buckets:
                if not bucket.gather_grads("TransformOptimizer"):
                    bucket.flat_grad.fill(0)
                for index in np.flatnonzero(~bucket.active):
                    bucket.flat_grad[bucket.offsets[index]:bucket.offsets[index + 1]] = 0
            lr = group["lr"]
            lr = float(lr(self._steps[group_index]) if callable(lr) else lr)
            updates, self._transform_states[group_index] = self.transform.update(
                grads, self._transform_states[group_index], params)
            if all(update is grad for update, grad in zip(updates, grads)):
                # Updates written in place over the gathered gradients: one call per flat bucket.
                for bucket in buckets:
                    bucket.device.call("add_scaled", bucket.flat_grad, -lr, bucket.flat_param)
            else:
                for param, update in zip(params, updates):
                    if param.size:
                        buckets[0].device.call("add_scaled", np.ascontiguousarray(update, param.dtype).reshape(-1),
                                               -lr, param.reshape(-1))
            for parameter in group["params"]:
                parameter._version_counter[0] += 1
            self._steps[group_index] += 1
        return loss

    def state_dict(self):
        """Param groups as `Optimizer.state_dict`, the per-group transform states (copied) and step counts."""
        packed = super().state_dict()
        packed["transform_state"] = [_copy_tree(state) for state in self._transform_states]
        packed["steps"] = list(self._steps)
        return packed

    def load_state_dict(self, state_dict):
        super().load_state_dict(state_dict)
        for target, source in zip(self._transform_states, state_dict["transform_state"]):
            _load_tree(target, source)
        self._steps = list(state_dict["steps"])


def from_transform(params, transform, lr=1e-3):
    """An Optimizer applying `transform` (see nbprop.optim.transforms) then param -= lr * update; `lr` is a
    float or a schedule step -> lr evaluated at the number of steps taken. Example::

        optimizer = from_transform(model.parameters(), chain(clip_by_global_norm(1.0), scale_by_adam()), 1e-3)
    """
    return TransformOptimizer(params, transform, lr)
