"""The MPI process group of nbprop.distributed: init, rank, world size, barrier, flat collectives over tensors, and
the end of the whole job when one rank raises.

mpi4py is imported by `init()` only, never by `import nbprop`. Without it (or without `init()`), the process is a
group of one: rank 0 of world size 1, and every collective is a no-op.
"""

import importlib.util
import os
import sys
import time
import warnings
from traceback import format_exception

from nbprop.backend import DEVICES
from nbprop.grad_mode import no_grad
from nbprop.tensor import Tensor

# Variables that MPI launchers set to the number of processes they started: MPICH's Hydra (and Intel MPI), Open
# MPI's mpirun, Slurm's srun (per job step: an sbatch script's own python is not one of its tasks).
LAUNCHER_SIZES = ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "SLURM_STEP_NUM_TASKS")

MISSING_MPI = ("nbprop.distributed.init: mpi4py is not installed, so this process runs alone (rank 0 of world size "
               "1); for data-parallel training install the mpi extra (pip install 'nbprop[mpi]') and launch with "
               "mpiexec -n N python -m mpi4py script.py")


class _Group:
    """The process group: the communicator (None for a group of one), and this process's place in it."""

    def __init__(self):
        self.mpi = None
        self.comm = None
        self.rank = 0
        self.size = 1
        self.initialized = False
        self.previous_excepthook = None


GROUP = _Group()


def is_available():
    """Whether mpi4py can be imported (without importing it)."""
    return importlib.util.find_spec("mpi4py") is not None


def launched_size():
    """The number of processes an MPI launcher (mpiexec, srun) says it started, read from its environment without
    importing mpi4py (1 when none did)."""
    for name in LAUNCHER_SIZES:
        value = os.environ.get(name, "")
        if value.isdigit():
            return int(value)
    return 1


def init(comm=None):
    """Join the process group: `comm` (an mpi4py communicator) or MPI.COMM_WORLD; returns the world size.

    Without mpi4py the process runs alone (world size 1) after a RuntimeWarning saying so; under a launcher that
    started several processes, that would silently train N separate models, so it raises instead. With more
    than one rank, an uncaught exception on any rank prints its traceback and aborts every rank (no hang).
    Calling it again is harmless (the first group stays)."""
    if GROUP.initialized:
        return GROUP.size
    try:
        from mpi4py import MPI
    except ImportError:
        launched = launched_size()
        if launched > 1:
            raise RuntimeError(f"{MISSING_MPI}; this process is one of {launched} that a launcher started, which "
                               "would each train alone") from None
        warnings.warn(MISSING_MPI, RuntimeWarning, stacklevel=2)
        GROUP.initialized = True
        return 1
    GROUP.mpi = MPI
    GROUP.comm = MPI.COMM_WORLD if comm is None else comm
    GROUP.rank = GROUP.comm.Get_rank()
    GROUP.size = GROUP.comm.Get_size()
    GROUP.initialized = True
    if GROUP.size > 1:
        GROUP.previous_excepthook = sys.excepthook
        sys.excepthook = _abort_on_exception
    return GROUP.size


def destroy_process_group():
    """Leave the group (MPI itself stays initialised until the process ends, as mpi4py finalises it at exit)."""
    if GROUP.previous_excepthook is not None and sys.excepthook is _abort_on_exception:
        sys.excepthook = GROUP.previous_excepthook
    GROUP.__init__()


def _abort_on_exception(kind, value, traceback):
    """sys.excepthook under MPI: show the error, then end every rank. Without this, the other ranks would wait
    forever in their next collective for the rank that died."""
    try:
        sys.stdout.flush()
        # One write, then a moment: the launcher forwards each rank's output in chunks, and an abort that comes
        # right after a write can cut the report short.
        report = "".join(format_exception(kind, value, traceback))
        sys.stderr.write(f"nbprop.distributed: rank {GROUP.rank} of {GROUP.size} raised {kind.__name__}; aborting "
                         f"all ranks\n{report}")
        sys.stderr.flush()
        time.sleep(0.2)
    finally:
        GROUP.mpi.COMM_WORLD.Abort(1)


