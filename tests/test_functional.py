"""The public SoftPool functions and Modules on CPU tensors, against the float64 loop reference.

`backend="torch"` pins the PyTorch path; `backend="auto"` is what users get on CPU (the fast
CPU engine where it applies, the PyTorch path otherwise). The Triton kernels have their own
file, test_triton_kernels.py.
"""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from reference import TOLERANCES, assert_close, soft_pool_reference, soft_pool_reference_grad
from softpool import SoftPool1d, SoftPool2d, SoftPool3d, soft_pool1d, soft_pool2d, soft_pool3d

FUNCTIONS = {1: soft_pool1d, 2: soft_pool2d, 3: soft_pool3d}
MODULES = {1: SoftPool1d, 2: SoftPool2d, 3: SoftPool3d}
MAX_POOLS = {1: F.max_pool1d, 2: F.max_pool2d, 3: F.max_pool3d}
AVG_POOLS = {1: F.avg_pool1d, 2: F.avg_pool2d, 3: F.avg_pool3d}
SIZES = {1: (11,), 2: (7, 9), 3: (5, 6, 7)}
BACKENDS = ["torch", "auto"]

# (kernel_size, stride, padding, ceil_mode) per rank, one comment per case on what it exercises.
GEOMETRIES = {
    1: [
        (2, None, 0, False),  # non-overlapping, odd length drops the last element
        (3, 2, 1, True),  # overlapping, padded, ceil_mode keeps a partial last window
        (4, 3, 2, False),  # stride != kernel, maximal padding
    ],
    2: [
        (2, None, 0, False),  # the common image case, odd sizes
        (3, 2, 1, False),  # overlapping windows with padding (ResNet stem)
        ((2, 3), (1, 2), (1, 0), True),  # non-square kernel and stride, ceil_mode
        (3, 3, 0, True),  # ceil_mode with partial windows at both far edges
    ],
    3: [
        (2, None, 0, False),  # the video case 2x2x2
        ((1, 3, 2), (1, 2, 2), (0, 1, 1), True),  # per-frame window, padding, ceil_mode
        (3, 2, 1, False),  # overlapping in all three dims
    ],
}
CASES = [(rank, *geometry) for rank, geometries in GEOMETRIES.items() for geometry in geometries]
CASE_IDS = [f"{rank}d-k{k}-s{s}-p{p}-ceil{c}" for rank, k, s, p, c in CASES]


