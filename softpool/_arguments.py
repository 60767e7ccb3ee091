"""Argument checking shared by every SoftPool entry point: all the checks live here.

The public functions and Modules validate once, here, and hand a `PoolGeometry` (or adaptive
output sizes) and a checked beta to `softpool._routing`. Messages name the argument, what was
expected and what came.
"""

from __future__ import annotations

import math
import numbers

import torch

from ._geometry import PoolGeometry, is_int, pooled_length

FLOATING_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)
BACKENDS = ("auto", "triton", "torch")


def as_tuple(value: object, rank: int, name: str) -> tuple[int, ...]:
    """Expand an int, or check a tuple/list of ints, to a tuple of length ``rank``."""
    if is_int(value):
        return (int(value),) * rank
    if isinstance(value, (tuple, list)) and all(is_int(v) for v in value):
        if len(value) != rank:
            raise ValueError(f"{name} must be an int or a tuple of {rank} ints, got {tuple(value)!r}")
        return tuple(int(v) for v in value)
    raise TypeError(f"{name} must be an int or a tuple of {rank} ints, got {value!r}")


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


def check_output_size(output_size: object, input_size: tuple[int, ...]) -> tuple[int, ...]:
    """An int or a tuple of ints or None (None keeps that input size), as adaptive pooling takes."""
    rank = len(input_size)
    if is_int(output_size):
        output_size = (int(output_size),) * rank
    if not isinstance(output_size, (tuple, list)) or not all(v is None or is_int(v) for v in output_size):
        raise TypeError(f"output_size must be an int or a tuple of {rank} ints or None, got {output_size!r}")
    if len(output_size) != rank:
        raise ValueError(f"output_size must be an int or a tuple of {rank} ints or None, got {tuple(output_size)!r}")
    sizes = tuple(n if o is None else int(o) for o, n in zip(output_size, input_size))
    if any(o < 1 for o in sizes):
        raise ValueError(f"output_size must be positive, got {sizes}")
    return sizes


def check_tensor_beta(beta: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Check a tensor ``beta``: one value or one per channel, floating point, on ``x``'s device.

    Its values are not checked (that would cost a device sync and a graph break under
    `torch.compile`): they must be finite and >= 0, as the Modules' softplus keeps them.
    """
    channels = x.shape[1]
    if not beta.is_floating_point():
        raise TypeError(f"beta must be a float or a floating-point tensor, got a tensor of {beta.dtype}")
    if beta.dim() > 1 or beta.numel() not in (1, channels):
        raise ValueError(
            f"a tensor beta must hold one value or one per channel ({channels}), got shape {tuple(beta.shape)}"
        )
    if beta.dim() > 0 and beta.device != x.device:
        raise ValueError(f"beta must be on the input's device {x.device}, got {beta.device}")
    return beta


def checked_beta(beta: object, x: torch.Tensor, module_beta: bool = False) -> float | torch.Tensor:
    """``beta`` checked: a float (finite, >= 0) or a tensor (see `check_tensor_beta`).

    A Module's float beta was checked when it was set: it is not checked again, because
    `torch.compile(dynamic=True)` traces it as a symbolic float whose value is unknown here.
    """
    if isinstance(beta, torch.Tensor):
        return check_tensor_beta(beta, x)
    return beta if module_beta else check_beta(beta)
