"""The backward pass: the tape's nodes in dependency order, gradients propagated through them and
accumulated into the leaves' `.grad` (backward) or returned (grad); no recursion."""

import threading

from nbprop import anomaly_mode
from nbprop.backend import DEVICES
from nbprop.capture import state as capture
from nbprop.grad_mode import recording
from nbprop.hooks import leaf_hooks, register_hook, register_post_accumulate_grad_hook, run_hooks
from nbprop.tensor import Tensor


class PassState(threading.local):
    """Per thread, while a backward pass runs: `lent`, leaf id -> the lent storage handed to a backward for
    that leaf's gradient (Context.gradient_destination) when the pass accumulates into `.grad`, else None;
    `create_graph`, whether the pass records itself on the tape (for higher-order gradients)."""

    lent = None
    create_graph = False


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
    if gradient._data.shape != tensor._data.shape:  # the arrays' shapes: plain tuples, cheaper than Sizes
        raise RuntimeError(f"{node.function.__name__}.backward: gradient of shape {tuple(gradient.shape)} for a "
                           f"tensor of shape {tuple(tensor.shape)}")
    if gradient.dtype != tensor.dtype:
        gradient = gradient.to(tensor.dtype)
    return gradient


def _run_backward(outputs, gradients, retain_graph, create_graph, inputs=None):
    """Propagate `gradients` from `outputs` back through the tape.

    With `inputs=None` gradients accumulate into the `.grad` of every leaf reached; otherwise the gradients
    of `inputs` are returned and no `.grad` is touched. With `create_graph` the pass runs each op's
    differentiable backward (`backward_graph`) with recording on, so its gradients can be differentiated again.
    """
    previous = pass_state.lent, pass_state.create_graph
    # Lent storage is for plain gradients only: a recorded gradient is a tensor of the graph, not a buffer.
    pass_state.lent = {} if inputs is None and not create_graph else None
    pass_state.create_graph = create_graph
    try:
        return _propagate(outputs, gradients, retain_graph, create_graph, inputs)
    finally:
        pass_state.lent, pass_state.create_graph = previous


def _graph_backward(function):
    """The backward to run when the pass records itself: the op's differentiable `backward_graph`; a user's
    Function without one has its own backward recorded, as in PyTorch."""
    if function.backward_graph is not None:
        return function.backward_graph
    if function.__module__.startswith("nbprop."):
        raise NotImplementedError(f"{function.__name__}: its backward cannot be differentiated again "
                                  "(create_graph=True is not supported through this op)")
    return function.backward


def _propagate(outputs, gradients, retain_graph, create_graph, inputs):
    roots = []
    captured = None if inputs is None else {id(tensor): None for tensor in inputs}
    # Leaves with hooks get their whole gradient once (PyTorch runs a leaf's hooks once): id -> [leaf, the sum
    # so far, the deliveries still to come from nodes], finished when the last arrives or at the end of the pass.
    hooked_leaves = {}
    for output, gradient in zip(outputs, gradients):
        node = output.grad_fn
        if node is None:
            if captured is not None and id(output) in captured:
                captured[id(output)] = gradient
            elif captured is None:
                _deliver_to_leaf(output, gradient, create_graph, hooked_leaves, from_node=False)
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
    if leaf_hooks and captured is None:
        _count_deliveries(order, hooked_leaves)
    previous_mode = recording.enabled
    recording.enabled = create_graph
    try:
        for node in order:
            grad_outputs = node._grad_outputs
            if grad_outputs is None:
                continue
            node._grad_outputs = None
            if node._hooks:
                _run_output_hooks(node, grad_outputs)
            if capture_nodes:
                for tensor in capture_nodes.get(id(node), ()):
                    captured[id(tensor)] = grad_outputs[tensor._output_index]
            if node._retained:
                for index, reference in node._retained.items():
                    tensor = reference()
                    if grad_outputs[index] is not None and tensor is not None:
                        _accumulate_leaf(tensor, grad_outputs[index], create_graph)
            if node.output_count > 1 and any(g is None for g in grad_outputs):  # a single output has its gradient
                grad_outputs = [
                    g if g is not None else _zeros_for(node, index) for index, g in enumerate(grad_outputs)
                ]
            backward = _graph_backward(node.function) if create_graph else node.function.backward
            if anomaly_mode.enabled:
                try:
                    grad_inputs = backward(node, *grad_outputs)
                except Exception as error:
                    anomaly_mode.annotate(error, node)
                    raise
                anomaly_mode.check_backward(node, grad_inputs if grad_inputs.__class__ is tuple else (grad_inputs,))
            else:
                grad_inputs = backward(node, *grad_outputs)
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
                elif leaf_hooks and id(edge) in leaf_hooks:
                    _deliver_to_leaf(edge, _check_gradient(edge, gradient, node), create_graph, hooked_leaves)
                else:
                    _accumulate_leaf(edge, _check_gradient(edge, gradient, node), create_graph)
        for leaf, _, _ in list(hooked_leaves.values()):  # those still waiting for a node that sent nothing
            _finish_hooked_leaf(leaf, create_graph, hooked_leaves)
        if captured is not None and leaf_hooks:
            for tensor in inputs:
                if tensor.grad_fn is None and id(tensor) in leaf_hooks and captured[id(tensor)] is not None:
                    captured[id(tensor)] = run_hooks(leaf_hooks[id(tensor)][0], captured[id(tensor)])
    finally:
        recording.enabled = previous_mode
    return captured


