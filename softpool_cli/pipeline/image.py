"""One image from decoded pixels to its pooled versions and their comparison.

The steps of ``softpool downsample``, shared with ``softpool gallery``, so that both write the
same pixels.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np


@dataclass
class PooledImage:
    """One image pooled with several methods.

    Attributes:
        results: Method -> pooled pixels (same dtype and channels as the input), in the
            order the methods were given.
        comparison: ``(H, W, 3)`` uint8 RGB: the original, then each result in that order,
            labelled; None when not asked for.
        seconds: Method -> time its pooling took.
    """

    results: dict[str, np.ndarray]
    comparison: np.ndarray | None
    seconds: dict[str, float]


def pool_image(
    pixels: np.ndarray,
    kernel: tuple[int, int],
    stride: tuple[int, int],
    methods: Sequence[str],
    *,
    beta: float = 1.0,
    ceil_mode: bool = False,
    device: str = "cpu",
    compare: bool = True,
) -> PooledImage:
    """Pool a decoded image with each of ``methods`` and, with ``compare``, build the comparison.

    The steps of ``softpool downsample``, shared with ``softpool gallery`` so that both
    write the same pixels.

    Args:
        pixels: ``(H, W)`` or ``(H, W, C)`` uint8/uint16, as :func:`~softpool_cli.media.images.read_image` gives.
        kernel: Pooling window (height, width).
        stride: Step (height, width).
        methods: "soft", "max" and/or "avg", in panel order.
        beta: SoftPool's sharpness.
        ceil_mode: Keep a last, partial row and column of windows.
        device: "cpu" or "cuda" (already resolved).
        compare: Also compose the labelled side-by-side comparison.
    """
    from softpool_cli.pixels.pool import pool_array

    results, seconds = {}, {}
    for method in methods:
        started = time.perf_counter()
        results[method] = pool_array(pixels, kernel, stride, method=method, beta=beta, ceil_mode=ceil_mode, device=device)
        seconds[method] = time.perf_counter() - started
    comparison = None
    if compare:
        from softpool_cli.media.compare import ComparisonLayout, comparison_labels

        layout = ComparisonLayout(pixels.shape[0], pixels.shape[1], comparison_labels(methods, beta))
        comparison = layout.compose([pixels, *results.values()])
    return PooledImage(results, comparison, seconds)
