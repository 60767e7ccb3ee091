"""The Numba CPU engines against independent float64 computations.

- `softpool_cli.pixels.uint8_engine`: 8-bit pixels in and out. Expected values are computed here in
  float64 from the definition (normalise with the ImageNet statistics, softmax-weighted mean,
  map back), and the engine must round them correctly up to float32 error: |got - exact| <= 0.5
  plus a hair, so at most one level from the float64 result rounded, ties either way.
- `softpool.cpu.engine`: float tensors, forward and backward, against tests/reference.py.

Numba compiles each new window once and caches it on disk, so the cases below reuse a few
windows on purpose.
"""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
import torch

import softpool
from softpool._arguments import pool_geometry

from reference import TOLERANCES, assert_close, soft_pool_reference, soft_pool_reference_grad

pytest.importorskip("numba")

from softpool.cpu import engine as _cpu_kernels  # noqa: E402
from softpool_cli.pixels import uint8_engine as fast_uint8  # noqa: E402
from softpool_cli.pixels.pool import _pool_with_torch  # noqa: E402

MEAN_RGB = np.array([0.485, 0.456, 0.406])
STD_RGB = np.array([0.229, 0.224, 0.225])
STD_GRAY = np.array([STD_RGB.mean()])
# float32 accumulation and the weight series stay far below this (in levels of 255).
ROUNDING_SLACK = 2e-3


def random_pixels(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 255, size=shape, endpoint=True, dtype=np.uint8)


def exact_pixels(pixels: np.ndarray, kernel, stride=None, beta: float = 1.0, ceil_mode: bool = False) -> np.ndarray:
    """Unrounded float64 SoftPool of 8-bit pixels, by the loop reference on normalised values."""
    layout = pixels[..., None] if pixels.ndim == 2 else pixels
    channels = layout.shape[-1]
    colours = 1 if channels <= 2 else 3
    mean = MEAN_RGB.mean(keepdims=True) if colours == 1 else MEAN_RGB
    std = STD_GRAY if colours == 1 else STD_RGB
    values = torch.from_numpy(layout.astype(np.float64)).movedim(-1, 0).unsqueeze(0)  # (1, C, *spatial)
    shape = (1, colours) + (1,) * (values.dim() - 2)
    mean_t, std_t = torch.from_numpy(mean).view(shape), torch.from_numpy(std).view(shape)
    normalised = (values[:, :colours] / 255 - mean_t) / std_t
    pooled = (soft_pool_reference(normalised, kernel, stride, 0, ceil_mode, beta) * std_t + mean_t) * 255
    if channels in (2, 4):  # alpha is averaged: beta = 0
        pooled = torch.cat([pooled, soft_pool_reference(values[:, colours:], kernel, stride, 0, ceil_mode, 0.0)], 1)
    result = pooled.squeeze(0).movedim(0, -1).numpy()
    return result[..., 0] if pixels.ndim == 2 else result


