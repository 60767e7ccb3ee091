"""The CPU pixel engine (`softpool_cli.pixels.engine`) against independent float64 computations.

Expected values are computed here in float64 from the definition: normalise with the ImageNet
statistics, take each window's softmax-weighted mean (its maximum subtracted), map back. The
engine must round them correctly: |got - exact| <= 0.5 plus float32's error, so at most one
level from the float64 result rounded, ties either way. Each case names the kernel it runs
(see the engine's docstring): the whole-window kernels ("small" one-pass, "separable"), the
any-window kernel ("general", float64 tables), the window-maximum kernel ("max-relative") and
max pooling ("max").
"""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("numba")

from softpool_cli.pixels import engine as engine_module  # noqa: E402
from softpool_cli.pixels import native  # noqa: E402
from softpool_cli.pixels.pool import pool_windows_array  # noqa: E402
from softpool_cli.pixels.windows import AxisWindows  # noqa: E402

STD_RGB = (0.229, 0.224, 0.225)
STD_GRAY = (sum(STD_RGB) / 3,)
# float32 accumulation and the weight series stay far below this (in levels).
ROUNDING_SLACK = {np.uint8: 2e-3, np.uint16: 1e-6 * 65535}


def random_pixels(shape: tuple[int, ...], dtype=np.uint8, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, np.iinfo(dtype).max, size=shape, endpoint=True, dtype=dtype)


def exact(pixels: np.ndarray, windows, method: str, beta: float) -> np.ndarray:
    """Float64 pooling of (..., C) pixels over per-axis windows, window by window."""
    layout = pixels[..., None] if pixels.ndim == 2 else pixels
    channels = layout.shape[-1]
    colours = 1 if channels <= 2 else 3
    std = STD_GRAY if colours == 1 else STD_RGB
    maxval = np.iinfo(pixels.dtype).max
    out = np.empty((*(w.count for w in windows), channels))
    for index in itertools.product(*(range(w.count) for w in windows)):
        region = tuple(slice(w.starts[i], w.ends[i]) for w, i in zip(windows, index))
        block = layout[region].reshape(-1, channels).astype(np.float64)
        for c in range(channels):
            values = block[:, c]
            if c >= colours or method == "avg":
                out[index + (c,)] = values.mean()
            elif method == "max":
                out[index + (c,)] = values.max()
            else:
                x = beta * values / (maxval * std[c])  # the mean cancels out
                weights = np.exp(x - x.max())
                out[index + (c,)] = (weights * values).sum() / weights.sum()
    return out[..., 0] if pixels.ndim == 2 else out


def assert_rounded(actual: np.ndarray, expected: np.ndarray, what: str) -> None:
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != {expected.shape}"
    error = np.abs(actual.astype(np.float64) - expected)
    slack = ROUNDING_SLACK[actual.dtype.type]
    wrong = error > 0.5 + slack
    if wrong.any():
        first = np.argwhere(wrong)[:3].tolist()
        raise AssertionError(f"{what}: {int(wrong.sum())} values off by up to {error.max():.4f}, first at {first}")


def regular(shape, kernel, stride=None, ceil_mode=False):
    stride = kernel if stride is None else stride
    return [AxisWindows.regular(n, k, s, ceil_mode) for n, k, s in zip(shape, kernel, stride)]


