"""Adaptive SoftPool against a float64 loop reference with the windows of adaptive pooling."""

from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn.functional as F

from reference import TOLERANCES, assert_close
from softpool import (
    AdaptiveSoftPool1d,
    AdaptiveSoftPool2d,
    AdaptiveSoftPool3d,
    adaptive_soft_pool1d,
    adaptive_soft_pool2d,
    adaptive_soft_pool3d,
)

FUNCTIONS = {1: adaptive_soft_pool1d, 2: adaptive_soft_pool2d, 3: adaptive_soft_pool3d}
MODULES = {1: AdaptiveSoftPool1d, 2: AdaptiveSoftPool2d, 3: AdaptiveSoftPool3d}
AVG_POOLS = {1: F.adaptive_avg_pool1d, 2: F.adaptive_avg_pool2d, 3: F.adaptive_avg_pool3d}
MAX_POOLS = {1: F.adaptive_max_pool1d, 2: F.adaptive_max_pool2d, 3: F.adaptive_max_pool3d}

# (input spatial size, output_size), one comment per case on the route it takes.
CASES = [
    ((10,), 4),  # uneven windows of 3 and 4, overlapping: gathered PyTorch path
    ((5,), 8),  # more outputs than inputs: windows repeat elements
    ((12,), 3),  # 3 divides 12: the regular SoftPool route (kernel = stride = 4)
    ((7, 10), (3, 4)),  # uneven in both dims
    ((7, 9), (None, 2)),  # None keeps the height: kernel 1 there, uneven width
    ((6, 8), 1),  # global SoftPool: one window per channel, regular route
    ((6, 8), (3, 3)),  # divides the height only: gathered path, mixed dims
    ((5, 6, 7), (2, 4, 3)),  # 3D, uneven everywhere
    ((4, 4, 6), (2, 1, 3)),  # 3D, every size divides: regular route
]
CASE_IDS = [f"{size}->{out}" for size, out in CASES]


