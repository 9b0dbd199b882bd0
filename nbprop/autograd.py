"""The tape: Function nodes with their Context, and the iterative backward pass."""

import threading

from nbprop.backend import DEVICES
from nbprop.grad_mode import enable_grad, is_grad_enabled, no_grad, recording, set_grad_enabled
from nbprop.tensor import Tensor

__all__ = [
    "Function", "Context", "backward", "grad", "no_grad", "enable_grad", "set_grad_enabled",
    "is_grad_enabled",
]


class _PassState(threading.local):
    """Per thread, while a backward pass accumulates into `.grad`: `lent`, leaf id -> the lent storage handed
    to a backward for that leaf's gradient (Context.gradient_destination); None otherwise (autograd.grad,
    no pass running)."""

    lent = None


_pass = _PassState()


class Context:
    """What a Function's forward leaves for its backward; also the node of the tape that calls backward.

    `next_edges[i]` says where the gradient of input i goes: a `(node, output_index)` pair for a tensor made
    by another op, the leaf tensor itself for a leaf that requires grad, or None.
    """

    __slots__ = (
        "__dict__", "function", "needs_input_grad", "next_edges", "output_count", "_saved_versions", "output_meta",
    )
    _saved = ()  # tensors kept for backward, () once freed
    _freed = False
    _retained = None  # output index -> weak reference to a tensor whose .grad is kept (retain_grad)
    # Scratch of a backward pass: which pass last visited the node, its unprocessed consumers, its gradients.
    _visit = None
    _dependencies = 0
    _grad_outputs = None

    def save_for_backward(self, *tensors):
        """Keep tensors for backward; modifying one in place before backward makes backward raise."""
        self._saved = tensors
        self._saved_versions = tuple(None if t is None else t._version_counter[0] for t in tensors)

    def gradient_destination(self, index):
        """An array of input `index`'s shape and dtype that backward may write that input's gradient into and
        return wrapped in a Tensor, which then becomes the input's `.grad` without a copy; or None.

        Offered only to a leaf whose `.grad` is None and whose storage for it is lent (an optimizer lends
        its flat gradient buffer, see nbprop/optim/flat.py), while backward accumulates into `.grad`, and
        when no other input of this op is the same leaf.
        """
        lent = _pass.lent
        leaf = self.next_edges[index]
        if lent is None or leaf is None or leaf.__class__ is tuple or leaf.grad is not None or id(leaf) in lent:
            return None
        lender = getattr(leaf, "_grad_lender", None)
        if lender is None or sum(edge is leaf for edge in self.next_edges) > 1:
            return None
        storage = lender()
        if storage is not None:
            lent[id(leaf)] = storage
        return storage

    def copy_saved_sharing(self, version_counter):
        """Keep copies of the saved tensors whose storage (seen by its `version_counter`) is to be overwritten."""
        if not any(saved is not None and saved._version_counter is version_counter for saved in self._saved):
            return
        self.save_for_backward(*(
            Tensor._make(DEVICES[saved.device].copy(saved._data), None, saved.device)
            if saved is not None and saved._version_counter is version_counter else saved
            for saved in self._saved
        ))

    @property
    def saved_tensors(self):
        if self._freed:
            raise RuntimeError(
                f"{self.function.__name__}.backward: trying to backward through the graph a second time (or "
                "to read saved tensors after they were freed); pass retain_graph=True to the first backward"
            )
        for index, (tensor, version) in enumerate(zip(self._saved, self._saved_versions)):
            if tensor is not None and tensor._version_counter[0] != version:
                raise RuntimeError(
                    f"{self.function.__name__}.backward: input {index} saved for backward (shape "
                    f"{tuple(tensor.shape)}, dtype {tensor.dtype}) was modified by an in-place operation "
                    f"(version {version} when saved, {tensor._version_counter[0]} now)"
                )
        return self._saved

    def __repr__(self):
        return f"<{self.function.__name__}Backward>"


class _NothingNeeded:
    """`needs_input_grad` of an unrecorded op: False for every input."""

    def __getitem__(self, index):
        return False


class _NoGradContext:
    """Stands in for a Context when nothing is recorded, so forward code needs no branches."""

    __slots__ = ("__dict__",)
    needs_input_grad = _NothingNeeded()

    def save_for_backward(self, *tensors):
        pass


