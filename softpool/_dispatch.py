"""The one place that picks the engine for a SoftPool call, forward and backward.

Every entry point (the functions, the Modules, the adaptive functions and the custom ops that
`torch.compile` sees) ends here with a validated `PoolGeometry` and a float ``beta``.
`forward` is autograd-aware (each engine brings its own exact backward); `backward` is the
same gradient without autograd, for the custom op whose backward runs below the autograd layer.
"""

from __future__ import annotations

import torch

from ._arguments import PoolGeometry
from ._torch_backward import soft_pool_torch_backward
from ._torch_path import soft_pool_torch


def resolve_backend(x: torch.Tensor, backend: str) -> str:
    """Turn "auto" / "triton" / "torch" into the engine that runs on ``x``.

    "triton" (the Triton kernels), "cpu" (the compiled CPU kernels, for CPU tensors under
    "auto" where Numba is installed) or "torch" (PyTorch ops, everywhere else).

    Raises:
        ValueError: ``backend="triton"`` where the kernels cannot run on ``x``.
    """
    if backend == "torch":
        return "torch"
    if backend == "auto" and not x.is_cuda:
        from ._cpu_kernels import supports

        return "cpu" if supports(x) else "torch"
    from .kernels import unavailable_reason

    reason = unavailable_reason(x)
    if reason is None:
        return "triton"
    if backend == "triton":
        raise ValueError(f"backend='triton' cannot run here: {reason}")
    return "torch"


def forward(x: torch.Tensor, geometry: PoolGeometry, beta: float, engine: str) -> torch.Tensor:
    """SoftPool of a batched ``x`` (N, C, *spatial) with the engine from `resolve_backend`."""
    if engine == "triton":
        from .kernels.soft_pool_nd import soft_pool_triton

        return soft_pool_triton(x, geometry, beta)
    if engine == "cpu":
        from ._cpu_kernels import soft_pool_cpu

        return soft_pool_cpu(x, geometry, beta)
    return soft_pool_torch(x, geometry, beta)


def backward(
    grad_output: torch.Tensor, x: torch.Tensor, geometry: PoolGeometry, beta: float, engine: str
) -> torch.Tensor:
    """The gradient with respect to ``x`` of ``sum(grad_output * forward(x))``, without autograd.

    Each engine's own backward, exact and deterministic; the PyTorch one is in closed form.
    """
    if engine == "triton":
        from .kernels.soft_pool_nd import soft_pool_triton_backward

        return soft_pool_triton_backward(grad_output, x, geometry, beta)
    if engine == "cpu":
        from ._cpu_kernels import soft_pool_cpu_backward

        return soft_pool_cpu_backward(grad_output, x, geometry, beta)
    return soft_pool_torch_backward(grad_output, x, geometry, beta)
