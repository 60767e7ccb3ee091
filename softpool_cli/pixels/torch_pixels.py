"""The pooling step on a CUDA GPU: PyTorch and the library's Triton kernels.

The same function as the CPU engine (`softpool_cli.pixels.engine`), computed in float32:
pixels normalised, pooled by `softpool` (SoftPool, max or average pooling over the windows of
a kernel and stride, or adaptive SoftPool for target sizes), mapped back with rounding.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from softpool_cli.pixels.normalisation import channel_statistics

if TYPE_CHECKING:
    import torch


def pool_with_torch(
    pixels: np.ndarray,
    kernel: tuple[int, ...] | None,
    stride: tuple[int, ...] | None,
    method: str,
    beta: float,
    ceil_mode: bool,
    device: str,
    output_size: tuple[int, ...] | None = None,
) -> np.ndarray:
    """Pool (H, W), (H, W, C) or (T, H, W, C) uint8/uint16 pixels with a kernel and stride, or
    to ``output_size`` (adaptive windows) when it is given."""
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
        pooled = _soft_pool(normalised, kernel, stride, ceil_mode, beta, is_image, output_size)
        pooled = torch.addcmul(per_channel([m * maxval for m in mean]), pooled, per_channel([s * maxval for s in std]))
    else:
        pooled = _plain_pool(colour, kernel, stride, ceil_mode, method, is_image, output_size)
    if has_alpha:
        alpha = _plain_pool(samples[:, colours:], kernel, stride, ceil_mode, "avg", is_image, output_size)
        pooled = torch.cat([pooled, alpha], dim=1)

    result = pooled.round_().clamp_(0, maxval).movedim(1, -1).squeeze(0).contiguous()  # (H', W', C) or (T', H', W', C)
    if pixels.dtype == np.uint8:
        result = result.to("cpu", torch.uint8).numpy()
    else:
        result = result.to("cpu", torch.int32).numpy().astype(np.uint16)
    return result[..., 0] if pixels.ndim == 2 else result


def _soft_pool(x, kernel, stride, ceil_mode: bool, beta: float, is_image: bool, output_size) -> torch.Tensor:
    import softpool

    if output_size is not None:
        pool = softpool.adaptive_soft_pool2d if is_image else softpool.adaptive_soft_pool3d
        return pool(x, output_size, beta=beta)
    pool = softpool.soft_pool2d if is_image else softpool.soft_pool3d
    return pool(x, kernel, stride, ceil_mode=ceil_mode, beta=beta)


def _plain_pool(x, kernel, stride, ceil_mode: bool, method: str, is_image: bool, output_size) -> torch.Tensor:
    import torch.nn.functional as F

    if output_size is not None:
        if method == "max":
            return (F.adaptive_max_pool2d if is_image else F.adaptive_max_pool3d)(x, output_size)
        return (F.adaptive_avg_pool2d if is_image else F.adaptive_avg_pool3d)(x, output_size)
    if method == "max":
        pool = F.max_pool2d if is_image else F.max_pool3d
        return pool(x, kernel, stride, ceil_mode=ceil_mode)
    pool = F.avg_pool2d if is_image else F.avg_pool3d
    # No padding, so this only matters for ceil_mode's partial windows: divide by the pixels that exist.
    return pool(x, kernel, stride, ceil_mode=ceil_mode, count_include_pad=False)
