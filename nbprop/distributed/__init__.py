"""nbprop.distributed: data-parallel training over MPI (mpi4py), in torch.distributed's and torch.nn.parallel's names.

Launch one process per share of the work, `mpiexec -n 4 python -m mpi4py train.py`; in the script, `init()`,
wrap the model in `DistributedDataParallel`, give the DataLoader a `DistributedSampler`, and save and log on
`rank() == 0` only. mpi4py is imported by `init()`, never by `import nbprop`.
"""

from nbprop.distributed.batchnorm import AllReduceSum, SyncBatchNorm, all_reduce
from nbprop.distributed.group import (
    barrier,
    broadcast_parameters,
    destroy_process_group,
    end_job,
    get_rank,
    get_world_size,
    init,
    init_process_group,
    is_available,
    is_initialized,
    launched_size,
    rank,
    world_size,
)
from nbprop.distributed.parallel import DistributedDataParallel, all_reduce_gradients, prepare_data_parallel
from nbprop.distributed.sampler import DistributedSampler

__all__ = [
    "AllReduceSum", "DistributedDataParallel", "DistributedSampler", "SyncBatchNorm", "all_reduce",
    "all_reduce_gradients", "barrier", "broadcast_parameters", "destroy_process_group", "end_job",
    "get_rank", "get_world_size", "init", "init_process_group", "is_available", "is_initialized", "launched_size",
    "prepare_data_parallel", "rank", "world_size",
]
