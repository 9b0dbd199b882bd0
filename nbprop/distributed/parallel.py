"""DistributedDataParallel and all_reduce_gradients: gradients averaged over the ranks in flat buckets, one
non-blocking MPI Iallreduce per bucket, started by the parameters' post-accumulate-grad hooks.

nbprop's backward pass runs the post-accumulate hooks of all leaves at its end (a leaf with hooks gets its whole
gradient once), so a bucket's reduction cannot overlap the backward computation itself; buckets still let MPI
move one bucket while the next is being packed.
"""

import contextlib
import weakref

import numpy as np

from nbprop.distributed.group import (
    GROUP,
    FlatBuffer,
    broadcast_parameters,
    broadcast_tensors_,
    host_sum,
    init,
    launched_size,
)
from nbprop.grad_mode import is_grad_enabled
from nbprop.nn.module import Module
from nbprop.tensor import Tensor

# PyTorch's default bucket size (bucket_cap_mb=25).
DEFAULT_BUCKET_MEGABYTES = 25


def _tensors_in(value, found):
    """The tensors in a forward's output (nested tuples, lists and dicts)."""
    if isinstance(value, Tensor):
        found.append(value)
    elif isinstance(value, (tuple, list)):
        for item in value:
            _tensors_in(item, found)
    elif isinstance(value, dict):
        for item in value.values():
            _tensors_in(item, found)
    return found


def reachable_leaves(output):
    """The ids of the leaf tensors that the tensors of `output` were computed from (a walk of the tape)."""
    leaves, seen, stack = set(), set(), []
    for tensor in _tensors_in(output, []):
        if tensor.grad_fn is None:
            leaves.add(id(tensor))
        elif id(tensor.grad_fn) not in seen:
            seen.add(id(tensor.grad_fn))
            stack.append(tensor.grad_fn)
    while stack:
        for edge in stack.pop().next_edges:
            if edge is None:
                continue
            if edge.__class__ is tuple:
                if id(edge[0]) not in seen:
                    seen.add(id(edge[0]))
                    stack.append(edge[0])
            else:
                leaves.add(id(edge))
    return leaves


class _Bucket:
    """Parameters whose gradients travel together: their flat buffer and how many are still to come."""

    def __init__(self, params):
        self.params = params
        self.buffer = FlatBuffer(params[0].device, params[0]._data.dtype, [p._data.shape for p in params])
        self.pending = len(params)
        self.request = None