def _count_deliveries(order, hooked_leaves):
    """For each leaf with hooks, how many edges of the pass's nodes lead to it."""
    for node in order:
        for edge in node.next_edges:
            if edge is not None and edge.__class__ is not tuple and id(edge) in leaf_hooks:
                entry = hooked_leaves.setdefault(id(edge), [edge, None, 0])
                entry[2] += 1


def _deliver_to_leaf(leaf, gradient, create_graph, hooked_leaves, from_node=True):
    """Accumulate a leaf's gradient now, or, when the leaf has hooks, add it to the leaf's sum, which goes
    through the hooks into `.grad` when the last delivery from a node has come (so that, as in PyTorch, an
    all-reduce started by a post-accumulate hook overlaps the rest of the pass)."""
    if not leaf_hooks or id(leaf) not in leaf_hooks:
        _accumulate_leaf(leaf, gradient, create_graph)
        return
    entry = hooked_leaves.setdefault(id(leaf), [leaf, None, 0])
    entry[1] = gradient if entry[1] is None else entry[1] + gradient
    if from_node:
        entry[2] -= 1
        if entry[2] == 0:
            _finish_hooked_leaf(leaf, create_graph, hooked_leaves)


def _finish_hooked_leaf(leaf, create_graph, hooked_leaves):
    """The leaf's summed gradient through its hooks into `.grad`, then its post-accumulate hooks."""
    _, gradient, _ = hooked_leaves.pop(id(leaf))
    if gradient is None:
        return
    hooks, post_accumulate_hooks = leaf_hooks[id(leaf)]
    _accumulate_leaf(leaf, run_hooks(hooks, gradient), create_graph)
    for hook in tuple(post_accumulate_hooks.values()):
        hook(leaf)


def _run_output_hooks(node, grad_outputs):
    """The hooks registered on the node's outputs (non-leaf tensors), on their complete gradients, in place."""
    for index, hooks in node._hooks.items():
        if grad_outputs[index] is not None:
            grad_outputs[index] = run_hooks(hooks, grad_outputs[index])


def _zeros_for(node, index):
    """PyTorch's materialised zero gradient for an output of a multi-output op that received none."""
    shape, dtype, device = node.output_meta[index]
    return Tensor._make(DEVICES[device].zeros(shape, dtype), None, device)


def _accumulate_leaf(tensor, gradient, create_graph):
    existing = tensor.grad
    _set_leaf_grad(tensor, existing, gradient, create_graph)
    if capture.recorder is not None:
        capture.recorder.delivered_gradient(tensor, existing)


def _set_leaf_grad(tensor, existing, gradient, create_graph):
    if create_graph:
        # The .grad keeps its graph (a gradient penalty differentiates it); sums are recorded, out of place.
        tensor.grad = gradient.clone() if existing is None else existing + gradient
    elif existing is None:
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


def _prepare_roots(outputs, gradients, where, create_graph):
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
            data = output._data
            if data.size != 1:
                raise RuntimeError(f"{where}: grad can be implicitly created only for scalar outputs; got shape "
                                   f"{tuple(output.shape)}, pass gradient= of that shape")
            prepared.append(Tensor._make(DEVICES[output.device].full(data.shape, 1, data.dtype), None, output.device))
            continue
        if not isinstance(gradient, Tensor):
            raise TypeError(f"{where}: gradient must be a Tensor, got {type(gradient).__name__}")
        if gradient.shape != output.shape:
            raise RuntimeError(f"{where}: gradient of shape {tuple(gradient.shape)} for an output of shape "
                               f"{tuple(output.shape)}")
        # A recorded pass differentiates through the given gradients too (jvp by a double vjp relies on it).
        prepared.append(gradient if create_graph else gradient.detach())
    return outputs, prepared


