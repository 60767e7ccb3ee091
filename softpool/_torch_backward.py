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

from ._arguments import PoolGeometry
from ._torch_path import WINDOW_DIMS, _lift_to_3d, window_softmax


def soft_pool_torch_backward(
    grad_output: torch.Tensor, x: torch.Tensor, geometry: PoolGeometry, beta: float
) -> torch.Tensor:
    """Gradient of ``sum(grad_output * soft_pool(x))`` with respect to a batched ``x`` (N, C, *spatial).

    Half types are computed in float32; the result has ``x``'s shape and dtype (contiguous).
    """
    kernel, stride, padding, size, out_size = _lift_to_3d(geometry)
    compute_dtype = torch.float64 if x.dtype == torch.float64 else torch.float32
    batch, channels = x.shape[:2]
    softmax = window_softmax(x, geometry, beta, compute_dtype)
    windows, weights, unfold_inputs = softmax.windows, softmax.weights, softmax.unfold_inputs
    pooled = (weights * windows).sum(dim=WINDOW_DIMS, keepdim=True)  # (N, C, Do, Ho, Wo, 1, 1, 1)

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
