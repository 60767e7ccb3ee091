"""The Triton kernels (`backend="triton"`) against the float64 loop reference.

On CPU they run through the Triton interpreter (TRITON_INTERPRET=1, set by conftest.py). The
interpreter runs one program after another at several milliseconds each, so the tensors are
tiny and batch x channel (x depth for 3D) small: each of those is one program. With
TRITON_INTERPRET=0 on a machine with a CUDA GPU the same tests run compiled, on CUDA tensors
(benchmarks/gpu_check.sh does that).
"""

from __future__ import annotations

import contextlib
import math

import pytest
import torch
import torch.nn.functional as F

from reference import TOLERANCES, assert_close, soft_pool_reference, soft_pool_reference_grad
from softpool import soft_pool1d, soft_pool2d, soft_pool3d
from softpool._arguments import pool_geometry

soft_pool_nd = pytest.importorskip("softpool.kernels.soft_pool_nd", reason="Triton is not installed")
from softpool.kernels import config, launch  # noqa: E402  (after the skip: both import Triton)

FUNCTIONS = {1: soft_pool1d, 2: soft_pool2d, 3: soft_pool3d}


def _devices() -> list:
    if soft_pool_nd.INTERPRETED:
        return ["cpu"]
    if torch.cuda.is_available():
        return ["cuda"]
    return [pytest.param("cpu", marks=pytest.mark.skip(reason="needs TRITON_INTERPRET=1 or a CUDA GPU"))]


DEVICES = _devices()

# (shape, kernel_size, stride, padding, ceil_mode); one comment per case on what it exercises.
CASES = [
    ((2, 3, 17), 3, 2, 1, True),  # 1D: overlapping, padded, ceil_mode keeps a partial last window
    ((1, 2, 10), 4, 3, 2, False),  # 1D: kernel != stride, maximal padding
    ((1, 2, 9, 11), (3, 2), (2, 1), (1, 1), True),  # 2D: non-square, overlapping along W, padding, ceil_mode
    ((2, 1, 7, 8), 2, None, 0, False),  # 2D: the common 2x2 / 2, the odd last row belongs to no window
    ((1, 2, 8, 7), (2, 3), (3, 1), (1, 0), False),  # 2D: stride > kernel along H leaves gaps (gradient 0)
    ((1, 2, 3, 7, 6), (2, 3, 2), (1, 2, 2), (1, 1, 0), True),  # 3D: mixed windows, padding, ceil_mode
    ((1, 1, 4, 5, 7), 2, None, 0, False),  # 3D: the 2x2x2 video case, odd sizes
]
CASE_IDS = ["1d-overlap-pad-ceil", "1d-k4s3p2", "2d-nonsquare", "2d-2x2", "2d-gaps", "3d-mixed", "3d-2x2x2"]
BETAS = [0.0, 0.5, 1.0, 3.0]


def _rank(shape: tuple[int, ...]) -> int:
    return len(shape) - 2


def _check_forward_and_backward(x: torch.Tensor, kernel, stride, padding, ceil_mode, beta: float) -> None:
    """Run backend="triton" on ``x`` and compare y and dL/dx with the float64 reference.

    The reference sees the same (possibly rounded) input values; the tolerance is that of x's dtype.
    """
    atol, rtol = TOLERANCES[x.dtype]
    x = x.detach().requires_grad_(True)
    y = FUNCTIONS[x.dim() - 2](x, kernel, stride, padding, ceil_mode, beta=beta, backend="triton")
    x64 = x.detach().cpu().double()
    expected = soft_pool_reference(x64, kernel, stride, padding, ceil_mode, beta)
    assert y.dtype == x.dtype and y.device == x.device
    assert_close(y, expected, atol, rtol, "forward")

    grad_y = torch.randn(expected.shape, dtype=torch.float64).to(x.dtype).to(x.device)  # (N, C, *out)
    y.backward(grad_y)
    expected_grad = soft_pool_reference_grad(x64, grad_y.cpu().double(), kernel, stride, padding, ceil_mode, beta)
    assert x.grad.dtype == x.dtype
    assert_close(x.grad, expected_grad, atol, rtol, "backward")


