"""Generator, randperm, multinomial and bernoulli: PyTorch's API, shapes, dtypes and errors; distributions
checked statistically (seeded, bounds of 5 standard errors of the sample size); reproducibility and
independence of streams; generator= in the factories and nn.init; the opaque device.

nbprop's streams are not PyTorch's (NumPy's PCG64), so values are never compared with PyTorch's draws.
"""

import math
from itertools import permutations

import numpy as np
import pytest

import nbprop
from nbprop.nn import init

SIGMAS = 5  # every statistical bound is this many standard errors: deterministic (seeded), and not loose


def _within(observed, expected, standard_error):
    assert abs(observed - expected) <= SIGMAS * standard_error, (observed, expected, standard_error)


# ------------------------------------------------------------------------------------------------ Generator


@pytest.mark.torch
def test_generator_seeds_as_torch():
    import torch

    generator = nbprop.Generator()
    assert generator.device == "cpu"
    assert generator.initial_seed() == torch.Generator().initial_seed()
    assert generator.manual_seed(7) is generator and generator.initial_seed() == 7
    for seed in (-1, -2**63, 2**64 - 1, 0):
        assert nbprop.Generator().manual_seed(seed).initial_seed() == torch.Generator().manual_seed(seed).initial_seed()
    with pytest.raises(ValueError, match="seed"):
        generator.manual_seed(2**64)
    with pytest.raises(ValueError, match="seed"):
        nbprop.manual_seed(-2**63 - 1)
    with pytest.raises(TypeError, match="manual_seed.*integer"):
        generator.manual_seed("1")
    new_seed = generator.seed()
    assert 0 <= new_seed < 2**64 and generator.initial_seed() == new_seed
    assert nbprop.manual_seed(3) is nbprop.default_generator and nbprop.initial_seed() == 3
    with pytest.raises(RuntimeError, match="Generator.*device 'nowhere'"):
        nbprop.Generator(device="nowhere")


def test_generator_state_round_trip():
    generator = nbprop.Generator().manual_seed(11)
    nbprop.randn(3, generator=generator)
    nbprop.randint(0, 10, (3,), generator=generator)  # buffered 32-bit halves are part of the state
    state = generator.get_state()
    assert state.dtype == nbprop.int64 and state.ndim == 1
    first = [nbprop.randn(5, generator=generator).numpy(), nbprop.randperm(6, generator=generator).numpy()]
    other = nbprop.Generator().manual_seed(99)
    assert other.set_state(state) is other and other.initial_seed() == 11
    second = [nbprop.randn(5, generator=other).numpy(), nbprop.randperm(6, generator=other).numpy()]
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a, b)
    saved = nbprop.get_rng_state()
    drawn = nbprop.rand(4).numpy()
    nbprop.set_rng_state(saved)
    np.testing.assert_array_equal(nbprop.rand(4).numpy(), drawn)
    with pytest.raises(TypeError, match="set_state.*Tensor"):
        generator.set_state([1, 2, 3])
    with pytest.raises(RuntimeError, match="set_state.*shape"):
        generator.set_state(nbprop.zeros(3, dtype=nbprop.int64))
    with pytest.raises(RuntimeError, match="set_state.*outside"):
        generator.set_state(state * 300)


def test_same_seed_same_draws_and_streams_are_independent():
    def draws(generator, between=lambda: None):
        makers = [lambda: nbprop.randn(2, 3, generator=generator), lambda: nbprop.rand(4, generator=generator),
                  lambda: nbprop.randint(0, 100, (5,), generator=generator),
                  lambda: nbprop.randperm(7, generator=generator),
                  lambda: nbprop.multinomial(nbprop.tensor([0.2, 0.3, 0.5]), 2, generator=generator),
                  lambda: nbprop.bernoulli(nbprop.full((6,), 0.5), generator=generator)]
        results = []
        for make in makers:
            between()
            results.append(make().numpy())
        return results

    nbprop.manual_seed(0)
    expected = draws(nbprop.Generator().manual_seed(5))
    # The global seed and global draws in between do not move a Generator's stream ...
    nbprop.manual_seed(123)
    actual = draws(nbprop.Generator().manual_seed(5), between=lambda: (nbprop.randn(10), nbprop.rand(3)))
    for a, b in zip(actual, expected, strict=True):
        np.testing.assert_array_equal(a, b)
    # ... and a Generator's draws do not move the global stream.
    nbprop.manual_seed(42)
    plain = nbprop.randn(8).numpy()
    nbprop.manual_seed(42)
    draws(nbprop.Generator().manual_seed(1))
    np.testing.assert_array_equal(nbprop.randn(8).numpy(), plain)
    # Different seeds give different streams.
    assert not np.array_equal(draws(nbprop.Generator().manual_seed(6))[0], expected[0])


