"""FlatBucket: parameters of one group and dtype packed into one flat buffer, with their state and gradients.

The parameters' `_data` become views into the flat buffer (Parameter objects, shapes and values stay), so
that one kernel call updates them all. Gradients are gathered into a flat gradient buffer each step; a
bucket that lends its gradient views makes the backward pass write the gradients there in the first place
(see `lend_grad`), so that gathering finds them in place.

The buffers live on the parameters' device. The per-parameter bookkeeping (`steps`, `initialized`, `active`,
the offsets) lives in host memory, where Python reads and writes it, as PyTorch keeps 'step' on the CPU;
kernels get it through `device.asarray`, which costs nothing on the CPU.
"""

import itertools
import operator
import sys
import weakref

import numpy as np

from nbprop.backend import DEVICES, HOST

# Chunks of at most this many elements: threads share a large parameter evenly.
CHUNK_LENGTH = 4096


def _lender(bucket, index):
    """A parameter's `_grad_lender`: `bucket.lend_grad(index)` while the bucket lives. The bucket is held
    weakly, so that a deleted optimizer's buffers and state are freed although its parameters live on."""
    reference = weakref.ref(bucket)

    def lend():
        alive = reference()
        return None if alive is None else alive.lend_grad(index)

    return lend


def offsets_of(sizes):
    """[0, sizes[0], sizes[0] + sizes[1], ...]: where each of consecutive segments of `sizes` starts (host int64)."""
    return DEVICES[HOST].asarray([0, *itertools.accumulate(sizes)], np.int64)


def copy_state(device, destination, source_device, source):
    """Copy `source` (an array on `source_device`) into `destination` (on `device`), converting its dtype."""
    if source_device is not device:
        source = device.asarray(source_device.to_numpy(source))
    device.copy_into(destination, source)


class FlatBucket:
    """Parameters of one device and dtype in one contiguous buffer; `states[name]` flat arrays of the same layout
    on that device. `empty` is an empty array of the dtype, for a kernel's unused state."""

    def __init__(self, params, state_names, lend_grads=True):
        self.params = list(params)
        self.dtype = self.params[0]._data.dtype
        self.device = device = DEVICES[self.params[0].device]
        self.shapes = [p._data.shape for p in self.params]
        sizes = [p._data.size for p in self.params]
        self.offsets = offsets_of(sizes)
        self.size = int(self.offsets[-1])
        self.flat_param = device.empty((self.size,), self.dtype)
        self.views = []
        for index, parameter in enumerate(self.params):
            view = self._segment_of(self.flat_param, index)
            device.copy_into(view, parameter._data)
            parameter._data = view
            self.views.append(view)
        self.flat_grad = device.zeros((self.size,), self.dtype)
        self.grad_views = [self._segment_of(self.flat_grad, index) for index in range(len(self.params))]
        self.empty = device.empty((0,), self.dtype)
        # The reference counts of a gradient view and of the flat buffer while only the bucket holds them.
        self._free_counts = self._reference_counts(0) if self.params else None
        # Lending is safe only where reference counts see every view of the storage (lend_grad's check).
        lend_grads = lend_grads and device.views_hold_their_base
        for index, parameter in enumerate(self.params):
            parameter._grad_lender = _lender(self, index) if lend_grads else None
        self.states = {name: device.zeros((self.size,), self.dtype) for name in state_names}
        count = len(self.params)
        host = DEVICES[HOST]
        self.steps = host.zeros((count,), np.float64)
        self.initialized = host.zeros((count,), np.bool_)
        self.active = host.zeros((count,), np.bool_)
        # Python-side summaries that spare the step small NumPy operations (~1 us each) in the common case:
        # whether every parameter had a gradient at the last gather, and whether every one has started.
        self.all_active = self.started = False
        self.none_fresh = host.zeros((count,), np.bool_)
        starts, ends, segments = [], [], []
        for index, size in enumerate(sizes):
            for start in range(0, size, CHUNK_LENGTH):
                starts.append(self.offsets[index] + start)
                ends.append(self.offsets[index] + min(start + CHUNK_LENGTH, size))
                segments.append(index)
        self.chunk_start = device.asarray(starts, np.int64)
        self.chunk_end = device.asarray(ends, np.int64)
        self.chunk_segment = device.asarray(segments, np.int64)
        self.device_offsets = device.asarray(self.offsets)

    def _segment_of(self, flat, index):
        """Parameter `index`'s part of the flat array `flat`, a view in the parameter's shape."""
        device = self.device
        region = device.region(flat, (slice(int(self.offsets[index]), int(self.offsets[index + 1])),))
        return device.view(region, self.shapes[index])

    def is_current(self):
        """Whether every parameter still holds its view (a `.to(dtype)` or an assignment replaces it)."""
        for parameter, view in zip(self.params, self.views):
            if parameter._data is not view:
                return False
        return True

    def _reference_counts(self, index):
        return sys.getrefcount(self.grad_views[index]), sys.getrefcount(self.flat_grad)

    def lend_grad(self, index):
        """Parameter `index`'s gradient view, for the backward pass to make its new `.grad` (the parameter's
        `_grad_lender` calls this); None while anything outside the bucket still refers to the view or to
        memory under the flat buffer (say, a `.grad` kept from an earlier step, which must keep its values,
        as a replaced `.grad` does in PyTorch), or once the parameter no longer holds its flat view."""
        if self._reference_counts(index) != self._free_counts or self.params[index]._data is not self.views[index]:
            return None
        return self.grad_views[index]

    def segment(self, name, index):
        """Parameter `index`'s slice of state `name`, in the parameter's shape."""
        return self._segment_of(self.states[name], index)

    def gather_grads(self, op):
        """Make `flat_grad` hold the gradients (those written into lent views are there already, the others
        are copied) and mark which parameters have one; False when none has."""
        try:
            arrays = [p.grad._data for p in self.params]
        except AttributeError:
            arrays = None
        if arrays is not None:
            if all(map(operator.is_, arrays, self.grad_views)):
                self.active.fill(True)
                self.all_active = True
                return True
            if [a.shape for a in arrays] == self.shapes and all(a.dtype == self.dtype for a in arrays):
                self.device.concatenate_into(arrays, self.flat_grad)
                self.active.fill(True)
                self.all_active = True
                return True
        self.all_active = False
        any_active = False
        for index, parameter in enumerate(self.params):
            gradient = parameter.grad
            self.active[index] = gradient is not None
            if gradient is None:
                continue
            if gradient._data.shape != self.shapes[index] or gradient._data.dtype != self.dtype:
                raise RuntimeError(f"{op}.step: the gradient of parameter {index} of its group has shape "
                                   f"{gradient._data.shape} and dtype {gradient._data.dtype}, but the parameter "
                                   f"has shape {self.shapes[index]} and dtype {self.dtype}")
            if gradient._data is not self.grad_views[index]:
                self.device.copy_into(self.grad_views[index], gradient._data)
            any_active = True
        return any_active

    def bump_versions(self):
        for parameter, active in zip(self.params, [True] * len(self.params) if self.all_active else self.active):
            if active:
                parameter._version_counter[0] += 1