def end_job(status):
    """`status`, for a process to exit with; under MPI with several ranks, end every rank now with it (MPI_Abort)
    when it is not 0, so that no rank waits forever for this one in a collective."""
    if status and GROUP.comm is not None and GROUP.size > 1:
        sys.stdout.flush()
        sys.stderr.flush()
        GROUP.mpi.COMM_WORLD.Abort(status)
    return status


def is_initialized():
    return GROUP.initialized


def rank():
    """This process's rank in the group (0 without MPI)."""
    return GROUP.rank


def world_size():
    """The number of processes in the group (1 without MPI)."""
    return GROUP.size


def barrier():
    """Wait until every rank gets here."""
    if GROUP.comm is not None:
        GROUP.comm.Barrier()


# PyTorch's names (torch.distributed).
init_process_group = init
get_rank = rank
get_world_size = world_size


class FlatBuffer:
    """Arrays of one device and dtype, packed one after another into one contiguous buffer that MPI sends whole."""

    def __init__(self, device_name, dtype, shapes):
        self.device_name = device_name
        self.device = device = DEVICES[device_name]
        self.dtype = dtype
        self.shapes = list(shapes)
        self.offsets = [0]
        for shape in self.shapes:
            size = 1
            for extent in shape:
                size *= extent
            self.offsets.append(self.offsets[-1] + size)
        self.flat = device.empty((self.offsets[-1],), dtype)
        self.tensor = Tensor._make(self.flat, None, device_name)
        self.host = None

    def segment(self, index):
        """Array `index`'s part of the buffer, a view in its shape."""
        device = self.device
        return device.view(device.region(self.flat, (slice(self.offsets[index], self.offsets[index + 1]),)),
                           self.shapes[index])

    def pack(self, arrays):
        self.device.concatenate_into(arrays, self.flat)

    def unpack_into(self, arrays):
        for index, array in enumerate(arrays):
            self.device.copy_into(array, self.segment(index))

    def to_host(self):
        """The buffer in host memory, for MPI (the buffer itself on the CPU, a copy elsewhere)."""
        self.host = self.device.to_numpy(self.flat)
        return self.host

    def from_host(self):
        """Bring what MPI wrote into the host memory back into the buffer (nothing to do where it is the buffer)."""
        if self.host is not self.flat:
            self.device.copy_into(self.flat, self.device.asarray(self.host))
        self.host = None

    def scale_(self, factor):
        with no_grad():
            self.tensor.mul_(factor)


def flat_buffers(tensors):
    """The tensors grouped by (device, dtype) in first-seen order: [(FlatBuffer, [tensors])]."""
    groups = {}
    for tensor in tensors:
        groups.setdefault((tensor.device, tensor._data.dtype), []).append(tensor)
    return [(FlatBuffer(device, dtype, [t._data.shape for t in members]), members)
            for (device, dtype), members in groups.items()]


def broadcast_tensors_(tensors, root=0, comm=None):
    """Overwrite the tensors with rank `root`'s values, one Bcast per device and dtype (in place; their version
    counters move, as after any in-place write)."""
    comm = GROUP.comm if comm is None else comm
    tensors = list(tensors)
    if comm is None or comm.Get_size() == 1 or not tensors:
        return
    for buffer, members in flat_buffers(tensors):
        buffer.pack([t._data for t in members])
        comm.Bcast(buffer.to_host(), root=root)
        buffer.from_host()
        buffer.unpack_into([t._data for t in members])
        for tensor in members:
            tensor._version_counter[0] += 1


def broadcast_parameters(module, root=0):
    """Make every rank's parameters and buffers rank `root`'s (DistributedDataParallel does it when built)."""
    if GROUP.comm is None or GROUP.size == 1:
        return
    if not 0 <= root < GROUP.size:
        raise ValueError(f"broadcast_parameters: root {root} is not a rank of a group of {GROUP.size}")
    broadcast_tensors_([*module.parameters(), *(b for b in module.buffers() if b is not None)], root)


def host_sum(values, comm=None):
    """The element-wise sum over ranks of a small host NumPy array (a new array; the array itself alone)."""
    comm = GROUP.comm if comm is None else comm
    if comm is None or comm.Get_size() == 1:
        return values.copy()
    total = values.copy()
    comm.Allreduce(GROUP.mpi.IN_PLACE, total)
    return total