def test_generator_normal_and_uniform_statistics():
    count = 200_000
    generator = nbprop.Generator().manual_seed(2)
    normal = nbprop.randn(count, generator=generator, dtype=nbprop.float64).numpy()
    _within(normal.mean(), 0.0, 1 / math.sqrt(count))
    _within(normal.var(), 1.0, math.sqrt(2 / count))  # the variance of a sample variance of N(0, 1)
    uniform = nbprop.rand(count, generator=generator, dtype=nbprop.float64).numpy()
    assert uniform.min() >= 0 and uniform.max() < 1
    _within(uniform.mean(), 0.5, math.sqrt(1 / 12 / count))
    like = nbprop.randn_like(nbprop.zeros(3, 2), generator=nbprop.Generator().manual_seed(4))
    np.testing.assert_array_equal(like.numpy(), nbprop.randn(3, 2, generator=nbprop.Generator().manual_seed(4)).numpy())
    assert nbprop.rand_like(nbprop.zeros(2), generator=generator).shape == (2,)


def test_generator_of_another_device_or_type_is_refused():
    import opaque_device

    opaque_device.install()
    with pytest.raises(RuntimeError, match="randn: expected a generator on device 'cpu'.*'opaque'"):
        nbprop.randn(3, generator=nbprop.Generator(device="opaque"))
    with pytest.raises(TypeError, match="rand: generator must be an nbprop.Generator"):
        nbprop.rand(3, generator=5)


# ------------------------------------------------------------------------------------------------ randperm


@pytest.mark.torch
def test_randperm_shapes_dtypes_and_errors_as_torch():
    import torch

    for n, dtype, torch_dtype in [(5, None, torch.int64), (0, None, torch.int64), (4, nbprop.float32, torch.float32),
                                  (3, nbprop.float64, torch.float64)]:
        ours = nbprop.randperm(n, dtype=dtype)
        theirs = torch.randperm(n, dtype=torch_dtype)
        assert tuple(ours.shape) == tuple(theirs.shape)
        assert str(ours.dtype) == str(theirs.dtype).removeprefix("torch.")
        assert sorted(ours.tolist()) == list(range(n))
    assert nbprop.randperm(3, dtype=nbprop.float64, requires_grad=True).requires_grad
    with pytest.raises(RuntimeError):
        torch.randperm(-1)
    with pytest.raises(RuntimeError, match="randperm.*non-negative"):
        nbprop.randperm(-1)
    with pytest.raises(NotImplementedError):
        torch.randperm(3, dtype=torch.bool)
    with pytest.raises(NotImplementedError, match="randperm.*bool"):
        nbprop.randperm(3, dtype=nbprop.bool)
    with pytest.raises(RuntimeError, match="floating point"):
        torch.randperm(3, requires_grad=True)
    with pytest.raises(RuntimeError, match="floating-point"):
        nbprop.randperm(3, requires_grad=True)
    with pytest.raises(TypeError, match="randperm: n must be an integer"):
        nbprop.randperm(2.0)


def test_randperm_is_uniform_over_permutations():
    count = 24_000
    generator = nbprop.Generator().manual_seed(3)
    seen = {}
    for _ in range(count):
        key = tuple(nbprop.randperm(4, generator=generator).tolist())
        seen[key] = seen.get(key, 0) + 1
    assert set(seen) == set(permutations(range(4)))
    probability = 1 / 24
    for frequency in seen.values():
        _within(frequency, count * probability, math.sqrt(count * probability * (1 - probability)))


# ----------------------------------------------------------------------------------------------- multinomial


@pytest.mark.torch
def test_multinomial_shapes_and_dtypes_as_torch():
    import torch

    for shape, samples, replacement in [((3,), 2, False), ((3,), 7, True), ((4, 5), 3, False), ((4, 5), 9, True),
                                        ((0, 3), 2, False)]:
        weights = np.random.default_rng(0).random(shape) + 0.1
        ours = nbprop.multinomial(nbprop.tensor(weights), samples, replacement)
        theirs = torch.multinomial(torch.tensor(weights), samples, replacement)
        assert tuple(ours.shape) == tuple(theirs.shape) and ours.dtype == nbprop.int64
        if ours.numel():
            assert 0 <= ours.numpy().min() and ours.numpy().max() < shape[-1]
    method = nbprop.tensor([[0.5, 0.5]]).multinomial(1)
    assert tuple(method.shape) == (1, 1) and not method.requires_grad


