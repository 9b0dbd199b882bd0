"""The capture in progress (if any), and the marker for functions that a captured step reruns in Python."""

import functools

# The Recorder of the step being captured (nbprop/capture/recording.py), or None. The CPU device, the backward
# pass and the random streams read it; they lie below the capture package, so it lives in this small module.
recorder = None


def _reusable(argument):
    """A one-shot iterator (say `model.parameters()`) as a tuple, so that each replay sees every item again."""
    if hasattr(argument, "__next__"):
        return tuple(argument)
    return argument


def host_step(function):
    """Mark `function` as a host step: a captured step records the call itself rather than the kernels it
    launches, and each replay calls it again in Python. Optimizer updates, zero_grad, learning-rate schedulers
    and gradient clipping are host steps: they read Python state (the learning rate, step counts, norms) that
    changes from step to step, and cost one kernel call per parameter group, not one per op."""

    @functools.wraps(function)
    def run(*arguments, **keywords):
        if recorder is None or recorder.suspended:
            return function(*arguments, **keywords)
        arguments = tuple(_reusable(argument) for argument in arguments)
        keywords = {name: _reusable(value) for name, value in keywords.items()}
        return recorder.host_step(function, arguments, keywords)

    return run


def note_host_read(what):
    """Called where Python reads tensor values or draws random numbers on the host: a step that does so
    outside a host step cannot be replayed (its plan would keep the values of the capture)."""
    if recorder is not None and not recorder.suspended:
        recorder.fail(what)
