"""SoftPool: softmax-weighted pooling for 1D, 2D and 3D tensors.

y = sum_i softmax(beta * x_w)_i * x_i over each pooling window w, per channel.
"""

from __future__ import annotations

from .adaptive import adaptive_soft_pool1d, adaptive_soft_pool2d, adaptive_soft_pool3d
from .functional import soft_pool1d, soft_pool2d, soft_pool3d
from .modules import (
    AdaptiveSoftPool1d,
    AdaptiveSoftPool2d,
    AdaptiveSoftPool3d,
    SoftPool1d,
    SoftPool2d,
    SoftPool3d,
)
from .swap import PoolingSwap, swap_pooling

__version__ = "0.1.0"

__all__ = [
    "AdaptiveSoftPool1d",
    "AdaptiveSoftPool2d",
    "AdaptiveSoftPool3d",
    "PoolingSwap",
    "SoftPool1d",
    "SoftPool2d",
    "SoftPool3d",
    "adaptive_soft_pool1d",
    "adaptive_soft_pool2d",
    "adaptive_soft_pool3d",
    "soft_pool1d",
    "soft_pool2d",
    "soft_pool3d",
    "swap_pooling",
]