def exact_pixels_tiled(pixels: np.ndarray, factor: int, beta: float = 1.0) -> np.ndarray:
    """Unrounded float64 SoftPool of an (H, W, 3) image over factor x factor tiles, vectorised."""
    height, width = (n // factor for n in pixels.shape[:2])
    normalised = (pixels[: height * factor, : width * factor] / 255.0 - MEAN_RGB) / STD_RGB  # (H, W, 3)
    tiles = normalised.reshape(height, factor, width, factor, 3).transpose(0, 2, 4, 1, 3).reshape(height, width, 3, -1)
    weights = np.exp(beta * (tiles - tiles.max(axis=-1, keepdims=True)))
    pooled = (weights * tiles).sum(axis=-1) / weights.sum(axis=-1)
    return (pooled * STD_RGB + MEAN_RGB) * 255


def assert_rounded(actual: np.ndarray, exact: np.ndarray, what: str) -> None:
    assert actual.dtype == np.uint8, f"{what}: dtype {actual.dtype}"
    assert actual.shape == exact.shape, f"{what}: shape {actual.shape} != {exact.shape}"
    error = np.abs(actual - exact)
    worst = np.unravel_index(error.argmax(), error.shape)
    assert error.max() <= 0.5 + ROUNDING_SLACK, f"{what}: {actual[worst]} for {exact[worst]:.4f} at {worst}"


def engine(pixels: np.ndarray, kernel, stride=None, beta: float = 1.0, ceil_mode: bool = False, **options):
    layout_channels = 1 if pixels.ndim == 2 else pixels.shape[-1]
    std = tuple(STD_GRAY) if layout_channels <= 2 else tuple(STD_RGB)
    alpha = layout_channels in (2, 4)
    return fast_uint8.soft_pool_uint8(
        pixels, kernel, stride, std=std, alpha=alpha, beta=beta, ceil_mode=ceil_mode, **options
    )


class TestUint8Engine:
    @pytest.mark.parametrize(
        "shape, kernel, stride, beta, ceil_mode",
        [
            ((37, 53, 3), (2, 2), None, 1.0, False),  # one-pass kernel, odd sizes drop the last row/column
            ((17, 23, 3), (2, 2), None, 1.0, True),  # + general kernel for ceil_mode's partial windows
            ((37, 53, 3), (3, 3), (2, 2), 1.0, False),  # separable kernel, overlapping windows
            ((37, 53), (2, 2), None, 1.0, False),  # gray (H, W)
            ((17, 23, 2), (2, 2), None, 1.0, True),  # gray + alpha
            ((17, 23, 4), (3, 3), (2, 2), 1.0, True),  # RGBA
            ((37, 53, 3), (2, 2), None, 0.0, False),  # beta 0: average pooling
            ((37, 53, 3), (2, 2), None, 40.0, False),  # beyond float32's range without a window maximum
            ((17, 19, 3), (10, 10), (3, 3), 1.0, True),  # window wider than the separable kernel unrolls
            ((1, 1, 3), (1, 1), None, 1.0, False),  # one pixel
            ((2, 2, 3), (2, 2), None, 1.0, False),  # kernel as large as the image
        ],
    )
    def test_image_matches_float64(self, shape, kernel, stride, beta, ceil_mode):
        pixels = random_pixels(shape)
        actual = engine(pixels, kernel, stride, beta, ceil_mode)
        assert_rounded(actual, exact_pixels(pixels, kernel, stride, beta, ceil_mode), f"{shape} {kernel}")

    @pytest.mark.parametrize(
        "shape, kernel, stride, ceil_mode",
        [
            ((4, 9, 11, 3), (2, 2, 2), None, False),  # separable kernel (8 samples x 3 channels)
            ((5, 9, 11, 3), (2, 2, 2), None, True),  # + partial windows in time and space
            ((4, 9, 11, 1), (2, 2, 2), None, False),  # gray: one-pass kernel
            ((5, 9, 11, 4), (3, 2, 2), (2, 1, 2), True),  # RGBA, overlap in H
        ],
    )
    def test_frames_match_float64(self, shape, kernel, stride, ceil_mode):
        pixels = random_pixels(shape, seed=1)
        actual = engine(pixels, kernel, stride, 1.0, ceil_mode)
        assert_rounded(actual, exact_pixels(pixels, kernel, stride, 1.0, ceil_mode), f"{shape} {kernel}")

    @pytest.mark.parametrize("factor", [2, 3])
    def test_real_image(self, factor):
        data = pytest.importorskip("skimage.data")
        pixels = data.astronaut()[:301, :299]  # (301, 299, 3): sizes the factors do not divide
        actual = engine(pixels, (factor, factor))
        assert_rounded(actual, exact_pixels_tiled(pixels, factor), f"astronaut, factor {factor}")

    def test_large_random_image_and_threads(self):
        pixels = random_pixels((240, 322, 3), seed=2)
        actual = engine(pixels, (2, 2), threads=2)
        assert_rounded(actual, exact_pixels_tiled(pixels, 2), "240 x 322")
        assert np.array_equal(actual, engine(pixels, (2, 2), threads=1)), "thread count changed the result"

    def test_non_contiguous_input(self):
        pixels = random_pixels((40, 60, 3), seed=3)
        view = pixels[::-1, ::2]  # (40, 30, 3), negative and doubled strides
        assert np.array_equal(engine(view, (2, 2)), engine(np.ascontiguousarray(view), (2, 2)))

    def test_matches_the_pytorch_pooling_step(self):
        pixels = random_pixels((33, 47, 3), seed=4)
        for method in ("soft", "avg"):
            for ceil_mode in (False, True):
                fast = fast_uint8.pool_uint8_or_none(pixels, (3, 2), None, method, 1.0, ceil_mode)
                general = _pool_with_torch(pixels, (3, 2), (3, 2), method, 1.0, ceil_mode, "cpu")
                difference = np.abs(fast.astype(np.int64) - general)
                assert difference.max() <= 1, f"{method}, ceil_mode={ceil_mode}: differs by {difference.max()}"

    def test_sixteen_bit_and_max_pooling_are_routed_elsewhere(self):
        pixels16 = random_pixels((8, 8, 3)).astype(np.uint16) * 257
        assert not fast_uint8.supports(pixels16)
        assert fast_uint8.pool_uint8_or_none(pixels16, (2, 2), None, "soft", 1.0, False) is None
        assert fast_uint8.pool_uint8_or_none(random_pixels((8, 8, 3)), (2, 2), None, "max", 1.0, False) is None
        with pytest.raises(TypeError, match="uint8"):
            engine(pixels16, (2, 2))

    @pytest.mark.parametrize(
        "shape, kernel, message",
        [
            ((4, 4, 3), (5, 5), "larger than the input"),
            ((4, 4, 3), (2, 2, 2), "kernel and stride"),
            ((4, 4, 3), (0, 2), "kernel and stride"),
        ],
    )
    def test_bad_arguments(self, shape, kernel, message):
        with pytest.raises(ValueError, match=message):
            engine(random_pixels(shape), kernel)


def float_geometry(x: torch.Tensor, kernel, stride, padding, ceil_mode):
    return pool_geometry(tuple(x.shape[2:]), kernel, stride, padding, ceil_mode)


class TestFloatKernels:
    @pytest.mark.parametrize(
        "shape, kernel, stride, padding, ceil_mode",
        [
            ((2, 3, 9, 10), 2, None, 0, False),  # whole windows, odd sizes leave samples out
            ((2, 3, 8, 8), (2, 2), (2, 3), 0, False),  # whole windows with gaps between them
            ((2, 3, 9, 10), 3, 2, 1, True),  # general: overlap, padding, ceil_mode
            ((1, 2, 11), 2, None, 0, False),  # 1D whole windows
            ((1, 2, 11), 3, 2, 1, False),  # 1D general
            ((1, 2, 4, 6, 6), 2, None, 0, False),  # 3D whole windows
            ((1, 2, 5, 6, 7), (3, 2, 2), (2, 1, 2), (1, 1, 0), True),  # 3D general
            ((1, 1, 9, 9), 5, 5, 2, True),  # a window larger than the unrolled kernels take
        ],
    )
    @pytest.mark.parametrize("beta", [1.0, 9.0, 0.0])
    def test_forward_backward_match_reference(self, shape, kernel, stride, padding, ceil_mode, beta):
        self.check_against_reference(torch.float32, shape, kernel, stride, padding, ceil_mode, beta)

    @pytest.mark.parametrize(
        "shape, kernel, stride, padding, ceil_mode",
        [
            ((2, 3, 9, 10), 2, None, 0, False),  # whole windows
            ((2, 3, 9, 10), 3, 2, 1, True),  # general
            ((1, 2, 5, 6, 7), (3, 2, 2), (2, 1, 2), (1, 1, 0), True),  # 3D general
        ],
    )
    def test_float64_matches_reference(self, shape, kernel, stride, padding, ceil_mode):
        self.check_against_reference(torch.float64, shape, kernel, stride, padding, ceil_mode, 1.0)

    @staticmethod
    def check_against_reference(dtype, shape, kernel, stride, padding, ceil_mode, beta):
        torch.manual_seed(0)
        x = (torch.randn(shape, dtype=dtype) * 3).requires_grad_()
        geometry = float_geometry(x, kernel, stride, padding, ceil_mode)
        assert _cpu_kernels.supports(x)
        y = _cpu_kernels.soft_pool_cpu(x, geometry, beta)
        grad_y = torch.randn_like(y)
        y.backward(grad_y)
        atol, rtol = TOLERANCES[dtype]
        what = f"{shape} k={kernel} s={stride} p={padding} ceil={ceil_mode} beta={beta} {dtype}"
        assert_close(y, soft_pool_reference(x.detach(), kernel, stride, padding, ceil_mode, beta), atol, rtol, what)
        expected_grad = soft_pool_reference_grad(x.detach(), grad_y, kernel, stride, padding, ceil_mode, beta)
        assert_close(x.grad, expected_grad, 10 * atol, 10 * rtol, what + " grad")

    @pytest.mark.parametrize("kernel, stride, padding, ceil_mode", [(2, None, 0, False), (3, 2, 1, True)])
    def test_gradcheck(self, kernel, stride, padding, ceil_mode):
        x = torch.randn(1, 2, 5, 6, dtype=torch.float64, requires_grad=True)
        geometry = float_geometry(x, kernel, stride, padding, ceil_mode)
        assert torch.autograd.gradcheck(lambda t: _cpu_kernels.soft_pool_cpu(t, geometry, 1.5), (x,))

    def test_non_contiguous_and_channels_last(self):
        torch.manual_seed(1)
        base = torch.randn(2, 4, 10, 12)
        geometry = float_geometry(base, 2, None, 0, False)
        expected = _cpu_kernels.soft_pool_cpu_forward(base, geometry, 1.0)
        for variant in (base.contiguous(memory_format=torch.channels_last), base.transpose(2, 3).transpose(2, 3)):
            assert torch.equal(_cpu_kernels.soft_pool_cpu_forward(variant, geometry, 1.0), expected)
        sliced = torch.randn(2, 4, 10, 24)[..., ::2]  # (2, 4, 10, 12), stride 2 in W
        assert_close(
            _cpu_kernels.soft_pool_cpu_forward(sliced, geometry, 1.0),
            soft_pool_reference(sliced, 2),
            *TOLERANCES[torch.float32],
            "sliced",
        )

    @pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
    def test_half_types_compute_in_float32(self, dtype):
        x = torch.randn(1, 2, 8, 8).to(dtype).requires_grad_()
        geometry = float_geometry(x, 2, None, 0, False)
        y = _cpu_kernels.soft_pool_cpu(x, geometry, 1.0)
        y.sum().backward()
        assert y.dtype == dtype and x.grad.dtype == dtype
        atol, rtol = TOLERANCES[dtype]
        assert_close(y, soft_pool_reference(x.detach().double(), 2), atol, rtol, f"{dtype}")

    def test_deterministic_whatever_the_thread_count(self):
        torch.manual_seed(2)
        x = torch.randn(2, 3, 64, 96, requires_grad=True)
        geometry = float_geometry(x, 3, 2, 1, True)
        results = []
        threads = torch.get_num_threads()
        try:
            for count in (1, 2, 2):
                torch.set_num_threads(count)
                y = _cpu_kernels.soft_pool_cpu(x, geometry, 1.0)
                (grad,) = torch.autograd.grad(y, x, torch.ones_like(y))
                results.append((y, grad))
        finally:
            torch.set_num_threads(threads)
        for y, grad in results[1:]:
            assert torch.equal(y, results[0][0]) and torch.equal(grad, results[0][1])

    def test_nan_and_extremes(self):
        x = torch.tensor([[[0.0, float("nan"), 1.0, 2.0, -1e30, 5.0, 1e4, -1e4]]])
        geometry = float_geometry(x, 2, None, 0, False)
        y = _cpu_kernels.soft_pool_cpu_forward(x, geometry, 1.0)
        assert torch.isnan(y[0, 0, 0])
        assert_close(y[..., 1:], soft_pool_reference(x[..., 2:].double(), 2), 1e-5, 1e-5, "extremes")

    def test_backward_without_autograd_matches(self):
        x = torch.randn(1, 3, 6, 8)
        geometry = float_geometry(x, 2, None, 0, False)
        grad_y = torch.randn(1, 3, 3, 4)
        grad_x = _cpu_kernels.soft_pool_cpu_backward(grad_y, x, geometry, 2.0)
        assert_close(grad_x, soft_pool_reference_grad(x, grad_y, 2, beta=2.0), 1e-4, 1e-4, "backward")

    def test_supports(self):
        x = torch.randn(1, 1, 4, 4)
        assert _cpu_kernels.supports(x)
        assert not _cpu_kernels.supports(x[:0])

    def test_tensor_beta_is_routed_to_pytorch_ops(self, monkeypatch):
        # These kernels compute no gradient for beta: a tensor beta must never reach them.
        def refuse(*arguments):
            raise AssertionError("the CPU kernels were called with a tensor beta")

        monkeypatch.setattr(_cpu_kernels, "soft_pool_cpu", refuse)
        beta = torch.tensor(1.5, requires_grad=True)
        y = softpool.soft_pool2d(torch.randn(1, 2, 4, 4), 2, beta=beta)
        y.sum().backward()
        assert beta.grad is not None and torch.isfinite(beta.grad)

    @pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
    def test_forked_child_can_pool(self):
        """No thread pool survives a call, so a forked child (a DataLoader worker) pools as well."""
        x = torch.randn(1, 2, 64, 64)
        geometry = float_geometry(x, 2, None, 0, False)
        expected = _cpu_kernels.soft_pool_cpu_forward(x, geometry, 1.0)
        pixels = random_pixels((64, 64, 3))
        expected_pixels = engine(pixels, (2, 2))
        child = os.fork()
        if child == 0:  # pragma: no cover - runs in the child
            same = torch.equal(_cpu_kernels.soft_pool_cpu_forward(x, geometry, 1.0), expected)
            same = same and np.array_equal(engine(pixels, (2, 2)), expected_pixels)
            os._exit(0 if same else 1)
        _, status = os.waitpid(child, 0)
        assert os.waitstatus_to_exitcode(status) == 0


def test_modules_import_and_decline_without_numba():
    """With Numba missing both modules still import, and their `supports` say no."""
    script = (
        "import sys; sys.modules['numba'] = None\n"
        "import numpy, torch\n"
        "from softpool.cpu import engine\n"
        "from softpool_cli.pixels import uint8_engine as fast_uint8\n"
        "x = torch.randn(1, 1, 4, 4)\n"
        "assert not engine.supports(x)\n"
        "pixels = numpy.zeros((4, 4, 3), numpy.uint8)\n"
        "assert not fast_uint8.supports(pixels)\n"
        "assert fast_uint8.pool_uint8_or_none(pixels, (2, 2), None, 'soft', 1.0, False) is None\n"
    )
    subprocess.run([sys.executable, "-c", script], check=True)
