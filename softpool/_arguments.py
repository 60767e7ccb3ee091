"""Argument checking shared by every SoftPool entry point.

The public functions validate once, here, and hand a `PoolGeometry` to whichever
implementation runs. Messages name the argument, what was expected and what came.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass

import torch

FLOATING_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)
BACKENDS = ("auto", "triton", "torch")


@dataclass(frozen=True)
class PoolGeometry:
    """The windows of one pooling call, per spatial dimension (rank 1, 2 or 3)."""

    kernel_size: tuple[int, ...]
    stride: tuple[int, ...]
    padding: tuple[int, ...]
    input_size: tuple[int, ...]
    output_size: tuple[int, ...]

    @property
    def rank(self) -> int:
        return len(self.kernel_size)


def _is_int(value: object) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def as_tuple(value: object, rank: int, name: str) -> tuple[int, ...]:
    """Expand an int, or check a tuple/list of ints, to a tuple of length ``rank``."""
    if _is_int(value):
        return (int(value),) * rank
    if isinstance(value, (tuple, list)) and all(_is_int(v) for v in value):
        if len(value) != rank:
            raise ValueError(f"{name} must be an int or a tuple of {rank} ints, got {tuple(value)!r}")
        return tuple(int(v) for v in value)
    raise TypeError(f"{name} must be an int or a tuple of {rank} ints, got {value!r}")


def pooled_length(length: int, kernel: int, stride: int, padding: int, ceil_mode: bool) -> int:
    """Output length of ``max_pool`` along one dimension: same formula, same ceil_mode rule."""
    span = length + 2 * padding - kernel
    out = (-(-span // stride) if ceil_mode else span // stride) + 1
    # With ceil_mode a last window may not start in the right padding (PyTorch's rule).
    if ceil_mode and (out - 1) * stride >= length + padding:
        out -= 1
    return out


def check_beta(beta: object) -> float:
    """Return ``beta`` as a float, or raise if it is negative, not finite, or not a number."""
    if isinstance(beta, bool) or not isinstance(beta, numbers.Real):
        raise TypeError(f"beta must be a real number, got {beta!r}")
    beta = float(beta)
    if not math.isfinite(beta) or beta < 0:
        raise ValueError(f"beta must be finite and >= 0, got {beta}")
    return beta


def check_input(x: object, rank: int, name: str) -> None:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} expects a torch.Tensor, got {type(x).__name__}")
    if x.dtype not in FLOATING_DTYPES:
        raise TypeError(
            f"{name} expects a floating-point tensor (float16, bfloat16, float32, float64), got {x.dtype}"
        )
    if x.dim() not in (rank + 1, rank + 2):
        raise ValueError(
            f"{name} expects a {rank + 1}D (C, *spatial) or {rank + 2}D (N, C, *spatial) tensor, "
            f"got {x.dim()}D with shape {tuple(x.shape)}"
        )


def check_backend(backend: object) -> str:
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(map(repr, BACKENDS))}, got {backend!r}")
    return backend  # type: ignore[return-value]


def pool_geometry(
    spatial_size: tuple[int, ...],
    kernel_size: object,
    stride: object,
    padding: object,
    ceil_mode: object,
) -> PoolGeometry:
    """Check the window arguments against the input's spatial size and compute the output size."""
    rank = len(spatial_size)
    kernel = as_tuple(kernel_size, rank, "kernel_size")
    strides = kernel if stride is None else as_tuple(stride, rank, "stride")
    pads = as_tuple(padding, rank, "padding")
    if not isinstance(ceil_mode, bool):
        raise TypeError(f"ceil_mode must be a bool, got {ceil_mode!r}")
    if any(k <= 0 for k in kernel):
        raise ValueError(f"kernel_size must be positive, got {kernel}")
    if any(s <= 0 for s in strides):
        raise ValueError(f"stride must be positive, got {strides}")
    if any(p < 0 for p in pads):
        raise ValueError(f"padding must be non-negative, got {pads}")
    if any(2 * p > k for p, k in zip(pads, kernel)):
        raise ValueError(f"padding must be at most half of kernel_size, got padding={pads} for kernel_size={kernel}")
    output = tuple(
        pooled_length(n, k, s, p, ceil_mode) for n, k, s, p in zip(spatial_size, kernel, strides, pads)
    )
    if any(o < 1 for o in output):
        raise ValueError(
            f"output size would be {output} for input size {tuple(spatial_size)} with kernel_size={kernel}, "
            f"stride={strides}, padding={pads}: the input is too small"
        )
    return PoolGeometry(kernel, strides, pads, tuple(spatial_size), output)