class GradientReducer:
    """Averages the gradients of `params` over the ranks of `comm` once each of them is ready (`mark_ready`),
    in buckets of at most `bucket_bytes` (parameters in reverse order, the order a backward pass finishes them).

    `locally_unused` (of `prepare`): ids of parameters that this rank's pass will not give a gradient; they
    count as ready with their current gradient (zeros if None), and one small extra all-reduce says which have
    a gradient on some rank: one that has none on every rank stays None."""

    def __init__(self, params, comm, bucket_bytes):
        self.params = list(params)
        self.shapes = [p._data.shape for p in self.params]
        self.comm = comm
        self.world = comm.Get_size()
        self.position = {id(p): index for index, p in enumerate(self.params)}
        self.buckets, self.bucket_of = [], {}
        current, current_bytes = [], 0
        for parameter in reversed(self.params):
            size = parameter._data.size * parameter._data.dtype.itemsize
            if current and (current_bytes + size > bucket_bytes or parameter.device != current[0].device
                            or parameter._data.dtype != current[0]._data.dtype):
                self.buckets.append(_Bucket(current))
                current, current_bytes = [], 0
            current.append(parameter)
            current_bytes += size
        if current:
            self.buckets.append(_Bucket(current))
        for bucket in self.buckets:
            for parameter in bucket.params:
                self.bucket_of[id(parameter)] = bucket
        self.armed = False
        self.ready = [False] * len(self.params)
        self.remaining = 0
        self.locally_unused = set()
        self.next_bucket = 0

    def prepare(self, locally_unused=()):
        """Expect one gradient per parameter from the coming backward pass."""
        self.armed = True
        self.ready = [False] * len(self.params)
        self.remaining = len(self.params)
        self.locally_unused = set(locally_unused)
        self.next_bucket = 0
        for bucket in self.buckets:
            bucket.pending = len(bucket.params)
        for key in self.locally_unused:
            self.mark_ready(self.params[self.position[key]])

    def unfinished(self):
        """The indices of the parameters still waiting for a gradient, when a pass has begun but not ended."""
        if not self.armed or self.remaining == len(self.params):
            return []
        return [index for index, ready in enumerate(self.ready) if not ready]

    def mark_ready(self, parameter):
        if not self.armed:
            return
        index = self.position[id(parameter)]
        if self.ready[index]:
            raise RuntimeError(f"DistributedDataParallel: parameter {index} got a gradient twice in one pass (a "
                               "second backward pass without a forward pass through the wrapped module); use "
                               "no_sync() for the passes whose gradients should only accumulate")
        if parameter.grad is not None and parameter.grad.requires_grad:
            raise RuntimeError("DistributedDataParallel: gradients with a graph (create_graph=True) are not "
                               "supported")
        self.ready[index] = True
        self.remaining -= 1
        self.bucket_of[id(parameter)].pending -= 1
        # Collectives must start in the same order on every rank: buckets go in their order, each once it and
        # all before it are complete, whatever order this rank's gradients arrive in.
        while self.next_bucket < len(self.buckets) and self.buckets[self.next_bucket].pending == 0:
            self._launch(self.buckets[self.next_bucket])
            self.next_bucket += 1
        if self.remaining == 0:
            self._finish()

    def _launch(self, bucket):
        buffer = bucket.buffer
        for index, parameter in enumerate(bucket.params):
            if parameter.grad is None:
                buffer.device.fill(buffer.segment(index), 0)
            else:
                buffer.device.copy_into(buffer.segment(index), parameter.grad._data)
        bucket.request = self.comm.Iallreduce(GROUP.mpi.IN_PLACE, buffer.to_host())

    def _finish(self):
        self.armed = False
        used = None
        if self.locally_unused:
            flags = np.array([p.grad is not None for p in self.params], np.int32)
            used = host_sum(flags, self.comm)
        GROUP.mpi.Request.Waitall([bucket.request for bucket in self.buckets])
        for bucket in self.buckets:
            bucket.request = None
            buffer = bucket.buffer
            buffer.from_host()
            buffer.scale_(1.0 / self.world)
            for index, parameter in enumerate(bucket.params):
                if used is not None and not used[self.position[id(parameter)]]:
                    continue
                gradient = parameter.grad
                if gradient is None:
                    parameter.grad = Tensor._make(buffer.device.copy(buffer.segment(index)), None, buffer.device_name)
                else:
                    buffer.device.copy_into(gradient._data, buffer.segment(index))
                    gradient._version_counter[0] += 1

    def reduce_now(self):
        """Average the gradients the parameters hold now (None counts as zeros and stays None where every rank
        has None)."""
        self.prepare([id(p) for p in self.params])


def _post_accumulate_hook(reducer):
    reference = weakref.ref(reducer)

    def hook(parameter):
        alive = reference()
        if alive is not None:
            alive.mark_ready(parameter)

    return hook


_reducers = weakref.WeakKeyDictionary()


def all_reduce_gradients(module):
    """Average the gradients of `module`'s parameters over the ranks, in place: one Allreduce per device and dtype
    over one flat contiguous buffer (call it between `loss.backward()` and `optimizer.step()`; a
    DistributedDataParallel wrapper does it for you, in buckets, as the backward pass ends)."""
    if GROUP.comm is None or GROUP.size == 1:
        return
    params = [p for p in module.parameters() if p.requires_grad]
    reducer = _reducers.get(module)
    if reducer is None or len(reducer.params) != len(params) or any(
            p is not q or p._data.shape != s for p, q, s in zip(params, reducer.params, reducer.shapes)):
        reducer = GradientReducer(params, GROUP.comm, float("inf"))
        _reducers[module] = reducer
    reducer.reduce_now()


