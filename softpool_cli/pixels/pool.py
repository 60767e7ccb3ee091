"""The pooling step shared by every command: pixels in, pixels out, on the chosen device.

:func:`pool_array` (a kernel and stride) and :func:`pool_windows_array` (any per-axis windows)
are the one entry point. On the CPU they run the engine (`softpool_cli.pixels.engine`); on a
CUDA GPU, PyTorch and the library's Triton kernels (`softpool_cli.pixels.torch_pixels`).
Pixels are normalised as `softpool_cli.pixels.normalisation` says.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from softpool._geometry import pooled_length
from softpool_cli.pixels.devices import DEVICES, DeviceUnavailableError, resolve_device  # noqa: F401 - re-exported
from softpool_cli.pixels.normalisation import channel_statistics
from softpool_cli.pixels.windows import AxisWindows

METHODS = ("soft", "max", "avg")


def pooled_size(size: int, kernel: int, stride: int, ceil_mode: bool = False) -> int:
    """Output length along one dimension: max pooling's (`softpool._geometry.pooled_length`),
    and 0 when the kernel is longer than the input (the commands refuse such a window)."""
    return 0 if kernel > size else pooled_length(size, kernel, stride, 0, ceil_mode)


def pooled_shape(
    sizes: Sequence[int], kernel: Sequence[int], stride: Sequence[int] | None = None, ceil_mode: bool = False
) -> tuple[int, ...]:
    """Output sizes for input ``sizes`` (e.g. (H, W) or (T, H, W)); a 0 means the kernel does not fit."""
    stride = kernel if stride is None else stride
    return tuple(pooled_size(n, k, s, ceil_mode) for n, k, s in zip(sizes, kernel, stride))


def _check_pixels(pixels: np.ndarray) -> None:
    if pixels.dtype not in (np.uint8, np.uint16):
        raise TypeError(f"expected uint8 or uint16 pixels, got {pixels.dtype}")
    if pixels.ndim not in (2, 3, 4):
        raise ValueError(f"expected (H, W), (H, W, C) or (T, H, W, C) pixels, got shape {pixels.shape}")


def _check_method(method: str, beta: float) -> None:
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    if not (math.isfinite(beta) and beta >= 0):
        raise ValueError(f"beta must be finite and >= 0, got {beta}")


def pool_array(
    pixels: np.ndarray,
    kernel: Sequence[int],
    stride: Sequence[int] | None = None,
    *,
    method: str = "soft",
    beta: float = 1.0,
    ceil_mode: bool = False,
    device: str = "cpu",
) -> np.ndarray:
    """Pool an image or a chunk of video frames with a kernel and stride, keeping the dtype.

    Args:
        pixels: ``(H, W)``, ``(H, W, C)`` (an image) or ``(T, H, W, C)`` (frames),
            uint8 or uint16; C is 1 (gray), 2 (gray + alpha), 3 (RGB) or 4 (RGBA).
        kernel: Window ``(KH, KW)`` for an image, ``(KT, KH, KW)`` for frames.
        stride: Step, same length as ``kernel``; defaults to ``kernel``.
        method: ``"soft"`` (SoftPool), ``"max"`` or ``"avg"``.
        beta: SoftPool's sharpness (0 = average, large = max); unused otherwise.
        ceil_mode: Keep a last, partial window (max pooling's ``ceil_mode``).
        device: ``"cpu"`` or ``"cuda"`` (resolve ``"auto"`` first with :func:`resolve_device`).

    Returns:
        The pooled pixels, same layout and dtype; sizes follow :func:`pooled_shape`.

    Raises:
        TypeError, ValueError: bad arguments, or a kernel larger than the input.
    """
    _check_pixels(pixels)
    rank = 3 if pixels.ndim == 4 else 2
    kernel = tuple(int(k) for k in kernel)
    stride = kernel if stride is None else tuple(int(s) for s in stride)
    if len(kernel) != rank or len(stride) != rank:
        raise ValueError(
            f"expected a kernel and stride of {rank} sizes for shape {pixels.shape}, got {kernel} and {stride}"
        )
    if min(*kernel, *stride) < 1:
        raise ValueError(f"kernel and stride must be positive, got {kernel} and {stride}")
    _check_method(method, beta)
    spatial = pixels.shape[:rank]
    if 0 in pooled_shape(spatial, kernel, stride, ceil_mode):
        raise ValueError(f"kernel {kernel} is larger than the input {spatial}")
    if device != "cpu":
        from softpool_cli.pixels.torch_pixels import pool_with_torch

        return pool_with_torch(pixels, kernel, stride, method, beta, ceil_mode, device)
    windows = [AxisWindows.regular(n, k, s, ceil_mode) for n, k, s in zip(spatial, kernel, stride)]
    return _pool_on_cpu(pixels, windows, method, beta)


def pool_windows_array(
    pixels: np.ndarray, windows: Sequence[AxisWindows], *, method: str = "soft", beta: float = 1.0
) -> np.ndarray:
    """Pool pixels over any windows of each spatial axis on the CPU (see :func:`pool_array`)."""
    _check_pixels(pixels)
    _check_method(method, beta)
    return _pool_on_cpu(pixels, windows, method, beta)


def _pool_on_cpu(pixels: np.ndarray, windows: Sequence[AxisWindows], method: str, beta: float) -> np.ndarray:
    from softpool_cli.pixels.engine import Samples, pool

    layout = pixels[..., None] if pixels.ndim == 2 else pixels  # (..., C)
    _, std, alpha = channel_statistics(layout.shape[-1])
    source_array = np.ascontiguousarray(layout)
    source = Samples(source_array.ctypes.data, _frames_shape(source_array.shape), source_array.dtype.name, source_array)
    result = np.empty((*(along.count for along in windows), layout.shape[-1]), pixels.dtype)
    out = Samples(result.ctypes.data, _frames_shape(result.shape), result.dtype.name, result)
    pool(source, windows, out, method, beta=beta, std=std, alpha=alpha)
    return result[..., 0] if pixels.ndim == 2 else result


def _frames_shape(shape: tuple[int, ...]) -> tuple[int, int, int, int]:
    return tuple(shape) if len(shape) == 4 else (1, *shape)
