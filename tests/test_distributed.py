"""nbprop.distributed: alone (world size 1, with and without mpi4py), and with 2 and 4 MPI ranks started by mpiexec in a
subprocess under a timeout (this file is also the script the ranks run: `python tests/test_distributed.py MODE`)."""

import json
import os
import shutil
import subprocess
import sys
import time

import numpy as np
import pytest

FEATURES, HIDDEN, OUTPUTS, BATCH, STEPS = 6, 16, 3, 16, 6
WORKER_TIMEOUT = 120  # seconds a launch may take before it counts as a hang


# ------------------------------------------------------------------------------------------ the ranks' side

def _mlp(seed):
    import nbprop
    from nbprop import nn
    nbprop.manual_seed(seed)
    return nn.Sequential(nn.Linear(FEATURES, HIDDEN), nn.Tanh(), nn.Linear(HIDDEN, HIDDEN), nn.Tanh(),
                         nn.Linear(HIDDEN, OUTPUTS)).double()


def _flat_values(tensors):
    return np.concatenate([t.detach().numpy().reshape(-1) for t in tensors])


def _training_checks(comm, rank, world):
    """Adam on shards (through DDP with one bucket, DDP with a bucket per parameter, and all_reduce_gradients)
    against Adam on the full batch in this process, step by step."""
    import nbprop
    import nbprop.distributed as dist
    from nbprop import nn
    generator = np.random.default_rng(0)
    inputs = nbprop.tensor(generator.standard_normal((BATCH, FEATURES)))
    targets = nbprop.tensor(generator.standard_normal((BATCH, OUTPUTS)))
    share = BATCH // world
    shard = slice(rank * share, (rank + 1) * share)
    loss_function = nn.MSELoss()
    results = {}
    for variant in ("ddp", "ddp_bucket_per_parameter", "all_reduce_gradients"):
        reference = _mlp(1)
        reference_optimizer = nbprop.optim.Adam(reference.parameters(), lr=0.01)
        local = _mlp(1 + rank)  # different starting weights per rank: the broadcast must make them rank 0's
        if variant == "all_reduce_gradients":
            dist.broadcast_parameters(local)
            model = local
        else:
            model = dist.DistributedDataParallel(local, bucket_cap_mb=1e-4 if variant != "ddp" else None)
        optimizer = nbprop.optim.Adam(model.parameters(), lr=0.01)
        errors, identical = [], []
        for _ in range(STEPS):
            reference_optimizer.zero_grad()
            loss_function(reference(inputs), targets).backward()
            reference_optimizer.step()
            optimizer.zero_grad()
            loss_function(model(inputs[shard]), targets[shard]).backward()
            if variant == "all_reduce_gradients":
                dist.all_reduce_gradients(model)
            optimizer.step()
            mine, expected = _flat_values(local.parameters()), _flat_values(reference.parameters())
            errors.append(float(np.max(np.abs(mine - expected)) / np.max(np.abs(expected))))
            gathered = comm.allgather(mine)
            identical.append(all(np.array_equal(gathered[0], other) for other in gathered))
        results[variant] = {"errors": errors, "identical": identical}
        if variant == "ddp":
            results["state_dict_keys"] = sorted(model.state_dict())[:2]
    return results


