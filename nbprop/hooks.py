"""Hooks: the handle that removes one (torch.utils.hooks), shared by tensors and modules, and the gradient hooks of
tensors (Tensor.register_hook), which the backward pass runs."""

import weakref
from collections import OrderedDict

from nbprop.tensor import Tensor


class RemovableHandle:
    """What registering a hook returns: `remove()` unregisters it (again is harmless); as a context manager, the
    hook is removed on leaving the `with` block. `extra_dict` names dicts (or a list of them) whose entry under
    the same id goes too (the with_kwargs and always_call flags)."""

    next_id = 0

    def __init__(self, hooks_dict, *, extra_dict=None):
        self.hooks_dict_ref = weakref.ref(hooks_dict)
        self.id = RemovableHandle.next_id
        RemovableHandle.next_id += 1
        extras = [extra_dict] if isinstance(extra_dict, dict) else (extra_dict or [])
        self.extra_dict_ref = tuple(weakref.ref(extra) for extra in extras)

    def remove(self):
        for reference in (self.hooks_dict_ref, *self.extra_dict_ref):
            hooks = reference()
            if hooks is not None:
                hooks.pop(self.id, None)

    def __getstate__(self):
        return (self.hooks_dict_ref(), self.id, tuple(reference() for reference in self.extra_dict_ref))

    def __setstate__(self, state):
        # A handle copied with its module (copy.deepcopy, pickle) removes the hook from the copy.
        self.hooks_dict_ref = weakref.ref(OrderedDict() if state[0] is None else state[0])
        self.id = state[1]
        RemovableHandle.next_id = max(RemovableHandle.next_id, self.id + 1)
        self.extra_dict_ref = tuple(weakref.ref(extra) for extra in state[2] if extra is not None)

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.remove()


def add_hook(hooks, hook, prepend=False, extra=(), marked=()):
    """Register `hook` in the ordered dict `hooks` (first when `prepend`) and return its handle, which also
    forgets the id in the `extra` dicts of flags; the id is set in those of them that are `marked`."""
    handle = RemovableHandle(hooks, extra_dict=list(extra))
    hooks[handle.id] = hook
    for flags in marked:
        flags[handle.id] = True
    if prepend:
        hooks.move_to_end(handle.id, last=False)
    return handle


# Leaf id -> (gradient hooks, post-accumulate hooks) of the leaves that have any: kept beside the leaves, so
# that a pass over leaves without hooks pays one dict test (a non-leaf's hooks live on its node).
leaf_hooks = {}


def run_hooks(hooks, gradient):
    """Call a tensor's gradient hooks in order; a hook's returned tensor replaces the gradient."""
    for hook in tuple(hooks.values()):
        result = hook(gradient)
        if result is None:
            continue
        if not isinstance(result, Tensor):
            raise TypeError(f"a gradient hook must return a Tensor or None, got {type(result).__name__} from "
                            f"{getattr(hook, '__name__', hook)!r}")
        if result.shape != gradient.shape or result.dtype != gradient.dtype or result.device != gradient.device:
            raise RuntimeError(f"hook {getattr(hook, '__name__', hook)!r} changed the gradient from shape "
                               f"{tuple(gradient.shape)}, {gradient.dtype} on {gradient.device} to shape "
                               f"{tuple(result.shape)}, {result.dtype} on {result.device}")
        gradient = result
    return gradient


def register_hook(self, hook):
    """Call `hook(grad)` with this tensor's gradient each time it is computed; a returned tensor replaces the
    gradient (for a leaf, before it is accumulated into `.grad`). Returns a handle whose `remove()` unregisters
    the hook."""
    if not self.requires_grad:
        raise RuntimeError("register_hook: cannot register a hook on a tensor that doesn't require gradient")
    if self.grad_fn is None:
        hooks = _hooks_of_leaf(self)[0]
    else:
        # On the node, by output: the hook outlives this Python object, as the gradient it watches does.
        node = self.grad_fn
        if node._hooks is None:
            node._hooks = {}
        hooks = node._hooks.setdefault(self._output_index, OrderedDict())
    return add_hook(hooks, hook)


def register_post_accumulate_grad_hook(self, hook):
    """Call `hook(tensor)` after a backward pass has accumulated this leaf's gradient into `.grad`."""
    if self.grad_fn is not None:
        raise RuntimeError("register_post_accumulate_grad_hook: post accumulate grad hooks cannot be registered "
                           "on non-leaf tensors")
    if not self.requires_grad:
        raise RuntimeError("register_post_accumulate_grad_hook: cannot register a hook on a tensor that doesn't "
                           "require gradient")
    return add_hook(_hooks_of_leaf(self)[1], hook)


def _hooks_of_leaf(leaf):
    """The leaf's (gradient hooks, post-accumulate hooks), made on first use and forgotten with the leaf."""
    if id(leaf) not in leaf_hooks:
        leaf_hooks[id(leaf)] = (OrderedDict(), OrderedDict())
        weakref.finalize(leaf, leaf_hooks.pop, id(leaf), None)
    return leaf_hooks[id(leaf)]
