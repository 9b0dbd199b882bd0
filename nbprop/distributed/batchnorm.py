"""SyncBatchNorm: batch normalisation whose training statistics are those of the whole batch across the ranks, and
all_reduce, the differentiable sum over ranks it is built from."""

from nbprop.autograd import Function
from nbprop.backend import DEVICES
from nbprop.distributed.group import GROUP
from nbprop.grad_mode import no_grad
from nbprop.nn.norm import BatchNorm1d, BatchNorm2d
from nbprop.tensor import Tensor


def _summed_over_ranks(tensor, comm):
    device = DEVICES[tensor.device]
    result = device.copy(tensor._data)
    host = device.to_numpy(result)
    comm.Allreduce(GROUP.mpi.IN_PLACE, host)
    if host is not result:
        result = device.asarray(host)
    return Tensor._make(result, None, tensor.device)


class AllReduceSum(Function):
    """The element-wise sum over the ranks; its gradient is the sum over the ranks of the gradients (each rank's
    loss depends on every rank's input), as torch.distributed.nn.all_reduce."""

    @staticmethod
    def forward(ctx, tensor, comm):
        ctx.comm = comm
        return _summed_over_ranks(tensor, comm)

    @staticmethod
    def backward(ctx, grad_output):
        return AllReduceSum.apply(grad_output, ctx.comm), None

    backward_graph = backward  # itself an op: recorded, and differentiable again


def all_reduce(tensor, process_group=None):
    """A new tensor: the element-wise sum of `tensor` over the ranks (differentiable; `tensor` itself alone)."""
    if not isinstance(tensor, Tensor):
        raise TypeError(f"all_reduce: expects a Tensor, got {type(tensor).__name__}")
    comm = GROUP.comm if process_group is None else process_group
    if comm is None or comm.Get_size() == 1:
        return tensor.clone()
    return AllReduceSum.apply(tensor, comm)


class SyncBatchNorm(BatchNorm1d):
    """torch.nn.SyncBatchNorm: BatchNorm over (N, C, ...) input of any rank from 2 on whose training statistics
    (mean, biased variance for normalising, unbiased for the running variance) are those of the union of every
    rank's batch, exchanged with two all-reduces of C values forward and two backward. In eval mode, or alone
    (world size 1), it is plain batch norm. Every rank must call it in the same order."""

    expected_dims = (2, 3, 4, 5)

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True, track_running_stats=True,
                 process_group=None, device=None, dtype=None):
        super().__init__(num_features, eps, momentum, affine, track_running_stats, device, dtype)
        self.process_group = process_group

    def forward(self, input):  # noqa: A002 - PyTorch's argument name
        comm = GROUP.comm if self.process_group is None else self.process_group
        if not self.training or comm is None or comm.Get_size() == 1:
            return super().forward(input)
        self._check_input_dim(input)
        factor = 0.0 if self.momentum is None else self.momentum
        if self.track_running_stats and self.num_batches_tracked is not None:
            with no_grad():
                self.num_batches_tracked.add_(1)
            if self.momentum is None:
                factor = 1.0 / float(self.num_batches_tracked.item())
        channels = self.num_features
        dims = (0, *range(2, input.ndim))
        shape = (1, channels) + (1,) * (input.ndim - 2)
        local = input.numel() // channels
        total = int(comm.allreduce(local))
        if total <= 1:
            raise ValueError(f"SyncBatchNorm: expected more than 1 value per channel when training, got input of "
                             f"shape {tuple(input.shape)} on this rank and {total} values per channel in all")
        mean = AllReduceSum.apply(input.sum(dims), comm) / total
        centered = input - mean.reshape(shape)
        variance = AllReduceSum.apply((centered * centered).sum(dims), comm) / total
        output = centered / (variance + self.eps).sqrt().reshape(shape)
        if self.weight is not None:
            output = output * self.weight.reshape(shape)
        if self.bias is not None:
            output = output + self.bias.reshape(shape)
        if self.track_running_stats:
            with no_grad():
                self.running_mean.mul_(1.0 - factor).add_(mean.detach() * factor)
                self.running_var.mul_(1.0 - factor).add_(variance.detach() * (factor * total / (total - 1)))
        return output

    @classmethod
    def convert_sync_batchnorm(cls, module, process_group=None):
        """`module` with every BatchNorm1d/BatchNorm2d in it replaced by a SyncBatchNorm holding the same
        parameters and buffers (the objects themselves); returns the module (a new one if it was a batch norm)."""
        converted = module
        if isinstance(module, (BatchNorm1d, BatchNorm2d)) and not isinstance(module, cls):
            reference = module.running_mean if module.running_mean is not None else module.weight
            converted = cls(module.num_features, module.eps, module.momentum, module.affine,
                            module.track_running_stats, process_group,
                            dtype=None if reference is None else reference.dtype)
            if module.affine:
                converted.weight = module.weight
                converted.bias = module.bias
            converted.running_mean = module.running_mean
            converted.running_var = module.running_var
            converted.num_batches_tracked = module.num_batches_tracked
            converted.train(module.training)
        for name, child in module.named_children():
            converted.add_module(name, cls.convert_sync_batchnorm(child, process_group))
        return converted

