"""Module: the base class of layers, with PyTorch's registry of parameters, buffers and sub-modules."""

from collections import OrderedDict

from nbprop import dtypes
from nbprop.backend import HOST
from nbprop.backend import get as get_device
from nbprop.capture.state import host_step
from nbprop.grad_mode import no_grad
from nbprop.hooks import add_hook
from nbprop.nn import hooks, state
from nbprop.nn.parameter import Parameter
from nbprop.tensor import Tensor


class Module:
    """Base class of every layer: subclasses call `super().__init__()`, assign Parameters and sub-Modules as
    attributes (registered in assignment order), register buffers with `register_buffer`, and define
    `forward`. Calling the module calls `forward`.
    """

    training: bool
    # Empty until Module.__init__ makes each module its own: a call checks them before anything else.
    _forward_pre_hooks = _forward_hooks = _backward_pre_hooks = _backward_hooks = ()

    def __init__(self, *args, **kwargs):
        if args or kwargs:
            raise TypeError(f"{type(self).__name__}.__init__() got unexpected arguments: Module.__init__ "
                            "takes none; pass them to your subclass's own __init__")
        setter = object.__setattr__
        setter(self, "training", True)
        setter(self, "_parameters", OrderedDict())
        setter(self, "_buffers", OrderedDict())
        setter(self, "_non_persistent_buffers_set", set())
        setter(self, "_modules", OrderedDict())
        # Hooks by handle id, in calling order; the sets of ids registered with_kwargs / always_call.
        for name in ("_forward_pre_hooks", "_forward_pre_hooks_with_kwargs", "_forward_hooks",
                     "_forward_hooks_with_kwargs", "_forward_hooks_always_called", "_backward_pre_hooks",
                     "_backward_hooks"):
            setter(self, name, OrderedDict())

    def forward(self, *args, **kwargs):
        raise NotImplementedError(f'Module [{type(self).__name__}] is missing the required "forward" '
                                  "function")

    def __call__(self, *args, **kwargs):
        if self._forward_pre_hooks or self._forward_hooks or self._backward_pre_hooks or self._backward_hooks:
            return hooks.call_with_hooks(self, args, kwargs)
        return self.forward(*args, **kwargs)

    # --------------------------------------------------------------------------------------- hooks

    def register_forward_pre_hook(self, hook, *, prepend=False, with_kwargs=False):
        """Call `hook(module, args)` before each forward; a result other than None replaces the positional
        arguments (a non-tuple is wrapped in one). With `with_kwargs`, `hook(module, args, kwargs)` returns None or
        `(args, kwargs)`. Hooks run in registration order, a `prepend`ed one first; returns a RemovableHandle."""
        with_kwargs_flags = self._forward_pre_hooks_with_kwargs
        return add_hook(self._forward_pre_hooks, hook, prepend, [with_kwargs_flags],
                        [with_kwargs_flags] if with_kwargs else [])

    def register_forward_hook(self, hook, *, prepend=False, with_kwargs=False, always_call=False):
        """Call `hook(module, args, output)` (with `with_kwargs`, `hook(module, args, kwargs, output)`) after each
        forward; a result other than None replaces the output. With `always_call`, the hook runs even when forward
        or another hook raises. Returns a RemovableHandle."""
        flags = (self._forward_hooks_with_kwargs, self._forward_hooks_always_called)
        return add_hook(self._forward_hooks, hook, prepend, flags,
                        [marks for marks, wanted in zip(flags, (with_kwargs, always_call)) if wanted])

    def register_full_backward_pre_hook(self, hook, prepend=False):
        """Call `hook(module, grad_output)` when the gradients of the module's outputs are computed; a tuple
        returned replaces grad_output (one entry per output, None for a non-tensor). Returns a RemovableHandle."""
        return add_hook(self._backward_pre_hooks, hook, prepend)

    def register_full_backward_hook(self, hook, prepend=False):
        """Call `hook(module, grad_input, grad_output)` when the gradients of the module's inputs are computed
        (one entry per positional argument; see nn/hooks.py's BackwardHook); a tuple returned replaces grad_input.
        Tensor arguments reach forward as views of themselves (PyTorch's identity Function). Returns a handle."""
        return add_hook(self._backward_hooks, hook, prepend)

    # ------------------------------------------------------------------------------------ registry

    def _check_ready(self, what):
        if "_parameters" not in self.__dict__:
            raise AttributeError(f"cannot assign {what} before Module.__init__() call")

    def register_parameter(self, name, param):
        """Add `param` (a Parameter, or None for an absent optional one) under `name`."""
        self._check_ready("parameter")
        _check_name(name, self, "parameter", "_parameters")
        if param is not None and not isinstance(param, Parameter):
            raise TypeError(f"cannot assign '{type(param).__name__}' object to parameter '{name}' "
                            "(nbprop.nn.Parameter or None required)")
        if param is not None and param.grad_fn is not None:
            raise ValueError(f"cannot assign non-leaf Tensor to parameter '{name}'; compute it in forward() "
                             "or wrap a detached copy in a Parameter")
        self._parameters[name] = param

    def register_buffer(self, name, tensor, persistent=True):
        """Add a tensor that is state but not a parameter (e.g. running statistics); persistent buffers go
        into `state_dict()`."""
        self._check_ready("buffer")
        _check_name(name, self, "buffer", "_buffers")
        if tensor is not None and not isinstance(tensor, Tensor):
            raise TypeError(f"cannot assign '{type(tensor).__name__}' object to buffer '{name}' "
                            "(nbprop Tensor or None required)")
        self._buffers[name] = tensor
        if persistent:
            self._non_persistent_buffers_set.discard(name)
        else:
            self._non_persistent_buffers_set.add(name)

    def add_module(self, name, module):
        """Add a sub-module (or None) under `name`."""
        if module is not None and not isinstance(module, Module):
            raise TypeError(f"{type(module).__name__} is not a Module subclass")
        self._check_ready("child module")
        _check_name(name, self, "module", "_modules")
        self._modules[name] = module

    register_module = add_module

    def get_submodule(self, target):
        """The sub-module at the dotted path `target` ('' is self)."""
        module = self
        for item in target.split(".") if target else ():
            if item not in module._modules or module._modules[item] is None:
                raise AttributeError(f"{type(module).__name__} has no submodule `{item}` (path {target!r})")
            module = module._modules[item]
        return module

    def __setattr__(self, name, value):
        parameters = self.__dict__.get("_parameters")
        if isinstance(value, Parameter):
            if parameters is None:
                raise AttributeError("cannot assign parameters before Module.__init__() call")
            _remove_from(self, name)
            self.register_parameter(name, value)
        elif parameters is not None and name in parameters:
            if value is not None:
                raise TypeError(f"cannot assign '{type(value).__name__}' as parameter '{name}' "
                                "(nbprop.nn.Parameter or None expected)")
            parameters[name] = None
        elif isinstance(value, Module):
            if parameters is None:
                raise AttributeError("cannot assign module before Module.__init__() call")
            _remove_from(self, name)
            self._modules[name] = value
        elif parameters is not None and name in self._modules:
            if value is not None:
                raise TypeError(f"cannot assign '{type(value).__name__}' as child module '{name}' "
                                "(nbprop.nn.Module or None expected)")
            self._modules[name] = None
        elif parameters is not None and name in self._buffers:
            if value is not None and not isinstance(value, Tensor):
                raise TypeError(f"cannot assign '{type(value).__name__}' as buffer '{name}' "
                                "(nbprop Tensor or None expected)")
            self._buffers[name] = value
        else:
            object.__setattr__(self, name, value)

    def __getattr__(self, name):
        # Only reached when normal lookup fails: the registered parameters, buffers and modules.
        state_dicts = self.__dict__
        for registry in ("_parameters", "_buffers", "_modules"):
            entries = state_dicts.get(registry)
            if entries is not None and name in entries:
                return entries[name]
        raise AttributeError(f"'{type(self).__name__}' object has no attribute '{name}'")

    def __delattr__(self, name):
        for registry in ("_parameters", "_buffers", "_modules"):
            entries = self.__dict__.get(registry)
            if entries is not None and name in entries:
                del entries[name]
                self._non_persistent_buffers_set.discard(name)
                return
        object.__delattr__(self, name)

    def __dir__(self):
        registered = set(self._parameters) | set(self._buffers) | set(self._modules)
        return sorted(set(super().__dir__()) | registered)

    # ----------------------------------------------------------------------------------- iteration

    def _named_members(self, get_members, prefix="", recurse=True, remove_duplicate=True):
        seen = set()
        modules = self.named_modules(prefix=prefix, remove_duplicate=remove_duplicate) if recurse \
            else [(prefix, self)]
        for module_prefix, module in modules:
            for name, value in get_members(module):
                if value is None or (remove_duplicate and id(value) in seen):
                    continue
                if remove_duplicate:
                    seen.add(id(value))
                yield (module_prefix + "." + name if module_prefix else name), value

    def named_parameters(self, prefix="", recurse=True, remove_duplicate=True):
        """(name, Parameter) pairs, each shared parameter once, in registration order."""
        yield from self._named_members(lambda module: module._parameters.items(), prefix, recurse,
                                       remove_duplicate)

    def parameters(self, recurse=True):
        for _, parameter in self.named_parameters(recurse=recurse):
            yield parameter

    def named_buffers(self, prefix="", recurse=True, remove_duplicate=True):
        yield from self._named_members(lambda module: module._buffers.items(), prefix, recurse,
                                       remove_duplicate)

    def buffers(self, recurse=True):
        for _, buffer in self.named_buffers(recurse=recurse):
            yield buffer

    def named_children(self):
        seen = set()
        for name, module in self._modules.items():
            if module is not None and id(module) not in seen:
                seen.add(id(module))
                yield name, module

    def children(self):
        for _, module in self.named_children():
            yield module

    def named_modules(self, memo=None, prefix="", remove_duplicate=True):
        """(dotted name, module) for self and every sub-module, depth first; each shared module once.

        Iterative, so very deep nestings do not hit Python's recursion limit.
        """
        if memo is None:
            memo = set()
        stack = [(prefix, self)]
        while stack:
            name, module = stack.pop()
            if remove_duplicate:
                if id(module) in memo:
                    continue
                memo.add(id(module))
            yield name, module
            children = [(name + "." + child_name if name else child_name, child)
                        for child_name, child in module._modules.items() if child is not None]
            stack.extend(reversed(children))

    def modules(self):
        for _, module in self.named_modules():
            yield module

    # ------------------------------------------------------------------------------------ modes

    def train(self, mode=True):
        """Set training mode (Dropout drops, BatchNorm uses batch statistics) on self and every sub-module."""
        if not isinstance(mode, bool):
            raise ValueError("training mode is expected to be boolean")
        for module in self.modules():
            object.__setattr__(module, "training", mode)
        return self

    def eval(self):
        return self.train(False)

    def requires_grad_(self, requires_grad=True):
        for parameter in self.parameters():
            parameter.requires_grad_(requires_grad)
        return self

    @host_step
    def zero_grad(self, set_to_none=True):
        """Reset every parameter's gradient: to None (default) or to zeros in place."""
        for parameter in self.parameters():
            if parameter.grad is None:
                continue
            if set_to_none:
                parameter.grad = None
            else:
                gradient = parameter.grad
                if gradient.grad_fn is not None:
                    gradient.detach_()
                with no_grad():
                    gradient.zero_()

    def apply(self, fn):
        """Call `fn` on every sub-module (children first) and then on self; returns self."""
        for module in self.children():
            module.apply(fn)
        fn(self)
        return self

    # -------------------------------------------------------------------------------- conversion

    def to(self, *args, **kwargs):
        """`to(dtype)`, `to(device)`, `to(device, dtype)` or `to(tensor)`: moves parameters and buffers to the
        device and converts the floating ones to the dtype, in place (the Parameter objects stay the same, so
        optimizers keep their references)."""
        dtype, device = _parse_to(args, kwargs)
        if device is not None:
            get_device(device)  # a clear error for an unknown device
        if dtype is not None and dtype.kind != "f":
            raise TypeError(f"Module.to only accepts floating point dtypes, but got desired dtype={dtype}")
        return self._convert(dtype, device)

    def float(self):
        return self._convert(dtypes.float32, None)

    def double(self):
        return self._convert(dtypes.float64, None)

    def cpu(self):
        return self._convert(None, HOST)

    def _convert(self, dtype, device):
        """Parameters (in place) and buffers on `device` (None: where they are), floating ones as `dtype`."""

        def converted(tensor):
            floating = dtype if dtype is not None and tensor.dtype.kind == "f" else None
            return tensor.detach().to(floating, device)

        for module in self.modules():
            for parameter in module._parameters.values():
                if parameter is None:
                    continue
                moved = converted(parameter)
                if moved._data is not parameter._data:
                    parameter._data, parameter.device = moved._data, moved.device
                    parameter._version_counter[0] += 1
                    if parameter.grad is not None:
                        parameter.grad = converted(parameter.grad)
            for name, buffer in module._buffers.items():
                if buffer is not None:
                    moved = converted(buffer)
                    if moved._data is not buffer._data:
                        module._buffers[name] = moved
        return self

    # -------------------------------------------------------------------------------- state dicts

    def state_dict(self, destination=None, prefix="", keep_vars=False):
        """An ordered dict of every parameter and persistent buffer under PyTorch's dotted keys, detached
        (sharing storage) unless `keep_vars`."""
        return state.state_dict(self, destination, prefix, keep_vars)

    def load_state_dict(self, state_dict, strict=True):
        """Copy values into the parameters and buffers in place (under no_grad, so optimizers keep their
        references). Returns (missing_keys, unexpected_keys); raises RuntimeError naming the missing,
        unexpected (when `strict`) and mis-shaped (always) keys. Values may be nbprop Tensors, NumPy arrays or
        any array-like (a PyTorch state dict loads directly)."""
        return state.load_state_dict(self, state_dict, strict)

    # -------------------------------------------------------------------------------------- repr

    def extra_repr(self):
        """The layer's own settings for its repr (e.g. 'in_features=2, out_features=3, bias=True')."""
        return ""

    def _get_name(self):
        return type(self).__name__

    def __repr__(self):
        extra_lines = self.extra_repr().split("\n") if self.extra_repr() else []
        child_lines = [f"({name}): " + _add_indent(repr(module), 2) for name, module in self._modules.items()]
        lines = extra_lines + child_lines
        main = self._get_name() + "("
        if lines:
            if len(extra_lines) == 1 and not child_lines:
                main += extra_lines[0]
            else:
                main += "\n  " + "\n  ".join(lines) + "\n"
        return main + ")"


