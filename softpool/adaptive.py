"""Adaptive SoftPool: a fixed output size, with exactly the windows of `F.adaptive_avg_pool*d`.

Along a dimension of length L pooled to O outputs, window i covers
[floor(i * L / O), ceil((i + 1) * L / O)). When O divides L these are ordinary windows
(kernel = stride = L / O), so the call goes through the regular SoftPool route (Triton kernels
for CUDA tensors, the custom op under `torch.compile`); this covers global pooling
(``output_size=1``). Otherwise windows differ in size and start; they are gathered into a
padded block with a validity mask (`softpool._gather_path`), in plain PyTorch ops that
autograd, `torch.compile` and the ONNX exporters all go through.
"""

from __future__ import annotations

import numbers

import torch

from ._arguments import PoolGeometry, check_backend, check_input
from ._gather_path import adaptive_windows, soft_pool_gathered
from .functional import checked_beta, run_soft_pool, same_layout


def _is_int(value: object) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def check_output_size(output_size: object, input_size: tuple[int, ...]) -> tuple[int, ...]:
    """An int or a tuple of ints or None (None keeps that input size), as adaptive pooling takes."""
    rank = len(input_size)
    if _is_int(output_size):
        output_size = (int(output_size),) * rank
    if not isinstance(output_size, (tuple, list)) or not all(v is None or _is_int(v) for v in output_size):
        raise TypeError(f"output_size must be an int or a tuple of {rank} ints or None, got {output_size!r}")
    if len(output_size) != rank:
        raise ValueError(f"output_size must be an int or a tuple of {rank} ints or None, got {tuple(output_size)!r}")
    sizes = tuple(n if o is None else int(o) for o, n in zip(output_size, input_size))
    if any(o < 1 for o in sizes):
        raise ValueError(f"output_size must be positive, got {sizes}")
    return sizes


def _adaptive_soft_pool(
    x: torch.Tensor, rank: int, output_size, beta, backend: str, module_beta: bool = False
) -> torch.Tensor:
    check_input(x, rank, f"adaptive_soft_pool{rank}d")
    backend = check_backend(backend)
    unbatched = x.dim() == rank + 1
    if unbatched:
        x = x.unsqueeze(0)
    beta = checked_beta(beta, x, backend, module_beta)
    input_size = tuple(x.shape[2:])
    sizes = check_output_size(output_size, input_size)
    if all(n % o == 0 for n, o in zip(input_size, sizes)):
        kernel = tuple(n // o for n, o in zip(input_size, sizes))
        geometry = PoolGeometry(kernel, kernel, (0,) * rank, input_size, sizes)
        y = run_soft_pool(x, geometry, beta, backend)
    else:
        if backend == "triton":
            raise ValueError(
                f"backend='triton' runs adaptive sizes that divide the input size only, got output_size={sizes} "
                f"for input size {input_size}"
            )
        y = soft_pool_gathered(x, adaptive_windows(input_size, sizes, x.device), beta)
    return y.squeeze(0) if unbatched else same_layout(y, like=x)


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