def backward(tensors, grad_tensors=None, retain_graph=None, create_graph=False, inputs=None):
    """Accumulate into the `.grad` of every leaf the gradients of `tensors` (PyTorch's autograd.backward).

    create_graph=True records the pass, so that the `.grad` it leaves can be differentiated again;
    retain_graph defaults to create_graph. `inputs`: accumulate only into these leaves' `.grad`.
    """
    outputs, gradients = _prepare_roots(tensors, grad_tensors, "backward", create_graph)
    retain_graph = create_graph if retain_graph is None else retain_graph
    if inputs is None:
        _run_backward(outputs, gradients, retain_graph, create_graph)
        return
    inputs = (inputs,) if isinstance(inputs, Tensor) else tuple(inputs)
    if not inputs:
        raise RuntimeError("backward: inputs= must not be empty")
    for index, tensor in enumerate(inputs):
        if not isinstance(tensor, Tensor) or not tensor.requires_grad:
            raise RuntimeError(f"backward: inputs[{index}] is not a tensor that requires grad")
    captured = _run_backward(outputs, gradients, retain_graph, create_graph, inputs)
    for tensor in inputs:
        if captured[id(tensor)] is not None:
            _accumulate_leaf(tensor, captured[id(tensor)], create_graph)


def grad(outputs, inputs, grad_outputs=None, retain_graph=None, create_graph=False, allow_unused=None,
         is_grads_batched=False, materialize_grads=False):
    """The gradients of `outputs` with respect to `inputs`, returned as a tuple; `.grad` is left alone.

    create_graph=True records the pass, so the returned gradients can be differentiated again (retain_graph
    defaults to it). allow_unused=True gives None for an input the outputs do not depend on;
    materialize_grads=True gives zeros instead (and implies allow_unused).
    """
    if is_grads_batched:
        raise NotImplementedError("autograd.grad: is_grads_batched=True (vmap over grad_outputs) is not supported; "
                                  "loop over the batch of grad_outputs")
    if allow_unused is None:
        allow_unused = materialize_grads
    elif materialize_grads and not allow_unused:
        raise ValueError("autograd.grad: materialize_grads=True cannot be used with allow_unused=False")
    retain_graph = create_graph if retain_graph is None else retain_graph
    outputs, gradients = _prepare_roots(outputs, grad_outputs, "autograd.grad", create_graph)
    single = isinstance(inputs, Tensor)
    inputs = (inputs,) if single else tuple(inputs)
    for tensor in inputs:
        if not isinstance(tensor, Tensor) or not tensor.requires_grad:
            raise RuntimeError("autograd.grad: every input must be a Tensor that requires grad")
    captured = _run_backward(outputs, gradients, retain_graph, create_graph, inputs)
    results = []
    for index, tensor in enumerate(inputs):
        gradient = captured[id(tensor)]
        if gradient is None and materialize_grads:
            gradient = Tensor._make(DEVICES[tensor.device].zeros(tensor.shape, tensor.dtype), None, tensor.device)
        if gradient is None and not allow_unused:
            raise RuntimeError(f"autograd.grad: input {index} (shape {tuple(tensor.shape)}) was not used to "
                               "compute the outputs; pass allow_unused=True to get None for it")
        results.append(gradient)
    return tuple(results)


def _tensor_backward(self, gradient=None, retain_graph=None, create_graph=False, inputs=None):
    """Accumulate d(self)/d(leaf) into every leaf's `.grad`; `gradient` is needed unless self is scalar.

    create_graph=True records the pass for higher-order gradients; `inputs` limits which leaves accumulate.
    """
    backward(self, gradient, retain_graph=retain_graph, create_graph=create_graph, inputs=inputs)


_tensor_backward.__name__ = _tensor_backward.__qualname__ = "backward"
Tensor.backward = _tensor_backward
Tensor.register_hook = register_hook
Tensor.register_post_accumulate_grad_hook = register_post_accumulate_grad_hook