class TestAgainstFloat64:
    @pytest.mark.parametrize(
        "shape, kernel, stride, beta, ceil_mode",
        [
            ((37, 53, 3), (2, 2), None, 1.0, False),  # small: odd sizes drop the last row/column
            ((17, 23, 3), (2, 2), None, 1.0, True),  # small + general for ceil_mode's partial windows
            ((37, 53, 3), (3, 3), (2, 2), 1.0, False),  # separable, overlapping windows
            ((37, 53), (2, 2), None, 1.0, False),  # small, gray (H, W)
            ((17, 23, 2), (2, 2), None, 1.0, True),  # small + general, gray + alpha
            ((17, 23, 4), (3, 3), (2, 2), 1.0, True),  # separable + general, RGBA
            ((37, 53, 3), (2, 2), None, 0.0, False),  # small, beta 0: average pooling
            ((37, 53, 3), (2, 2), None, 40.0, False),  # general: beyond float32's weights relative to white
            ((37, 53, 3), (2, 2), None, 300.0, False),  # max-relative: beyond float64's
            ((17, 19, 3), (10, 10), (3, 3), 1.0, True),  # general: wider than the separable kernel unrolls
            ((17, 23, 3), (1, 2), (2, 3), 1.0, True),  # small + general: gaps between windows, ceil_mode
            ((1, 1, 3), (1, 1), None, 1.0, False),  # one pixel
            ((2, 2, 3), (2, 2), None, 1.0, False),  # kernel as large as the image
        ],
    )
    def test_image_soft(self, shape, kernel, stride, beta, ceil_mode):
        pixels = random_pixels(shape)
        windows = regular(shape[:2], kernel, stride, ceil_mode)
        actual = pool_windows_array(pixels, windows, method="soft", beta=beta)
        assert_rounded(actual, exact(pixels, windows, "soft", beta), f"{shape} {kernel} {stride} beta {beta}")

    @pytest.mark.parametrize(
        "shape, kernel, stride, ceil_mode",
        [
            ((4, 9, 11, 3), (2, 2, 2), None, False),  # separable (8 samples x 3 channels)
            ((5, 9, 11, 3), (2, 2, 2), None, True),  # separable + general: partial windows in time and space
            ((4, 9, 11, 1), (2, 2, 2), None, False),  # small, gray
            ((5, 9, 11, 4), (3, 2, 2), (2, 1, 2), True),  # separable + general, RGBA, overlap in H
        ],
    )
    def test_frames_soft(self, shape, kernel, stride, ceil_mode):
        pixels = random_pixels(shape, seed=1)
        windows = regular(shape[:3], kernel, stride, ceil_mode)
        actual = pool_windows_array(pixels, windows, method="soft")
        assert_rounded(actual, exact(pixels, windows, "soft", 1.0), f"{shape} {kernel}")

    @pytest.mark.parametrize("method", ["soft", "avg", "max"])
    @pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
    @pytest.mark.parametrize(
        "geometry",
        [
            "adaptive",  # general (soft, avg) / max: uneven, overlapping windows
            "reversed",  # general / max: windows counted from the far end (a flipped picture)
            "tiles",  # small (8-bit soft, avg) or general (16-bit) / max
        ],
    )
    def test_any_windows(self, method, dtype, geometry):
        pixels = random_pixels((19, 26, 4), dtype, seed=2)  # RGBA: alpha is averaged for every method
        if geometry == "adaptive":
            windows = [AxisWindows.adaptive(19, 7), AxisWindows.adaptive(26, 9)]
        elif geometry == "reversed":
            windows = [w.reversed() for w in regular((19, 26), (3, 2), (2, 2), False)]
        else:
            windows = regular((19, 26), (2, 2))
        actual = pool_windows_array(pixels, windows, method=method)
        expected = exact(pixels, windows, method, 1.0)
        if method == "max":
            colour_exact = np.array_equal(actual[..., :3], expected[..., :3])
            assert colour_exact, f"{geometry}: max pooling is not the window maximum"
        assert_rounded(actual, expected, f"{dtype.__name__} {geometry} {method}")

    def test_avg_rounds_exact_halves_to_even(self):
        # A quarter of 2x2 means of integers end in .5: exactly representable, so no slack.
        pixels = random_pixels((64, 96, 3), seed=8)
        windows = regular((64, 96), (2, 2))
        blocks = pixels.astype(np.float64).reshape(32, 2, 48, 2, 3).mean(axis=(1, 3))
        assert np.array_equal(pool_windows_array(pixels, windows, method="avg"), np.rint(blocks))

    def test_real_image(self):
        data = pytest.importorskip("skimage.data")
        pixels = data.astronaut()[:301, :299]  # sizes 2 does not divide
        windows = regular(pixels.shape[:2], (2, 2))
        assert_rounded(pool_windows_array(pixels, windows), exact(pixels, windows, "soft", 1.0), "astronaut")


class TestCalls:
    def test_thread_count_does_not_change_the_result(self, monkeypatch):
        pixels = random_pixels((240, 322, 3), seed=2)
        windows = regular(pixels.shape[:2], (2, 2))
        monkeypatch.setattr(engine_module, "threads_budget", 1)
        one = pool_windows_array(pixels, windows)
        monkeypatch.setattr(engine_module, "threads_budget", 2)
        assert np.array_equal(one, pool_windows_array(pixels, windows))

    def test_strided_input(self):
        pixels = random_pixels((40, 60, 3), seed=3)
        view = pixels[::-1, ::2]  # (40, 30, 3): negative and doubled strides
        windows = regular(view.shape[:2], (2, 2))
        actual = pool_windows_array(view, windows)
        assert_rounded(actual, exact(np.ascontiguousarray(view), windows, "soft", 1.0), "strided view")

    def test_whole_window_and_general_kernels_agree(self, monkeypatch):
        pixels = random_pixels((33, 47, 3), seed=4)
        windows = regular(pixels.shape[:2], (3, 2), None, True)
        fast = pool_windows_array(pixels, windows)
        monkeypatch.setattr(engine_module, "FLOAT32_WEIGHT_REACH", -1.0)  # every window to the general kernel
        general = pool_windows_array(pixels, windows)
        assert np.abs(fast.astype(int) - general).max() <= 1


