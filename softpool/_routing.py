"""The one place that decides how a SoftPool call runs, forward and backward.

Users ask for a backend: "auto", "triton" or "torch". Every entry point (the functions, the
Modules, the adaptive functions, and the custom ops that `torch.compile` sees) hands its
validated call to this module, which settles what runs, in this order:

1. `torch.onnx.export` (either exporter): the gathered-windows decomposition in standard ops
   (`softpool.torch_path.gather`), so that any ONNX runtime runs the model as it is.
2. A tensor ``beta`` (learned, or one per channel): PyTorch ops (`softpool.torch_path.unfold`),
   whose autograd gives the gradient for beta too.
3. Uneven adaptive windows: PyTorch ops over gathered windows.
4. `torch.compile` / `torch.export`: the ``softpool::soft_pool`` custom op (`softpool._ops`),
   an opaque node for the compiler; at run time it comes back here (`resolve`, `forward`).
5. Eager calls: `resolve` picks the kernels for the tensor at hand, and `forward` runs them:
   "triton" (CUDA tensors; CPU tensors under the Triton interpreter), "cpu" (the compiled CPU
   kernels, for CPU tensors under "auto" where Numba is installed) or "torch" (PyTorch ops,
   everywhere else and when asked for).

``backend="triton"`` where the Triton kernels cannot serve the call is an error, raised here.
"""

from __future__ import annotations

import torch

from ._geometry import PoolGeometry
from .torch_path.gather import adaptive_windows, regular_windows, soft_pool_gathered
from .torch_path.unfold import soft_pool_torch, soft_pool_torch_backward


def check_request(backend: str, *, tensor_beta: bool = False, learned_beta: bool = False) -> None:
    """Refuse ``backend="triton"`` for what only PyTorch ops serve: a tensor beta, or a Module's
    learned one (checked when the Module is made).

    Raises:
        ValueError: naming what the Triton kernels cannot do.
    """
    if backend != "triton":
        return
    if learned_beta:
        raise ValueError("learn_beta=True runs on the PyTorch path: it cannot take backend='triton'")
    if tensor_beta:
        raise ValueError(
            "backend='triton' takes a float beta; a tensor beta runs on the PyTorch path (backend='torch')"
        )


def resolve(x: torch.Tensor, backend: str) -> str:
    """The kernels that run on ``x`` for the requested backend: "triton", "cpu" or "torch".

    Raises:
        ValueError: ``backend="triton"`` where the kernels cannot run on ``x``.
    """
    if backend == "torch":
        return "torch"
    if backend == "auto" and not x.is_cuda:
        from .cpu.engine import supports

        return "cpu" if supports(x) else "torch"
    from .kernels import unavailable_reason

    reason = unavailable_reason(x)
    if reason is None:
        return "triton"
    if backend == "triton":
        raise ValueError(f"backend='triton' cannot run here: {reason}")
    return "torch"


def soft_pool(x: torch.Tensor, geometry: PoolGeometry, beta: float | torch.Tensor, backend: str) -> torch.Tensor:
    """SoftPool of a batched ``x`` (N, C, *spatial) over the windows of ``geometry`` (steps 1-5)."""
    tracing = torch.compiler.is_compiling() or torch.jit.is_tracing()  # both exporters trace
    if tracing and torch.onnx.is_in_onnx_export():
        return soft_pool_gathered(x, regular_windows(geometry, x.device), beta)
    check_request(backend, tensor_beta=isinstance(beta, torch.Tensor))
    if isinstance(beta, torch.Tensor):
        return soft_pool_torch(x, geometry, beta)
    if torch.compiler.is_compiling():
        from ._ops import soft_pool_via_op

        return soft_pool_via_op(x, geometry, beta, backend)
    return forward(x, geometry, beta, resolve(x, backend))


def adaptive_soft_pool(
    x: torch.Tensor, output_size: tuple[int, ...], beta: float | torch.Tensor, backend: str
) -> torch.Tensor:
    """Adaptive SoftPool of a batched ``x`` to ``output_size`` (validated, no None entries).

    Output sizes that divide the input size give ordinary windows (kernel = stride = L / O),
    which take the regular route; the others give windows of different sizes, gathered.

    Raises:
        ValueError: ``backend="triton"`` with windows of different sizes.
    """
    check_request(backend, tensor_beta=isinstance(beta, torch.Tensor))
    input_size = tuple(x.shape[2:])
    if all(n % o == 0 for n, o in zip(input_size, output_size)):
        kernel = tuple(n // o for n, o in zip(input_size, output_size))
        geometry = PoolGeometry(kernel, kernel, (0,) * len(kernel), input_size, output_size)
        return soft_pool(x, geometry, beta, backend)
    if backend == "triton":
        raise ValueError(
            f"backend='triton' runs adaptive sizes that divide the input size only, got output_size={output_size} "
            f"for input size {input_size}"
        )
    return soft_pool_gathered(x, adaptive_windows(input_size, output_size, x.device), beta)


def forward(x: torch.Tensor, geometry: PoolGeometry, beta: float, resolved: str) -> torch.Tensor:
    """SoftPool of a batched ``x`` with the kernels `resolve` named; differentiable (each brings
    its own exact backward)."""
    if resolved == "triton":
        from .kernels.soft_pool_nd import soft_pool_triton

        return soft_pool_triton(x, geometry, beta)
    if resolved == "cpu":
        from .cpu.engine import soft_pool_cpu

        return soft_pool_cpu(x, geometry, beta)
    return soft_pool_torch(x, geometry, beta)


def backward(
    grad_output: torch.Tensor, x: torch.Tensor, geometry: PoolGeometry, beta: float, resolved: str
) -> torch.Tensor:
    """The gradient with respect to ``x`` of ``sum(grad_output * forward(x))``, without autograd,
    for the custom op, whose backward runs below the autograd layer. Exact and deterministic."""
    if resolved == "triton":
        from .kernels.soft_pool_nd import soft_pool_triton_backward

        return soft_pool_triton_backward(grad_output, x, geometry, beta)
    if resolved == "cpu":
        from .cpu.engine import soft_pool_cpu_backward

        return soft_pool_cpu_backward(grad_output, x, geometry, beta)
    return soft_pool_torch_backward(grad_output, x, geometry, beta)
