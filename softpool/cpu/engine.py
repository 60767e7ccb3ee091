"""SoftPool for CPU tensors compiled with Numba: forward and exact backward, any geometry.

Every rank is lifted to three spatial dimensions and the (N, C) planes are flattened, so the
kernels (`softpool.cpu.numba_kernels`) see a (P, D, H, W) array. Two kinds of kernel:

- Whole, non-overlapping windows without padding (stride >= kernel, at most
  `_MAX_UNROLLED_WINDOW` samples, every window inside the input): compiled for the window and
  stride, so the window loops unroll and the compiler vectorises across the output row. The
  float32 exponential is computed in vectorisable operations rather than a libm call.
- Anything else (padding, ceil_mode's partial windows, overlap, large windows): windows clipped
  to the input, so padded positions never take part, as in max pooling.

Forward: y = sum_i w_i x_i with w = softmax(beta * x) over the window, the window maximum
subtracted first. Backward: dy/dx_i = w_i * (1 + beta * (x_i - y)), summed over the windows
that hold x_i; the general backward gathers those windows per input element, so it is
deterministic without atomics, and the whole-window one writes each input once.

-inf, +inf and NaN (the rules of `softpool.functional`) cost the finite case nothing in the
loops: every window holding one comes out of them NaN (0 * -inf, inf - inf, NaN), and a
separate pass over each row of outputs redoes those windows with scalar code.

Work is split over output rows between plain threads started per call (`softpool.cpu.threads`),
as many as ``torch.get_num_threads()``: the library follows PyTorch's thread setting. Compiled
code is cached on disk; the first call with a new window compiles it once.

Without Numba this module still imports and `supports` says False: the library's only hard
dependencies are torch and numpy.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from .._geometry import PoolGeometry
from .._layout import compute_dtype
from .numba_kernels import (
    NUMBA_AVAILABLE,
    any_window_backward,
    any_window_forward,
    any_window_statistics,
    whole_window_backward,
    whole_window_forward,
)
from .threads import run_rows

# Windows up to this many samples get the unrolled, vectorised kernels.
_MAX_UNROLLED_WINDOW = 16
# Below this many output values a single thread is faster than starting more.
_MIN_VALUES_PER_THREAD = 32768
_SUPPORTED_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


def supports(x: torch.Tensor) -> bool:
    """Whether `soft_pool_cpu` runs on ``x``: a non-empty floating CPU tensor, with Numba installed.

    Every window geometry is supported, with a float beta. (A tensor beta needs its own
    gradient, which these kernels do not compute: `softpool._routing` sends it to PyTorch ops.)
    """
    return (
        NUMBA_AVAILABLE
        and x.device.type == "cpu"
        and x.dtype in _SUPPORTED_DTYPES
        and x.numel() > 0
    )


def soft_pool_cpu(x: torch.Tensor, geometry: PoolGeometry, beta: float) -> torch.Tensor:
    """SoftPool of a batched CPU tensor ``x`` (N, C, *spatial); differentiable with respect to ``x``.

    The result is contiguous (N, C, *output_size) in ``x``'s dtype. Half types are computed in
    float32. The backward pass is not itself differentiable (no double backward).
    """
    return _SoftPoolCpu.apply(x, geometry, beta)


def soft_pool_cpu_forward(x: torch.Tensor, geometry: PoolGeometry, beta: float) -> torch.Tensor:
    """The forward pass without autograd: contiguous (N, C, *output_size) in ``x``'s dtype."""
    volume = _as_volume(x, geometry)  # (P, D, H, W)
    kernel, stride, padding, out_size = _lifted(geometry)
    y = torch.empty((volume.shape[0], *out_size), dtype=volume.dtype)  # (P, D', H', W')
    rows = y.shape[0] * out_size[0] * out_size[1]
    beta_value = _scalar(beta, volume.dtype)
    if _whole_windows(geometry):
        pool = whole_window_forward(kernel, stride)
        _run_rows(pool, rows, out_size[2], (volume.numpy(), beta_value, y.numpy()))
    else:
        arguments = (volume.numpy(), beta_value, *kernel, *stride, *padding, y.numpy())
        _run_rows(any_window_forward(), rows, out_size[2], arguments)
    return y.reshape(*x.shape[:2], *geometry.output_size).to(x.dtype)