def _sync_batch_norm_checks(comm, rank, world):
    """SyncBatchNorm on shards against BatchNorm1d on the full batch: outputs, gradients, running statistics."""
    import nbprop
    import nbprop.distributed as dist
    from nbprop import nn
    generator = np.random.default_rng(1)
    full = generator.standard_normal((BATCH, 3, 2)) * 3 + 1
    weights = generator.standard_normal((BATCH, 3, 2))
    share = BATCH // world
    shard = slice(rank * share, (rank + 1) * share)
    reference, synchronised = nn.BatchNorm1d(3, dtype=nbprop.float64), dist.SyncBatchNorm(3, dtype=nbprop.float64)
    affine = generator.standard_normal((2, 3))
    for layer in (reference, synchronised):
        with nbprop.no_grad():
            layer.weight.copy_(nbprop.tensor(affine[0]))
            layer.bias.copy_(nbprop.tensor(affine[1]))
    worst = 0.0
    for _ in range(2):
        expected_input = nbprop.tensor(full, requires_grad=True)
        expected = reference(expected_input)
        (expected * nbprop.tensor(weights)).sum().backward()
        local_input = nbprop.tensor(full[shard], requires_grad=True)
        output = synchronised(local_input)
        (output * nbprop.tensor(weights[shard])).sum().backward()
        pairs = [(output.detach().numpy(), expected.detach().numpy()[shard]),
                 (local_input.grad.numpy(), expected_input.grad.numpy()[shard]),
                 (synchronised.running_mean.numpy(), reference.running_mean.numpy()),
                 (synchronised.running_var.numpy(), reference.running_var.numpy())]
        for parameter, parameter_reference in ((synchronised.weight, reference.weight),
                                               (synchronised.bias, reference.bias)):
            pairs.append((comm.allreduce(parameter.grad.numpy()), parameter_reference.grad.numpy()))
            parameter.grad = None
            parameter_reference.grad = None
        for mine, theirs in pairs:
            worst = max(worst, float(np.max(np.abs(mine - theirs)) / np.max(np.abs(theirs))))
    converted = dist.SyncBatchNorm.convert_sync_batchnorm(nn.Sequential(nn.Linear(2, 3), nn.BatchNorm1d(3)))
    return {"sync_batch_norm_error": worst, "converted": type(converted[1]).__name__}


def _unused_parameter_checks(rank):
    import nbprop
    import nbprop.distributed as dist
    from nbprop import nn

    class TwoHeads(nn.Module):
        def __init__(self):
            super().__init__()
            self.used = nn.Linear(4, 2)
            self.unused = nn.Linear(4, 2)

        def forward(self, x):
            return self.used(x)

    inputs = nbprop.ones(3, 4) * (rank + 1)
    model = dist.DistributedDataParallel(TwoHeads(), find_unused_parameters=True)
    model(inputs).sum().backward()
    results = {"unused_grad_is_none": model.module.unused.weight.grad is None,
               "used_weight_grad": float(model.module.used.weight.grad.numpy()[0, 0])}
    strict = dist.DistributedDataParallel(TwoHeads())
    strict(inputs).sum().backward()
    try:
        strict(inputs)
        results["strict_error"] = None
    except RuntimeError as error:
        results["strict_error"] = str(error)
    return results


def _sampler_checks(comm):
    from nbprop.distributed import DistributedSampler
    shares = {}
    for size, drop_last in ((11, False), (11, True), (12, False)):
        sampler = DistributedSampler(range(size), drop_last=drop_last, seed=3)
        orders = []
        for epoch in (0, 1):
            sampler.set_epoch(epoch)
            orders.append(list(sampler))
        shares[f"{size}-{drop_last}"] = {"orders": comm.gather(orders, root=0), "length": len(sampler)}
    return shares


def worker(mode):
    """What each rank runs under mpiexec; rank 0 prints one line `RESULT <json>`."""
    import nbprop.distributed as dist
    dist.init()
    from mpi4py import MPI
    comm, rank, world = MPI.COMM_WORLD, dist.rank(), dist.world_size()
    if mode == "raise":
        if rank == world - 1:
            raise ValueError(f"deliberate failure on rank {rank}")
        dist.barrier()  # the others wait here for the failed rank: without the abort, forever
        return
    results = {"world": world, **_training_checks(comm, rank, world)}
    if mode == "all":
        results.update(_sync_batch_norm_checks(comm, rank, world))
        results.update(_unused_parameter_checks(rank))
        results["samplers"] = _sampler_checks(comm)
    if rank == 0:
        print("RESULT " + json.dumps(results), flush=True)


# ------------------------------------------------------------------------------------------ the launcher's side