MULTINOMIAL_ERRORS = [
    ([[[1.0]]], 1, False, "prob_dist must be 1 or 2 dim"),
    (1.0, 1, False, "prob_dist must be 1 or 2 dim"),
    ([0.1, 0.9], 0, False, "cannot sample n_sample <= 0 samples"),
    ([0.1, 0.9], -1, True, "cannot sample n_sample <= 0 samples"),
    ([0.1, 0.2, 0.7], 4, False, r"cannot sample n_sample > prob_dist.size\(-1\) samples without replacement"),
    ([0.1, -0.2, 0.7], 1, False, "probability tensor contains either `inf`, `nan` or element < 0"),
    ([0.1, float("nan"), 0.7], 1, True, "probability tensor contains either `inf`, `nan` or element < 0"),
    ([0.1, float("inf"), 0.7], 1, False, "probability tensor contains either `inf`, `nan` or element < 0"),
    ([0.0, 0.0, 0.0], 1, True, r"invalid multinomial distribution \(sum of probabilities <= 0\)"),
    ([[1.0, 1.0], [0.0, 0.0]], 1, False, r"invalid multinomial distribution \(sum of probabilities <= 0\)"),
]


@pytest.mark.torch
@pytest.mark.parametrize(("weights", "samples", "replacement", "message"), MULTINOMIAL_ERRORS)
def test_multinomial_errors_as_torch(weights, samples, replacement, message):
    import torch

    with pytest.raises(RuntimeError, match=message):
        torch.multinomial(torch.tensor(weights), samples, replacement)
    with pytest.raises(RuntimeError, match=f"multinomial.*{message}"):
        nbprop.multinomial(nbprop.tensor(weights), samples, replacement)


@pytest.mark.torch
def test_multinomial_type_errors_as_torch():
    import torch

    with pytest.raises(RuntimeError, match="multinomial only supports floating-point dtypes for input"):
        torch.multinomial(torch.tensor([1, 2]), 1)
    with pytest.raises(RuntimeError, match="multinomial only supports floating-point dtypes for input"):
        nbprop.multinomial(nbprop.tensor([1, 2]), 1)
    with pytest.raises(TypeError):
        torch.multinomial(torch.tensor([0.5, 0.5]), 1.0)
    with pytest.raises(TypeError, match="multinomial: num_samples must be an int"):
        nbprop.multinomial(nbprop.tensor([0.5, 0.5]), 1.0)


def test_multinomial_with_replacement_follows_the_weights():
    count = 100_000
    weights = np.array([[0.5, 0.0, 1.5, 2.0], [1.0, 1.0, 1.0, 1.0]])  # unnormalised, a zero weight
    samples = nbprop.multinomial(nbprop.tensor(weights), count, replacement=True,
                                 generator=nbprop.Generator().manual_seed(4)).numpy()
    for row, row_weights in zip(samples, weights):
        probabilities = row_weights / row_weights.sum()
        for category, probability in enumerate(probabilities):
            frequency = np.count_nonzero(row == category)
            _within(frequency, count * probability, math.sqrt(count * probability * (1 - probability)))
    assert np.count_nonzero(samples[0] == 1) == 0  # a zero weight is never drawn


def test_multinomial_without_replacement_draws_in_sequence():
    """P(first = i, second = j) = p_i p_j / (1 - p_i): each draw in proportion to the weights left."""
    count = 60_000
    p = np.array([0.1, 0.3, 0.6])
    rows = nbprop.tensor(np.tile(p * 2, (count, 1)))  # unnormalised: the same distribution
    samples = nbprop.multinomial(rows, 2, generator=nbprop.Generator().manual_seed(5)).numpy()
    assert (samples[:, 0] != samples[:, 1]).all()
    for first in range(3):
        for second in range(3):
            if first == second:
                continue
            probability = p[first] * p[second] / (1 - p[first])
            frequency = np.count_nonzero((samples[:, 0] == first) & (samples[:, 1] == second))
            _within(frequency, count * probability, math.sqrt(count * probability * (1 - probability)))
    # Zero weights come only after every positive one, as in PyTorch.
    drawn = nbprop.multinomial(nbprop.tensor([[0.0, 3.0, 0.0, 1.0]] * 200), 4, generator=nbprop.Generator()).numpy()
    assert (np.sort(drawn[:, :2], axis=1) == [1, 3]).all()
    assert (np.sort(drawn, axis=1) == [0, 1, 2, 3]).all()


