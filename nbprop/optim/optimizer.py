"""Optimizer: PyTorch's base class (param groups, state, state_dict) over flat per-group buffers.

Each param group's parameters are packed, per dtype, into one flat buffer (`FlatBucket`): their `_data`
become views into it, so a subclass updates a whole group with one fused kernel call. The buffers are
rebuilt when needed: after `add_param_group`, `load_state_dict`, a change of a parameter's array (such as
`Module.to(dtype)`), or a change of `group['params']`.

A group's `lr` may be a float or a schedule (a callable step -> learning rate): it is evaluated each step
at the number of steps the group has already taken (the largest 'step' of its parameters, from 0).
"""

import operator

import numpy as np

from nbprop.backend import DEVICES, HOST
from nbprop.capture.state import host_step
from nbprop.grad_mode import enable_grad, no_grad
from nbprop.optim.flat import FlatBucket, copy_state
from nbprop.tensor import Tensor


class _RequiredParameter:
    def __repr__(self):
        return "<required parameter>"


required = _RequiredParameter()


def host_array(value):
    """The values of an nbprop Tensor (on any device), a PyTorch tensor or an array, as a NumPy array in host
    memory (for reading a state dict: it may share memory with `value`)."""
    if isinstance(value, Tensor):
        return DEVICES[value.device].to_numpy(value._data)
    if hasattr(value, "detach") and hasattr(value, "numpy"):
        return value.detach().cpu().numpy()
    return DEVICES[HOST].asarray(value)


