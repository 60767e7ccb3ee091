r"""SoftPool forward and backward as Triton kernels, one family for 1D, 2D and 3D.

Math, for one window and channel, over the window's valid positions (padding and positions
past the input are not part of it, as with max pooling's -inf padding):

    m = max_i x_i,   e_i = exp(beta (x_i - m)),   s = sum_i e_i,
    y = sum_i e_i x_i / s = m + sum_i e_i (x_i - m) / s.

Subtracting m keeps every e_i in (0, 1] whatever the magnitude of x; writing y as m plus a
non-positive mean keeps it inside [min x, max x]. The kernels compute in base 2 with pre-scaled
exponents (`window`). Gradient, with w_i = e_i / s = softmax(beta x)_i:

    dy/dx_i = w_i (1 + beta (x_i - y)),

and an input element receives the sum of g_w w_{i,w} (1 + beta (x_i - y_w)) over the windows w
that hold it, g being the incoming gradient.

Infinities and NaN (the limits of the formula, as max pooling would give them):

- -inf values weigh 0: y is the SoftPool of the window's other values, and a window of only
  -inf (or only padding) gives -inf. Their gradient is 0.
- A window holding +inf gives +inf; each +inf value of it takes the share g / (number of +inf
  values) of the gradient, as max pooling's ties would split evenly, and every other value 0.
  That is the limit of w_i (1 + beta (x_i - y)) as the tied values grow together.
- A NaN in a window makes its output and the gradient of all its values NaN.
- beta = 0 is the mean of the window's values other than -inf (computed as beta = 2**-100).

Three kernels:

- forward (`forward`): one lane per output, loads in the input dtype, arithmetic in float32
  (float64 for float64), stores in the output dtype. Windows along the contiguous axis with
  kernel = stride are loaded as one run per tile row and split in registers, so the loads are
  16-byte vectors.
- backward for windows that do not overlap (`backward`): one lane per output again; it
  recomputes each window from x, so the forward saves nothing but x and the backward reads x
  and dy once and writes dx.
- backward for overlapping windows (`gather`): one lane per input, gathering over the windows
  that hold it (no atomics: bit-identical run to run) from two statistics the forward then
  saves, y in the compute dtype and r = log2 sum_j 2**(beta log2(e) (x_j - y)).

Positions along an axis are 32-bit (a grid holds fewer than 2**31 programs), and offsets
(position x stride) along the three outer axes are 64-bit, so tensors over 2**31 elements work;
offsets within a tile are 32-bit too, which saves instructions, unless the launcher finds they
could pass 2**31 (then positions and offsets are all 64-bit). Tiles and flags come from
`launch`, the settings behind them from `config`.
"""

from __future__ import annotations

import contextlib
import functools

import torch
from torch.autograd.function import once_differentiable

from .._geometry import PoolGeometry
from . import config
from .backward import _softpool_window_bwd_kernel
from .config import INTERPRETED
from .forward import _softpool_fwd_kernel
from .gather import _softpool_gather_bwd_kernel
from .launch import compute_dtype, covers_input, forward_plan, gather_backward_plan, non_overlapping
from .launch import window_backward_plan

__all__ = ["INTERPRETED", "soft_pool_triton", "soft_pool_triton_backward"]


@functools.lru_cache(maxsize=None)
def _device_sm_count(index: int) -> int:
    return torch.cuda.get_device_properties(index).multi_processor_count


def _sm_count(x: torch.Tensor) -> int:
    """SMs of x's GPU; DEFAULT_SM_COUNT where there is none (compiling without a GPU)."""
    if not x.is_cuda:
        return config.DEFAULT_SM_COUNT
    return _device_sm_count(x.device.index if x.device.index is not None else torch.cuda.current_device())