# ------------------------------------------------------------------------------------------------- bernoulli


@pytest.mark.torch
def test_bernoulli_shapes_dtypes_and_gradient_as_torch():
    import torch

    probabilities = np.array([[0.2, 0.5, 0.9], [0.0, 1.0, 0.3]])
    for dtype, torch_dtype in [(nbprop.float32, torch.float32), (nbprop.float64, torch.float64)]:
        ours = nbprop.bernoulli(nbprop.tensor(probabilities, dtype=dtype))
        theirs = torch.bernoulli(torch.tensor(probabilities, dtype=torch_dtype))
        assert tuple(ours.shape) == tuple(theirs.shape) and ours.dtype == dtype
        assert set(np.unique(ours.numpy())) <= {0.0, 1.0}
        np.testing.assert_array_equal(ours.numpy()[1, :2], [0.0, 1.0])  # p = 0 and p = 1 are certain
    integers = nbprop.bernoulli(nbprop.tensor([0, 1, 2]), 0.5)
    assert integers.dtype == nbprop.int64 and torch.bernoulli(torch.tensor([0, 1, 2]), 0.5).dtype == torch.int64
    # PyTorch differentiates bernoulli as zero, so that graphs through it still backpropagate.
    leaf = nbprop.tensor([0.2, 0.7], requires_grad=True)
    torch_leaf = torch.tensor([0.2, 0.7], requires_grad=True)
    drawn, torch_drawn = nbprop.bernoulli(leaf), torch.bernoulli(torch_leaf)
    assert drawn.requires_grad == torch_drawn.requires_grad
    (drawn * 3).sum().backward()
    (torch_drawn * 3).sum().backward()
    np.testing.assert_array_equal(leaf.grad.numpy(), torch_leaf.grad.numpy())
    np.testing.assert_array_equal(leaf.grad.numpy(), [0.0, 0.0])
    assert nbprop.tensor([0.5]).bernoulli().shape == (1,)


@pytest.mark.torch
def test_bernoulli_errors_as_torch():
    import torch

    for values in ([1.2, 0.5], [float("nan"), 0.5], [-0.1]):
        with pytest.raises(RuntimeError):
            torch.bernoulli(torch.tensor(values))
        with pytest.raises(RuntimeError, match=r"bernoulli: expected probabilities in \[0, 1\]"):
            nbprop.bernoulli(nbprop.tensor(values))
    with pytest.raises(RuntimeError, match=r"bernoulli_ expects p to be in \[0, 1\], but got p=1.5"):
        torch.bernoulli(torch.tensor([0.2]), 1.5)
    with pytest.raises(RuntimeError, match=r"bernoulli_ expects p to be in \[0, 1\], but got p=1.5"):
        nbprop.bernoulli(nbprop.tensor([0.2]), 1.5)
    with pytest.raises(NotImplementedError):
        torch.bernoulli(torch.tensor([0, 1]))
    with pytest.raises(NotImplementedError, match="bernoulli.*floating"):
        nbprop.bernoulli(nbprop.tensor([0, 1]))


def test_bernoulli_follows_the_probabilities():
    count = 50_000
    p = np.array([0.05, 0.3, 0.5, 0.97])
    drawn = nbprop.bernoulli(nbprop.tensor(np.tile(p, (count, 1))), generator=nbprop.Generator().manual_seed(6))
    for column, probability in enumerate(p):
        _within(drawn.numpy()[:, column].sum(), count * probability, math.sqrt(count * probability * (1 - probability)))
    fixed = nbprop.bernoulli(nbprop.zeros(count), 0.25, generator=nbprop.Generator().manual_seed(7)).numpy()
    _within(fixed.sum(), count * 0.25, math.sqrt(count * 0.25 * 0.75))


