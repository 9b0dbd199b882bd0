"""Module hooks as PyTorch runs them: forward pre-hooks, forward hooks, full backward (pre-)hooks (their
handles are nbprop/hooks.py's, shared with tensors)."""

import warnings

from nbprop.autograd import Function
from nbprop.backend import DEVICES
from nbprop.grad_mode import recording
from nbprop.tensor import Tensor


def call_with_hooks(module, args, kwargs):
    """`module(*args, **kwargs)` with its hooks, in PyTorch's order: forward pre-hooks (each may replace the
    arguments), the backward hook's identity on the inputs, forward, forward hooks (each may replace the
    result), the backward hook's identity on the outputs. When forward or a hook raises, the forward hooks
    registered with always_call=True that have not run yet still run, and the error propagates."""
    result = None
    called = set()
    try:
        backward_hooks, backward_pre_hooks = list(module._backward_hooks.values()), list(
            module._backward_pre_hooks.values())
        for hook_id, hook in tuple(module._forward_pre_hooks.items()):
            if hook_id in module._forward_pre_hooks_with_kwargs:
                replaced = hook(module, args, kwargs)
                if replaced is not None:
                    if not (isinstance(replaced, tuple) and len(replaced) == 2):
                        raise RuntimeError("forward pre-hook must return None or a tuple of (new_args, new_kwargs), "
                                           f"but got {replaced}.")
                    args, kwargs = replaced
            else:
                replaced = hook(module, args)
                if replaced is not None:
                    args = replaced if isinstance(replaced, tuple) else (replaced,)

        backward_hook = None
        if backward_hooks or backward_pre_hooks:
            backward_hook = BackwardHook(module, backward_hooks, backward_pre_hooks)
            args = backward_hook.setup_input_hook(args)

        result = module.forward(*args, **kwargs)
        for hook_id, hook in tuple(module._forward_hooks.items()):
            if hook_id in module._forward_hooks_always_called:
                called.add(hook_id)
            if hook_id in module._forward_hooks_with_kwargs:
                replaced = hook(module, args, kwargs, result)
            else:
                replaced = hook(module, args, result)
            if replaced is not None:
                result = replaced

        if backward_hook is not None:
            if not isinstance(result, (Tensor, tuple)):
                warnings.warn("For backward hooks to be called, module output should be a Tensor or a tuple of "
                              f"Tensors but received {type(result)}", stacklevel=3)
            result = backward_hook.setup_output_hook(result)
        return result
    except Exception:
        for hook_id, hook in tuple(module._forward_hooks.items()):
            if hook_id not in module._forward_hooks_always_called or hook_id in called:
                continue
            try:
                if hook_id in module._forward_hooks_with_kwargs:
                    replaced = hook(module, args, kwargs, result)
                else:
                    replaced = hook(module, args, result)
                if replaced is not None:
                    result = replaced
            except Exception as error:
                warnings.warn("module forward hook with ``always_call=True`` raised an exception that was "
                              f"silenced as another error was raised in forward: {error}", stacklevel=3)
        raise


# ----------------------------------------------------------------------------------------- backward


class BackwardHookFunction(Function):
    """The identity on the tensors of a module's inputs or outputs, whose backward hands their gradients to the
    module's BackwardHook (PyTorch's node of the same name): the hooks see, and may replace, those gradients."""

    @staticmethod
    def forward(ctx, *tensors, hook, on_outputs):
        ctx.hook, ctx.on_outputs = hook, on_outputs
        return tuple(Tensor._make(tensor._data, tensor._version_counter, tensor.device) for tensor in tensors)

    @staticmethod
    def backward(ctx, *gradients):
        if ctx.on_outputs:
            return ctx.hook.output_gradients(gradients)
        return ctx.hook.input_gradients(gradients)

    # The gradients pass through (or come from the user's hooks, written with nbprop's ops): recordable as they are.
    backward_graph = backward


