"""The pooling step shared by the image and video commands: pixels in, pixels out.

Pixels are pooled the way a CNN sees them. Each colour channel is normalised as
torchvision's ImageNet models expect, ``x = (p / maxval - mean_c) / std_c``,
pooled, and mapped back to the input's integer type with rounding and clipping.
For SoftPool this normalisation is what sets the look: SoftPool ignores a shift
of its input but not a scale, so β = 1 on values of spread ``std_c`` is the
paper's published setting. Max and average pooling do not depend on it and run
on the pixel values directly.

Choices where the paper is silent:

- Gray channels use the mean of the three ImageNet statistics (mean 0.449, std 0.226).
- Alpha is average-pooled whatever the method: it is coverage, and averaging
  keeps the covered area of every window (SoftPool or max pooling would fatten
  opaque shapes). Colour channels are pooled on their own, not weighted by alpha.

:func:`pool_array` is the one entry point; it is also where a faster engine for
a given dtype and device plugs in.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from softpool_cli.errors import SoftpoolError

if TYPE_CHECKING:
    import torch

METHODS = ("soft", "max", "avg")
DEVICES = ("auto", "cpu", "cuda")

# torchvision's ImageNet statistics, per RGB channel.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
GRAY_MEAN = sum(IMAGENET_MEAN) / 3
GRAY_STD = sum(IMAGENET_STD) / 3


class DeviceUnavailableError(SoftpoolError):
    """``--device cuda`` was asked for where PyTorch sees no CUDA GPU (a one-line CLI error)."""


def resolve_device(device: str) -> str:
    """Map ``"auto"`` to ``"cuda"`` when a CUDA GPU is available, else ``"cpu"``.

    ``"auto"`` settles on the CPU without importing PyTorch when no NVIDIA driver is
    visible: the import costs about 2 s and 250 MB, more than pooling a photo or a short
    clip with the 8-bit engine, which needs no PyTorch.

    Raises:
        DeviceUnavailableError: ``"cuda"`` without a usable GPU.
        ValueError: an unknown device name.
    """
    if device not in DEVICES:
        raise ValueError(f"device must be one of {', '.join(DEVICES)}, got {device!r}")
    if device == "cpu" or (device == "auto" and not _may_have_cuda()):
        return "cpu"
    import torch

    available = torch.cuda.is_available()
    if device == "cuda" and not available:
        raise DeviceUnavailableError(
            "--device cuda: no CUDA GPU is available to PyTorch (use --device cpu or auto)"
        )
    return "cuda" if available else "cpu"


def _may_have_cuda() -> bool:
    """False when no NVIDIA driver is visible (Linux only; elsewhere PyTorch decides)."""
    import os
    import sys

    if not sys.platform.startswith("linux"):
        return True
    # The driver's /proc entry and device nodes; /dev/dxg is CUDA under WSL 2.
    return any(os.path.exists(path) for path in ("/proc/driver/nvidia/version", "/dev/nvidiactl", "/dev/dxg"))


def channel_statistics(channels: int) -> tuple[tuple[float, ...], tuple[float, ...], bool]:
    """Normalisation mean and std of the colour channels, and whether the last channel is alpha.

    Args:
        channels: 1 (gray), 2 (gray + alpha), 3 (RGB) or 4 (RGBA).
    """
    if channels in (1, 2):
        return (GRAY_MEAN,), (GRAY_STD,), channels == 2
    if channels in (3, 4):
        return IMAGENET_MEAN, IMAGENET_STD, channels == 4
    raise ValueError(f"expected 1 to 4 channels (gray, gray + alpha, RGB, RGBA), got {channels}")


def pooled_size(size: int, kernel: int, stride: int, ceil_mode: bool = False) -> int:
    """Output length along one dimension: max pooling's rule with no padding.

    With ``ceil_mode`` a last, partial window is kept (it pools the pixels that exist).
    Returns 0 when the kernel is longer than the input.
    """
    if kernel > size:
        return 0
    span = size - kernel
    if not ceil_mode:
        return span // stride + 1
    count = -(-span // stride) + 1
    # As in max pooling, a window that would start past the last pixel is not made.
    return count - 1 if (count - 1) * stride >= size else count


def pooled_shape(
    sizes: Sequence[int], kernel: Sequence[int], stride: Sequence[int] | None = None, ceil_mode: bool = False
) -> tuple[int, ...]:
    """Output sizes for input ``sizes`` (e.g. (H, W) or (T, H, W)); a 0 means the kernel does not fit."""
    stride = kernel if stride is None else stride
    return tuple(pooled_size(n, k, s, ceil_mode) for n, k, s in zip(sizes, kernel, stride))


def _check_arguments(
    pixels: np.ndarray, kernel: Sequence[int], stride: Sequence[int], method: str, beta: float, ceil_mode: bool
) -> None:
    if pixels.dtype not in (np.uint8, np.uint16):
        raise TypeError(f"expected uint8 or uint16 pixels, got {pixels.dtype}")
    if pixels.ndim not in (2, 3, 4):
        raise ValueError(f"expected (H, W), (H, W, C) or (T, H, W, C) pixels, got shape {pixels.shape}")
    rank = 3 if pixels.ndim == 4 else 2
    if len(kernel) != rank or len(stride) != rank:
        raise ValueError(
            f"expected a kernel and stride of {rank} sizes for shape {pixels.shape}, got {kernel} and {stride}"
        )
    if min(*kernel, *stride) < 1:
        raise ValueError(f"kernel and stride must be positive, got {kernel} and {stride}")
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    if not (math.isfinite(beta) and beta >= 0):
        raise ValueError(f"beta must be finite and >= 0, got {beta}")
    spatial = pixels.shape[:rank]
    if 0 in pooled_shape(spatial, kernel, stride, ceil_mode):
        raise ValueError(f"kernel {kernel} is larger than the input {spatial}")


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
    """Pool an image or a chunk of video frames, keeping the dtype.

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
    kernel = tuple(int(k) for k in kernel)
    stride = kernel if stride is None else tuple(int(s) for s in stride)
    _check_arguments(pixels, kernel, stride, method, beta, ceil_mode)
    if device == "cpu":
        # uint8 SoftPool and average pooling on CPU: the compiled 8-bit engine (None where it does not apply).
        from softpool_cli.pixels.uint8_engine import pool_uint8_or_none

        pooled = pool_uint8_or_none(pixels, kernel, stride, method, beta, ceil_mode)
        if pooled is not None:
            return pooled
    return _pool_with_torch(pixels, kernel, stride, method, beta, ceil_mode, device)


