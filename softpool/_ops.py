"""SoftPool as `torch.library` custom ops, so that `torch.compile` sees one opaque node.

`torch.compile(fullgraph=True)` cannot trace into a Triton launch or a native CPU engine; a
custom op with a fake (shape-only) implementation and a registered backward lets it keep the
whole model in one graph and call SoftPool at run time. Both ops end in `softpool._routing`,
the same engines as eager calls:

- ``softpool::soft_pool(x, kernel_size, stride, padding, output_size, beta, backend) -> y``
- ``softpool::soft_pool_backward(grad_y, x, kernel_size, stride, padding, output_size, beta, backend) -> grad_x``

``x`` is batched (N, C, *spatial) and the window arguments are already validated (the output
size stands for ceil_mode, which only decides it); ``backend`` is "auto", "triton" or "torch".
Outputs are dense, channels_last(_3d) when the input is; the ops are tagged flexible_layout, so
a compiled graph hands them its tensors without copies. The backward op keeps only ``x`` and
recomputes the window statistics; it is not differentiable again (no double backward through
compiled graphs). Eager calls skip the ops (see `softpool.functional`): the dispatcher's Python
round trip adds about 15 us to a forward call and more to a backward, as much as a small pooling.
"""

from __future__ import annotations

import torch

from . import _routing
from ._geometry import PoolGeometry
from ._layout import like_layout


def geometry_of(
    x: torch.Tensor, kernel_size: list[int], stride: list[int], padding: list[int], output_size: list[int]
) -> PoolGeometry:
    """The `PoolGeometry` of already-validated window arguments (no checks: the caller made them)."""
    return PoolGeometry(
        tuple(kernel_size), tuple(stride), tuple(padding), tuple(x.shape[2:]), tuple(output_size)
    )


# flexible_layout: every engine takes any strides, so inductor need not copy the input to eager's.
@torch.library.custom_op("softpool::soft_pool", mutates_args=(), tags=(torch.Tag.flexible_layout,))
def soft_pool_op(
    x: torch.Tensor,
    kernel_size: list[int],
    stride: list[int],
    padding: list[int],
    output_size: list[int],
    beta: float,
    backend: str,
) -> torch.Tensor:
    geometry = geometry_of(x, kernel_size, stride, padding, output_size)
    # Resolved again at run time: the compiled graph may run on other devices than it was traced for.
    return like_layout(_routing.forward(x, geometry, beta, _routing.resolve(x, backend)), x)


@soft_pool_op.register_fake
def _soft_pool_fake(x, kernel_size, stride, padding, output_size, beta, backend):
    return like_layout(x.new_empty((*x.shape[:2], *output_size)), x)


@torch.library.custom_op("softpool::soft_pool_backward", mutates_args=(), tags=(torch.Tag.flexible_layout,))
def soft_pool_backward_op(
    grad_output: torch.Tensor,
    x: torch.Tensor,
    kernel_size: list[int],
    stride: list[int],
    padding: list[int],
    output_size: list[int],
    beta: float,
    backend: str,
) -> torch.Tensor:
    geometry = geometry_of(x, kernel_size, stride, padding, output_size)
    return _routing.backward(grad_output, x, geometry, beta, _routing.resolve(x, backend)).contiguous()


@soft_pool_backward_op.register_fake
def _soft_pool_backward_fake(grad_output, x, kernel_size, stride, padding, output_size, beta, backend):
    return x.new_empty(x.shape)


def _setup_context(ctx, inputs, output) -> None:
    x, *window_and_beta = inputs
    ctx.save_for_backward(x)
    ctx.arguments = window_and_beta


def _backward(ctx, grad_output):
    (x,) = ctx.saved_tensors
    grad_x = soft_pool_backward_op(grad_output, x, *ctx.arguments)
    return grad_x, None, None, None, None, None, None


soft_pool_op.register_autograd(_backward, setup_context=_setup_context)


def soft_pool_via_op(x: torch.Tensor, geometry: PoolGeometry, beta: float, backend: str) -> torch.Tensor:
    """Call ``softpool::soft_pool`` for a batched ``x`` and a validated geometry."""
    return soft_pool_op(
        x,
        list(geometry.kernel_size),
        list(geometry.stride),
        list(geometry.padding),
        list(geometry.output_size),
        beta,
        backend,
    )
