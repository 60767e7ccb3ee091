"""SoftPool: softmax-weighted pooling for 1D, 2D and 3D tensors.

y = sum_i softmax(beta * x_w)_i * x_i over each pooling window w, per channel.

The public names are loaded on first use, so that ``import softpool`` (and the command line,
which shares the torch-free `softpool._geometry`) does not start PyTorch by itself. The first
use of any of them imports PyTorch and registers the ``softpool::`` custom ops; to load a
saved ``torch.export`` program that calls them, import `softpool.functional` first.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

__version__ = "0.1.0"

# Public name -> the module that defines it.
_EXPORTS = {
    "AdaptiveSoftPool1d": "modules",
    "AdaptiveSoftPool2d": "modules",
    "AdaptiveSoftPool3d": "modules",
    "PoolingSwap": "swap",
    "SoftPool1d": "modules",
    "SoftPool2d": "modules",
    "SoftPool3d": "modules",
    "adaptive_soft_pool1d": "adaptive",
    "adaptive_soft_pool2d": "adaptive",
    "adaptive_soft_pool3d": "adaptive",
    "soft_pool1d": "functional",
    "soft_pool2d": "functional",
    "soft_pool3d": "functional",
    "swap_pooling": "swap",
}

__all__ = sorted(_EXPORTS)

if TYPE_CHECKING:
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


def __getattr__(name: str) -> object:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