class Function:
    """An op of the tape: subclass it with static `forward(ctx, *args)` and `backward(ctx, *grad_outputs)`.

    `forward` receives Tensors (and any other arguments), runs with recording off and returns a Tensor or a
    tuple of Tensors. `backward` receives one gradient per output and returns one gradient (a Tensor or
    None) per positional input of `forward`. Call it with `MyFunction.apply(*args)`.
    """

    @staticmethod
    def forward(ctx, *args, **kwargs):
        raise NotImplementedError("Function subclasses must define forward(ctx, *args)")

    @staticmethod
    def backward(ctx, *grad_outputs):
        raise NotImplementedError("Function subclasses must define backward(ctx, *grad_outputs)")

    @classmethod
    def apply(cls, *args, **kwargs):
        record = False
        if recording.enabled:
            for argument in args:
                if isinstance(argument, Tensor) and argument.requires_grad:
                    record = True
                    break
        if not record:
            return cls.forward(_NoGradContext(), *args, **kwargs)

        ctx = Context()
        ctx.function = cls
        needs_input_grad = []
        next_edges = []
        for argument in args:
            if isinstance(argument, Tensor) and argument.requires_grad:
                needs_input_grad.append(True)
                node = argument.grad_fn
                next_edges.append(argument if node is None else (node, argument._output_index))
            else:
                needs_input_grad.append(False)
                next_edges.append(None)
        ctx.needs_input_grad = tuple(needs_input_grad)
        ctx.next_edges = next_edges

        recording.enabled = False
        try:
            outputs = cls.forward(ctx, *args, **kwargs)
        finally:
            recording.enabled = True

        if isinstance(outputs, Tensor):
            ctx.output_count = 1
            _attach(outputs, ctx, 0)
            return outputs
        if not isinstance(outputs, tuple) or not all(isinstance(output, Tensor) for output in outputs):
            raise TypeError(f"{cls.__name__}.forward must return a Tensor or a tuple of Tensors")
        ctx.output_count = len(outputs)
        ctx.output_meta = [(output.shape, output.dtype) for output in outputs]
        for index, output in enumerate(outputs):
            _attach(output, ctx, index)
        return outputs


def _attach(output, ctx, index):
    if not output.dtype.kind == "f":
        return  # integer and boolean results (indices, masks) carry no gradient
    if output.grad_fn is not None or output.requires_grad:
        raise RuntimeError(f"{ctx.function.__name__}.forward must return new tensors, not its inputs")
    output.requires_grad = True
    output.grad_fn = ctx
    output._output_index = index


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


def _check_gradient(tensor, gradient, where):
    if gradient.shape != tensor.shape:
        raise RuntimeError(f"{where}: gradient of shape {tuple(gradient.shape)} for a tensor of shape "
                           f"{tuple(tensor.shape)}")
    if gradient.dtype != tensor.dtype:
        gradient = gradient.to(tensor.dtype)
    return gradient


def _run_backward(outputs, gradients, retain_graph, inputs=None):
    """Propagate `gradients` from `outputs` back through the tape.

    With `inputs=None` gradients accumulate into the `.grad` of every leaf reached; otherwise the gradients
    of `inputs` are returned and no `.grad` is touched.
    """
    previous_lent = _pass.lent
    _pass.lent = {} if inputs is None else None
    try:
        return _propagate(outputs, gradients, retain_graph, inputs)
    finally:
        _pass.lent = previous_lent


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
            for tensor in capture_nodes.get(id(node), ()):
                captured[id(tensor)] = grad_outputs[tensor._output_index]
            if node._retained:
                for index, reference in node._retained.items():
                    tensor = reference()
                    if grad_outputs[index] is not None and tensor is not None:
                        _accumulate_leaf(tensor, grad_outputs[index])
            if any(g is None for g in grad_outputs):
                grad_outputs = [
                    g if g is not None else _zeros_for(node, index) for index, g in enumerate(grad_outputs)
                ]
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
                        gradient = _check_gradient(edge, gradient, node.function.__name__ + ".backward")
                        previous = captured[id(edge)]
                        captured[id(edge)] = gradient if previous is None else previous + gradient
                else:
                    _accumulate_leaf(edge, _check_gradient(edge, gradient, node.function.__name__ + ".backward"))
    finally:
        recording.enabled = previous_mode
    return captured


def _zeros_for(node, index):
    """PyTorch's materialised zero gradient for an output of a multi-output op that received none."""
    shape, dtype = node.output_meta[index]
    return Tensor._make(DEVICES["cpu"].zeros(shape, dtype))


def _accumulate_leaf(tensor, gradient):
    existing = tensor.grad
    if existing is None:
        device = DEVICES[gradient.device]
        lent = _pass.lent
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
    elif (existing._data.flags.c_contiguous and existing._data.flags.writeable and not existing.requires_grad
          and existing.shape == gradient.shape and existing.dtype == gradient.dtype):
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
