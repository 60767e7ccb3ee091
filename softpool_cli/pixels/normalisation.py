"""How pixels are normalised before SoftPool: as torchvision's ImageNet models see them.

Each colour channel becomes ``x = (p / maxval - mean_c) / std_c``, is pooled, and is mapped
back to the input's integer type with rounding. For SoftPool this normalisation sets the look:
SoftPool ignores a shift of its input but not a scale, so beta = 1 on values of spread ``std_c``
is the paper's published setting (it reproduces the paper's gallery images). Max and average
pooling do not depend on it.

Choices where the paper is silent:

- Gray channels use the mean of the three ImageNet statistics (mean 0.449, std 0.226).
- Alpha is average-pooled whatever the method: it is coverage, and averaging keeps the covered
  area of every window (SoftPool or max pooling would fatten opaque shapes). Colour channels
  are pooled on their own, not weighted by alpha.
"""

from __future__ import annotations

# torchvision's ImageNet statistics, per RGB channel.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
GRAY_MEAN = sum(IMAGENET_MEAN) / 3
GRAY_STD = sum(IMAGENET_STD) / 3


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
