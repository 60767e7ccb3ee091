"""Still images for the CLI tests: generated inputs, decoded outputs, expected pixels."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import torch

from softpool import adaptive_soft_pool2d, soft_pool2d
from softpool_cli.media.compare import BACKGROUND

# torchvision's ImageNet statistics, as softpool_cli.pixels.normalisation's (kept apart on purpose).
MEAN_RGB = np.array([0.485, 0.456, 0.406])
STD_RGB = np.array([0.229, 0.224, 0.225])


def photo(
    height: int, width: int, channels: int = 3, dtype=np.uint8, seed: int = 0, noise: float = 0.15
) -> np.ndarray:
    """A smooth random image with some fine detail (noise), (H, W, C) RGB(A) order."""
    rng = np.random.default_rng(seed)
    coarse = rng.random((max(2, height // 4), max(2, width // 4), channels)).astype(np.float32)
    smooth = cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC).reshape(height, width, channels)
    values = np.clip(smooth + noise * rng.standard_normal((height, width, channels)), 0, 1)
    return np.rint(values * np.iinfo(dtype).max).astype(dtype)


def write_cv2(path: Path, pixels: np.ndarray) -> Path:
    """Write RGB(A) or gray pixels with OpenCV (it keeps 16 bits for PNG and TIFF)."""
    if pixels.ndim == 3 and pixels.shape[2] >= 3:
        pixels = pixels[..., [2, 1, 0, 3][: pixels.shape[2]]]
    assert cv2.imwrite(str(path), pixels)
    return path


def decode_cv2(data: bytes) -> np.ndarray:
    """Decode encoded image bytes as (H, W) or (H, W, C) RGB(A), keeping bit depth."""
    pixels = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    assert pixels is not None, "the bytes do not decode as an image"
    if pixels.ndim == 3 and pixels.shape[2] >= 3:
        pixels = pixels[..., [2, 1, 0, 3][: pixels.shape[2]]]
    return pixels


def read_cv2(path: Path) -> np.ndarray:
    """Decode an output file as (H, W) or (H, W, C) RGB(A), keeping bit depth."""
    return decode_cv2(Path(path).read_bytes())


def _normalised(pixels: np.ndarray):
    """(colour channels normalised (C, H, W) float64, alpha (A, H, W) or None, mean, std, maxval)."""
    layout = pixels[..., None] if pixels.ndim == 2 else pixels
    colours = 1 if layout.shape[2] <= 2 else 3
    mean = MEAN_RGB if colours == 3 else MEAN_RGB.mean(keepdims=True)
    std = STD_RGB if colours == 3 else STD_RGB.mean(keepdims=True)
    maxval = np.iinfo(pixels.dtype).max
    x = torch.from_numpy(layout.astype(np.float64)).permute(2, 0, 1)  # (C, H, W)
    mean_t = torch.from_numpy(mean).view(-1, 1, 1)
    std_t = torch.from_numpy(std).view(-1, 1, 1)
    alpha = x[colours:] if layout.shape[2] in (2, 4) else None
    return (x[:colours] / maxval - mean_t) / std_t, alpha, mean_t, std_t, maxval


def _back(pooled: torch.Tensor, pixels: np.ndarray, maxval: int) -> np.ndarray:
    result = pooled.round().clamp(0, maxval).permute(1, 2, 0).numpy().astype(pixels.dtype)
    return result[..., 0] if pixels.ndim == 2 else result


def library_soft(pixels: np.ndarray, kernel=(2, 2), stride=None, beta=1.0, ceil_mode=False) -> np.ndarray:
    """softpool.soft_pool2d in float64 on ImageNet-normalised colour channels; alpha averaged."""
    colour, alpha, mean, std, maxval = _normalised(pixels)
    pooled = (soft_pool2d(colour, kernel, stride, ceil_mode=ceil_mode, beta=beta) * std + mean) * maxval
    if alpha is not None:
        pooled = torch.cat([pooled, soft_pool2d(alpha, kernel, stride, ceil_mode=ceil_mode, beta=0.0)])
    return _back(pooled, pixels, maxval)


def library_adaptive_soft(pixels: np.ndarray, size: tuple[int, int], beta=1.0) -> np.ndarray:
    """softpool.adaptive_soft_pool2d to ``size`` (height, width), in float64, normalised as above."""
    colour, alpha, mean, std, maxval = _normalised(pixels)
    pooled = (adaptive_soft_pool2d(colour, size, beta=beta) * std + mean) * maxval
    if alpha is not None:
        pooled = torch.cat([pooled, adaptive_soft_pool2d(alpha, size, beta=0.0)])
    return _back(pooled, pixels, maxval)


def assert_close_pixels(actual: np.ndarray, expected: np.ndarray, levels: int = 1) -> None:
    assert actual.dtype == expected.dtype
    assert actual.shape == expected.shape, f"shape {actual.shape} != {expected.shape}"
    difference = np.abs(actual.astype(np.int64) - expected.astype(np.int64))
    assert difference.max() <= levels, f"max difference {difference.max()} at {np.argwhere(difference > levels)[:5].tolist()}"


def background_runs(row: np.ndarray) -> list[tuple[int, int]]:
    """(start, stop) of the runs of non-background pixels along one row of a comparison."""
    content = np.any(row != np.asarray(BACKGROUND, np.uint8), axis=-1).astype(np.int8)
    edges = np.flatnonzero(np.diff(np.concatenate([[0], content, [0]])))
    return list(zip(edges[::2], edges[1::2]))


def panel_widths(comparison: np.ndarray) -> list[int]:
    """Widths of a comparison's panels, along a row just above their bottom edge (the labels
    sit above the panels)."""
    rows = np.flatnonzero(np.any(comparison != np.asarray(BACKGROUND, np.uint8), axis=(1, 2)))
    return [stop - start for start, stop in background_runs(comparison[rows[-1] - 2])]
