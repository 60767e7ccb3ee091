"""The public SoftPool functions: validate once, then pick the implementation.

`backend="auto"` sends CUDA tensors to the Triton kernels (when Triton is importable), CPU
tensors to the compiled CPU kernels (when Numba is installed) and everything else to the
PyTorch path; "triton" and "torch" force one (`softpool._routing` decides).
``beta`` is a float, or a tensor (one value or one per channel) whose gradient is computed.

Non-finite inputs, per window: a NaN gives y = NaN (and NaN gradients for the window); else a
+inf gives y = +inf (gradient g / their count for each +inf value, 0 for the others); else a
window of only -inf gives -inf (gradient 0); else -inf values weigh 0 and y is SoftPool of
the finite values. The same for every backend and every beta >= 0 (0: their mean).
"""

from __future__ import annotations

import torch

from . import _routing
from ._arguments import check_backend, check_input, checked_beta, pool_geometry
from ._layout import like_layout


def _soft_pool(
    x: torch.Tensor,
    rank: int,
    kernel_size,
    stride,
    padding,
    ceil_mode: bool,
    beta: float | torch.Tensor,
    backend: str,
    module_beta: bool = False,
) -> torch.Tensor:
    """The body of `soft_pool1d`/`2d`/`3d` and of the Modules: validate, route, restore the layout."""
    name = f"soft_pool{rank}d"
    check_input(x, rank, name)
    backend = check_backend(backend)
    unbatched = x.dim() == rank + 1
    if unbatched:
        x = x.unsqueeze(0)
    beta = checked_beta(beta, x, module_beta)
    geometry = pool_geometry(tuple(x.shape[2:]), kernel_size, stride, padding, ceil_mode)
    y = _routing.soft_pool(x, geometry, beta, backend)
    return y.squeeze(0) if unbatched else like_layout(y, x)


def soft_pool1d(
    x: torch.Tensor,
    kernel_size: int | tuple[int],
    stride: int | tuple[int] | None = None,
    padding: int | tuple[int] = 0,
    ceil_mode: bool = False,
    *,
    beta: float | torch.Tensor = 1.0,
    backend: str = "auto",
) -> torch.Tensor:
    r"""SoftPool over windows of one spatial dimension.

    Each window's output is the softmax-weighted mean of its values,
    :math:`y = \sum_i \mathrm{softmax}(\beta x_w)_i \, x_i`, per channel. The windows are those
    of :func:`torch.nn.functional.max_pool1d`; padded positions are left out of a window.
    Infinities and NaN follow the limits of the formula, alike on every backend: -inf
    weighs 0 (a window of only -inf gives -inf), a +inf in a window gives +inf (its gradient
    shared evenly among the window's +inf values, as max pooling's ties), and a NaN gives NaN
    (and a NaN gradient to every value of its window).

    Args:
        x: input of shape (N, C, L) or (C, L); float16, bfloat16, float32 or float64.
        kernel_size: window length.
        stride: window step; defaults to ``kernel_size``.
        padding: implicit padding on both sides, at most half the kernel size.
        ceil_mode: use ceil instead of floor for the output length, as max pooling does.
        beta: sharpness, finite and >= 0: 0 is average pooling, 1 is the paper's SoftPool,
            large values tend to max pooling. A tensor of one value or one per channel (C,)
            is differentiable (dy/dbeta is the softmax-weighted variance of the window) and
            runs on the PyTorch path; its values are not checked.
        backend: "auto" (Triton kernels for CUDA tensors, compiled CPU kernels for CPU tensors),
            "triton" or "torch" (PyTorch ops; the one path that supports double backward).

    Shape:
        - Input: :math:`(N, C, L_{in})` or :math:`(C, L_{in})`.
        - Output: :math:`(N, C, L_{out})` or :math:`(C, L_{out})` with
          :math:`L_{out} = \lfloor (L_{in} + 2p - k) / s \rfloor + 1` (ceil with ``ceil_mode``).

    Examples:
        >>> soft_pool1d(torch.randn(2, 3, 10), 2).shape
        torch.Size([2, 3, 5])
    """
    return _soft_pool(x, 1, kernel_size, stride, padding, ceil_mode, beta, backend)