@contextlib.contextmanager
def poisoned_allocations():
    """Fill every tensor the kernel module allocates with NaN, so an unwritten element shows.

    Replaces the module's ``torch`` with a proxy whose ``empty``, ``empty_like`` and
    ``empty_strided`` return NaN-filled tensors; everything else goes to torch.
    """

    class _PoisonedTorch:
        def __getattr__(self, name):
            return getattr(torch, name)

        @staticmethod
        def empty(*args, **kwargs):
            return torch.empty(*args, **kwargs).fill_(math.nan)

        @staticmethod
        def empty_like(*args, **kwargs):
            return torch.empty_like(*args, **kwargs).fill_(math.nan)

        @staticmethod
        def empty_strided(*args, **kwargs):
            return torch.empty_strided(*args, **kwargs).fill_(math.nan)

    original = soft_pool_nd.torch
    soft_pool_nd.torch = _PoisonedTorch()
    try:
        yield
    finally:
        soft_pool_nd.torch = original


@pytest.mark.parametrize("device", DEVICES)
class TestAgainstReference:
    @pytest.mark.parametrize("beta", BETAS)
    @pytest.mark.parametrize(("shape", "kernel", "stride", "padding", "ceil_mode"), CASES, ids=CASE_IDS)
    def test_float32(self, shape, kernel, stride, padding, ceil_mode, beta, device):
        torch.manual_seed(0)
        x = torch.randn(shape, device=device)
        _check_forward_and_backward(x, kernel, stride, padding, ceil_mode, beta)

    @pytest.mark.parametrize("dtype", [torch.float64, torch.float16, torch.bfloat16])
    @pytest.mark.parametrize(("shape", "kernel", "stride", "padding", "ceil_mode"), CASES, ids=CASE_IDS)
    def test_other_dtypes(self, shape, kernel, stride, padding, ceil_mode, dtype, device):
        torch.manual_seed(1)
        # beta = 3 sharpens the weights, where half-precision rounding would show most.
        x = torch.randn(shape, device=device).to(dtype)
        _check_forward_and_backward(x, kernel, stride, padding, ceil_mode, beta=3.0)

    @pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
    def test_every_element_written(self, dtype, device):
        # Overlapping windows and padding along H; along W, stride 4 > kernel 3 leaves columns
        # 3, 7, 8 and 9 in no window, whose gradient must be written as 0.
        torch.manual_seed(2)
        x = torch.randn(1, 2, 7, 10, device=device).to(dtype).requires_grad_(True)
        with poisoned_allocations():
            y = soft_pool2d(x, 3, (2, 4), (1, 0), backend="triton")
            y.backward(torch.ones_like(y))
        assert not y.isnan().any() and not x.grad.isnan().any()
        uncovered = x.grad[..., [3, 7, 8, 9]]
        assert_close(uncovered, torch.zeros_like(uncovered), 0.0, 0.0, "columns in no window")


@pytest.mark.parametrize("device", DEVICES)
class TestLayouts:
    # Each layout changes which axes the kernels tile (the two with the smallest input strides).
    @pytest.mark.parametrize(
        ("shape", "layout"),
        [
            ((2, 4, 9, 11), "channels_last"),  # tile over (W, C): C is contiguous
            ((1, 3, 3, 5, 7), "channels_last_3d"),  # tile over (W, C) with depth windows per program
            ((2, 2, 9, 22), "every_other_column"),  # a strided slice along W
            ((1, 2, 11, 9), "transposed"),  # H and W swapped in memory: tile over (W, H)
            ((2, 3, 17), "channels_innermost_1d"),  # (N, L, C) storage viewed as (N, C, L)
        ],
    )
    def test_any_strides(self, shape, layout, device):
        torch.manual_seed(3)
        base = torch.randn(shape, device=device)
        if layout == "channels_last":
            x = base.contiguous(memory_format=torch.channels_last)
        elif layout == "channels_last_3d":
            x = base.contiguous(memory_format=torch.channels_last_3d)
        elif layout == "every_other_column":
            x = base[..., ::2]
        elif layout == "transposed":
            x = base.transpose(2, 3).contiguous().transpose(2, 3)
        else:
            x = base.transpose(1, 2).contiguous().transpose(1, 2)
        assert not x.is_contiguous()
        kernel, stride, padding = (3, 2, 1) if x.dim() < 5 else ((2, 3, 2), (1, 2, 2), (1, 1, 0))
        _check_forward_and_backward(x, kernel, stride, padding, True, beta=1.0)

    def test_channels_last_output_and_gradient_keep_the_layout(self, device):
        x = torch.randn(1, 5, 6, 8, device=device).contiguous(memory_format=torch.channels_last).requires_grad_(True)
        y = soft_pool2d(x, 2, backend="triton")
        y.sum().backward()  # a broadcast (stride 0) incoming gradient
        assert y.is_contiguous(memory_format=torch.channels_last)
        assert x.grad.stride() == x.stride()

    def test_broadcast_input(self, device):
        # A stride-0 channel axis: every channel reads the same memory.
        x = torch.randn(1, 1, 6, 7, device=device).expand(2, 2, 6, 7)
        _check_forward_and_backward(x, 3, 2, 1, False, beta=1.0)


