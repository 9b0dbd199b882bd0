"""embedding: the rows of a table gathered by integer indices; its backward a deterministic scatter-add."""

from nbprop import dtypes
from nbprop.autograd import Function
from nbprop.backend import DEVICES
from nbprop.ops import movement
from nbprop.ops.gather import index_add_along, masked_fill
from nbprop.ops.indexing import index_add
from nbprop.tensor import Tensor


class Embedding(Function):
    @staticmethod
    def forward(ctx, weight, input, positions, padding_idx):  # noqa: A002 - PyTorch's argument name
        if ctx.needs_input_grad[0]:
            # `positions` may be a view of input's memory: input is saved so that changing it in place (an index
            # buffer reused with copy_ for the next batch) makes backward raise instead of using the new indices.
            ctx.save_for_backward(input)
            ctx.positions, ctx.weight_shape, ctx.padding_idx = positions, weight.shape, padding_idx
        device = DEVICES[weight.device]
        rows = device.take(weight._data, (positions,))
        return Tensor._make(device.reshape(rows, input.shape + (weight.shape[1],)), None, weight.device)

    @staticmethod
    def backward(ctx, grad_output):
        ctx.saved_tensors  # noqa: B018 - raises if the indices were modified in place since forward
        # The adjoint of the row gather: a deterministic scatter-add of the gradient rows (sorted segments),
        # bounds-checked against writes through .numpy(), which the version counter cannot see.
        grad_weight = index_add(grad_output, ctx.positions, ctx.weight_shape, 1, "embedding backward")
        if ctx.padding_idx is not None:
            # The padding row is not trained.
            DEVICES[grad_weight.device].write_region(grad_weight._data, (ctx.padding_idx,), 0)
        return grad_weight, None, None, None

    @staticmethod
    def backward_graph(ctx, grad_output):
        ctx.saved_tensors  # noqa: B018 - raises if the indices were modified in place since forward
        # The same adjoint recorded: a scatter_add of the gradient rows (its gradient is a row gather), with the
        # positions a constant; the padding row masked out.
        device = DEVICES[grad_output.device]
        count, width = ctx.weight_shape
        rows = movement.reshape(grad_output, (-1, width))
        positions = Tensor._make(ctx.positions, None, grad_output.device)
        grad_weight = index_add_along(rows, 0, positions, count)
        if ctx.padding_idx is not None:
            padding_row = device.zeros((count, 1), dtypes.bool_)
            device.write_region(padding_row, (ctx.padding_idx,), True)
            grad_weight = masked_fill(grad_weight, Tensor._make(padding_row, None, grad_output.device), 0.0)
        return grad_weight, None, None, None


def embedding(input, weight, padding_idx=None, max_norm=None, norm_type=2.0, scale_grad_by_freq=False,  # noqa: A002
              sparse=False):
    """torch.nn.functional.embedding: the rows `weight[input]`, shape input.shape + (embedding_dim,).

    input: an int64 tensor of indices in [0, num_embeddings); weight: (num_embeddings, embedding_dim).
    The gradient of weight is the sum of the gradient rows of every position that read a row (summed in a
    fixed order, so bit-identical on reruns); the row `padding_idx` gets none. max_norm,
    scale_grad_by_freq and sparse gradients are not supported (an error says so).
    """
    if max_norm is not None:
        raise NotImplementedError("embedding: max_norm (in-place renormalisation of rows) is not supported")
    if scale_grad_by_freq:
        raise NotImplementedError("embedding: scale_grad_by_freq=True is not supported")
    if sparse:
        raise NotImplementedError("embedding: sparse gradients are not supported (nbprop has no sparse "
                                  "tensors)")
    if not isinstance(input, Tensor) or not isinstance(weight, Tensor):
        raise TypeError(f"embedding: expects Tensors for input and weight, got {type(input).__name__} and "
                        f"{type(weight).__name__}")
    if input.dtype.kind not in "iu":
        raise RuntimeError(f"embedding: expected the indices (argument 'input') to be an int64 tensor, got "
                           f"{input.dtype}")
    if weight.ndim != 2:
        raise RuntimeError(f"embedding: weight must be 2-D (num_embeddings, embedding_dim), got shape "
                           f"{tuple(weight.shape)}")
    count = weight.shape[0]
    device = DEVICES[input.device]
    # On the CPU a view of input's memory when input is a contiguous int64 tensor (see Embedding.forward).
    indices = input._data if input.dtype == dtypes.int64 else device.astype(input._data, dtypes.int64)
    positions = device.reshape(device.contiguous(indices), (-1,))
    found = device.empty(2, dtypes.int64)
    device.call("check_indices", positions, count, found, work=positions.size)
    if device.read_status(found) >= 0:
        raise IndexError(f"embedding: index {device.read_status(found, 1)} out of range for a table of {count} "
                         f"rows (indices must be in [0, {count}))")
    if padding_idx is not None:
        if not -count <= padding_idx < count:
            raise ValueError(f"embedding: padding_idx {padding_idx} must be within num_embeddings ({count})")
        padding_idx = padding_idx % count
    return Embedding.apply(weight, input, positions, padding_idx)