def _add_indent(text, spaces):
    lines = text.split("\n")
    if len(lines) == 1:
        return text
    return lines[0] + "\n" + "\n".join(" " * spaces + line for line in lines[1:])


def _check_name(name, module, kind, registry):
    if not isinstance(name, str):
        raise TypeError(f"{kind} name should be a string, got {type(name).__name__}")
    if name == "":
        raise KeyError(f'{kind} name can\'t be empty string ""')
    if "." in name:
        raise KeyError(f'{kind} name can\'t contain ".", got: {name}')
    if hasattr(module, name) and name not in getattr(module, registry):
        raise KeyError(f"attribute '{name}' already exists")


def _remove_from(module, name):
    """Forget `name` in every registry and as a plain attribute before it is registered anew."""
    for registry in ("_parameters", "_buffers", "_modules"):
        module.__dict__[registry].pop(name, None)
    module._non_persistent_buffers_set.discard(name)
    module.__dict__.pop(name, None)


def _parse_to(args, kwargs):
    """(dtype, device) from the arguments of Module.to."""
    dtype, device = kwargs.pop("dtype", None), kwargs.pop("device", None)
    kwargs.pop("non_blocking", None)
    if kwargs:
        raise TypeError(f"Module.to: unexpected keyword arguments {sorted(kwargs)}")
    for argument in args:
        if isinstance(argument, Tensor):
            dtype, device = argument.dtype, argument.device
        elif isinstance(argument, str) and argument not in dtypes.ALIASES:
            device = argument
        else:
            dtype = argument
    return (None if dtype is None else dtypes.as_dtype(dtype)), (None if device is None else str(device))
