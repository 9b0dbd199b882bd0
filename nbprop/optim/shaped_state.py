"""ShapedStateMixin: per-parameter optimizer state whose shape is not the parameter's (scalars, factored moments).

The base Optimizer keeps state in flat arrays laid out like the parameters. A mixin subclass also declares,
per parameter, extra states of any shape (`_extra_shapes`): each bucket gets one flat array per extra name,
with its own offsets (`bucket.extra`, `bucket.extra_offsets`; a parameter without that state has an empty
segment), exposed in `state` and `state_dict()` in the parameter's entry, carried over when buckets are
rebuilt and restored by `load_state_dict()`. The flat arrays live on the bucket's device, their offsets in host
memory.
"""

import math

from nbprop.optim.flat import copy_state, offsets_of
from nbprop.optim.optimizer import host_array
from nbprop.tensor import Tensor


class ShapedStateMixin:
    """Mix in before Optimizer: `class ASGD(ShapedStateMixin, Optimizer)`."""

    # Every name `_extra_shapes` may return: load_state_dict separates them from the flat states.
    _extra_names = ()

    def _extra_shapes(self, group, parameter):
        """{name: (shape, dtype)} of the extra states of `parameter`."""
        return {}

    def _initialize_extra(self, bucket, index, group):
        """Fill fresh extra state of parameter `index` (it starts at zero)."""

    def _extras(self, bucket, group):
        """Create the bucket's extra flat arrays on first use."""
        if getattr(bucket, "extra", None) is not None:
            return
        shapes = [self._extra_shapes(group, parameter) for parameter in bucket.params]
        dtypes = {}
        for entry in shapes:
            for name, (_, dtype) in entry.items():
                dtypes.setdefault(name, dtype)
        bucket.extra_shapes = [{name: tuple(shape) for name, (shape, _) in entry.items()} for entry in shapes]
        bucket.extra_offsets = {}
        bucket.extra = {}
        for name, dtype in dtypes.items():
            sizes = [math.prod(entry[name]) if name in entry else 0 for entry in bucket.extra_shapes]
            offsets = offsets_of(sizes)
            bucket.extra_offsets[name] = offsets
            bucket.extra[name] = bucket.device.zeros((int(offsets[-1]),), dtype)

    @staticmethod
    def _extra_segment(bucket, name, index):
        offsets = bucket.extra_offsets[name]
        device = bucket.device
        region = device.region(bucket.extra[name], (slice(int(offsets[index]), int(offsets[index + 1])),))
        return device.view(region, bucket.extra_shapes[index][name])

    def _flatten(self, group_index):
        carried = {}
        for bucket in self._buckets[group_index] or ():
            if getattr(bucket, "extra", None) is None:
                continue
            for index, parameter in enumerate(bucket.params):
                if bucket.initialized[index]:
                    carried[id(parameter)] = {
                        name: (bucket.device, bucket.device.copy(self._extra_segment(bucket, name, index)))
                        for name in bucket.extra_shapes[index]}
        self._carried = carried
        try:
            super()._flatten(group_index)
        finally:
            self._carried = {}

    def _initialize(self, bucket, index, group):
        super()._initialize(bucket, index, group)
        self._extras(bucket, group)
        for name in bucket.extra_shapes[index]:
            bucket.device.fill(self._extra_segment(bucket, name, index), 0)
        self._initialize_extra(bucket, index, group)

    def _publish(self, bucket, index, group):
        self._extras(bucket, group)
        parameter = bucket.params[index]
        carried = getattr(self, "_carried", {}).get(id(parameter), {})
        for name, (device, array) in carried.items():
            if name in bucket.extra_shapes[index] and array.shape == bucket.extra_shapes[index][name]:
                copy_state(bucket.device, self._extra_segment(bucket, name, index), device, array)
        super()._publish(bucket, index, group)
        entry = self.state.setdefault(parameter, {})
        for name in bucket.extra_shapes[index]:
            entry[name] = Tensor._make(self._extra_segment(bucket, name, index), None, parameter.device)

    def load_state_dict(self, state_dict):
        """Optimizer.load_state_dict, with the extra states checked against their shapes and restored."""
        extras = {}
        flat_state = {}
        for key, entry in state_dict["state"].items():
            flat_state[key] = {name: value for name, value in entry.items() if name not in self._extra_names}
            extras[key] = {name: value for name, value in entry.items()
                           if name in self._extra_names and value is not None}
        super().load_state_dict({**state_dict, "state": flat_state})
        by_index = {}
        for saved, group in zip(state_dict["param_groups"], self.param_groups):
            by_index.update(zip(saved["params"], group["params"]))
        located = {}
        for group_index in range(len(self.param_groups)):
            for bucket in self._buckets[group_index]:
                self._extras(bucket, self.param_groups[group_index])
                for index, parameter in enumerate(bucket.params):
                    located[id(parameter)] = (bucket, index)
        name = type(self).__name__
        for key, values in extras.items():
            bucket, index = located[id(by_index[key])]
            for state_name, value in values.items():
                array = host_array(value)
                expected = bucket.extra_shapes[index].get(state_name)
                if expected is None:
                    raise ValueError(f"{name}.load_state_dict: parameter {key} has state {state_name!r}, which a "
                                     f"parameter of shape {bucket.shapes[index]} does not keep")
                if array.shape != expected:
                    raise ValueError(f"{name}.load_state_dict: state {state_name!r} of parameter {key} has shape "
                                     f"{array.shape}, expected {expected}")
                segment = self._extra_segment(bucket, state_name, index)
                bucket.device.copy_into(segment, bucket.device.asarray(array, segment.dtype))