@pytest.mark.parametrize("device", DEVICES)
class TestNumerics:
    @pytest.mark.parametrize(
        ("dtype", "low", "high"),
        [
            (torch.float32, -1e4, 1e4),  # spread far beyond exp's range
            (torch.float32, 1e4 - 3.0, 1e4 + 3.0),  # large offset, small spread: cancellation
            (torch.float16, 6.0e4, 65504.0),  # near float16's largest finite value
            (torch.float16, -65504.0, 65504.0),
        ],
    )
    def test_large_magnitudes(self, dtype, low, high, device):
        torch.manual_seed(4)
        x = (low + (high - low) * torch.rand(2, 2, 7, 9, device=device, dtype=torch.float64)).to(dtype)
        x.requires_grad_(True)
        y = soft_pool2d(x, 3, 2, 1, True, beta=1.0, backend="triton")
        upper = F.max_pool2d(x.detach().double(), 3, 2, 1, ceil_mode=True)
        lower = -F.max_pool2d(-x.detach().double(), 3, 2, 1, ceil_mode=True)
        assert y.isfinite().all()
        assert (y.double() <= upper).all() and (y.double() >= lower).all()
        atol, rtol = TOLERANCES[dtype]
        expected = soft_pool_reference(x.detach().cpu().double(), 3, 2, 1, True, 1.0)
        assert_close(y, expected, atol, rtol, "forward")
        y.backward(torch.ones_like(y))
        assert x.grad.isfinite().all()

    def test_large_beta_is_max_pooling(self, device):
        torch.manual_seed(5)
        x = torch.randn(1, 2, 9, 8, device=device, dtype=torch.float64)
        y = soft_pool2d(x, 3, 2, 1, beta=1e4, backend="triton")
        assert_close(y, F.max_pool2d(x, 3, 2, 1), 1e-3, 0.0, "beta=1e4 vs max_pool2d")

    @pytest.mark.parametrize(
        ("shape", "kernel", "stride", "padding", "ceil_mode", "fast_mode"),
        [
            ((1, 1, 4, 5), 3, 2, 1, True, False),  # 2D overlapping, padded, ceil_mode; full Jacobian
            ((1, 1, 3, 4, 5), 2, 1, 1, True, True),  # 3D overlapping and padded; one random direction
        ],
    )
    def test_gradcheck(self, shape, kernel, stride, padding, ceil_mode, fast_mode, device):
        torch.manual_seed(6)
        x = torch.randn(shape, device=device, dtype=torch.float64, requires_grad=True)
        function = FUNCTIONS[_rank(shape)]
        assert torch.autograd.gradcheck(
            lambda t: function(t, kernel, stride, padding, ceil_mode, beta=1.5, backend="triton"),
            (x,),
            fast_mode=fast_mode,
        )

    def test_backward_is_deterministic(self, device):
        # 3x3 windows at stride 1: each input gathers from up to nine windows.
        torch.manual_seed(7)
        x = torch.randn(2, 2, 11, 13, device=device, requires_grad=True)
        grad_y = torch.randn(2, 2, 11, 13, device=device)
        grads = []
        with _deterministic_algorithms():
            for _ in range(2):
                x.grad = None
                soft_pool2d(x, 3, 1, 1, backend="triton").backward(grad_y)
                grads.append(x.grad.clone())
        assert torch.equal(grads[0], grads[1])

    def test_without_autograd_same_output(self, device):
        # No statistics are written without a gradient; y must not change.
        torch.manual_seed(8)
        x = torch.randn(1, 2, 7, 9, device=device, dtype=torch.float16)
        plain = soft_pool2d(x, 3, 2, 1, backend="triton")
        tracked = soft_pool2d(x.clone().requires_grad_(True), 3, 2, 1, backend="triton")
        assert torch.equal(plain, tracked.detach())

    @pytest.mark.parametrize(
        ("shape", "kernel", "stride", "padding", "forced"),
        [
            ((1, 2, 6, 40), (6, 8), (2, 4), (3, 4), False),  # 48 values: chunked, one chunk of 64 lanes
            ((1, 2, 9, 10), (3, 4), (2, 1), (1, 2), True),  # forced: chunks of 4 lanes, runtime loops, wide
        ],
    )
    def test_paths_for_large_windows_and_tensors(self, shape, kernel, stride, padding, forced, device, monkeypatch):
        # Large windows go in chunks of lanes with an online max. Forced on a small case: many
        # chunks, the backward's runtime loop over covering windows, and 64-bit offsets in tiles.
        if forced:
            monkeypatch.setattr(config, "MAX_UNROLLED_WINDOW", 0)
            monkeypatch.setattr(config, "MAX_WINDOW_BLOCK", 4)
            monkeypatch.setattr(config, "MAX_UNROLLED_WINDOWS", 0)
            monkeypatch.setattr(config, "INT32_MAX", 0)
        torch.manual_seed(9)
        x = torch.randn(shape, device=device) * 5
        _check_forward_and_backward(x, kernel, stride, padding, True, beta=2.0)

    def test_backward_without_autograd(self, device):
        # For a custom op's backward, which keeps only x: the statistics are rebuilt, same gradient.
        torch.manual_seed(10)
        x = torch.randn(1, 2, 7, 8, device=device, requires_grad=True)
        geometry = pool_geometry((7, 8), 3, 2, 1, True)
        y = soft_pool_nd.soft_pool_triton(x, geometry, 1.5)
        grad_y = torch.randn_like(y)
        y.backward(grad_y)
        grad_x = soft_pool_nd.soft_pool_triton_backward(grad_y, x.detach(), geometry, 1.5)
        assert torch.equal(grad_x, x.grad)

    def test_empty_batch(self, device):
        x = torch.randn(0, 3, 6, 6, device=device, requires_grad=True)
        y = soft_pool2d(x, 2, backend="triton")
        y.sum().backward()
        assert y.shape == (0, 3, 3, 3) and x.grad.shape == x.shape