def _mpiexec():
    found = shutil.which("mpiexec", path=os.path.dirname(sys.executable)) or shutil.which("mpiexec")
    assert found, "mpiexec not found: install the test extra (pip install -e '.[test]' brings mpi4py and mpich)"
    return found


def _launch(ranks, mode, with_mpi4py_module=True, script=None):
    """Run this file's worker (or `script`, a list of arguments for python) on `ranks` processes; (return code,
    output, seconds)."""
    threads = str(max(1, (os.cpu_count() or 1) // ranks))  # ranks x threads = cores
    environment = dict(os.environ, NUMBA_NUM_THREADS=threads, OMP_NUM_THREADS=threads, OPENBLAS_NUM_THREADS=threads,
                       PYTHONUNBUFFERED="1")
    launcher = [sys.executable, "-m", "mpi4py"] if with_mpi4py_module else [sys.executable]
    command = ["timeout", "-k", "5", str(WORKER_TIMEOUT), _mpiexec(), "-n", str(ranks), *launcher,
               *(script or [__file__, mode])]
    start = time.perf_counter()
    completed = subprocess.run(command, capture_output=True, text=True, env=environment,
                               cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    return completed.returncode, completed.stdout + completed.stderr, time.perf_counter() - start


def _results(ranks, mode):
    code, output, _ = _launch(ranks, mode)
    assert code == 0, output
    lines = [line for line in output.splitlines() if line.startswith("RESULT ")]
    assert len(lines) == 1, output
    return json.loads(lines[0][len("RESULT "):])


# ------------------------------------------------------------------------------------------ alone

def np_tensor(array):
    import nbprop
    return nbprop.tensor(array)


@pytest.fixture
def alone_without_mpi4py(monkeypatch):
    """A fresh process group in this process, with mpi4py unimportable."""
    import nbprop.distributed as dist
    from nbprop.distributed.group import LAUNCHER_SIZES
    dist.destroy_process_group()
    monkeypatch.setitem(sys.modules, "mpi4py", None)
    for name in LAUNCHER_SIZES:
        monkeypatch.delenv(name, raising=False)
    yield dist
    dist.destroy_process_group()


def test_importing_nbprop_does_not_import_mpi4py():
    code = "import sys, nbprop, nbprop.distributed; print('mpi4py' in sys.modules)"
    completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert completed.stdout.strip() == "False", completed.stderr


def test_without_mpi4py_a_process_is_a_group_of_one(alone_without_mpi4py):
    dist = alone_without_mpi4py
    assert not dist.is_initialized()
    with pytest.warns(RuntimeWarning, match=r"mpi4py is not installed.*world size 1.*pip install 'nbprop\[mpi\]'"):
        assert dist.init() == 1
    assert dist.is_initialized() and (dist.rank(), dist.world_size()) == (0, 1)
    assert (dist.get_rank(), dist.get_world_size()) == (0, 1)
    dist.barrier()
    model = _mlp(0)
    dist.broadcast_parameters(model)
    model(np_tensor(np.ones((2, FEATURES)))).sum().backward()
    before = _flat_values([p.grad for p in model.parameters()])
    dist.all_reduce_gradients(model)
    assert np.array_equal(_flat_values([p.grad for p in model.parameters()]), before)


@pytest.mark.parametrize("variable", ["PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "SLURM_STEP_NUM_TASKS"])
def test_without_mpi4py_under_a_launcher_of_several_processes_init_refuses(alone_without_mpi4py, monkeypatch,
                                                                           variable):
    assert alone_without_mpi4py.launched_size() == 1
    monkeypatch.setenv(variable, "2")
    assert alone_without_mpi4py.launched_size() == 2
    with pytest.raises(RuntimeError, match="mpi4py is not installed.*one of 2 that a launcher started"):
        alone_without_mpi4py.init()


def test_ddp_alone_passes_through_with_pytorch_state_dict_keys(alone_without_mpi4py):
    import nbprop
    dist = alone_without_mpi4py
    with pytest.warns(RuntimeWarning):
        model = dist.DistributedDataParallel(_mlp(0))
    plain = _mlp(0)
    inputs = np_tensor(np.random.default_rng(0).standard_normal((4, FEATURES)))
    assert np.array_equal(model(inputs).detach().numpy(), plain(inputs).detach().numpy())
    state = model.state_dict()
    assert list(state) == ["module." + key for key in plain.state_dict()]
    with nbprop.no_grad():
        next(iter(plain.parameters())).add_(1.0)
    model.load_state_dict({"module." + key: value for key, value in plain.state_dict().items()})
    assert np.array_equal(model(inputs).detach().numpy(), plain(inputs).detach().numpy())
    with model.no_sync():
        assert not model.require_backward_grad_sync
    assert model.require_backward_grad_sync


def test_ddp_bad_arguments(alone_without_mpi4py):
    dist = alone_without_mpi4py
    with pytest.raises(TypeError, match="expects an nbprop.nn.Module, got list"):
        dist.DistributedDataParallel([])
    with pytest.raises(ValueError, match="device_ids and output_device must be None"):
        dist.DistributedDataParallel(_mlp(0), device_ids=[0])
    with pytest.raises(ValueError, match="bucket_cap_mb must be positive, got 0"):
        dist.DistributedDataParallel(_mlp(0), bucket_cap_mb=0)


def test_sync_batch_norm_alone_is_batch_norm(alone_without_mpi4py):
    import nbprop
    from nbprop import nn
    dist = alone_without_mpi4py
    array = np.random.default_rng(2).standard_normal((4, 3, 2, 2))
    synchronised, plain = dist.SyncBatchNorm(3, dtype=nbprop.float64), nn.BatchNorm2d(3, dtype=nbprop.float64)
    for _ in range(2):
        assert np.array_equal(synchronised(np_tensor(array)).detach().numpy(), plain(np_tensor(array)).detach().numpy())
    assert np.array_equal(synchronised.running_var.numpy(), plain.running_var.numpy())
    assert np.array_equal(dist.all_reduce(np_tensor(array)).numpy(), array)
    with pytest.raises(ValueError, match=r"SyncBatchNorm: expected 2D or 3D or 4D or 5D input \(got 1D input\)"):
        synchronised(np_tensor(np.ones(3)))


class _FakeRequest:
    pass


class _FakeMPI:
    IN_PLACE = object()

    class Request:
        @staticmethod
        def Waitall(requests):  # noqa: N802 - mpi4py's name
            assert requests and all(isinstance(request, _FakeRequest) for request in requests)


class _PairComm:
    """A communicator of two ranks, in one process: the other rank's gradients are this one's plus one (a sum is
    2g + 1, an average g + 0.5), and a broadcast from it adds one."""

    def __init__(self):
        self.reduced, self.broadcast = [], []

    def Get_size(self):  # noqa: N802 - mpi4py's names
        return 2

    def Get_rank(self):  # noqa: N802
        return 0

    def Iallreduce(self, in_place, buffer):  # noqa: N802
        assert in_place is _FakeMPI.IN_PLACE and isinstance(buffer, np.ndarray)
        buffer *= 2
        buffer += 1
        self.reduced.append(buffer.size)
        return _FakeRequest()

    def Bcast(self, buffer, root):  # noqa: N802
        assert root == 0 and isinstance(buffer, np.ndarray)
        buffer += 1
        self.broadcast.append(buffer.size)


@pytest.mark.parametrize("device", ["cpu", "opaque"])
def test_ddp_moves_flat_buckets_through_the_device(alone_without_mpi4py, monkeypatch, device):
    # On the opaque test device, whose arrays MPI cannot read: packing, host transfer and unpacking all go
    # through the device object.
    import nbprop
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import opaque_device
    opaque_device.install()
    from nbprop.distributed.group import GROUP
    monkeypatch.setattr(GROUP, "mpi", _FakeMPI)
    monkeypatch.setattr(GROUP, "initialized", True)
    dist, comm = alone_without_mpi4py, _PairComm()
    model = _mlp(0).to(device)
    before = [p.detach().cpu().numpy().copy() for p in model.parameters()]
    wrapped = dist.DistributedDataParallel(model, process_group=comm, bucket_cap_mb=1e-4)
    sizes = [p.numel() for p in model.parameters()]
    assert comm.broadcast == [sum(sizes)]  # one Bcast for the one dtype
    for parameter, old in zip(model.parameters(), before):
        assert np.array_equal(parameter.detach().cpu().numpy(), old + 1)
    plain = _mlp(0).to(device)
    plain.load_state_dict(model.state_dict())
    optimizer = nbprop.optim.SGD(model.parameters(), lr=0.1)  # its flat gradient buffer: gradients lent on the CPU
    inputs = nbprop.tensor(np.random.default_rng(3).standard_normal((4, FEATURES))).to(device)
    for _ in range(2):
        optimizer.zero_grad()
        plain.zero_grad()
        wrapped(inputs).sum().backward()
        plain(inputs).sum().backward()
        for parameter, reference in zip(model.parameters(), plain.parameters()):
            assert parameter.grad.device == device
            assert np.array_equal(parameter.grad.cpu().numpy(), reference.grad.cpu().numpy() + 0.5)
        optimizer.step()
        with nbprop.no_grad():
            for parameter, reference in zip(model.parameters(), plain.parameters()):
                reference.copy_(parameter)
    assert comm.reduced == sizes[::-1] * 2  # a bucket per parameter (bucket_cap_mb=1e-4), last layer first


@pytest.mark.torch
@pytest.mark.parametrize("size", [1, 7, 10, 11, 13])
@pytest.mark.parametrize("replicas", [1, 2, 3, 4])
@pytest.mark.parametrize("drop_last", [False, True])
def test_distributed_sampler_shares_as_pytorch(size, replicas, drop_last):
    import torch.utils.data

    from nbprop.distributed import DistributedSampler
    for rank in range(replicas):
        ours = DistributedSampler(range(size), replicas, rank, shuffle=False, drop_last=drop_last)
        theirs = torch.utils.data.DistributedSampler(range(size), replicas, rank, shuffle=False, drop_last=drop_last)
        assert (list(ours), len(ours)) == (list(theirs), len(theirs))


@pytest.mark.parametrize("drop_last", [False, True])
def test_distributed_sampler_shuffles_per_epoch_disjoint_and_covering(drop_last):
    from nbprop.distributed import DistributedSampler
    size, replicas = 23, 4
    samplers = [DistributedSampler(range(size), replicas, rank, seed=5, drop_last=drop_last)
                for rank in range(3, -1, -1)]
    orders = []
    for epoch in range(3):
        for sampler in samplers:
            sampler.set_epoch(epoch)
        shares = [list(sampler) for sampler in samplers]
        assert {len(share) for share in shares} == {len(samplers[0])}
        every = sorted(index for share in shares for index in share)
        if drop_last:  # floor(23 / 4) = 5 each, no index twice
            assert len(every) == 20 and len(set(every)) == 20 and set(every) <= set(range(size))
        else:  # ceil(23 / 4) = 6 each: all 23, and one of them twice (the padding)
            assert set(every) == set(range(size)) and len(every) == 24
        orders.append(shares)
    assert orders[0] != orders[1] != orders[2]
    again = DistributedSampler(range(size), replicas, 0, seed=5, drop_last=drop_last)
    assert list(again) == orders[0][-1]
    assert list(DistributedSampler(range(size), replicas, 0, seed=6)) != orders[0][-1]


def test_distributed_sampler_bad_rank():
    from nbprop.distributed import DistributedSampler
    with pytest.raises(ValueError, match=r"Invalid rank 2, rank should be in the interval \[0, 1\]"):
        DistributedSampler(range(4), num_replicas=2, rank=2)


# ------------------------------------------------------------------------------------------ several ranks

@pytest.fixture(scope="module")
def two_ranks():
    return _results(2, "all")


@pytest.mark.parametrize("variant", ["ddp", "ddp_bucket_per_parameter", "all_reduce_gradients"])
def test_two_ranks_on_shards_train_as_one_process_on_the_full_batch(two_ranks, variant):
    assert two_ranks["world"] == 2
    result = two_ranks[variant]
    assert len(result["errors"]) == STEPS and max(result["errors"]) < 1e-6, result
    assert all(result["identical"]), result  # every rank holds bit-identical weights after each step


def test_four_ranks_on_shards_train_as_one_process_on_the_full_batch():
    results = _results(4, "train")
    assert results["world"] == 4
    for variant in ("ddp", "ddp_bucket_per_parameter", "all_reduce_gradients"):
        assert max(results[variant]["errors"]) < 1e-6 and all(results[variant]["identical"]), results[variant]


def test_two_ranks_ddp_state_dict_keys(two_ranks):
    assert two_ranks["state_dict_keys"] == ["module.0.bias", "module.0.weight"]


def test_two_ranks_sync_batch_norm_is_batch_norm_of_the_whole_batch(two_ranks):
    # Outputs, input and parameter gradients, running mean and variance, over two training steps.
    assert two_ranks["sync_batch_norm_error"] < 1e-12
    assert two_ranks["converted"] == "SyncBatchNorm"


def test_two_ranks_unused_parameters(two_ranks):
    assert two_ranks["unused_grad_is_none"]
    assert two_ranks["used_weight_grad"] == 4.5  # the average of 3 rows of ones (rank 0) and of twos (rank 1)
    assert "find_unused_parameters=True" in two_ranks["strict_error"]
    assert "unused.weight, unused.bias" in two_ranks["strict_error"]


@pytest.mark.parametrize("case", ["11-False", "11-True", "12-False"])
def test_two_ranks_distributed_sampler(two_ranks, case):
    size, drop_last = int(case.split("-")[0]), case.endswith("True")
    result = two_ranks["samplers"][case]
    by_rank = result["orders"]
    for epoch in (0, 1):
        shares = [by_rank[rank][epoch] for rank in (0, 1)]
        assert len(shares[0]) == len(shares[1]) == result["length"]
        every = shares[0] + shares[1]
        if drop_last:
            assert len(set(every)) == len(every) == 2 * (size // 2)
        else:
            assert set(every) == set(range(size)) and len(every) == 2 * -(-size // 2)
    assert by_rank[0][0] != by_rank[0][1]  # set_epoch reshuffles


def test_the_main_job_runs_under_mpiexec_unchanged(tmp_path):
    arguments = ["-m", "nbprop.train", "--model", "mlp", "--epochs", "2", "--no-progress", "--out", str(tmp_path)]
    code, output, _ = _launch(2, None, script=arguments)
    assert code == 0, output
    # Rank 0 alone prints and writes.
    assert output.count("nbprop-train: digits:") == 1 and output.count("test accuracy") == 1, output
    assert output.count("epoch 2/2") == 1, output
    assert sorted(os.listdir(tmp_path)) == ["checkpoint.safetensors", "config.json", "curves.png", "history.json",
                                            "model.safetensors"]


def test_a_raising_rank_ends_the_whole_job_promptly():
    # Plain `python` (not `-m mpi4py`), so that nbprop's own excepthook does the abort: without it rank 0 waits
    # in its barrier until the timeout.
    code, output, seconds = _launch(2, "raise", with_mpi4py_module=False)
    assert code != 0 and seconds < 30, (code, seconds, output)
    assert "ValueError: deliberate failure on rank 1" in output
    assert "rank 1 of 2 raised ValueError; aborting all ranks" in output


if __name__ == "__main__":
    worker(sys.argv[1])
