"""Dtypes and memory layouts that every engine treats alike.

- Half types (float16, bfloat16) are computed in float32; float64 stays float64.
- A channels_last (4D) or channels_last_3d (5D) input gives an output in the same layout, as
  max pooling does; anything else gives a contiguous output.
"""

from __future__ import annotations

import torch

_CHANNELS_LAST = {4: torch.channels_last, 5: torch.channels_last_3d}


def compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype an engine computes in for inputs of ``dtype``."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def memory_format_of(x: torch.Tensor) -> torch.memory_format:
    """``channels_last``/``channels_last_3d`` where ``x`` is laid out so (and not also
    contiguous), else ``contiguous_format``."""
    layout = _CHANNELS_LAST.get(x.dim())
    if layout is not None and not x.is_contiguous() and x.is_contiguous(memory_format=layout):
        return layout
    return torch.contiguous_format


def like_layout(y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``y`` dense, in the memory format of ``x`` (see `memory_format_of`)."""
    return y.contiguous(memory_format=memory_format_of(x))
