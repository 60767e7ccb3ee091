"""The exact SoftPool gradient in closed form, with PyTorch ops and no autograd.

For y = sum_i w_i x_i with w = softmax(beta * x_w) over window w,
dy/dx_i = w_i * (1 + beta * (x_i - y)). Each window's contributions are computed on the same
strided window view as the forward pass (`softpool._torch_path`), then summed back onto the
input with `aten.unfold_backward`, the adjoint of `Tensor.unfold`, which gathers rather than
scatters and so stays deterministic. The custom op's backward uses this: it runs below the
autograd layer, where autograd through the forward ops is not available.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ._arguments import PoolGeometry
from ._torch_path import _lift_to_3d


def soft_pool_torch_backward(
    grad_output: torch.Tensor, x: torch.Tensor, geometry: PoolGeometry, beta: float
) -> torch.Tensor:
    """Gradient of ``sum(grad_output * soft_pool(x))`` with respect to a batched ``x`` (N, C, *spatial).

    Half types are computed in float32; the result has ``x``'s shape and dtype (contiguous).
    """
    kernel, stride, padding, size, out_size = _lift_to_3d(geometry)
    compute_dtype = torch.float64 if x.dtype == torch.float64 else torch.float32
    batch, channels = x.shape[:2]
    volume = x.to(compute_dtype).reshape(batch, channels, *size)  # (N, C, D, H, W)

    right = [max(0, (o - 1) * s + k - n - p) for o, s, k, n, p in zip(out_size, stride, kernel, size, padding)]
    needs_mask = any(padding) or any(right)
    if needs_mask:
        flat_pads = []
        for left_pad, right_pad in reversed(list(zip(padding, right))):
            flat_pads += [left_pad, right_pad]
        volume = F.pad(volume, flat_pads)
        valid = F.pad(torch.ones(size, dtype=torch.bool, device=x.device), flat_pads)  # (D, H, W)

    # Shapes before each unfold, for its adjoint.
    unfold_inputs = []
    windows = volume  # becomes (N, C, Do, Ho, Wo, kd, kh, kw)
    for dim, (k, s, o) in enumerate(zip(kernel, stride, out_size)):
        unfold_inputs.append(tuple(windows.shape))
        windows = windows.unfold(2 + dim, k, s).narrow(2 + dim, 0, o)
    window_dims = (-3, -2, -1)

    if needs_mask:
        inside = valid
        for dim, (k, s, o) in enumerate(zip(kernel, stride, out_size)):
            inside = inside.unfold(dim, k, s).narrow(dim, 0, o)  # (Do, Ho, Wo, kd, kh, kw)
        window_max = windows.masked_fill(~inside, float("-inf")).amax(dim=window_dims, keepdim=True)
    else:
        window_max = windows.amax(dim=window_dims, keepdim=True)
    exponent = beta * (windows - window_max)
    if needs_mask:
        exponent = exponent.masked_fill(~inside, float("-inf"))
    weights = torch.exp(exponent)
    weights = weights / weights.sum(dim=window_dims, keepdim=True)  # softmax per window, 0 on padding
    pooled = (weights * windows).sum(dim=window_dims, keepdim=True)  # (N, C, Do, Ho, Wo, 1, 1, 1)

    grad = grad_output.to(compute_dtype).reshape(batch, channels, *out_size, 1, 1, 1)
    grad = grad * weights * (1 + beta * (windows - pooled))  # (N, C, Do, Ho, Wo, kd, kh, kw)

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