class TestCompiledCopies:
    @pytest.mark.parametrize("linker", ["cc", "none"])
    def test_a_new_process_loads_them_without_numba(self, tmp_path, linker):
        """With a C compiler to link with, the copy is a shared library: the next process
        loads it without Numba or LLVM. Without one, an object file that llvmlite loads."""
        if linker == "cc" and shutil.which("cc") is None:
            pytest.skip("no C compiler here")
        script = (
            "import sys, numpy\n"
            "from softpool_cli.pixels.pool import pool_array\n"
            "pixels = numpy.random.default_rng(0).integers(0, 256, (8, 10, 3), dtype=numpy.uint8)\n"
            "print(pool_array(pixels, (2, 2)).sum(), 'numba' in sys.modules, 'llvmlite' in sys.modules)\n"
        )
        environment = {**os.environ, "SOFTPOOL_CACHE_DIR": str(tmp_path), "CC": "cc" if linker == "cc" else "no-such-compiler"}
        first = subprocess.run([sys.executable, "-c", script], env=environment, capture_output=True, text=True)
        second = subprocess.run([sys.executable, "-c", script], env=environment, capture_output=True, text=True)
        assert first.returncode == 0 and second.returncode == 0, first.stderr + second.stderr
        total, numba_imported, _ = first.stdout.split()
        assert numba_imported == "True"  # the first run compiled
        # The second loaded the copy: the same result, without Numba, and without LLVM where linked.
        assert second.stdout.split() == [total, "False", "False" if linker == "cc" else "True"]
        assert bool(list(tmp_path.glob("*/*.so"))) == (linker == "cc")

    def test_a_kernel_from_numbas_own_cache_leaves_a_usable_copy(self, tmp_path):
        # A process with Numba loaded gets the kernel from Numba's cache, without machine code
        # to save; it must not write an empty copy, and a process without Numba must then
        # compile one that the next process loads.
        environment = {**os.environ, "SOFTPOOL_CACHE_DIR": str(tmp_path / "ours"), "NUMBA_CACHE_DIR": str(tmp_path / "numba")}
        with_numba = "import numba\nfrom softpool_cli.pixels import native\nnative.kernel('general_max', 'uint8')\n"
        without = "import sys\nfrom softpool_cli.pixels import native\nnative.kernel('general_max', 'uint8')\nprint('numba' in sys.modules)\n"

        def run(script: str) -> str:
            done = subprocess.run([sys.executable, "-c", script], env=environment, capture_output=True, text=True)
            assert done.returncode == 0, done.stderr
            return done.stdout.strip()

        run(with_numba)  # fills Numba's cache (and ours)
        shutil.rmtree(tmp_path / "ours")
        run(with_numba)  # from Numba's cache
        assert run(without) == "True"  # nothing usable on disk: compiled
        assert run(without) == "False"  # and saved

    def test_a_damaged_shared_library_falls_back_to_the_object_file(self, tmp_path):
        if shutil.which("cc") is None:
            pytest.skip("no C compiler here")
        environment = {**os.environ, "SOFTPOOL_CACHE_DIR": str(tmp_path), "CC": "cc"}
        script = (
            "import sys\nfrom softpool_cli.pixels import native\nnative.kernel('general_max', 'uint8')\n"
            "print('numba' in sys.modules, 'llvmlite' in sys.modules)\n"
        )

        def run() -> list[str]:
            done = subprocess.run([sys.executable, "-c", script], env=environment, capture_output=True, text=True)
            assert done.returncode == 0, done.stderr
            return done.stdout.split()

        assert run() == ["True", "True"]  # compiled
        (library,) = tmp_path.glob("*/*.so")
        library.write_bytes(b"not a shared library")
        assert run() == ["False", "True"]  # loaded from the object file by llvmlite, no Numba

    def test_an_unusable_copy_is_compiled_again(self, tmp_path, monkeypatch):
        monkeypatch.setenv("SOFTPOOL_CACHE_DIR", str(tmp_path))
        native._folder.cache_clear()
        native.kernel.cache_clear()
        try:
            compiled = native.kernel("general_max", "uint8")
            folder = native._folder()
            for record in folder.glob("*.json"):
                record.write_text('{"symbol": "missing", "undefined": ["no_such_symbol_anywhere"]}')
            native.kernel.cache_clear()
            again = native.kernel("general_max", "uint8")
            assert again is not None and compiled is not None
            pixels = random_pixels((6, 6, 3))
            windows = regular((6, 6), (2, 2))
            expected = exact(pixels, windows, "max", 1.0)
            assert np.array_equal(pool_windows_array(pixels, windows, method="max"), expected)
        finally:
            native._folder.cache_clear()
            native.kernel.cache_clear()


@pytest.mark.parametrize(
    "pixels, kernel, error, message",
    [
        (random_pixels((4, 4, 3)), (5, 5), ValueError, "larger than the input"),
        (random_pixels((4, 4, 3)), (2, 2, 2), ValueError, "kernel and stride of 2 sizes"),
        (random_pixels((4, 4, 3)), (0, 2), ValueError, "kernel and stride must be positive"),
        (np.zeros((4, 4, 3), np.float32), (2, 2), TypeError, "uint8 or uint16"),
    ],
)
def test_bad_arguments(pixels, kernel, error, message):
    from softpool_cli.pixels.pool import pool_array

    with pytest.raises(error, match=message):
        pool_array(pixels, kernel)