def _windows(length: int, out: int) -> list[slice]:
    """Adaptive pooling's windows from their definition: [floor(i L / O), ceil((i + 1) L / O))."""
    return [slice((i * length) // out, -((-(i + 1) * length) // out)) for i in range(out)]


def adaptive_reference(x: torch.Tensor, output_size, beta) -> torch.Tensor:
    """Adaptive SoftPool by loops in float64; ``beta`` is a float or a (C,) tensor."""
    rank = x.dim() - 2
    sizes = x.shape[2:]
    outs = (output_size,) * rank if isinstance(output_size, int) else output_size
    outs = [n if o is None else o for o, n in zip(outs, sizes)]
    x = x.to(torch.float64)
    beta = torch.as_tensor(beta, dtype=torch.float64).reshape(-1, 1)  # (1 or C, 1)
    results = []
    for slices in itertools.product(*(_windows(n, o) for n, o in zip(sizes, outs))):
        window = x[(slice(None), slice(None), *slices)].reshape(x.shape[0], x.shape[1], -1)
        weights = torch.softmax(beta * window, dim=-1)
        results.append((weights * window).sum(dim=-1))
    return torch.stack(results, dim=-1).reshape(x.shape[0], x.shape[1], *outs)


def _input(size, dtype=torch.float64, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(2, 3, *size, generator=generator, dtype=torch.float64).to(dtype)


class TestAgainstReference:
    @pytest.mark.parametrize("beta", [0.0, 0.5, 1.0, 3.0])
    @pytest.mark.parametrize("size,output_size", CASES, ids=CASE_IDS)
    def test_forward_float64(self, size, output_size, beta):
        x = _input(size)
        y = FUNCTIONS[len(size)](x, output_size, beta=beta)
        assert_close(y, adaptive_reference(x, output_size, beta), *TOLERANCES[torch.float64], what="forward")

    @pytest.mark.parametrize("beta", [0.0, 1.0, 3.0])
    @pytest.mark.parametrize("size,output_size", CASES, ids=CASE_IDS)
    def test_backward_float64(self, size, output_size, beta):
        x = _input(size).requires_grad_()
        y = FUNCTIONS[len(size)](x, output_size, beta=beta)
        grad_out = torch.randn_like(y)
        (grad,) = torch.autograd.grad(y, x, grad_out)
        (expected,) = torch.autograd.grad(adaptive_reference(x, output_size, beta), x, grad_out)
        assert_close(grad, expected, *TOLERANCES[torch.float64], what="backward")

    @pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
    @pytest.mark.parametrize(
        "size,output_size", [CASES[3], CASES[5], CASES[7]], ids=[CASE_IDS[3], CASE_IDS[5], CASE_IDS[7]]
    )
    def test_forward_every_dtype(self, size, output_size, dtype):
        x = _input(size, dtype)
        y = FUNCTIONS[len(size)](x, output_size)
        assert y.dtype == dtype
        assert_close(y, adaptive_reference(x, output_size, 1.0), *TOLERANCES[dtype], what=str(dtype))

    @pytest.mark.parametrize("size,output_size", [CASES[0], CASES[3], CASES[6], CASES[7]])
    def test_gradcheck(self, size, output_size):
        x = torch.randn(1, 2, *size, dtype=torch.float64, requires_grad=True)
        function = FUNCTIONS[len(size)]
        assert torch.autograd.gradcheck(lambda t: function(t, output_size, beta=2.0), (x,))

    def test_per_channel_beta_equals_one_call_per_channel(self):
        x = _input((7, 10))
        beta = torch.tensor([0.0, 1.0, 4.0], dtype=torch.float64)
        y = adaptive_soft_pool2d(x, (3, 4), beta=beta)
        for channel in range(3):
            expected = adaptive_soft_pool2d(x[:, channel : channel + 1], (3, 4), beta=float(beta[channel]))
            assert_close(y[:, channel : channel + 1], expected, 1e-12, 1e-12, what=f"channel {channel}")


class TestAdaptivePoolingLimits:
    @pytest.mark.parametrize("size,output_size", CASES, ids=CASE_IDS)
    def test_beta_zero_is_adaptive_average_pooling(self, size, output_size):
        x = _input(size)
        y = FUNCTIONS[len(size)](x, output_size, beta=0.0)
        assert_close(y, AVG_POOLS[len(size)](x, output_size), 1e-12, 1e-12, what="beta=0")

    @pytest.mark.parametrize("size,output_size", CASES, ids=CASE_IDS)
    def test_large_beta_is_adaptive_max_pooling(self, size, output_size):
        # Distinct values 0.1 apart: at beta=1e3 the runner-up weighs e^-100 of the maximum.
        x = torch.randperm(2 * 3 * torch.Size(size).numel(), dtype=torch.float64).reshape(2, 3, *size) / 10
        y = FUNCTIONS[len(size)](x, output_size, beta=1e3)
        assert_close(y, MAX_POOLS[len(size)](x, output_size), 1e-12, 0, what="beta=1e3")

    @pytest.mark.parametrize("dtype,scale", [(torch.float32, 1e4), (torch.float32, 3e38), (torch.float16, 6e4)])
    def test_large_magnitudes_stay_finite_and_bounded(self, dtype, scale):
        x = ((torch.rand(2, 3, 9, 7) * 2 - 1) * scale).to(dtype)
        for output_size in [(4, 3), 1]:
            y = adaptive_soft_pool2d(x, output_size)
            assert torch.isfinite(y).all()
            high = F.adaptive_max_pool2d(x.float(), output_size)
            low = -F.adaptive_max_pool2d(-x.float(), output_size)
            assert (y.float() <= high).all() and (y.float() >= low).all()


class TestShapesAndModules:
    @pytest.mark.parametrize("rank", [1, 2, 3])
    def test_unbatched(self, rank):
        size, output_size = next((s, o) for s, o in CASES if len(s) == rank)
        x = _input(size, torch.float32)
        assert_close(FUNCTIONS[rank](x[1], output_size), FUNCTIONS[rank](x, output_size)[1], 0, 0, what="unbatched")

    def test_channels_last_keeps_layout(self):
        x = torch.randn(2, 5, 7, 10).to(memory_format=torch.channels_last)
        y = adaptive_soft_pool2d(x, (3, 4))
        assert y.is_contiguous(memory_format=torch.channels_last)
        assert_close(y, adaptive_soft_pool2d(x.contiguous(), (3, 4)), 1e-6, 1e-6, what="channels_last")

    @pytest.mark.parametrize("rank", [1, 2, 3])
    def test_module_equals_functional(self, rank):
        size, output_size = next((s, o) for s, o in CASES if len(s) == rank)
        x = _input(size, torch.float32)
        module = MODULES[rank](output_size, beta=2.0)
        assert torch.equal(module(x), FUNCTIONS[rank](x, output_size, beta=2.0))

    def test_repr(self):
        assert repr(AdaptiveSoftPool2d((3, None), beta=0.5)) == (
            "AdaptiveSoftPool2d(output_size=(3, None), beta=0.5, backend='auto')"
        )


class TestErrors:
    @pytest.mark.parametrize(
        "output_size,error,message",
        [
            (0, ValueError, r"output_size must be positive, got \(0, 0\)"),
            ((2, 2, 2), ValueError, r"output_size must be an int or a tuple of 2 ints or None, got \(2, 2, 2\)"),
            (2.5, TypeError, "output_size must be an int or a tuple of 2 ints or None, got 2.5"),
            ((2, "a"), TypeError, "output_size must be an int or a tuple of 2 ints or None"),
        ],
    )
    def test_bad_output_size(self, output_size, error, message):
        with pytest.raises(error, match=message):
            adaptive_soft_pool2d(torch.randn(1, 2, 8, 8), output_size)
        with pytest.raises(error, match=message):
            AdaptiveSoftPool2d(output_size)

    def test_bad_beta_and_input(self):
        with pytest.raises(ValueError, match="beta must be finite and >= 0, got -1.0"):
            adaptive_soft_pool2d(torch.randn(1, 2, 8, 8), 3, beta=-1.0)
        with pytest.raises(ValueError, match="adaptive_soft_pool3d expects a 4D .* got 3D"):
            adaptive_soft_pool3d(torch.randn(2, 8, 8), 3)

    def test_triton_backend_refuses_uneven_windows(self):
        with pytest.raises(ValueError, match=r"backend='triton' runs adaptive sizes that divide the input size"):
            adaptive_soft_pool2d(torch.randn(1, 2, 7, 7), 3, backend="triton")
