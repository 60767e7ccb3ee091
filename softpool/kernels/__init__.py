"""Triton kernels for SoftPool.

Imported lazily by `softpool.functional`: the library must import and work where Triton is
missing (CPU-only torch, macOS, Windows). For CUDA tensors the kernels compile for the GPU;
for CPU tensors they run only through the Triton interpreter, which must be switched on
(``TRITON_INTERPRET=1``) before the kernel module is first imported.
"""

from __future__ import annotations

import torch


def unavailable_reason(x: torch.Tensor) -> str | None:
    """Why the Triton kernels cannot run on ``x``, or None when they can."""
    try:
        from . import soft_pool_nd
    except ImportError as error:
        return f"Triton is not available ({error})"
    if x.is_cuda:
        return None
    if x.device.type == "cpu" and soft_pool_nd.INTERPRETED:
        return None
    return (
        f"the Triton kernels need a CUDA tensor, got one on {x.device} "
        "(CPU tensors run through the Triton interpreter only if TRITON_INTERPRET=1 was set before import)"
    )
