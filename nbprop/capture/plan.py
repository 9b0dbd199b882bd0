"""A captured step's plan: its recorded calls bound to buffers reused by liveness, replayed by a tight loop.

The plan rebinds every array argument to the memory it will use for good. An array the step allocated and
nothing outside the plan still holds after the capture (an intermediate, a saved activation) gets a buffer
shared with the other such arrays whose lives, from first to last call that uses them, do not overlap; an
array something still holds (a parameter's gradient, an output, an optimizer's state) keeps its own memory.
Views are rebuilt on the new buffers with their offsets, shapes and strides: one `np.ndarray` per argument,
made once.
"""

import heapq
import weakref

import numpy as np

from nbprop.capture.recording import root_of


class _Slot:
    """A view of a produced array's memory: its root's key, byte offset, shape, strides, dtype, writeability."""

    __slots__ = ("key", "offset", "shape", "strides", "dtype", "writeable")

    def __init__(self, array, key, root):
        self.key = key
        self.offset = array.__array_interface__["data"][0] - root.__array_interface__["data"][0]
        self.shape, self.strides, self.dtype = array.shape, array.strides, array.dtype
        self.writeable = array.flags.writeable

    def on(self, buffer):
        array = np.ndarray(self.shape, self.dtype, buffer, self.offset, self.strides)
        if not self.writeable:
            array.flags.writeable = False
        return array


def _template(value, produced, uses, index):
    """`value` with each array of produced memory replaced by its _Slot (through tuples and lists); `uses`
    gets the first and last call index of each produced root."""
    if isinstance(value, np.ndarray):
        root = root_of(value)
        key = id(root)
        if key not in produced:
            return value
        span = uses.get(key)
        if span is None:
            uses[key] = [index, index]
        else:
            span[1] = index
        return _Slot(value, key, root)
    if isinstance(value, (tuple, list)):
        return type(value)(_template(item, produced, uses, index) for item in value)
    return value


def _bound(value, buffers):
    if isinstance(value, _Slot):
        return value.on(buffers[value.key])
    if isinstance(value, (tuple, list)):
        return type(value)(_bound(item, buffers) for item in value)
    return value


def _shared_buffers(free_roots, uses):
    """One buffer per root of `free_roots` ({key: nbytes}), shared between roots whose uses do not overlap:
    a root takes a released buffer of its size where one is free (greedy, in order of first use)."""
    buffers, released, live = {}, {}, []
    for key in sorted(free_roots, key=lambda key: uses[key][0]):
        first, last = uses[key]
        while live and live[0][0] < first:
            _, other = heapq.heappop(live)
            released.setdefault(free_roots[other], []).append(buffers[other])
        spare = released.get(free_roots[key])
        buffers[key] = spare.pop() if spare else np.empty(free_roots[key], np.uint8)
        heapq.heappush(live, (last, key))
    return buffers


class Plan:
    """`calls`: the (function, arguments) of a captured step, bound to their buffers; `replay()` runs them.

    Build it from a Recorder whose record the caller no longer holds otherwise (the plan decides which
    produced arrays are still referenced elsewhere by letting go of its own references first).
    `bytes_planned` and `bytes_shared` say how much produced memory the plan holds and how much of it the
    buffer sharing saved."""

    def __init__(self, recorder):
        produced, uses = recorder.produced, {}
        templates = [(function, _template(arguments, produced, uses, index))
                     for index, (function, arguments) in enumerate(recorder.operations)]
        sizes = {key: root.nbytes for key, root in produced.items()}
        references = {key: weakref.ref(root) for key, root in produced.items()}
        recorder.operations, recorder.produced = [], {}
        del produced
        # What is alive now is held from outside the plan: the tape forms no reference cycles (DESIGN.md rule 5),
        # and an array a cycle still held would only keep its own memory (a gc.collect here costs 80 ms).
        held = {key: reference() for key, reference in references.items()}
        held = {key: root for key, root in held.items() if root is not None}
        free_roots = {key: sizes[key] for key in uses if key not in held}
        buffers = _shared_buffers(free_roots, uses)
        self.bytes_planned = sum(sizes[key] for key in uses)
        self.bytes_shared = sum(free_roots.values()) - sum({id(b): b.nbytes for b in buffers.values()}.values())
        buffers.update(held)
        self.calls = [(function, _bound(arguments, buffers)) for function, arguments in templates]

    def replay(self):
        for function, arguments in self.calls:
            function(*arguments)