def soft_pool2d(
    x: torch.Tensor,
    kernel_size: int | tuple[int, int],
    stride: int | tuple[int, int] | None = None,
    padding: int | tuple[int, int] = 0,
    ceil_mode: bool = False,
    *,
    beta: float | torch.Tensor = 1.0,
    backend: str = "auto",
) -> torch.Tensor:
    r"""SoftPool over 2D windows (height, width).

    Each window's output is the softmax-weighted mean of its values,
    :math:`y = \sum_i \mathrm{softmax}(\beta x_w)_i \, x_i`, per channel. The windows are those
    of :func:`torch.nn.functional.max_pool2d`; padded positions are left out of a window.
    Infinities and NaN follow the limits of the formula, alike on every backend: -inf
    weighs 0 (a window of only -inf gives -inf), a +inf in a window gives +inf (its gradient
    shared evenly among the window's +inf values, as max pooling's ties), and a NaN gives NaN
    (and a NaN gradient to every value of its window).

    Args:
        x: input of shape (N, C, H, W) or (C, H, W); float16, bfloat16, float32 or float64;
            any strides, channels_last included (the output keeps that layout).
        kernel_size: window size, an int or (kH, kW).
        stride: window step, an int or (sH, sW); defaults to ``kernel_size``.
        padding: implicit padding on both sides, at most half the kernel size.
        ceil_mode: use ceil instead of floor for the output size, as max pooling does.
        beta: sharpness, finite and >= 0: 0 is average pooling, 1 is the paper's SoftPool,
            large values tend to max pooling. A tensor of one value or one per channel (C,)
            is differentiable (dy/dbeta is the softmax-weighted variance of the window) and
            runs on the PyTorch path; its values are not checked.
        backend: "auto" (Triton kernels for CUDA tensors, compiled CPU kernels for CPU tensors),
            "triton" or "torch" (PyTorch ops; the one path that supports double backward).

    Shape:
        - Input: :math:`(N, C, H_{in}, W_{in})` or :math:`(C, H_{in}, W_{in})`.
        - Output: :math:`(N, C, H_{out}, W_{out})` or :math:`(C, H_{out}, W_{out})` with
          :math:`H_{out} = \lfloor (H_{in} + 2p_H - k_H) / s_H \rfloor + 1`, likewise for W
          (ceil with ``ceil_mode``).

    Examples:
        >>> soft_pool2d(torch.randn(1, 3, 8, 8), kernel_size=2).shape
        torch.Size([1, 3, 4, 4])
        >>> soft_pool2d(torch.randn(1, 3, 7, 7), 3, stride=2, padding=1, beta=2.0).shape
        torch.Size([1, 3, 4, 4])
    """
    return _soft_pool(x, 2, kernel_size, stride, padding, ceil_mode, beta, backend)


def soft_pool3d(
    x: torch.Tensor,
    kernel_size: int | tuple[int, int, int],
    stride: int | tuple[int, int, int] | None = None,
    padding: int | tuple[int, int, int] = 0,
    ceil_mode: bool = False,
    *,
    beta: float | torch.Tensor = 1.0,
    backend: str = "auto",
) -> torch.Tensor:
    r"""SoftPool over 3D windows (time or depth, height, width).

    Each window's output is the softmax-weighted mean of its values,
    :math:`y = \sum_i \mathrm{softmax}(\beta x_w)_i \, x_i`, per channel. The windows are those
    of :func:`torch.nn.functional.max_pool3d`; padded positions are left out of a window.
    Infinities and NaN follow the limits of the formula, alike on every backend: -inf
    weighs 0 (a window of only -inf gives -inf), a +inf in a window gives +inf (its gradient
    shared evenly among the window's +inf values, as max pooling's ties), and a NaN gives NaN
    (and a NaN gradient to every value of its window).

    Args:
        x: input of shape (N, C, D, H, W) or (C, D, H, W); float16, bfloat16, float32 or float64;
            any strides, channels_last_3d included (the output keeps that layout).
        kernel_size: window size, an int or (kD, kH, kW).
        stride: window step, an int or (sD, sH, sW); defaults to ``kernel_size``.
        padding: implicit padding on both sides, at most half the kernel size.
        ceil_mode: use ceil instead of floor for the output size, as max pooling does.
        beta: sharpness, finite and >= 0: 0 is average pooling, 1 is the paper's SoftPool,
            large values tend to max pooling. A tensor of one value or one per channel (C,)
            is differentiable (dy/dbeta is the softmax-weighted variance of the window) and
            runs on the PyTorch path; its values are not checked.
        backend: "auto" (Triton kernels for CUDA tensors, compiled CPU kernels for CPU tensors),
            "triton" or "torch" (PyTorch ops; the one path that supports double backward).

    Shape:
        - Input: :math:`(N, C, D_{in}, H_{in}, W_{in})` or :math:`(C, D_{in}, H_{in}, W_{in})`.
        - Output: :math:`(N, C, D_{out}, H_{out}, W_{out})` (or unbatched) with
          :math:`D_{out} = \lfloor (D_{in} + 2p_D - k_D) / s_D \rfloor + 1`, likewise for H and W
          (ceil with ``ceil_mode``).

    Examples:
        >>> soft_pool3d(torch.randn(1, 3, 4, 8, 8), kernel_size=2).shape
        torch.Size([1, 3, 2, 4, 4])
    """
    return _soft_pool(x, 3, kernel_size, stride, padding, ceil_mode, beta, backend)