def soft_pool_cpu_backward(
    grad_output: torch.Tensor, x: torch.Tensor, geometry: PoolGeometry, beta: float
) -> torch.Tensor:
    """The gradient of ``sum(grad_output * soft_pool(x))`` with respect to ``x``, without autograd.

    Returns a contiguous tensor of ``x``'s shape and dtype.
    """
    volume = _as_volume(x, geometry)  # (P, D, H, W)
    kernel, stride, padding, out_size = _lifted(geometry)
    grad_y = grad_output.to(volume.dtype).contiguous().reshape(volume.shape[0], *out_size)  # (P, D', H', W')
    beta_value = _scalar(beta, volume.dtype)
    if _whole_windows(geometry):
        covered = all(o * s == n for o, s, n in zip(out_size, stride, volume.shape[1:]))
        covered = covered and kernel == stride
        # Samples outside every window get no gradient; when windows tile the input, all are written.
        grad_x = torch.empty_like(volume) if covered else torch.zeros_like(volume)
        rows = volume.shape[0] * out_size[0] * out_size[1]
        pool = whole_window_backward(kernel, stride)
        _run_rows(pool, rows, out_size[2], (volume.numpy(), beta_value, grad_y.numpy(), grad_x.numpy()))
    else:
        # Pass 1: each window's maximum, weight sum and output; pass 2: gather per input sample.
        statistics = torch.empty((3, *grad_y.shape), dtype=volume.dtype)  # (3, P, D', H', W')
        rows = grad_y.shape[0] * out_size[0] * out_size[1]
        arguments = (volume.numpy(), beta_value, *kernel, *stride, *padding, statistics.numpy())
        _run_rows(any_window_statistics(), rows, out_size[2], arguments)
        grad_x = torch.empty_like(volume)
        rows = volume.shape[0] * volume.shape[1] * volume.shape[2]
        arguments = (volume.numpy(), beta_value, *kernel, *stride, *padding, statistics.numpy(), grad_y.numpy())
        _run_rows(any_window_backward(), rows, volume.shape[3], (*arguments, grad_x.numpy()))
    return grad_x.reshape(x.shape).to(x.dtype)


class _SoftPoolCpu(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, geometry: PoolGeometry, beta: float) -> torch.Tensor:
        ctx.save_for_backward(x)
        ctx.geometry = geometry
        ctx.beta = beta
        return soft_pool_cpu_forward(x, geometry, beta)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_output: torch.Tensor):
        (x,) = ctx.saved_tensors
        return soft_pool_cpu_backward(grad_output, x, ctx.geometry, ctx.beta), None, None


def _lifted(geometry: PoolGeometry) -> tuple[tuple[int, int, int], ...]:
    """Kernel, stride, padding and output size over three spatial dimensions."""
    lifted = geometry.lifted()
    return lifted.kernel_size, lifted.stride, lifted.padding, lifted.output_size


def _as_volume(x: torch.Tensor, geometry: PoolGeometry) -> torch.Tensor:
    """``x`` as a contiguous (P, D, H, W) tensor in the compute dtype."""
    volume = x.detach().to(compute_dtype(x.dtype)).contiguous()
    return volume.reshape(-1, *geometry.lifted().input_size)


def _scalar(beta: float, dtype: torch.dtype) -> np.floating:
    return np.float64(beta) if dtype == torch.float64 else np.float32(beta)


def _whole_windows(geometry: PoolGeometry) -> bool:
    """Whether the whole-window kernels apply: no padding, no overlap, no partial window, small."""
    windows = zip(geometry.output_size, geometry.stride, geometry.kernel_size, geometry.input_size)
    return (
        not any(geometry.padding)
        and all(s >= k and (o - 1) * s + k <= n for o, s, k, n in windows)
        and math.prod(geometry.kernel_size) <= _MAX_UNROLLED_WINDOW
    )


def _run_rows(kernel, rows: int, row_values: int, arguments: tuple) -> None:
    """`softpool.cpu.threads.run_rows` with PyTorch's thread count as the budget."""
    run_rows(
        kernel, rows, row_values, arguments, threads=torch.get_num_threads(), min_values_per_thread=_MIN_VALUES_PER_THREAD
    )