@pytest.mark.torch
def test_bernoulli_in_place_as_torch():
    import torch

    count = 40_000
    target = nbprop.zeros(count, 2)
    version = target._version
    assert target.bernoulli_(0.3, generator=nbprop.Generator().manual_seed(8)) is target
    assert target._version == version + 1
    for column in range(2):
        _within(target.numpy()[:, column].sum(), count * 0.3, math.sqrt(count * 0.3 * 0.7))
    target.bernoulli_(nbprop.tensor([0.0, 1.0]))  # a tensor of probabilities broadcasts to the target
    np.testing.assert_array_equal(np.unique(target.numpy(), axis=0), [[0.0, 1.0]])
    integers = nbprop.zeros(5, dtype=nbprop.int64).bernoulli_(1.0)
    assert integers.dtype == nbprop.int64 and integers.tolist() == [1] * 5
    with pytest.raises(RuntimeError):
        torch.zeros(2, 3).bernoulli_(torch.full((2,), 0.5))
    with pytest.raises(RuntimeError, match=r"bernoulli_: the probabilities of shape \(2,\) do not broadcast"):
        nbprop.zeros(2, 3).bernoulli_(nbprop.full((2,), 0.5))
    with pytest.raises(RuntimeError, match=r"bernoulli_ expects p to be in \[0, 1\], but got p=1.5"):
        nbprop.zeros(2).bernoulli_(1.5)
    with pytest.raises(RuntimeError, match=r"bernoulli_: expected probabilities in \[0, 1\]"):
        nbprop.zeros(2).bernoulli_(nbprop.tensor([0.5, 2.0]))
    with pytest.raises(RuntimeError):
        torch.zeros(2, requires_grad=True).bernoulli_(0.5)
    with pytest.raises(RuntimeError, match="bernoulli_: a leaf tensor that requires grad"):
        nbprop.zeros(2, requires_grad=True).bernoulli_(0.5)


# ------------------------------------------------------------------------------------------------- nn.init


@pytest.mark.torch
def test_init_functions_take_a_generator_as_torch():
    import inspect

    import torch

    for name in ("uniform_", "normal_", "xavier_uniform_", "xavier_normal_", "kaiming_uniform_", "kaiming_normal_",
                 "orthogonal_"):
        assert "generator" in inspect.signature(getattr(torch.nn.init, name)).parameters
        function = getattr(init, name)

        def filled(seed, function=function):
            return function(nbprop.empty(4, 3), generator=nbprop.Generator().manual_seed(seed)).numpy()

        nbprop.manual_seed(0)
        first = filled(1)
        nbprop.manual_seed(9)
        nbprop.randn(5)
        np.testing.assert_array_equal(filled(1), first)  # the global stream does not matter
        assert not np.array_equal(filled(2), first)


def test_init_refuses_a_generator_of_another_device():
    import opaque_device

    opaque_device.install()
    with pytest.raises(RuntimeError, match="normal_: expected a generator on device 'cpu'"):
        init.normal_(nbprop.empty(2, 2), generator=nbprop.Generator(device="opaque"))


# ------------------------------------------------------------------------------------------------- devices


def test_sampling_on_the_opaque_device_draws_what_the_cpu_draws():
    """The draws are made in host memory and reach the device through its asarray: the same seed gives the
    same samples on both devices."""
    import opaque_device

    opaque_device.install()

    def run(device):
        generator = nbprop.Generator(device=device).manual_seed(10)
        weights = nbprop.tensor([[0.2, 0.3, 0.5], [1.0, 0.0, 1.0]], device=device)
        probabilities = nbprop.tensor([0.1, 0.6, 0.9], device=device, requires_grad=True)
        drawn = nbprop.bernoulli(probabilities, generator=generator)
        drawn.sum().backward()
        target = nbprop.zeros(3, device=device).bernoulli_(nbprop.tensor([0.5, 0.5, 0.5], device=device),
                                                           generator=generator)
        results = [nbprop.randn(2, 3, generator=generator, device=device),
                   nbprop.rand(3, generator=generator, device=device),
                   nbprop.randint(0, 9, (4,), generator=generator, device=device),
                   nbprop.randperm(5, generator=generator, device=device),
                   nbprop.multinomial(weights, 2, generator=generator),
                   nbprop.multinomial(weights, 4, True, generator=generator), drawn, target, probabilities.grad]
        for result in results:
            assert result.device == device
        return [result.detach().cpu().numpy() for result in results]

    for opaque, cpu in zip(run("opaque"), run("cpu"), strict=True):
        assert opaque.dtype == cpu.dtype
        np.testing.assert_array_equal(opaque, cpu)