def _empty_output(x: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
    """An output for ``x`` in its memory format (channels_last stays channels_last), as max pooling does."""
    layout = {4: torch.channels_last, 5: torch.channels_last_3d}.get(x.dim(), torch.contiguous_format)
    if layout is torch.contiguous_format or x.is_contiguous() or not x.is_contiguous(memory_format=layout):
        layout = torch.contiguous_format
    return torch.empty(shape, dtype=x.dtype, device=x.device, memory_format=layout)


def _check_input(x: torch.Tensor, geometry: PoolGeometry) -> None:
    if x.dim() != geometry.rank + 2 or tuple(x.shape[2:]) != tuple(geometry.input_size):
        raise ValueError(
            f"soft_pool_triton expects a batched input of shape (N, C, {', '.join(map(str, geometry.input_size))}), "
            f"got {tuple(x.shape)}"
        )
    if x.dtype not in (torch.float16, torch.bfloat16, torch.float32, torch.float64):
        raise TypeError(f"soft_pool_triton expects a floating-point tensor, got {x.dtype}")


def _launch(kernel, x: torch.Tensor, grid: tuple[int], arguments: tuple, options: dict) -> None:
    """Launch ``kernel`` on x's device: Triton launches on the current CUDA device.

    The interpreter evaluates every lane with NumPy, which warns about inf - inf and 0 / 0 in
    lanes whose results are selected away or never stored; on the GPU those cost nothing.
    """
    device = torch.cuda.device(x.device) if x.is_cuda and x.device.index != torch.cuda.current_device() else None
    quiet = contextlib.nullcontext()
    if INTERPRETED:
        import numpy

        quiet = numpy.errstate(invalid="ignore", divide="ignore", over="ignore")
    with device or contextlib.nullcontext(), quiet:
        kernel[grid](*arguments, **options)


def _allocate_forward(
    x: torch.Tensor, geometry: PoolGeometry, save_stats: bool
) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
    """y (N, C, *out) in x's dtype and memory format; with ``save_stats`` the gather backward's
    statistics, shaped and strided like y: y in the compute dtype (y itself for float32 and
    float64) and r."""
    y = _empty_output(x, (*x.shape[:2], *geometry.output_size))  # (N, C, *out)
    if not save_stats:
        return y, None, None
    stats_dtype = compute_dtype(x.dtype)[0]
    log_normalizer = torch.empty_strided(y.shape, y.stride(), dtype=stats_dtype, device=x.device)
    reference = y if y.dtype == stats_dtype else torch.empty_like(log_normalizer)
    return y, reference, log_normalizer


def _forward_launch(x, y, reference, log_normalizer, geometry: PoolGeometry, beta: float) -> tuple:
    """Kernel, grid, positional and keyword arguments of the forward (statistics saved if given)."""
    save_stats = log_normalizer is not None
    grid, integers, options = forward_plan(
        x.shape, x.stride(), y.stride(), x.dtype, geometry, save_stats, save_stats and reference is not y,
        _sm_count(x), config.tunables(),
    )  # fmt: skip
    # Without statistics their pointers are unused: y stands in.
    pointers = (x, y, reference, log_normalizer) if save_stats else (x, y, y, y)
    return _softpool_fwd_kernel, grid, (*pointers, *integers, beta), options


def _window_backward_launch(x, grad_y, grad_x, geometry: PoolGeometry, beta: float) -> tuple:
    """Kernel, grid, positional and keyword arguments of the backward for non-overlapping windows."""
    grid, integers, options = window_backward_plan(
        x.shape, x.stride(), grad_y.stride(), grad_x.stride(), x.dtype, geometry, _sm_count(x), config.tunables()
    )
    return _softpool_window_bwd_kernel, grid, (x, grad_y, grad_x, *integers, beta), options


def _gather_backward_launch(x, grad_y, grad_x, reference, log_normalizer, geometry: PoolGeometry, beta: float) -> tuple:
    """Kernel, grid, positional and keyword arguments of the gather backward (overlapping windows)."""
    grid, integers, options = gather_backward_plan(
        x.shape, x.stride(), grad_x.stride(), reference.stride(), grad_y.stride(), x.dtype, geometry,
        _sm_count(x), config.tunables(),
    )  # fmt: skip
    return _softpool_gather_bwd_kernel, grid, (x, grad_y, reference, log_normalizer, grad_x, *integers, beta), options


def _forward(
    x: torch.Tensor, geometry: PoolGeometry, beta: float, save_stats: bool
) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
    """Run the forward kernel: y, and with ``save_stats`` the statistics (see `_allocate_forward`)."""
    y, reference, log_normalizer = _allocate_forward(x, geometry, save_stats)
    if y.numel() > 0:
        kernel, *launch = _forward_launch(x, y, reference, log_normalizer, geometry, beta)
        _launch(kernel, x, *launch)
    return y, reference, log_normalizer


def _allocate_gradient(x: torch.Tensor, geometry: PoolGeometry) -> torch.Tensor:
    """The gradient's tensor, with x's strides where x is dense, as autograd expects. Zeros when
    some input lies in no window and so is never written (stride > kernel, an uncovered edge)."""
    if non_overlapping(geometry) and not covers_input(geometry):
        return torch.zeros_like(x)
    return torch.empty_like(x)


def _backward(
    x: torch.Tensor,
    grad_y: torch.Tensor,
    stats: tuple[torch.Tensor, ...],
    geometry: PoolGeometry,
    beta: float,
) -> torch.Tensor:
    """Run a backward kernel: the gradient with respect to ``x``.

    ``stats`` is empty for non-overlapping windows (the kernel recomputes them) and otherwise the
    reference and log-normalizer from `_forward` (same shape and strides as y).
    """
    out_shape = (*x.shape[:2], *geometry.output_size)
    if tuple(grad_y.shape) != out_shape:
        raise ValueError(f"grad_output must have the output's shape {out_shape}, got {tuple(grad_y.shape)}")
    grad_x = _allocate_gradient(x, geometry)
    if x.numel() > 0:
        if stats:
            kernel, *launch = _gather_backward_launch(x, grad_y, grad_x, *stats, geometry, beta)
        else:
            kernel, *launch = _window_backward_launch(x, grad_y, grad_x, geometry, beta)
        _launch(kernel, x, *launch)
    return grad_x


class _SoftPoolFunction(torch.autograd.Function):
    """Autograd glue: the forward saves x (and for overlapping windows the statistics)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, geometry: PoolGeometry, beta: float) -> torch.Tensor:
        save_stats = not non_overlapping(geometry)
        y, reference, log_normalizer = _forward(x, geometry, beta, save_stats=save_stats)
        ctx.save_for_backward(x, *((reference, log_normalizer) if save_stats else ()))
        ctx.geometry = geometry
        ctx.beta = beta
        return y

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_y: torch.Tensor) -> tuple[torch.Tensor, None, None]:
        x, *stats = ctx.saved_tensors
        grad_x = _backward(x, grad_y, tuple(stats), ctx.geometry, ctx.beta)
        return grad_x, None, None


def soft_pool_triton(x: torch.Tensor, geometry: PoolGeometry, beta: float) -> torch.Tensor:
    """SoftPool of a batched ``x`` (N, C, *spatial) over the windows of ``geometry``, by the Triton kernels.

    Differentiable with respect to ``x``; the statistics for the backward are computed and kept
    only when autograd will need them (and only for overlapping windows).

    Args:
        x: CUDA tensor (or CPU tensor under the Triton interpreter), float16, bfloat16, float32 or
            float64, any strides.
        geometry: the checked windows (`softpool._arguments.pool_geometry`).
        beta: finite sharpness >= 0.

    Returns:
        (N, C, *geometry.output_size) in x's dtype, channels_last if x is.
    """
    _check_input(x, geometry)
    beta = float(beta)
    if torch.is_grad_enabled() and x.requires_grad:
        return _SoftPoolFunction.apply(x, geometry, beta)
    y, _, _ = _forward(x, geometry, beta, save_stats=False)
    return y


def soft_pool_triton_backward(
    grad_y: torch.Tensor, x: torch.Tensor, geometry: PoolGeometry, beta: float
) -> torch.Tensor:
    """The gradient of ``sum(grad_y * soft_pool_triton(x))`` with respect to ``x``, without autograd.

    For callers that keep only ``x`` (a custom op's backward). Non-overlapping windows need only
    x; for overlapping ones the forward runs again to rebuild the window statistics.
    """
    _check_input(x, geometry)
    beta = float(beta)
    with torch.no_grad():
        x = x.detach()
        stats = ()
        if not non_overlapping(geometry):
            _, reference, log_normalizer = _forward(x, geometry, beta, save_stats=True)
            stats = (reference, log_normalizer)
        return _backward(x, grad_y, stats, geometry, beta)