class BackwardHook:
    """One call's full backward hooks (PyTorch's torch.utils.hooks.BackwardHook): the gradients of the module's
    outputs arrive first (the backward pre-hooks may replace them), those of its inputs later, and then each
    backward hook sees `(module, grad_input, grad_output)` and may replace grad_input. Both are tuples with one
    entry per positional argument / output: None for a non-tensor, zeros for a tensor argument that does not
    require grad (when another does), None for an output that does not. One difference: an output of several
    that receives no gradient shows zeros (nbprop's backward gives a multi-output node zeros), PyTorch's None."""

    def __init__(self, module, user_hooks, user_pre_hooks):
        self.module = module
        self.user_hooks = user_hooks
        self.user_pre_hooks = user_pre_hooks
        self.grad_outputs = None
        self.input_count = self.output_count = -1
        self.input_indices = self.output_indices = None

    def setup_input_hook(self, args):
        wrapped, self.input_indices = self._identity(args, on_outputs=False)
        self.input_count = len(args)
        # PyTorch passes the other tensor arguments through its identity too, and shows them zero gradients.
        self.input_zeros = [] if self.input_indices is None else [
            (index, value.shape, value.dtype, value.device) for index, value in enumerate(args)
            if isinstance(value, Tensor) and not value.requires_grad]
        return wrapped

    def setup_output_hook(self, result):
        is_tuple = isinstance(result, tuple)
        outputs = result if is_tuple else (result,)
        wrapped, self.output_indices = self._identity(outputs, on_outputs=True)
        self.output_count = len(outputs)
        return wrapped if is_tuple else wrapped[0]

    def _identity(self, values, on_outputs):
        """`values` with the tensors that require grad passed through a BackwardHookFunction, and their indices;
        `values` and None when none does or recording is off."""
        indices = [index for index, value in enumerate(values) if isinstance(value, Tensor) and value.requires_grad]
        if not (indices and recording.enabled):
            return values, None
        passed = BackwardHookFunction.apply(*(values[index] for index in indices), hook=self, on_outputs=on_outputs)
        replaced = list(values)
        for index, tensor in zip(indices, passed):
            replaced[index] = tensor
        # A named tuple is rebuilt from its fields, a plain tuple from the list.
        return (tuple(replaced) if type(values) is tuple else type(values)(*replaced)), indices

    @staticmethod
    def _spread(indices, values, count):
        spread = [None] * count
        for index, value in zip(indices, values):
            spread[index] = value
        return tuple(spread)

    def output_gradients(self, gradients):
        """The backward of the outputs' identity: the pre-hooks run; the gradients go on, maybe replaced."""
        self.grad_outputs = self._spread(self.output_indices, gradients, self.output_count)
        for pre_hook in self.user_pre_hooks:
            replaced = pre_hook(self.module, self.grad_outputs)
            if replaced is None:
                continue
            if len(replaced) != len(self.grad_outputs):
                raise RuntimeError("Backward pre hook returned an invalid number of grad_output, got "
                                   f"{len(replaced)}, but expected {len(self.grad_outputs)}")
            self.grad_outputs = replaced
        grad_outputs = self.grad_outputs
        if self.input_indices is None:
            # No input requires grad: the backward hooks run now, with no gradient of an input to show.
            warnings.warn("Full backward hook is firing when gradients are computed with respect to module outputs "
                          "since no inputs require gradients", stacklevel=2)
            grad_inputs = (None,) * self.input_count
            for hook in self.user_hooks:
                result = hook(self.module, grad_inputs, self.grad_outputs)
                if result is not None and not (isinstance(result, tuple) and all(item is None for item in result)):
                    raise RuntimeError("Backward hook for Modules where no input requires gradient should always "
                                       "return None or None for all gradients.")
            self.grad_outputs = None
        return tuple(grad_outputs[index] for index in self.output_indices)

    def input_gradients(self, gradients):
        """The backward of the inputs' identity: the backward hooks run; the gradients go on, maybe replaced."""
        if self.grad_outputs is None:
            return gradients  # a gradient that reached the inputs without passing through the outputs
        grad_inputs = self._spread(self.input_indices, gradients, self.input_count)
        if self.input_zeros:
            grad_inputs = list(grad_inputs)
            for index, shape, dtype, device in self.input_zeros:
                grad_inputs[index] = Tensor._make(DEVICES[device].zeros(shape, dtype), None, device)
            grad_inputs = tuple(grad_inputs)
        for hook in self.user_hooks:
            replaced = hook(self.module, grad_inputs, self.grad_outputs)
            if replaced is None:
                continue
            if len(replaced) != len(grad_inputs):
                raise RuntimeError("Backward hook returned an invalid number of grad_input, got "
                                   f"{len(replaced)}, but expected {len(grad_inputs)}")
            grad_inputs = replaced
        self.grad_outputs = None
        return tuple(grad_inputs[index] for index in self.input_indices)
