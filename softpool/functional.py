"""The public SoftPool functions: validate once, then pick the implementation.

`backend="auto"` sends CUDA tensors to the Triton kernels (when Triton is importable), CPU
tensors to the compiled CPU kernels (when Numba is installed) and everything else to the
PyTorch path; "triton" and "torch" force one (`softpool._dispatch`).
``beta`` is a float, or a tensor (one value or one per channel) whose gradient is computed.
"""

from __future__ import annotations

import torch

from . import _dispatch
from ._arguments import PoolGeometry, check_backend, check_beta, check_input, pool_geometry
from ._gather_path import regular_windows, soft_pool_gathered
from ._ops import soft_pool_via_op
from ._torch_path import soft_pool_torch


def same_layout(y: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Keep channels_last / channels_last_3d inputs in that layout, as max pooling does."""
    layout = {4: torch.channels_last, 5: torch.channels_last_3d}.get(like.dim())
    if layout is not None and not like.is_contiguous() and like.is_contiguous(memory_format=layout):
        return y.contiguous(memory_format=layout)
    return y


def check_tensor_beta(beta: torch.Tensor, x: torch.Tensor, backend: str) -> torch.Tensor:
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
    if backend == "triton":
        raise ValueError(
            "backend='triton' takes a float beta; a tensor beta runs on the PyTorch path (backend='torch')"
        )
    return beta


def checked_beta(beta: object, x: torch.Tensor, backend: str, module_beta: bool = False) -> float | torch.Tensor:
    """``beta`` checked: a float (finite, >= 0) or a tensor (see `check_tensor_beta`).

    A Module's float beta was checked when it was set: it is not checked again, because
    `torch.compile(dynamic=True)` traces it as a symbolic float whose value is unknown here.
    """
    if isinstance(beta, torch.Tensor):
        return check_tensor_beta(beta, x, backend)
    return beta if module_beta else check_beta(beta)


def run_soft_pool(
    x: torch.Tensor, geometry: PoolGeometry, beta: float | torch.Tensor, backend: str
) -> torch.Tensor:
    """Route one validated call on a batched ``x`` (N, C, *spatial).

    - `torch.onnx.export` (either exporter): the gathered-windows decomposition, standard ONNX ops;
    - a tensor ``beta`` (learnable): the PyTorch path, whose autograd gives the gradient for beta;
    - `torch.compile` / `torch.export`: the ``softpool::soft_pool`` custom op;
    - eager calls: the engine straight away, skipping the custom op's dispatcher round trip.
    """
    tracing = torch.compiler.is_compiling() or torch.jit.is_tracing()  # both exporters trace
    if tracing and torch.onnx.is_in_onnx_export():
        return soft_pool_gathered(x, regular_windows(geometry, x.device), beta)
    if isinstance(beta, torch.Tensor):
        return soft_pool_torch(x, geometry, beta)
    if torch.compiler.is_compiling():
        return soft_pool_via_op(x, geometry, beta, backend)
    return _dispatch.forward(x, geometry, beta, _dispatch.resolve_backend(x, backend))


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
    name = f"soft_pool{rank}d"
    check_input(x, rank, name)
    backend = check_backend(backend)
    unbatched = x.dim() == rank + 1
    if unbatched:
        x = x.unsqueeze(0)
    beta = checked_beta(beta, x, backend, module_beta)
    geometry = pool_geometry(tuple(x.shape[2:]), kernel_size, stride, padding, ceil_mode)
    y = run_soft_pool(x, geometry, beta, backend)
    return y.squeeze(0) if unbatched else same_layout(y, like=x)


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
