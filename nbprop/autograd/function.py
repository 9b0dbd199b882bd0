"""The tape's nodes: Function (an op with its forward and backward) and Context (what forward leaves for
backward, and the node's links to its inputs' nodes)."""

from nbprop import anomaly_mode, tensor_repr
from nbprop.backend import DEVICES
from nbprop.backward_pass import pass_state
from nbprop.grad_mode import recording
from nbprop.tensor import Tensor


class Context:
    """What a Function's forward leaves for its backward; also the node of the tape that calls backward.

    `next_edges[i]` says where the gradient of input i goes: a `(node, output_index)` pair for a tensor made
    by another op, the leaf tensor itself for a leaf that requires grad, or None.
    """

    __slots__ = (
        "__dict__", "function", "needs_input_grad", "next_edges", "output_count", "_saved_versions", "output_meta",
    )
    _saved = ()  # tensors kept for backward, () once freed
    _saved_output_indices = None  # per saved tensor, its output index if it is an output of this node
    _freed = False
    _retained = None  # output index -> weak reference to a tensor whose .grad is kept (retain_grad)
    _hooks = None  # output index -> the gradient hooks registered on that output (Tensor.register_hook)
    # Scratch of a backward pass: which pass last visited the node, its unprocessed consumers, its gradients.
    _visit = None
    _dependencies = 0
    _grad_outputs = None

    def save_for_backward(self, *tensors):
        """Keep tensors for backward; modifying one in place before backward makes backward raise."""
        self._saved = tensors
        self._saved_versions = [None if t is None else t._version_counter[0] for t in tensors]

    def gradient_destination(self, index):
        """An array of input `index`'s shape and dtype that backward may write that input's gradient into and
        return wrapped in a Tensor, which then becomes the input's `.grad` without a copy; or None.

        Offered only to a leaf whose `.grad` is None and whose storage for it is lent (an optimizer lends
        its flat gradient buffer, see nbprop/optim/flat.py), while backward accumulates into `.grad`, and
        when no other input of this op is the same leaf.
        """
        lent = pass_state.lent
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
            _copy_in_place_of(saved) if saved is not None and saved._version_counter is version_counter else saved
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
                output_index = None if self._saved_output_indices is None else self._saved_output_indices[index]
                which = f"saved tensor {index}" if output_index is None else f"its output {output_index}"
                raise RuntimeError(
                    f"{self.function.__name__}.backward: {which} saved for backward (shape "
                    f"{tuple(tensor.shape)}, dtype {tensor.dtype}) was modified by an in-place operation "
                    f"(version {version} when saved, {tensor._version_counter[0]} now)"
                )
        if pass_state.create_graph and self._saved_output_indices is not None:
            return self._relinked_outputs()
        return self._saved

    def _relinked_outputs(self):
        """The saved tensors with each saved output joined to this node again, for a recorded backward pass
        that differentiates through it (the unlinked aliases of _unlink_saved_outputs carry no node)."""
        tensors = []
        for tensor, output_index in zip(self._saved, self._saved_output_indices):
            if output_index is not None:
                tensor = Tensor._make(tensor._data, tensor._version_counter, tensor.device)
                tensor.requires_grad = True
                tensor.grad_fn = self
                tensor._output_index = output_index
            tensors.append(tensor)
        return tuple(tensors)

    def __repr__(self):
        return f"<{tensor_repr.backward_name(self)}>"  # PyTorch's node names: <MulBackward0>


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

    A backward pass with create_graph=True runs `backward_graph` instead, with recording on: the same
    gradients written with differentiable ops, reading saved tensors through `ctx.saved_tensors`. nbprop's
    ops define it (their `backward` calls kernels directly); a Function that leaves it None has its `backward`
    recorded, as PyTorch does, which is right when that backward is written with nbprop's ops.
    """

    backward_graph = None

    @staticmethod
    def forward(ctx, *args, **kwargs):
        raise NotImplementedError("Function subclasses must define forward(ctx, *args)")

    @staticmethod
    def backward(ctx, *grad_outputs):
        raise NotImplementedError("Function subclasses must define backward(ctx, *grad_outputs)")

    @classmethod
    def apply(cls, *args, **kwargs):
        # One pass over the arguments: the device check and, for the tape, where each input's gradient goes.
        record = False
        device = None
        needs_input_grad = []
        next_edges = []
        for argument in args:
            if isinstance(argument, Tensor):
                if device is None:
                    device = argument.device
                elif argument.device != device:
                    raise RuntimeError(f"{cls.__name__}: expected all tensors to be on the same device, but found "
                                       f"at least two devices, {device} and {argument.device}")
                if argument.requires_grad:
                    record = True
                    node = argument.grad_fn
                    next_edges.append(argument if node is None else (node, argument._output_index))
                    needs_input_grad.append(True)
                    continue
            next_edges.append(None)
            needs_input_grad.append(False)
        if not (record and recording.enabled):
            return cls.forward(_NoGradContext(), *args, **kwargs)

        ctx = Context()
        ctx.function = cls
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
        elif isinstance(outputs, tuple) and all(isinstance(output, Tensor) for output in outputs):
            ctx.output_count = len(outputs)
            ctx.output_meta = [(output.shape, output.dtype, output.device) for output in outputs]
            for index, output in enumerate(outputs):
                _attach(output, ctx, index)
        else:
            raise TypeError(f"{cls.__name__}.forward must return a Tensor or a tuple of Tensors")
        for saved in ctx._saved:  # a plain loop: any() over a generator costs more on every op
            if saved is not None and saved.grad_fn is ctx:
                _unlink_saved_outputs(ctx)
                break
        if anomaly_mode.enabled:
            anomaly_mode.check_forward(ctx, outputs)
        return outputs


def _copy_in_place_of(saved):
    """A copy of a saved tensor's values that stands for it on the tape as it is now (its node and output
    index), so that a recorded backward pass still differentiates through it after the original is overwritten."""
    copy = Tensor._make(DEVICES[saved.device].copy(saved._data), None, saved.device)
    if saved.grad_fn is not None:
        copy.requires_grad, copy.grad_fn, copy._output_index = True, saved.grad_fn, saved._output_index
    return copy


def _unlink_saved_outputs(ctx):
    """Keep each saved output as an alias without its tape node: an output that holds the node that saves it
    would be a reference cycle, so a dropped graph would wait for the garbage collector (PyTorch's
    SavedVariable does the same). The alias shares the output's storage and version counter."""
    saved = ctx._saved
    ctx._saved_output_indices = tuple(
        tensor._output_index if tensor is not None and tensor.grad_fn is ctx else None for tensor in saved
    )
    ctx._saved = tuple(
        Tensor._make(tensor._data, tensor._version_counter, tensor.device)
        if tensor is not None and tensor.grad_fn is ctx else tensor
        for tensor in saved
    )


def _attach(output, ctx, index):
    if not output.dtype.kind == "f":
        return  # integer and boolean results (indices, masks) carry no gradient
    if output.grad_fn is not None or output.requires_grad:
        raise RuntimeError(f"{ctx.function.__name__}.forward must return new tensors, not its inputs")
    output.requires_grad = True
    output.grad_fn = ctx
    output._output_index = index
