"""Adaptive SoftPool: a fixed output size, with exactly the windows of `F.adaptive_avg_pool*d`.

Along a dimension of length L pooled to O outputs, window i covers
[floor(i * L / O), ceil((i + 1) * L / O)). When O divides L these are ordinary windows
(kernel = stride = L / O), so the call goes through the regular SoftPool route (Triton kernels
for CUDA tensors, the custom op under `torch.compile`); this covers global pooling
(``output_size=1``). Otherwise windows differ in size and start; they are gathered into a
padded block with a validity mask (`softpool.torch_path.gather`), in plain PyTorch ops that
autograd, `torch.compile` and the ONNX exporters all go through.
"""

from __future__ import annotations

import torch

from . import _routing
from ._arguments import check_backend, check_input, check_output_size, checked_beta
from ._layout import like_layout


def _adaptive_soft_pool(
    x: torch.Tensor, rank: int, output_size, beta, backend: str, module_beta: bool = False
) -> torch.Tensor:
    """The body of `adaptive_soft_pool1d`/`2d`/`3d` and of the adaptive Modules."""
    check_input(x, rank, f"adaptive_soft_pool{rank}d")
    backend = check_backend(backend)
    unbatched = x.dim() == rank + 1
    if unbatched:
        x = x.unsqueeze(0)
    beta = checked_beta(beta, x, module_beta)
    sizes = check_output_size(output_size, tuple(x.shape[2:]))
    y = _routing.adaptive_soft_pool(x, sizes, beta, backend)
    return y.squeeze(0) if unbatched else like_layout(y, x)


def adaptive_soft_pool1d(
    x: torch.Tensor, output_size: int | tuple[int | None], *, beta: float | torch.Tensor = 1.0, backend: str = "auto"
) -> torch.Tensor:
    r"""Adaptive SoftPool over one spatial dimension, with the windows of `F.adaptive_avg_pool1d`.

    Args:
        x: input of shape (N, C, L) or (C, L); float16, bfloat16, float32 or float64.
        output_size: the output size, an int or a tuple of 1 whose entries may be None (keep
            that input size).
        beta: sharpness, finite and >= 0, as in :func:`softpool.soft_pool1d`; a tensor of one
            value or one per channel (C,) is differentiable and runs on the PyTorch path.
        backend: "auto", "triton" or "torch", as in :func:`softpool.soft_pool1d`. Output sizes
            that do not divide the input size run on the PyTorch path.

    Shape:
        - Input: :math:`(N, C, L)` or unbatched.
        - Output: :math:`(N, C, *output\_size)` or unbatched. Along a dimension of length
          :math:`L` pooled to :math:`O`, window :math:`i` covers
          :math:`[\lfloor iL/O \rfloor, \lceil (i+1)L/O \rceil)`.

    Examples:
        >>> adaptive_soft_pool1d(torch.randn(2, 3, 10), 4).shape
        torch.Size([2, 3, 4])
    """
    return _adaptive_soft_pool(x, 1, output_size, beta, backend)


def adaptive_soft_pool2d(
    x: torch.Tensor,
    output_size: int | tuple[int | None, int | None],
    *,
    beta: float | torch.Tensor = 1.0,
    backend: str = "auto",
) -> torch.Tensor:
    r"""Adaptive SoftPool over height and width, with the windows of `F.adaptive_avg_pool2d`.

    Args:
        x: input of shape (N, C, H, W) or (C, H, W); float16, bfloat16, float32 or float64.
        output_size: the output size, an int or a tuple of 2 whose entries may be None (keep
            that input size).
        beta: sharpness, finite and >= 0, as in :func:`softpool.soft_pool2d`; a tensor of one
            value or one per channel (C,) is differentiable and runs on the PyTorch path.
        backend: "auto", "triton" or "torch", as in :func:`softpool.soft_pool2d`. Output sizes
            that do not divide the input size run on the PyTorch path.

    Shape:
        - Input: :math:`(N, C, H, W)` or unbatched.
        - Output: :math:`(N, C, *output\_size)` or unbatched. Along a dimension of length
          :math:`L` pooled to :math:`O`, window :math:`i` covers
          :math:`[\lfloor iL/O \rfloor, \lceil (i+1)L/O \rceil)`.

    Examples:
        >>> adaptive_soft_pool2d(torch.randn(2, 512, 7, 7), 1).shape  # global SoftPool
        torch.Size([2, 512, 1, 1])
        >>> adaptive_soft_pool2d(torch.randn(1, 3, 10, 9), (3, None)).shape
        torch.Size([1, 3, 3, 9])
    """
    return _adaptive_soft_pool(x, 2, output_size, beta, backend)


def adaptive_soft_pool3d(
    x: torch.Tensor,
    output_size: int | tuple[int | None, int | None, int | None],
    *,
    beta: float | torch.Tensor = 1.0,
    backend: str = "auto",
) -> torch.Tensor:
    r"""Adaptive SoftPool over depth (or time), height and width, with the windows of `F.adaptive_avg_pool3d`.

    Args:
        x: input of shape (N, C, D, H, W) or (C, D, H, W); float16, bfloat16, float32 or float64.
        output_size: the output size, an int or a tuple of 3 whose entries may be None (keep
            that input size).
        beta: sharpness, finite and >= 0, as in :func:`softpool.soft_pool3d`; a tensor of one
            value or one per channel (C,) is differentiable and runs on the PyTorch path.
        backend: "auto", "triton" or "torch", as in :func:`softpool.soft_pool3d`. Output sizes
            that do not divide the input size run on the PyTorch path.

    Shape:
        - Input: :math:`(N, C, D, H, W)` or unbatched.
        - Output: :math:`(N, C, *output\_size)` or unbatched. Along a dimension of length
          :math:`L` pooled to :math:`O`, window :math:`i` covers
          :math:`[\lfloor iL/O \rfloor, \lceil (i+1)L/O \rceil)`.

    Examples:
        >>> adaptive_soft_pool3d(torch.randn(1, 3, 8, 14, 14), (1, 7, 7)).shape
        torch.Size([1, 3, 1, 7, 7])
    """
    return _adaptive_soft_pool(x, 3, output_size, beta, backend)
