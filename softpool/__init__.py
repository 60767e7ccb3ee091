"""SoftPool: softmax-weighted pooling for 1D, 2D and 3D tensors.

y = sum_i softmax(beta * x_w)_i * x_i over each pooling window w, per channel.
"""

from __future__ import annotations

from .functional import soft_pool1d, soft_pool2d, soft_pool3d
from .modules import SoftPool1d, SoftPool2d, SoftPool3d

__version__ = "0.1.0"

__all__ = [
    "SoftPool1d",
    "SoftPool2d",
    "SoftPool3d",
    "soft_pool1d",
    "soft_pool2d",
    "soft_pool3d",
]
