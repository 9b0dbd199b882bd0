"""The backward pass: the tape's nodes in dependency order, gradients propagated through them and
accumulated into the leaves' `.grad` (backward) or returned (grad); no recursion."""

import threading

from nbprop import anomaly_mode
from nbprop.backend import DEVICES
from nbprop.grad_mode import recording
from nbprop.tensor import Tensor


class PassState(threading.local):
    """Per thread, while a backward pass accumulates into `.grad`: `lent`, leaf id -> the lent storage handed
    to a backward for that leaf's gradient (Context.gradient_destination); None otherwise (autograd.grad,
    no pass running)."""

    lent = None


pass_state = PassState()


def _topological_order(roots):
    """Nodes reachable from `roots`, each after every node that feeds it a gradient; no recursion.

    Dependency counts live on the nodes themselves, marked by this pass's `visit` token.
    """
    visit = object()
    for node in roots:
        node._visit = visit
        node._dependencies = 0
    stack = list(roots)
    while stack:
        for edge in stack.pop().next_edges:
            if edge.__class__ is tuple:
                child = edge[0]
                if child._visit is visit:
                    child._dependencies += 1
                else:
                    child._visit = visit
                    child._dependencies = 1
                    stack.append(child)
    order = []
    ready = [node for node in roots if node._dependencies == 0]
    while ready:
        node = ready.pop()
        order.append(node)
        for edge in node.next_edges:
            if edge.__class__ is tuple:
                child = edge[0]
                child._dependencies -= 1
                if child._dependencies == 0:
                    ready.append(child)
    return order


def _receive(node, index, gradient):
    """Add `gradient` to what output `index` of `node` has received so far."""
    buffer = node._grad_outputs
    if buffer is None:
        buffer = node._grad_outputs = [None] * node.output_count
    previous = buffer[index]
    buffer[index] = gradient if previous is None else previous + gradient


def _check_gradient(tensor, gradient, node):
    """The gradient that `node`'s backward returned for the leaf `tensor`, in the leaf's dtype."""
    if gradient.shape != tensor.shape:
        raise RuntimeError(f"{node.function.__name__}.backward: gradient of shape {tuple(gradient.shape)} for a "
                           f"tensor of shape {tuple(tensor.shape)}")
    if gradient.dtype != tensor.dtype:
        gradient = gradient.to(tensor.dtype)
    return gradient


def _run_backward(outputs, gradients, retain_graph, inputs=None):
    """Propagate `gradients` from `outputs` back through the tape.

    With `inputs=None` gradients accumulate into the `.grad` of every leaf reached; otherwise the gradients
    of `inputs` are returned and no `.grad` is touched.
    """
    previous_lent = pass_state.lent
    pass_state.lent = {} if inputs is None else None
    try:
        return _propagate(outputs, gradients, retain_graph, inputs)
    finally:
        pass_state.lent = previous_lent


def _propagate(outputs, gradients, retain_graph, inputs):
    roots = []
    captured = None if inputs is None else {id(tensor): None for tensor in inputs}
    for output, gradient in zip(outputs, gradients):
        node = output.grad_fn
        if node is None:
            if captured is not None and id(output) in captured:
                captured[id(output)] = gradient
            elif captured is None:
                _accumulate_leaf(output, gradient)
            continue
        if node not in roots:
            node._grad_outputs = None
            roots.append(node)
        _receive(node, output._output_index, gradient)

    capture_nodes = {}
    if captured is not None:
        for tensor in inputs:
            if tensor.grad_fn is not None:
                capture_nodes.setdefault(id(tensor.grad_fn), []).append(tensor)

    order = _topological_order(roots)
    for node in order:
        if node not in roots:
            node._grad_outputs = None
    previous_mode = recording.enabled
    recording.enabled = False
    try:
        for node in order:
            grad_outputs = node._grad_outputs
            if grad_outputs is None:
                continue
            node._grad_outputs = None
            if capture_nodes:
                for tensor in capture_nodes.get(id(node), ()):
                    captured[id(tensor)] = grad_outputs[tensor._output_index]
            if node._retained:
                for index, reference in node._retained.items():
                    tensor = reference()
                    if grad_outputs[index] is not None and tensor is not None:
                        _accumulate_leaf(tensor, grad_outputs[index])
            if node.output_count > 1 and any(g is None for g in grad_outputs):  # a single output has its gradient
                grad_outputs = [
                    g if g is not None else _zeros_for(node, index) for index, g in enumerate(grad_outputs)
                ]
            if anomaly_mode.enabled:
                try:
                    grad_inputs = node.function.backward(node, *grad_outputs)
                except Exception as error:
                    anomaly_mode.annotate(error, node)
                    raise
                anomaly_mode.check_backward(node, grad_inputs if grad_inputs.__class__ is tuple else (grad_inputs,))
            else:
                grad_inputs = node.function.backward(node, *grad_outputs)
            if not retain_graph and node._saved:
                # Like PyTorch, only a node that kept tensors refuses a second backward.
                node._saved = ()
                node._freed = True
            if grad_inputs.__class__ is not tuple:
                grad_inputs = (grad_inputs,)
            if len(grad_inputs) < len(node.next_edges):
                raise RuntimeError(f"{node.function.__name__}.backward returned {len(grad_inputs)} gradients "
                                   f"for {len(node.next_edges)} inputs")
            for edge, gradient in zip(node.next_edges, grad_inputs):
                if edge is None or gradient is None:
                    continue
                if edge.__class__ is tuple:
                    _receive(edge[0], edge[1], gradient)
                elif captured is not None:
                    if id(edge) in captured:
                        gradient = _check_gradient(edge, gradient, node)
                        previous = captured[id(edge)]
                        captured[id(edge)] = gradient if previous is None else previous + gradient
                else:
                    _accumulate_leaf(edge, _check_gradient(edge, gradient, node))
    finally:
        recording.enabled = previous_mode
    return captured


