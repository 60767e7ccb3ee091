"""SoftPool over windows listed by index, one dimension at a time, in plain PyTorch ops.

Along each spatial dimension a window list is an index tensor (O, K), the positions of each of
the O windows, with a mask (O, K) of the positions that are real (windows shorter than K,
padding). Gathering them (`index_select`, or a reshape where windows tile the dimension) gives
a block (N, C, O1, ..., K1, ...) whose masked softmax-weighted mean is the output. The ops are
all standard, so this is what adaptive SoftPool runs for uneven windows and what ONNX export
records for every SoftPool layer (both exporters: no `unfold`, whose shape the TorchScript
exporter cannot always see).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .._geometry import PoolGeometry, adaptive_bounds
from .._layout import compute_dtype
from .nonfinite import finite_differences, floored_beta, pooled_output, safe_total, window_shift


@dataclass(frozen=True)
class Windows:
    """The windows along one dimension: ``index`` (O, K) and the mask ``inside`` (O, K).

    ``tile`` (K) instead means O windows of K that tile the first O * K positions: a reshape.
    """

    index: torch.Tensor | None = None
    inside: torch.Tensor | None = None
    tile: int | None = None


def _constant(sizes: tuple) -> tuple:
    """Sizes as ints: the TorchScript tracer hands them over as tensors, and the window
    indices must be constants of the graph, not computations on its input's shape."""
    return tuple(int(n) for n in sizes) if torch.jit.is_tracing() else tuple(sizes)


def regular_windows(geometry: PoolGeometry, device: torch.device) -> list[Windows]:
    """The windows of max pooling with ``geometry``, per dimension."""
    result = []
    sizes, outputs = _constant(geometry.input_size), _constant(geometry.output_size)
    for n, k, s, p, o in zip(sizes, geometry.kernel_size, geometry.stride, geometry.padding, outputs):
        if k == s and p == 0 and o * k <= n:
            result.append(Windows(tile=k))
            continue
        index = torch.arange(o, device=device)[:, None] * s - p + torch.arange(k, device=device)  # (O, K)
        inside = (index >= 0) & (index < n)
        result.append(Windows(index.clamp(0, n - 1), inside))
    return result


def adaptive_windows(input_size: tuple[int, ...], output_size: tuple[int, ...], device: torch.device) -> list[Windows]:
    """The windows of adaptive pooling: [floor(i L / O), ceil((i + 1) L / O)), per dimension."""
    result = []
    for length, out in zip(_constant(input_size), output_size):
        if length % out == 0:
            result.append(Windows(tile=length // out))
            continue
        starts, ends = zip(*adaptive_bounds(length, out))
        widest = max(e - s for s, e in zip(starts, ends))
        index = torch.tensor(starts, device=device)[:, None] + torch.arange(widest, device=device)  # (O, K)
        inside = index < torch.tensor(ends, device=device)[:, None]
        result.append(Windows(index.clamp(max=length - 1), inside))
    return result


def soft_pool_gathered(x: torch.Tensor, windows: list[Windows], beta: float | torch.Tensor) -> torch.Tensor:
    """SoftPool of a batched ``x`` (N, C, *spatial) over the given windows: (N, C, O1, ...).

    ``beta`` is a float, or a tensor of one value or one per channel (C,). Half types are
    computed in float32. Autograd through it is the exact gradient.
    """
    rank = len(windows)
    dtype = compute_dtype(x.dtype)
    block = x.to(dtype)
    inside = None  # (O1, K1, ..., Od, Kd) once a dimension has a mask
    for d, along in enumerate(windows):
        dim = 2 + 2 * d  # earlier dimensions are already split into (O, K) pairs
        if along.tile is not None:
            out = block.shape[dim] // along.tile
            block = block.narrow(dim, 0, out * along.tile).unflatten(dim, (out, along.tile))
            mask = torch.ones(out, along.tile, dtype=torch.bool, device=x.device)
        else:
            block = block.index_select(dim, along.index.flatten()).unflatten(dim, tuple(along.index.shape))
            mask = along.inside
        if inside is not None or along.tile is None:
            previous = torch.ones((1,) * (2 * d), dtype=torch.bool, device=x.device) if inside is None else inside
            inside = previous[..., None, None] & mask
    # (N, C, O1, K1, O2, K2, ...) -> (N, C, O1, O2, ..., K1, K2, ...)
    order = [0, 1, *range(2, 2 + 2 * rank, 2), *range(3, 3 + 2 * rank, 2)]
    block = block.permute(order)
    window_dims = tuple(range(-rank, 0))

    if inside is not None:
        outside = ~inside.permute([o - 2 for o in order[2:]])
        window_max = block.masked_fill(outside, float("-inf")).amax(dim=window_dims, keepdim=True)
    else:
        window_max = block.amax(dim=window_dims, keepdim=True)
    if isinstance(beta, torch.Tensor):
        beta = beta.to(dtype).reshape(1, -1, *([1] * (2 * rank)))  # one value, or (1, C, 1, ...)
    beta = floored_beta(beta)
    # The detached shift changes nothing mathematically: SoftPool ignores a per-window shift.
    shift = window_shift(window_max)
    differences = finite_differences(block, shift, beta)  # -inf and NaN handled as `nonfinite` says
    exponent = beta * differences
    if inside is not None:
        exponent = exponent.masked_fill(outside, float("-inf"))  # after beta: beta = 0 must still mask
    weights = torch.exp(exponent)
    relative = (weights * differences).sum(dim=window_dims) / safe_total(weights.sum(dim=window_dims))
    for _ in range(rank):  # one dimension at a time: the TorchScript exporter takes no tuple here
        window_max, shift = window_max.squeeze(-1), shift.squeeze(-1)
    pooled = pooled_output(window_max, shift, relative)  # (N, C, O1, ...)
    return pooled.to(x.dtype)