def _input(rank: int, dtype=torch.float64, batch: int = 2, channels: int = 3, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(batch, channels, *SIZES[rank], generator=generator, dtype=torch.float64).to(dtype)


class TestAgainstReference:
    @pytest.mark.parametrize("backend", BACKENDS)
    @pytest.mark.parametrize("beta", [0.0, 0.5, 1.0, 3.0])
    @pytest.mark.parametrize("rank,kernel,stride,padding,ceil_mode", CASES, ids=CASE_IDS)
    def test_forward_float64(self, rank, kernel, stride, padding, ceil_mode, beta, backend):
        x = _input(rank)
        y = FUNCTIONS[rank](x, kernel, stride, padding, ceil_mode, beta=beta, backend=backend)
        expected = soft_pool_reference(x, kernel, stride, padding, ceil_mode, beta)
        assert_close(y, expected, *TOLERANCES[torch.float64], what="forward")

    @pytest.mark.parametrize("backend", BACKENDS)
    @pytest.mark.parametrize("beta", [0.0, 1.0, 3.0])
    @pytest.mark.parametrize("rank,kernel,stride,padding,ceil_mode", CASES, ids=CASE_IDS)
    def test_backward_float64(self, rank, kernel, stride, padding, ceil_mode, beta, backend):
        x = _input(rank).requires_grad_()
        y = FUNCTIONS[rank](x, kernel, stride, padding, ceil_mode, beta=beta, backend=backend)
        grad_out = torch.randn_like(y)
        (grad,) = torch.autograd.grad(y, x, grad_out)
        expected = soft_pool_reference_grad(x.detach(), grad_out, kernel, stride, padding, ceil_mode, beta)
        assert_close(grad, expected, *TOLERANCES[torch.float64], what="backward")

    @pytest.mark.parametrize("backend", BACKENDS)
    @pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
    @pytest.mark.parametrize("rank,kernel,stride,padding,ceil_mode", CASES, ids=CASE_IDS)
    def test_forward_every_dtype(self, rank, kernel, stride, padding, ceil_mode, dtype, backend):
        x = _input(rank, dtype)
        y = FUNCTIONS[rank](x, kernel, stride, padding, ceil_mode, backend=backend)
        assert y.dtype == dtype
        # The reference sees the same rounded inputs; the rest is the op's own rounding.
        expected = soft_pool_reference(x.to(torch.float64), kernel, stride, padding, ceil_mode)
        assert_close(y, expected, *TOLERANCES[dtype], what=str(dtype))

    @pytest.mark.parametrize("backend", BACKENDS)
    @pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
    def test_backward_every_dtype(self, dtype, backend):
        x = _input(2, dtype).requires_grad_()
        y = soft_pool2d(x, 3, 2, 1, backend=backend)
        grad_out = torch.randn(y.shape, generator=torch.Generator().manual_seed(1)).to(dtype)
        (grad,) = torch.autograd.grad(y, x, grad_out)
        assert grad.dtype == dtype
        expected = soft_pool_reference_grad(x.detach().double(), grad_out.double(), 3, 2, 1)
        atol, rtol = TOLERANCES[dtype]
        assert_close(grad, expected, 4 * atol, 4 * rtol, what=f"grad {dtype}")


class TestGradcheck:
    @pytest.mark.parametrize("backend", BACKENDS)
    @pytest.mark.parametrize(
        "rank,kernel,stride,padding,ceil_mode,beta",
        [
            (1, 3, 2, 1, True, 1.0),  # overlap + padding + ceil_mode
            (2, 3, 2, 1, True, 2.0),  # overlap + padding + ceil_mode, sharper
            (2, (2, 3), 1, (1, 1), False, 0.5),  # stride 1: every element in several windows
            (3, 2, 1, 1, False, 1.0),  # 3D overlap with padding
        ],
    )
    def test_gradcheck(self, rank, kernel, stride, padding, ceil_mode, beta, backend):
        sizes = {1: (7,), 2: (5, 6), 3: (3, 4, 5)}[rank]
        x = torch.randn(1, 2, *sizes, dtype=torch.float64, requires_grad=True)
        function = FUNCTIONS[rank]
        assert torch.autograd.gradcheck(
            lambda t: function(t, kernel, stride, padding, ceil_mode, beta=beta, backend=backend), (x,)
        )


class TestShapesAndLayouts:
    @pytest.mark.parametrize("backend", BACKENDS)
    @pytest.mark.parametrize("rank,kernel,stride,padding,ceil_mode", CASES, ids=CASE_IDS)
    def test_output_shape_equals_max_pool(self, rank, kernel, stride, padding, ceil_mode, backend):
        x = _input(rank, torch.float32)
        y = FUNCTIONS[rank](x, kernel, stride, padding, ceil_mode, backend=backend)
        assert y.shape == MAX_POOLS[rank](x, kernel, stride, padding, ceil_mode=ceil_mode).shape

    @pytest.mark.parametrize("backend", BACKENDS)
    @pytest.mark.parametrize("rank", [1, 2, 3])
    def test_unbatched(self, rank, backend):
        x = _input(rank, torch.float32)
        y = FUNCTIONS[rank](x[1], 2, backend=backend)
        assert_close(y, FUNCTIONS[rank](x, 2, backend=backend)[1], 0, 0, what="unbatched")

    @pytest.mark.parametrize("backend", BACKENDS)
    def test_non_contiguous(self, backend):
        base = torch.randn(2, 9, 12, 6)
        x = base.permute(0, 3, 1, 2)[:, ::2, :, 1:]  # (2, 3, 9, 11), strided in every dim
        assert not x.is_contiguous()
        y = soft_pool2d(x, 3, 2, 1, backend=backend)
        assert_close(y, soft_pool2d(x.contiguous(), 3, 2, 1, backend=backend), 1e-6, 1e-6, what="strided")

    @pytest.mark.parametrize("backend", BACKENDS)
    def test_channels_last_2d(self, backend):
        x = torch.randn(2, 5, 8, 10).to(memory_format=torch.channels_last).requires_grad_()
        y = soft_pool2d(x, 2, backend=backend)
        assert y.is_contiguous(memory_format=torch.channels_last)
        assert_close(y, soft_pool2d(x.detach().contiguous(), 2, backend=backend), 1e-6, 1e-6, what="channels_last")
        y.sum().backward()
        assert x.grad.shape == x.shape

    @pytest.mark.parametrize("backend", BACKENDS)
    def test_channels_last_3d(self, backend):
        x = torch.randn(1, 4, 4, 6, 6).to(memory_format=torch.channels_last_3d)
        y = soft_pool3d(x, 2, backend=backend)
        assert y.is_contiguous(memory_format=torch.channels_last_3d)
        assert_close(y, soft_pool3d(x.contiguous(), 2, backend=backend), 1e-6, 1e-6, what="channels_last_3d")

    def test_empty_batch(self):
        y = soft_pool2d(torch.randn(0, 3, 8, 8), 2)
        assert y.shape == (0, 3, 4, 4)


class TestStability:
    @pytest.mark.parametrize("backend", BACKENDS)
    @pytest.mark.parametrize(
        "dtype,scale", [(torch.float32, 1e4), (torch.float32, 3e38), (torch.float16, 6e4), (torch.bfloat16, 3e38)]
    )
    def test_large_magnitudes_stay_finite_and_bounded(self, dtype, scale, backend):
        x = (torch.rand(2, 3, 9, 9) * 2 - 1).mul(scale).to(dtype)
        y = soft_pool2d(x, 3, 2, 1, True, backend=backend)
        assert torch.isfinite(y).all()
        low = -MAX_POOLS[2](-x.float(), 3, 2, 1, ceil_mode=True)
        high = MAX_POOLS[2](x.float(), 3, 2, 1, ceil_mode=True)
        assert (y.float() >= low).all() and (y.float() <= high).all()

    @pytest.mark.parametrize("backend", BACKENDS)
    def test_large_magnitude_gradient_is_finite(self, backend):
        x = (torch.randn(1, 2, 8, 8) * 1e4).requires_grad_()
        soft_pool2d(x, 2, backend=backend).sum().backward()
        assert torch.isfinite(x.grad).all()

    @pytest.mark.parametrize("backend", BACKENDS)
    def test_negative_values_are_kept(self, backend):
        x = -torch.rand(1, 3, 4, 4) - 1
        assert (soft_pool2d(x, 2, backend=backend) < -1).all()

    @pytest.mark.parametrize("backend", BACKENDS)
    def test_weights_are_per_channel(self, backend):
        # Channel 1 is channel 0 negated: shared weights would give y1 == -y0.
        x0 = torch.tensor([[0.0, 4.0], [1.0, 2.0]])
        x = torch.stack([x0, -x0]).unsqueeze(0)
        y = soft_pool2d(x, 2, backend=backend).flatten()
        assert y[0] > 2.5 and y[1] > -1.75

    @pytest.mark.parametrize("backend", BACKENDS)
    def test_deterministic_backward(self, backend):
        x = torch.randn(2, 3, 11, 11, requires_grad=True)
        grad_out = torch.randn(2, 3, 6, 6)
        torch.use_deterministic_algorithms(True)
        try:
            first = torch.autograd.grad(soft_pool2d(x, 3, 2, 1, backend=backend), x, grad_out)[0]
            second = torch.autograd.grad(soft_pool2d(x, 3, 2, 1, backend=backend), x, grad_out)[0]
        finally:
            torch.use_deterministic_algorithms(False)
        assert torch.equal(first, second)


window_arguments = st.tuples(
    st.integers(1, 3),  # kernel
    st.integers(1, 3),  # stride
    st.integers(0, 1),  # padding, clipped to kernel // 2 below
    st.booleans(),  # ceil_mode
)


class TestProperties:
    @settings(max_examples=40, deadline=None)
    @given(
        rank=st.integers(1, 3),
        size=st.integers(3, 7),
        window=window_arguments,
        beta=st.floats(0, 5),
        seed=st.integers(0, 2**16),
    )
    def test_bounds_shift_and_shape(self, rank, size, window, beta, seed):
        kernel, stride, padding, ceil_mode = window
        padding = min(padding, kernel // 2)
        x = torch.randn(1, 2, *(size,) * rank, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
        pool = FUNCTIONS[rank]
        y = pool(x, kernel, stride, padding, ceil_mode, beta=beta)
        high = MAX_POOLS[rank](x, kernel, stride, padding, ceil_mode=ceil_mode)
        low = -MAX_POOLS[rank](-x, kernel, stride, padding, ceil_mode=ceil_mode)
        assert y.shape == high.shape
        assert (y <= high + 1e-12).all() and (y >= low - 1e-12).all()
        shifted = pool(x + 7.25, kernel, stride, padding, ceil_mode, beta=beta)
        assert_close(shifted, y + 7.25, 1e-10, 1e-10, what="shift equivariance")

    @pytest.mark.parametrize("backend", BACKENDS)
    @pytest.mark.parametrize("rank,kernel,stride,padding,ceil_mode", CASES, ids=CASE_IDS)
    def test_beta_zero_is_average_pooling(self, rank, kernel, stride, padding, ceil_mode, backend):
        x = _input(rank)
        y = FUNCTIONS[rank](x, kernel, stride, padding, ceil_mode, beta=0.0, backend=backend)
        expected = AVG_POOLS[rank](x, kernel, stride, padding, ceil_mode=ceil_mode, count_include_pad=False)
        assert_close(y, expected, 1e-12, 1e-12, what="beta=0")

    @pytest.mark.parametrize("backend", BACKENDS)
    @pytest.mark.parametrize("rank,kernel,stride,padding,ceil_mode", CASES, ids=CASE_IDS)
    def test_large_beta_is_max_pooling(self, rank, kernel, stride, padding, ceil_mode, backend):
        # Values on a grid 0.1 apart: at beta=1e3 the runner-up weighs e^-100 of the max.
        x = torch.randperm(2 * 3 * torch.Size(SIZES[rank]).numel(), dtype=torch.float64).reshape(
            2, 3, *SIZES[rank]
        ) / 10
        y = FUNCTIONS[rank](x, kernel, stride, padding, ceil_mode, beta=1e3, backend=backend)
        assert_close(y, MAX_POOLS[rank](x, kernel, stride, padding, ceil_mode=ceil_mode), 1e-12, 0, what="max")


class TestModules:
    @pytest.mark.parametrize("rank", [1, 2, 3])
    def test_module_equals_functional(self, rank):
        x = _input(rank, torch.float32)
        module = MODULES[rank](3, stride=2, padding=1, ceil_mode=True, beta=2.0, backend="torch")
        expected = FUNCTIONS[rank](x, 3, 2, 1, True, beta=2.0, backend="torch")
        assert torch.equal(module(x), expected)

    def test_default_stride_and_repr(self):
        module = SoftPool2d((2, 3), beta=0.5)
        assert module.stride == (2, 3)
        assert repr(module) == (
            "SoftPool2d(kernel_size=(2, 3), stride=(2, 3), padding=0, ceil_mode=False, beta=0.5, backend='auto')"
        )

    def test_module_validates_beta_and_backend(self):
        with pytest.raises(ValueError, match="beta must be finite and >= 0, got -1.0"):
            SoftPool2d(2, beta=-1.0)
        with pytest.raises(ValueError, match="backend must be one of"):
            SoftPool3d(2, backend="cuda")


class TestErrors:
    @pytest.mark.parametrize(
        "kwargs,error,message",
        [
            ({"kernel_size": 0}, ValueError, r"kernel_size must be positive, got \(0, 0\)"),
            ({"kernel_size": -2}, ValueError, "kernel_size must be positive"),
            ({"kernel_size": 2, "stride": 0}, ValueError, r"stride must be positive, got \(0, 0\)"),
            ({"kernel_size": 2, "padding": 2}, ValueError, "padding must be at most half of kernel_size"),
            ({"kernel_size": 2, "padding": -1}, ValueError, "padding must be non-negative"),
            ({"kernel_size": (2, 2, 2)}, ValueError, r"kernel_size must be an int or a tuple of 2 ints, got \(2, 2, 2\)"),
            ({"kernel_size": 2, "stride": (1,)}, ValueError, "stride must be an int or a tuple of 2 ints"),
            ({"kernel_size": 2.5}, TypeError, "kernel_size must be an int or a tuple of 2 ints, got 2.5"),
            ({"kernel_size": True}, TypeError, "kernel_size must be an int"),
            ({"kernel_size": 9}, ValueError, r"output size would be \(0, 0\) for input size \(8, 8\)"),
            ({"kernel_size": 2, "beta": -0.5}, ValueError, "beta must be finite and >= 0, got -0.5"),
            ({"kernel_size": 2, "beta": float("inf")}, ValueError, "beta must be finite and >= 0, got inf"),
            ({"kernel_size": 2, "beta": float("nan")}, ValueError, "beta must be finite and >= 0, got nan"),
            ({"kernel_size": 2, "beta": "1"}, TypeError, "beta must be a real number, got '1'"),
            ({"kernel_size": 2, "backend": "cuda"}, ValueError, "backend must be one of 'auto', 'triton', 'torch', got 'cuda'"),
            ({"kernel_size": 2, "ceil_mode": 1}, TypeError, "ceil_mode must be a bool, got 1"),
        ],
    )
    def test_bad_arguments(self, kwargs, error, message):
        with pytest.raises(error, match=message):
            soft_pool2d(torch.randn(1, 2, 8, 8), **kwargs)

    @pytest.mark.parametrize("dtype", [torch.int64, torch.uint8, torch.bool, torch.complex64])
    def test_non_floating_tensor(self, dtype):
        with pytest.raises(TypeError, match=f"soft_pool2d expects a floating-point tensor .*, got {dtype}"):
            soft_pool2d(torch.zeros(1, 2, 4, 4, dtype=dtype), 2)

    def test_not_a_tensor(self):
        with pytest.raises(TypeError, match="soft_pool2d expects a torch.Tensor, got list"):
            soft_pool2d([[1.0]], 2)

    @pytest.mark.parametrize("rank,shape", [(2, (4, 4)), (2, (1, 1, 1, 4, 4)), (1, (4,)), (3, (1, 2, 3, 4, 5, 6))])
    def test_wrong_number_of_dimensions(self, rank, shape):
        with pytest.raises(ValueError, match=f"soft_pool{rank}d expects a {rank + 1}D .* got {len(shape)}D"):
            FUNCTIONS[rank](torch.zeros(shape), 1)


def test_library_does_not_import_media_dependencies():
    # torch itself may import some of these (it loads tqdm for torch.hub): count only what softpool adds.
    code = (
        "import sys, torch; before = set(sys.modules);"
        "import softpool; softpool.soft_pool2d(torch.randn(1, 1, 4, 4), 2);"
        "added = {m.split('.')[0] for m in set(sys.modules) - before};"
        "print(sorted(added & {'cv2', 'imageio', 'click', 'tqdm', 'av', 'PIL', 'skimage'}))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
