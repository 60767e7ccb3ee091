"""SoftPool in plain PyTorch ops over strided window views: forward, and the exact backward.

Every rank is lifted to three spatial dimensions, the windows are taken as strided views
(``Tensor.unfold``), and each window's softmax subtracts the window maximum before ``exp``.
Padded positions are masked out of the window rather than filled with zeros, so they never
take part in the weighted mean, exactly as in max pooling. Autograd through these ops is the
exact gradient: the subtracted maximum is detached, which changes nothing mathematically
because SoftPool is invariant to a per-window shift of the exponent. -inf, +inf and NaN follow
`softpool.functional`'s rules through `softpool.torch_path.nonfinite` (one more elementwise pass).

The backward in closed form, for callers below the autograd layer (the custom op's backward):
for y = sum_i w_i x_i with w = softmax(beta * x_w), dy/dx_i = w_i * (1 + beta * (x_i - y)).
Each window's contributions are computed on the same window views, then summed back onto the
input with ``aten.unfold_backward``, the adjoint of ``Tensor.unfold``, which gathers rather
than scatters and so stays deterministic.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .._geometry import PoolGeometry
from .._layout import compute_dtype
from .nonfinite import finite_differences, floored_beta, pooled_output, safe_total, window_shift


WINDOW_DIMS = (-3, -2, -1)


@dataclass
class WindowSoftmax:
    """Every window of a call as a strided view, with its softmax weights."""

    windows: torch.Tensor  # (N, C, Do, Ho, Wo, kd, kh, kw), a view of the padded input
    differences: torch.Tensor  # same shape: windows - shift, made finite (`nonfinite`)
    weights: torch.Tensor  # same shape: softmax(beta * window), 0 on padding and -inf
    window_max: torch.Tensor  # (N, C, Do, Ho, Wo, 1, 1, 1), NaN where the window holds one
    shift: torch.Tensor  # same shape: what the exponents subtract (`nonfinite.window_shift`)
    unfold_inputs: list[tuple[int, ...]]  # the shape before each unfold, for its adjoint

    def relative_output(self) -> torch.Tensor:
        """y - shift for windows with a finite maximum: (N, C, Do, Ho, Wo, 1, 1, 1)."""
        return (self.weights * self.differences).sum(dim=WINDOW_DIMS, keepdim=True)


def window_softmax(
    x: torch.Tensor, geometry: PoolGeometry, beta: float | torch.Tensor, dtype: torch.dtype
) -> WindowSoftmax:
    """The windows of a batched ``x`` (N, C, *spatial) and their softmax weights, in ``dtype``."""
    lifted = geometry.lifted()
    kernel, stride, padding, size, out_size = (
        lifted.kernel_size, lifted.stride, lifted.padding, lifted.input_size, lifted.output_size
    )
    batch, channels = x.shape[:2]
    volume = x.to(dtype).reshape(batch, channels, *size)  # (N, C, D, H, W)

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
        beta = beta.to(dtype).reshape(1, -1, *([1] * 6))  # one value, or (1, C, 1, ...)
    beta = floored_beta(beta)
    shift = window_shift(window_max)
    differences = finite_differences(windows, shift, beta)
    exponent = beta * differences
    if needs_mask:
        # -inf after the product with beta: beta = 0 must still give 0 weight to padding.
        exponent = exponent.masked_fill(~inside, float("-inf"))
    weights = torch.exp(exponent)  # in [0, 1], 1 at the window maximum
    # Normalising before the weighted sum keeps every partial sum within the window's range,
    # so values near the dtype's largest finite number cannot overflow.
    weights = weights / safe_total(weights.sum(dim=WINDOW_DIMS, keepdim=True))
    return WindowSoftmax(windows, differences, weights, window_max, shift, unfold_inputs)


def soft_pool_torch(x: torch.Tensor, geometry: PoolGeometry, beta: float | torch.Tensor) -> torch.Tensor:
    """SoftPool of a batched input ``x`` (N, C, *spatial) with the windows of ``geometry``.

    ``beta`` is a float, or a tensor holding one value or one value per channel (C,).
    Half types are computed in float32 and the result cast back to ``x.dtype``.
    """
    softmax = window_softmax(x, geometry, beta, compute_dtype(x.dtype))
    pooled = pooled_output(softmax.window_max, softmax.shift, softmax.relative_output())  # (N, C, Do, Ho, Wo, 1, 1, 1)
    return pooled.reshape(*x.shape[:2], *geometry.output_size).to(x.dtype)


def soft_pool_torch_backward(
    grad_output: torch.Tensor, x: torch.Tensor, geometry: PoolGeometry, beta: float
) -> torch.Tensor:
    """Gradient of ``sum(grad_output * soft_pool(x))`` with respect to a batched ``x`` (N, C, *spatial).

    Half types are computed in float32; the result has ``x``'s shape and dtype (contiguous).
    """
    lifted = geometry.lifted()
    kernel, stride, padding, size, out_size = (
        lifted.kernel_size, lifted.stride, lifted.padding, lifted.input_size, lifted.output_size
    )
    batch, channels = x.shape[:2]
    softmax = window_softmax(x, geometry, beta, compute_dtype(x.dtype))
    weights, differences, unfold_inputs = softmax.weights, softmax.differences, softmax.unfold_inputs
    relative = softmax.relative_output()  # (N, C, Do, Ho, Wo, 1, 1, 1): y - shift

    grad = grad_output.to(weights.dtype).reshape(batch, channels, *out_size, 1, 1, 1)
    # A NaN in a window makes its whole gradient NaN; +inf and -inf windows need nothing more:
    # their weights are 1 / count on the +inf values and 0 elsewhere, their differences 0.
    grad = torch.where(softmax.window_max.isnan(), softmax.window_max, grad)
    grad = grad * weights * (1 + beta * (differences - relative))  # (N, C, Do, Ho, Wo, kd, kh, kw)

    for dim in reversed(range(3)):
        before = unfold_inputs[dim]
        # The forward kept the first `o` windows of the unfold; the rest get zero gradient.
        all_windows = (before[2 + dim] - kernel[dim]) // stride[dim] + 1
        if all_windows > out_size[dim]:
            full = grad.new_zeros(*grad.shape[: 2 + dim], all_windows, *grad.shape[3 + dim :])
            full.narrow(2 + dim, 0, out_size[dim]).copy_(grad)
            grad = full
        grad = torch.ops.aten.unfold_backward(grad, list(before), 2 + dim, kernel[dim], stride[dim])

    for dim in range(3):
        grad = grad.narrow(2 + dim, padding[dim], size[dim])  # drop the padding
    return grad.reshape(x.shape).to(x.dtype).contiguous()