class DistributedDataParallel(Module):
    """PyTorch's DDP over MPI: wraps `module` (forward passes through; state dict keys gain the `module.`
    prefix), makes every rank start from rank 0's parameters and buffers, and averages the gradients over the
    ranks as each backward pass through a forward of the wrapper ends, so that an optimizer steps every rank
    alike. `broadcast_buffers`: rank 0's buffers (such as batch norm running statistics) are copied to all
    ranks before each forward, as in PyTorch; SyncBatchNorm computes the batch statistics over all ranks
    instead. `find_unused_parameters`: walk the forward's graph to learn which parameters will get no
    gradient (else every parameter must get one each pass). `process_group`: an mpi4py communicator."""

    def __init__(self, module, device_ids=None, output_device=None, dim=0, broadcast_buffers=True,
                 process_group=None, bucket_cap_mb=None, find_unused_parameters=False):
        super().__init__()
        if not isinstance(module, Module):
            raise TypeError(f"DistributedDataParallel: expects an nbprop.nn.Module, got {type(module).__name__}")
        if device_ids is not None or output_device is not None:
            raise ValueError("DistributedDataParallel: device_ids and output_device must be None (one device per "
                             "process: the module's own)")
        if bucket_cap_mb is not None and not bucket_cap_mb > 0:
            raise ValueError(f"DistributedDataParallel: bucket_cap_mb must be positive, got {bucket_cap_mb}")
        init()
        self.module = module
        self.dim = dim
        self.broadcast_buffers = broadcast_buffers
        self.find_unused_parameters = find_unused_parameters
        self.require_backward_grad_sync = True
        self.process_group = GROUP.comm if process_group is None else process_group
        self.bucket_cap_mb = DEFAULT_BUCKET_MEGABYTES if bucket_cap_mb is None else bucket_cap_mb
        self._distributed = self.process_group is not None and self.process_group.Get_size() > 1
        self._names = [name for name, p in module.named_parameters() if p.requires_grad]
        self._reducer = None
        if not self._distributed:
            return
        if process_group is None:
            broadcast_parameters(module, 0)
        else:
            broadcast_tensors_([*module.parameters(), *(b for b in module.buffers() if b is not None)], 0,
                               self.process_group)
        params = [p for p in module.parameters() if p.requires_grad]
        if params:
            self._reducer = GradientReducer(params, self.process_group, self.bucket_cap_mb * 2 ** 20)
            hook = _post_accumulate_hook(self._reducer)
            self._hook_handles = [p.register_post_accumulate_grad_hook(hook) for p in params]

    def forward(self, *inputs, **kwargs):
        synchronise = self._reducer is not None and is_grad_enabled() and self.require_backward_grad_sync
        if synchronise:
            unfinished = self._reducer.unfinished()
            if unfinished:
                self._reducer.armed = False
                names = ", ".join(self._names[index] for index in unfinished)
                raise RuntimeError(
                    "DistributedDataParallel: expected to have finished reduction in the prior iteration before "
                    "starting a new one: the module has parameters that were not used in producing the loss "
                    f"(rank {self.process_group.Get_rank()}: {names}); pass find_unused_parameters=True, or make "
                    "sure every forward output takes part in the loss")
        if self._distributed and self.broadcast_buffers:
            buffers = [b for b in self.module.buffers() if b is not None]
            if buffers:
                broadcast_tensors_(buffers, 0, self.process_group)
        output = self.module(*inputs, **kwargs)
        if synchronise:
            unused = ()
            if self.find_unused_parameters:
                used = reachable_leaves(output)
                unused = [id(p) for p in self._reducer.params if id(p) not in used]
            self._reducer.prepare(unused)
        return output

    @contextlib.contextmanager
    def no_sync(self):
        """Within the block, backward passes only accumulate gradients locally; the first pass after it averages
        the accumulated gradients."""
        previous = self.require_backward_grad_sync
        self.require_backward_grad_sync = False
        try:
            yield
        finally:
            self.require_backward_grad_sync = previous


def prepare_data_parallel(model, train_loader, seed=0):
    """(the model to train, its training loader, whether this rank is the main one) for a training loop that works
    alone and under an MPI launcher unchanged: started by mpiexec or srun with several processes, the group is
    joined, the model wrapped in DistributedDataParallel and the loader replaced by one over this rank's
    DistributedSampler share (shuffled from `seed`, reshuffled by `set_epoch`; the same batch size per rank, so
    the batch of a step is N times larger); alone, `(model, train_loader, True)`. Only the main rank (rank 0)
    should write checkpoints and logs."""
    from nbprop.data import DataLoader
    from nbprop.distributed.sampler import DistributedSampler

    if launched_size() <= 1 or init() == 1:
        return model, train_loader, True
    sampler = DistributedSampler(train_loader.dataset, seed=seed, drop_last=train_loader.drop_last)
    loader = DataLoader(train_loader.dataset, batch_size=train_loader.batch_size, sampler=sampler,
                        drop_last=train_loader.drop_last, collate_fn=train_loader.collate_fn)
    return DistributedDataParallel(model), loader, GROUP.rank == 0
