"""SoftPool in plain PyTorch ops: the path for CPU tensors and wherever Triton cannot run.

Every rank is lifted to three spatial dimensions, the windows are taken as strided views
(``Tensor.unfold``), and each window's softmax subtracts the window maximum before ``exp``.
Padded positions are masked out of the window rather than filled with zeros, so they never
take part in the weighted mean, exactly as in max pooling. Autograd through these ops is the
exact gradient: the subtracted maximum is detached, which changes nothing mathematically
because SoftPool is invariant to a per-window shift of the exponent.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ._arguments import PoolGeometry


def _lift_to_3d(geometry: PoolGeometry) -> tuple[tuple[int, ...], ...]:
    """Kernel, stride, padding, input and output sizes with leading 1s up to three dimensions."""
    missing = 3 - geometry.rank
    ones = (1,) * missing
    zeros = (0,) * missing
    return (
        ones + geometry.kernel_size,
        ones + geometry.stride,
        zeros + geometry.padding,
        ones + geometry.input_size,
        ones + geometry.output_size,
    )


WINDOW_DIMS = (-3, -2, -1)


@dataclass
class WindowSoftmax:
    """Every window of a call as a strided view, with its softmax weights."""

    windows: torch.Tensor  # (N, C, Do, Ho, Wo, kd, kh, kw), a view of the padded input
    weights: torch.Tensor  # same shape: softmax(beta * window), 0 on padding
    unfold_inputs: list[tuple[int, ...]]  # the shape before each unfold, for its adjoint


def window_softmax(
    x: torch.Tensor, geometry: PoolGeometry, beta: float | torch.Tensor, compute_dtype: torch.dtype
) -> WindowSoftmax:
    """The windows of a batched ``x`` (N, C, *spatial) and their softmax weights, in ``compute_dtype``."""
    kernel, stride, padding, size, out_size = _lift_to_3d(geometry)
    batch, channels = x.shape[:2]
    volume = x.to(compute_dtype).reshape(batch, channels, *size)  # (N, C, D, H, W)

    # Right padding that makes room for the last window (ceil_mode can need more than `padding`).
    right = [max(0, (o - 1) * s + k - n - p) for o, s, k, n, p in zip(out_size, stride, kernel, size, padding)]
    needs_mask = any(padding) or any(right)
    if needs_mask:
        flat_pads = []
        for left_pad, right_pad in reversed(list(zip(padding, right))):
            flat_pads += [left_pad, right_pad]
        volume = F.pad(volume, flat_pads)
        valid = F.pad(torch.ones(size, dtype=torch.bool, device=x.device), flat_pads)  # (D, H, W)

    unfold_inputs = []
    windows = volume
    for dim, (k, s, o) in enumerate(zip(kernel, stride, out_size)):
        unfold_inputs.append(tuple(windows.shape))
        windows = windows.unfold(2 + dim, k, s).narrow(2 + dim, 0, o)

    if needs_mask:
        inside = valid
        for dim, (k, s, o) in enumerate(zip(kernel, stride, out_size)):
            inside = inside.unfold(dim, k, s).narrow(dim, 0, o)  # (Do, Ho, Wo, kd, kh, kw)
        window_max = windows.masked_fill(~inside, float("-inf")).amax(dim=WINDOW_DIMS, keepdim=True)
    else:
        window_max = windows.amax(dim=WINDOW_DIMS, keepdim=True)

    if isinstance(beta, torch.Tensor):
        beta = beta.to(compute_dtype).reshape(1, -1, *([1] * 6))  # one value, or (1, C, 1, ...)
    exponent = beta * (windows - window_max.detach())
    if needs_mask:
        # -inf after the product with beta: beta = 0 must still give 0 weight to padding.
        exponent = exponent.masked_fill(~inside, float("-inf"))
    weights = torch.exp(exponent)  # in (0, 1], 1 at the window maximum
    # Normalising before the weighted sum keeps every partial sum within the window's range,
    # so values near the dtype's largest finite number cannot overflow.
    weights = weights / weights.sum(dim=WINDOW_DIMS, keepdim=True)
    return WindowSoftmax(windows, weights, unfold_inputs)


def soft_pool_torch(x: torch.Tensor, geometry: PoolGeometry, beta: float | torch.Tensor) -> torch.Tensor:
    """SoftPool of a batched input ``x`` (N, C, *spatial) with the windows of ``geometry``.

    ``beta`` is a float, or a tensor holding one value or one value per channel (C,).
    Half types are computed in float32 and the result cast back to ``x.dtype``.
    """
    compute_dtype = torch.float64 if x.dtype == torch.float64 else torch.float32
    softmax = window_softmax(x, geometry, beta, compute_dtype)
    pooled = (softmax.weights * softmax.windows).sum(dim=WINDOW_DIMS)  # (N, C, Do, Ho, Wo)
    return pooled.reshape(*x.shape[:2], *geometry.output_size).to(x.dtype)
