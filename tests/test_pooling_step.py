"""The media pooling step (`softpool_cli.pixels.pool`) against independent computations.

SoftPool results are checked against the float64 loop reference of tests/reference.py,
with the ImageNet normalisation written out here; max and average pooling against
NumPy window reductions.
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from softpool_cli.pixels.pool import DeviceUnavailableError, pool_array, pooled_shape, resolve_device

from reference import soft_pool_reference

MEAN_RGB = np.array([0.485, 0.456, 0.406])
STD_RGB = np.array([0.229, 0.224, 0.225])
MEAN_GRAY = np.array([MEAN_RGB.mean()])  # the documented gray statistics: the mean of the three
STD_GRAY = np.array([STD_RGB.mean()])


def random_pixels(shape: tuple[int, ...], dtype=np.uint8, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, np.iinfo(dtype).max, size=shape, endpoint=True, dtype=dtype)


def expected_soft(pixels: np.ndarray, kernel, stride, beta=1.0, ceil_mode=False) -> np.ndarray:
    """SoftPool of (..., C) pixels by the loop reference, unrounded: colour normalised, alpha averaged."""
    layout = pixels[..., None] if pixels.ndim == 2 else pixels
    channels = layout.shape[-1]
    colours = 1 if channels <= 2 else 3
    mean, std = (MEAN_GRAY, STD_GRAY) if colours == 1 else (MEAN_RGB, STD_RGB)
    maxval = np.iinfo(pixels.dtype).max
    values = torch.from_numpy(layout.astype(np.float64)).movedim(-1, 0).unsqueeze(0)  # (1, C, *spatial)
    spatial_rank = values.dim() - 2
    stats = (1, colours) + (1,) * spatial_rank
    mean_t = torch.from_numpy(mean).view(stats)
    std_t = torch.from_numpy(std).view(stats)
    normalised = (values[:, :colours] / maxval - mean_t) / std_t
    pooled = (soft_pool_reference(normalised, kernel, stride, 0, ceil_mode, beta) * std_t + mean_t) * maxval
    if channels in (2, 4):
        alpha = values[:, colours:]
        # Average pooling by the reference too: beta = 0 makes every weight equal.
        pooled = torch.cat([pooled, soft_pool_reference(alpha, kernel, stride, 0, ceil_mode, 0.0)], dim=1)
    result = pooled.clamp(0, maxval).squeeze(0).movedim(0, -1).numpy()
    return result[..., 0] if pixels.ndim == 2 else result


def assert_rounds(actual: np.ndarray, expected: np.ndarray, dtype, what: str) -> None:
    """``actual`` is ``expected`` (float64) rounded, up to float32 error (ties may go either way)."""
    assert actual.dtype == dtype, f"{what}: dtype {actual.dtype} != {dtype}"
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != {expected.shape}"
    error = np.abs(actual.astype(np.float64) - expected)
    tolerance = 0.5 + 1e-6 * np.iinfo(dtype).max
    assert error.max() <= tolerance, f"{what}: {int((error > tolerance).sum())} pixels off, worst by {error.max():.4f}"


def window_reduce(pixels: np.ndarray, k: int, reduce) -> np.ndarray:
    """Non-overlapping k x k windows of (H, W, C) reduced by NumPy (floor mode)."""
    height, width = (pixels.shape[0] // k) * k, (pixels.shape[1] // k) * k
    blocks = pixels[:height, :width].reshape(height // k, k, width // k, k, -1)
    return reduce(blocks, axis=(1, 3))


class TestSoftPoolStep:
    @pytest.mark.parametrize(
        "shape",
        [
            (9, 11, 3),  # RGB with odd sizes (last row and column dropped)
            (8, 10),  # 2-D gray
            (8, 10, 1),  # gray with a channel axis
            (8, 10, 2),  # gray + alpha
            (8, 10, 4),  # RGBA
        ],
    )
    def test_matches_reference_uint8(self, shape):
        pixels = random_pixels(shape)
        result = pool_array(pixels, (2, 2))
        assert_rounds(result, expected_soft(pixels, (2, 2), (2, 2)), np.uint8, f"shape {shape}")

    def test_matches_reference_uint16(self):
        pixels = random_pixels((8, 6, 3), np.uint16, seed=1)
        result = pool_array(pixels, (2, 2))
        assert_rounds(result, expected_soft(pixels, (2, 2), (2, 2)), np.uint16, "uint16 RGB")

    @pytest.mark.parametrize("beta", [0.0, 0.5, 4.0])
    def test_beta(self, beta):
        pixels = random_pixels((8, 8, 3), seed=2)
        result = pool_array(pixels, (2, 2), beta=beta)
        assert_rounds(result, expected_soft(pixels, (2, 2), (2, 2), beta=beta), np.uint8, f"beta {beta}")

    def test_overlapping_non_square_windows_and_ceil_mode(self):
        pixels = random_pixels((10, 13, 3), seed=3)
        result = pool_array(pixels, (3, 2), (2, 3), ceil_mode=True)
        expected = expected_soft(pixels, (3, 2), (2, 3), ceil_mode=True)
        assert_rounds(result, expected, np.uint8, "kernel 3x2, stride 2x3, ceil_mode")

    def test_frames_pool_in_time_too(self):
        frames = random_pixels((5, 6, 8, 3), seed=4)  # (T, H, W, C)
        result = pool_array(frames, (2, 2, 2))
        assert result.shape == (2, 3, 4, 3)
        assert_rounds(result, expected_soft(frames, (2, 2, 2), (2, 2, 2)), np.uint8, "3-D")

    def test_read_only_input(self):
        pixels = random_pixels((6, 6, 3))
        pixels.flags.writeable = False
        assert_rounds(pool_array(pixels, (2, 2)), expected_soft(pixels, (2, 2), (2, 2)), np.uint8, "read-only")


class TestMaxAndAverage:
    def test_max_is_the_window_maximum(self):
        pixels = random_pixels((9, 12, 3), seed=5)
        assert np.array_equal(pool_array(pixels, (3, 3), method="max"), window_reduce(pixels, 3, np.max))

    def test_avg_is_the_rounded_window_mean(self):
        pixels = random_pixels((8, 12, 3), np.uint16, seed=6)
        expected = np.rint(window_reduce(pixels.astype(np.float64), 2, np.mean)).astype(np.uint16)
        actual = pool_array(pixels, (2, 2), method="avg")
        assert np.abs(actual.astype(np.int64) - expected).max() <= 1

    @pytest.mark.parametrize("shape", [(64, 96, 3), (4, 32, 48, 3)])  # an image; frames (2x2x2 windows)
    def test_avg_of_8bit_pixels_is_the_exactly_rounded_mean(self, shape):
        # A quarter of 2x2 means (an eighth of 2x2x2 ones) end in .5: they round to even, like
        # np.rint, with no slack. An engine that divides through an approximate reciprocal
        # (fast-math) rounds some of them the other way.
        pixels = random_pixels(shape, seed=8)
        kernel = (2,) * (len(shape) - 1)
        blocks = pixels.astype(np.float64)
        for axis in range(len(kernel)):
            blocks = (blocks.take(range(0, blocks.shape[axis], 2), axis) + blocks.take(range(1, blocks.shape[axis], 2), axis))
        expected = np.rint(blocks / 2 ** len(kernel)).astype(np.uint8)
        assert np.array_equal(pool_array(pixels, kernel, method="avg"), expected)
        assert np.array_equal(pool_array(pixels, kernel, method="soft", beta=0.0), expected)

    @pytest.mark.parametrize("method", ["soft", "max", "avg"])
    def test_alpha_is_averaged_for_every_method(self, method):
        pixels = random_pixels((6, 8, 4), seed=7)
        result = pool_array(pixels, (2, 2), method=method)
        alpha_mean = window_reduce(pixels[..., 3:].astype(np.float64), 2, np.mean)
        assert np.abs(result[..., 3:].astype(np.int64) - np.rint(alpha_mean)).max() <= 1


class TestShapesAndErrors:
    @pytest.mark.parametrize("size", [5, 6, 7, 8])
    @pytest.mark.parametrize(("kernel", "stride"), [(2, 2), (3, 2), (1, 3), (3, 3), (4, 1)])
    @pytest.mark.parametrize("ceil_mode", [False, True])
    def test_pooled_shape_is_max_pooling_shape(self, size, kernel, stride, ceil_mode):
        expected = F.max_pool1d(torch.zeros(1, 1, size), kernel, stride, ceil_mode=ceil_mode).shape[-1]
        assert pooled_shape((size,), (kernel,), (stride,), ceil_mode) == (expected,)

    def test_kernel_larger_than_input(self):
        assert pooled_shape((3, 9), (4, 4)) == (0, 2)
        with pytest.raises(ValueError, match="larger than the input"):
            pool_array(random_pixels((3, 9, 3)), (4, 4))

    @pytest.mark.parametrize(
        ("pixels", "kwargs", "error", "match"),
        [
            (np.zeros((4, 4, 3), np.float32), {}, TypeError, "uint8 or uint16"),
            (np.zeros((4, 4, 5), np.uint8), {}, ValueError, "1 to 4 channels"),
            (np.zeros((4, 4, 3), np.uint8), {"method": "median"}, ValueError, "method"),
            (np.zeros((4, 4, 3), np.uint8), {"beta": -1.0}, ValueError, "beta"),
            (np.zeros((2, 4, 4, 3), np.uint8), {}, ValueError, "3 sizes"),
        ],
    )
    def test_bad_arguments(self, pixels, kwargs, error, match):
        with pytest.raises(error, match=match):
            pool_array(pixels, (2, 2), **kwargs)

    def test_devices(self):
        assert resolve_device("cpu") == "cpu"
        assert resolve_device("auto") == ("cuda" if torch.cuda.is_available() else "cpu")
        if not torch.cuda.is_available():
            with pytest.raises(DeviceUnavailableError, match="no CUDA GPU"):
                resolve_device("cuda")

    def test_auto_without_a_driver_does_not_import_torch(self):
        code = (
            "import sys\n"
            "from softpool_cli.pixels import pool as pooling\n"
            "pooling._may_have_cuda = lambda: False  # as on a machine without an NVIDIA driver\n"
            "assert pooling.resolve_device('auto') == 'cpu'\n"
            "assert 'torch' not in sys.modules\n"
        )
        subprocess.run([sys.executable, "-c", code], check=True)