def _pool_with_torch(
    pixels: np.ndarray,
    kernel: tuple[int, ...],
    stride: tuple[int, ...],
    method: str,
    beta: float,
    ceil_mode: bool,
    device: str,
) -> np.ndarray:
    import torch

    is_image = pixels.ndim in (2, 3)
    layout = pixels[..., None] if pixels.ndim == 2 else pixels  # (..., C)
    maxval = float(np.iinfo(pixels.dtype).max)
    mean, std, has_alpha = channel_statistics(layout.shape[-1])
    colours = len(mean)

    # PyTorch wants a writable array (decoders may hand out read-only views): copy only then.
    samples = torch.from_numpy(np.require(layout, requirements=["C", "W"])).to(device)
    if samples.dtype == torch.uint16:
        samples = samples.to(torch.int32)  # PyTorch has few kernels for uint16
    # Transposing the integers before converting is half the memory traffic of the other order.
    samples = samples.unsqueeze(0).movedim(-1, 1).contiguous().to(torch.float32)  # (1, C, H, W) or (1, C, T, H, W)

    colour = samples[:, :colours]
    if method == "soft":
        shape = (1, colours) + (1,) * (samples.dim() - 2)

        def per_channel(values: list[float]) -> torch.Tensor:
            return torch.tensor(values, dtype=torch.float32, device=device).view(shape)

        # (p / maxval - mean) / std and its inverse, each as one multiply-add pass.
        normalised = torch.addcmul(
            per_channel([-m / s for m, s in zip(mean, std)]), colour, per_channel([1 / (maxval * s) for s in std])
        )
        pooled = _soft_pool(normalised, kernel, stride, ceil_mode, beta, is_image)
        pooled = torch.addcmul(per_channel([m * maxval for m in mean]), pooled, per_channel([s * maxval for s in std]))
    else:
        pooled = _plain_pool(colour, kernel, stride, ceil_mode, method, is_image)
    if has_alpha:
        alpha = _plain_pool(samples[:, colours:], kernel, stride, ceil_mode, "avg", is_image)
        pooled = torch.cat([pooled, alpha], dim=1)

    result = pooled.round_().clamp_(0, maxval).movedim(1, -1).squeeze(0).contiguous()  # (H', W', C) or (T', H', W', C)
    if pixels.dtype == np.uint8:
        result = result.to("cpu", torch.uint8).numpy()
    else:
        result = result.to("cpu", torch.int32).numpy().astype(np.uint16)
    return result[..., 0] if pixels.ndim == 2 else result


def _soft_pool(
    x: torch.Tensor, kernel: tuple[int, ...], stride: tuple[int, ...], ceil_mode: bool, beta: float, is_image: bool
) -> torch.Tensor:
    from softpool import soft_pool2d, soft_pool3d

    pool = soft_pool2d if is_image else soft_pool3d
    return pool(x, kernel, stride, ceil_mode=ceil_mode, beta=beta)


def _plain_pool(
    x: torch.Tensor, kernel: tuple[int, ...], stride: tuple[int, ...], ceil_mode: bool, method: str, is_image: bool
) -> torch.Tensor:
    import torch.nn.functional as F

    if method == "max":
        pool = F.max_pool2d if is_image else F.max_pool3d
        return pool(x, kernel, stride, ceil_mode=ceil_mode)
    pool = F.avg_pool2d if is_image else F.avg_pool3d
    # No padding, so this only matters for ceil_mode's partial windows: divide by the pixels that exist.
    return pool(x, kernel, stride, ceil_mode=ceil_mode, count_include_pad=False)