@contextlib.contextmanager
def _deterministic_algorithms():
    previous = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(previous)


def test_launcher_checks_the_geometry():
    geometry = pool_geometry((8, 8), 2, None, 0, False)
    with pytest.raises(ValueError, match=r"expects a batched input of shape \(N, C, 8, 8\), got \(1, 2, 8, 9\)"):
        soft_pool_nd.soft_pool_triton(torch.zeros(1, 2, 8, 9), geometry, 1.0)


def test_tile_helper_raises_with_the_numbers(monkeypatch):
    monkeypatch.setattr(config, "MAX_PROGRAMS", 10)
    monkeypatch.setattr(config, "INTERPRETED", True)
    monkeypatch.setattr(config, "INTERPRETER_ELEMENTS", 8)
    with pytest.raises(ValueError, match=r"would need 24 programs \(6 x 4 x 8 positions in tiles of 1 x 8\)"):
        launch._tile(6, 4, 8, 1, 16, 1, 0)


def test_cpu_tensor_without_interpreter_raises(monkeypatch):
    monkeypatch.setattr(soft_pool_nd, "INTERPRETED", False)
    with pytest.raises(ValueError, match="backend='triton' cannot run here: the Triton kernels need a CUDA tensor"):
        soft_pool2d(torch.randn(1, 1, 4, 4), 2, backend="triton")