class Optimizer:
    """Base class: `Optimizer(params, defaults)`, with `param_groups`, `state`, `defaults`, `step(closure)`,
    `zero_grad(set_to_none=True)`, `add_param_group`, `state_dict()` and `load_state_dict()`.

    A subclass names its flat state arrays with `_state_names(group)`, says whether its state holds a
    'step' (`_has_step`), may fill fresh state in `_initialize(bucket, index, group)`, and updates one
    bucket in `_update(group, bucket, lr)`.
    """

    _has_step = True
    # The buckets lend their gradient views to the backward pass (see FlatBucket.lend_grad): right for any
    # optimizer whose update only reads the gathered gradients.
    _lends_grads = True

    def __init_subclass__(cls, **keywords):
        # A captured step (nbprop.compile) reruns updates in Python, overridden ones too: they read the learning
        # rate and step counts, which change from step to step.
        super().__init_subclass__(**keywords)
        for name in ("step", "zero_grad"):
            if name in cls.__dict__:
                setattr(cls, name, host_step(cls.__dict__[name]))

    def __init__(self, params, defaults):
        self.defaults = defaults
        self.state = {}
        self.param_groups = []
        self._buckets = []
        if isinstance(params, Tensor):
            raise TypeError("params argument given to the optimizer should be an iterable of Tensors or dicts, "
                            "but got a Tensor")
        param_groups = list(params)
        if not param_groups:
            raise ValueError("optimizer got an empty parameter list")
        if not isinstance(param_groups[0], dict):
            param_groups = [{"params": param_groups}]
        for group in param_groups:
            self.add_param_group(group)

    def __repr__(self):
        lines = [self.__class__.__name__ + " ("]
        for index, group in enumerate(self.param_groups):
            lines.append(f"Parameter Group {index}")
            lines.extend(f"    {key}: {group[key]}" for key in sorted(group) if key != "params")
        return "\n".join(lines) + "\n)"

    # ------------------------------------------------------------------------------------------ groups

    def add_param_group(self, param_group):
        """Add a group (a dict with 'params' and optional hyperparameters; missing ones take the defaults)."""
        if not isinstance(param_group, dict):
            raise TypeError(f"param_group must be a dict, but got {type(param_group).__name__}")
        group = dict(param_group)
        params = group.get("params")
        if isinstance(params, Tensor):
            params = [params]
        elif isinstance(params, set):
            raise TypeError("optimizer parameters need to be organized in ordered collections, but the ordering "
                            "of tensors in sets will change between runs. Please use a list instead.")
        else:
            params = list(params)
        if params and isinstance(params[0], tuple):
            group["param_names"] = [name for name, _ in params]
            params = [parameter for _, parameter in params]
        for parameter in params:
            if not isinstance(parameter, Tensor):
                raise TypeError(f"optimizer can only optimize Tensors, but one of the params is "
                                f"{type(parameter).__name__}")
            if not parameter.is_leaf:
                raise ValueError("can't optimize a non-leaf Tensor")
            if parameter._data.dtype.kind != "f":
                raise TypeError(f"optimizer can only optimize floating-point Tensors, got {parameter._data.dtype}")
        if len({id(p) for p in params}) != len(params):
            raise ValueError("optimizer contains a parameter group with duplicate parameters")
        group["params"] = params
        for name, default in self.defaults.items():
            if default is required and name not in group:
                raise ValueError(f"parameter group didn't specify a value of required optimization parameter "
                                 f"{name}")
            group.setdefault(name, default)
        existing = {id(p) for other in self.param_groups for p in other["params"]}
        if any(id(p) in existing for p in params):
            raise ValueError("some parameters appear in more than one parameter group")
        lr = group.get("lr")
        if isinstance(lr, (int, float)) and lr < 0:
            raise ValueError(f"Invalid learning rate: {lr}")
        self._check_group(group)
        self.param_groups.append(group)
        self._buckets.append(None)
        self._flatten(len(self.param_groups) - 1)

    def _check_group(self, group):
        """Validate a group's hyperparameters (subclasses raise ValueError as PyTorch does)."""

    def _flatten(self, group_index):
        """(Re)build a group's flat buckets, carrying every parameter's state over."""
        group = self.param_groups[group_index]
        saved = {}
        for bucket in self._buckets[group_index] or ():
            for index, parameter in enumerate(bucket.params):
                if bucket.initialized[index]:
                    saved[id(parameter)] = (bucket.steps[index], bucket.device, {
                        name: bucket.device.copy(bucket.segment(name, index)) for name in bucket.states})
        by_kind = {}
        for parameter in group["params"]:
            by_kind.setdefault((parameter.device, parameter._data.dtype), []).append(parameter)
        state_names = self._state_names(group)
        buckets = [FlatBucket(params, state_names, self._lends_grads) for params in by_kind.values()]
        self._buckets[group_index] = buckets
        self._group_ids = None
        for bucket in buckets:
            for index, parameter in enumerate(bucket.params):
                self.state.pop(parameter, None)
                if id(parameter) in saved:
                    step, device, arrays = saved[id(parameter)]
                    bucket.steps[index] = step
                    for name, array in arrays.items():
                        if name in bucket.states:
                            copy_state(bucket.device, bucket.segment(name, index), device, array)
                    self._publish(bucket, index, group)
                elif self._initialize_eagerly(group):
                    self._start(bucket, index, group)

    def _current_buckets(self, group_index):
        group = self.param_groups[group_index]
        buckets = self._buckets[group_index]
        count = 0
        for bucket in buckets:
            if not bucket.is_current():
                self._flatten(group_index)
                return self._buckets[group_index]
            count += len(bucket.params)
        params = group["params"]
        if count != len(params) or not all(map(operator.is_, params, self._ordered(buckets))):
            self._flatten(group_index)
            return self._buckets[group_index]
        return buckets

    @staticmethod
    def _ordered(buckets):
        if len(buckets) == 1:
            return buckets[0].params
        return [p for bucket in buckets for p in bucket.params]

    # ------------------------------------------------------------------------------------------ state

    def _state_names(self, group):
        return ()

    def _initialize_eagerly(self, group):
        """Whether state exists from construction (PyTorch's Adagrad) rather than from the first step."""
        return False

    def _initialize(self, bucket, index, group):
        """Fill fresh state of parameter `index` (the flat arrays start at zero)."""

    def _start(self, bucket, index, group):
        bucket.steps[index] = 0.0
        for name in bucket.states:
            bucket.device.fill(bucket.segment(name, index), 0)
        self._initialize(bucket, index, group)
        self._publish(bucket, index, group)

    def _publish(self, bucket, index, group):
        """Mark a parameter's state as existing and expose it in `state` as views into the flat arrays."""
        bucket.initialized[index] = True
        entry = {}
        if self._has_step:
            # In host memory, as PyTorch's 'step' (a CPU tensor whatever the parameter's device).
            entry["step"] = Tensor._make(bucket.steps[index:index + 1].reshape(()), None, HOST)
        device = bucket.params[index].device
        for name in bucket.states:
            entry[name] = Tensor._make(bucket.segment(name, index), None, device)
        if entry:
            self.state[bucket.params[index]] = entry

    # ------------------------------------------------------------------------------------------ steps

    @host_step
    def zero_grad(self, set_to_none=True):
        """Reset the gradients of all optimized parameters: to None (default) or to zeros in place."""
        for group in self.param_groups:
            for parameter in group["params"]:
                gradient = parameter.grad
                if gradient is None:
                    continue
                if set_to_none:
                    parameter.grad = None
                else:
                    if gradient.grad_fn is not None:
                        gradient.detach_()
                    with no_grad():
                        gradient.zero_()

    @host_step
    def step(self, closure=None):
        """One update of every parameter that has a gradient; with `closure` (re-evaluates the model and
        returns the loss), calls it first with gradients enabled and returns its loss."""
        loss = None
        if closure is not None:
            with enable_grad():
                loss = closure()
        name = self.__class__.__name__
        for group_index, group in enumerate(self.param_groups):
            buckets = self._current_buckets(group_index)
            lr = group["lr"]
            if callable(lr):
                lr = float(lr(int(max((b.steps.max() for b in buckets if b.steps.size), default=0))))
            for bucket in buckets:
                if not bucket.gather_grads(name):
                    continue
                if bucket.started:
                    fresh = bucket.none_fresh
                else:
                    fresh = bucket.active & ~bucket.initialized
                    for index in fresh.nonzero()[0]:
                        self._start(bucket, index, group)
                    bucket.started = bool(bucket.initialized.all())
                if bucket.all_active:
                    bucket.steps += 1.0
                else:
                    bucket.steps[bucket.active] += 1.0
                self._update(group, bucket, float(lr), fresh)
                bucket.bump_versions()
        return loss

    def _update(self, group, bucket, lr, fresh):
        raise NotImplementedError(f"{self.__class__.__name__} does not define its update")

    # ------------------------------------------------------------------------------------------ state dicts

    def state_dict(self):
        """PyTorch's layout: {'state': {index: {'step': 0-d tensor, name: tensor}}, 'param_groups': [{...,
        'params': [indices]}]}; parameters are numbered in group order. Values are copies."""
        indices = {}
        groups = []
        for group in self.param_groups:
            packed = {key: value for key, value in group.items() if key != "params"}
            packed["params"] = [indices.setdefault(id(p), len(indices)) for p in group["params"]]
            groups.append(packed)
        state = {}
        for group in self.param_groups:
            for parameter in group["params"]:
                entry = self.state.get(parameter)
                if entry is None:
                    continue
                copied = {}
                for key, value in entry.items():
                    device = DEVICES[value.device]
                    array = device.astype(value._data, np.float32) if key == "step" else device.copy(value._data)
                    copied[key] = Tensor._make(array, None, value.device)
                state[indices[id(parameter)]] = copied
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict):
        """Restore state and hyperparameters saved by `state_dict()` (ours, or PyTorch's where the state names
        agree). Parameters are matched by position; sizes and state names are checked."""
        groups = state_dict["param_groups"]
        if len(groups) != len(self.param_groups):
            raise ValueError(f"loaded state dict has {len(groups)} parameter groups, but the optimizer has "
                             f"{len(self.param_groups)}")
        by_index = {}
        for saved, group in zip(groups, self.param_groups):
            if len(saved["params"]) != len(group["params"]):
                raise ValueError("loaded state dict contains a parameter group that doesn't match the size of "
                                 f"optimizer's group ({len(saved['params'])} parameters, expected "
                                 f"{len(group['params'])})")
            by_index.update(zip(saved["params"], group["params"]))
        loaded = {}
        for key, entry in state_dict["state"].items():
            if key not in by_index:
                raise ValueError(f"loaded state dict has state for parameter {key}, which no group lists")
            parameter = by_index[key]
            group = next(g for g in groups if key in g["params"])
            names = set(self._state_names({**self.defaults, **group}))
            values = {name: value for name, value in entry.items() if value is not None}
            unknown = set(values) - names - ({"step"} if self._has_step else set())
            if unknown:
                raise ValueError(f"{self.__class__.__name__}.load_state_dict: parameter {key} has unknown state "
                                 f"{sorted(unknown)}; expected {sorted(names)}")
            arrays = {}
            for name, value in values.items():
                array = host_array(value)
                expected = () if name == "step" else parameter._data.shape
                if array.shape != expected and not (name == "step" and array.size == 1):
                    raise ValueError(f"{self.__class__.__name__}.load_state_dict: state {name!r} of parameter {key} "
                                     f"has shape {array.shape}, but the parameter has shape {expected}")
                arrays[name] = array
            loaded[id(parameter)] = arrays
        for saved, group in zip(groups, self.param_groups):
            for name, value in saved.items():
                if name not in ("params", "param_names"):
                    group[name] = value
        for group_index in range(len(self.param_groups)):
            self._buckets[group_index] = None
            self._flatten(group_index)
            for bucket in self._buckets[group_index]:
                for index, parameter in enumerate(bucket.params):
                    arrays = loaded.get(id(parameter))
                    if arrays is None:
                        continue
                    self._start(bucket, index, self.param_groups[group_index])
                    for name, array in arrays.items():
                        if name == "step":
                            bucket.steps[index] = float(array.reshape(-1)[0])
                        else:
                            bucket.device.copy_into(bucket.segment(name, index),
                                                    bucket.device.asarray(array, bucket.dtype))


def check_moment_hyperparameters(group):
    """PyTorch's checks of eps, betas and weight_decay for the Adam family (Adam, AdamW, Adamax, NAdam, RAdam, LAMB)."""
    beta1, beta2 = group["betas"]
    if not 0.0 <= group["eps"]:
        raise ValueError(f"Invalid epsilon value: {group['eps']}")
    if not 0.0 <= beta1 < 1.0:
        raise ValueError(f"Invalid beta parameter at index 0: {beta1}")
    if not 0.0 <= beta2 < 1.0:
        raise ValueError(f"Invalid beta parameter at index 1: {beta2}")
    if not 0.0 <= group["weight_decay"]:
        raise ValueError(f"Invalid weight_decay value: {group['weight_decay']}")