def _zeros_for(node, index):
    """PyTorch's materialised zero gradient for an output of a multi-output op that received none."""
    shape, dtype, device = node.output_meta[index]
    return Tensor._make(DEVICES[device].zeros(shape, dtype), None, device)


def _accumulate_leaf(tensor, gradient):
    existing = tensor.grad
    if existing is None:
        device = DEVICES[gradient.device]
        lent = pass_state.lent
        if lent is not None:
            if gradient._data is lent.pop(id(tensor), None):
                # The backward wrote the gradient straight into the lent storage (Context.gradient_destination).
                tensor.grad = Tensor._make(gradient._data, None, gradient.device)
                return
            lender = getattr(tensor, "_grad_lender", None)
            storage = None if lender is None else lender()
            if storage is not None:
                device.copy_into(storage, gradient._data)
                tensor.grad = Tensor._make(storage, None, gradient.device)
                return
        # A copy: the leaf's .grad is updated in place by optimizers and must not alias another gradient.
        tensor.grad = Tensor._make(device.copy(gradient._data), None, gradient.device)
    elif (not existing.requires_grad and existing.shape == gradient.shape and existing.dtype == gradient.dtype
          and existing.device == gradient.device and DEVICES[existing.device].is_contiguous(existing._data)
          and DEVICES[existing.device].is_writeable(existing._data)):
        # In place, as PyTorch's AccumulateGrad does: the .grad object stays the same one.
        DEVICES[existing.device].map("add", existing._data, gradient._data, existing._data)
        existing._version_counter[0] += 1
    else:
        tensor.grad = existing + gradient


def _prepare_roots(outputs, gradients, where):
    if isinstance(outputs, Tensor):
        outputs = (outputs,)
    outputs = tuple(outputs)
    if gradients is None or isinstance(gradients, Tensor):
        gradients = (gradients,) * len(outputs) if gradients is None else (gradients,)
    gradients = tuple(gradients)
    if len(gradients) != len(outputs):
        raise ValueError(f"{where}: got {len(gradients)} gradients for {len(outputs)} outputs")
    prepared = []
    for output, gradient in zip(outputs, gradients):
        if not output.requires_grad:
            raise RuntimeError(f"{where}: tensor of shape {tuple(output.shape)} does not require grad and "
                               "has no grad_fn")
        if gradient is None:
            if output.numel() != 1:
                raise RuntimeError(f"{where}: grad can be implicitly created only for scalar outputs; got shape "
                                   f"{tuple(output.shape)}, pass gradient= of that shape")
            gradient = Tensor._make(DEVICES[output.device].full(output.shape, 1, output.dtype), None, output.device)
        elif not isinstance(gradient, Tensor):
            raise TypeError(f"{where}: gradient must be a Tensor, got {type(gradient).__name__}")
        elif gradient.shape != output.shape:
            raise RuntimeError(f"{where}: gradient of shape {tuple(gradient.shape)} for an output of shape "
                               f"{tuple(output.shape)}")
        prepared.append(gradient.detach())
    return outputs, prepared


def backward(tensors, grad_tensors=None, retain_graph=False):
    """Accumulate into the `.grad` of every leaf the gradients of `tensors` (PyTorch's autograd.backward)."""
    outputs, gradients = _prepare_roots(tensors, grad_tensors, "backward")
    _run_backward(outputs, gradients, retain_graph)


def grad(outputs, inputs, grad_outputs=None, retain_graph=False, allow_unused=False):
    """The gradients of `outputs` with respect to `inputs`, returned as a tuple; `.grad` is left alone."""
    outputs, gradients = _prepare_roots(outputs, grad_outputs, "autograd.grad")
    single = isinstance(inputs, Tensor)
    inputs = (inputs,) if single else tuple(inputs)
    for tensor in inputs:
        if not isinstance(tensor, Tensor) or not tensor.requires_grad:
            raise RuntimeError("autograd.grad: every input must be a Tensor that requires grad")
    captured = _run_backward(outputs, gradients, retain_graph, inputs)
    results = []
    for index, tensor in enumerate(inputs):
        gradient = captured[id(tensor)]
        if gradient is None and not allow_unused:
            raise RuntimeError(f"autograd.grad: input {index} (shape {tuple(tensor.shape)}) was not used to "
                               "compute the outputs; pass allow_unused=True to get None for it")
        results.append(gradient)
    return tuple(results)


def _tensor_backward(self, gradient=None, retain_graph=False):
    """Accumulate d(self)/d(leaf) into every leaf's `.grad`; `gradient` is needed unless self is scalar."""
    backward(self, gradient, retain_graph=retain_graph)


_tensor_backward.__name__ = _tensor_backward.__qualname__ = "backward"
Tensor.backward = _tensor_backward
