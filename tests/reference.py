"""An independent float64 SoftPool reference, written as plain loops.

It uses no pooling ops and shares no code with the library: windows are found
from the definition (the windows of max pooling), padded positions are simply
left out, and each window's softmax is computed in float64 with the window
maximum subtracted. Autograd through it gives the reference gradient.
"""

from __future__ import annotations

import itertools
import math

import torch


def output_size(length: int, kernel: int, stride: int, padding: int, ceil_mode: bool) -> int:
    """Output length of max pooling along one dimension (no dilation)."""
    span = length + 2 * padding - kernel
    out = (-(-span // stride) if ceil_mode else span // stride) + 1
    # With ceil_mode, a last window that would start in the right padding is dropped.
    if ceil_mode and (out - 1) * stride >= length + padding:
        out -= 1
    return out


def _as_tuple(value, rank: int) -> tuple[int, ...]:
    return tuple(value) if isinstance(value, (tuple, list)) else (value,) * rank


def soft_pool_reference(
    x: torch.Tensor,
    kernel_size,
    stride=None,
    padding=0,
    ceil_mode: bool = False,
    beta: float = 1.0,
) -> torch.Tensor:
    """SoftPool of ``x`` of shape (N, C, *spatial) by explicit loops, in float64."""
    rank = x.dim() - 2
    kernel = _as_tuple(kernel_size, rank)
    stride = kernel if stride is None else _as_tuple(stride, rank)
    padding = _as_tuple(padding, rank)
    sizes = x.shape[2:]
    out_sizes = [
        output_size(sizes[d], kernel[d], stride[d], padding[d], ceil_mode) for d in range(rank)
    ]
    x = x.to(torch.float64)
    outputs = []
    for position in itertools.product(*(range(o) for o in out_sizes)):
        slices = []
        for d, o in enumerate(position):
            start = o * stride[d] - padding[d]
            stop = start + kernel[d]
            slices.append(slice(max(start, 0), min(stop, sizes[d])))
        window = x[(slice(None), slice(None), *slices)].reshape(x.shape[0], x.shape[1], -1)
        shifted = beta * (window - window.max(dim=-1, keepdim=True).values.detach())
        weights = torch.exp(shifted)
        weights = weights / weights.sum(dim=-1, keepdim=True)
        outputs.append((weights * window).sum(dim=-1))
    return torch.stack(outputs, dim=-1).reshape(x.shape[0], x.shape[1], *out_sizes)


def soft_pool_reference_grad(x, grad_out, kernel_size, stride=None, padding=0, ceil_mode=False, beta=1.0):
    """Gradient of sum(grad_out * y) with respect to x, by the closed form.

    dy_w/dx_i = w_i * (1 + beta * (x_i - y_w)) for every window w that holds i.
    """
    rank = x.dim() - 2
    kernel = _as_tuple(kernel_size, rank)
    stride = kernel if stride is None else _as_tuple(stride, rank)
    padding = _as_tuple(padding, rank)
    sizes = x.shape[2:]
    x = x.to(torch.float64)
    grad_out = grad_out.to(torch.float64)
    grad_in = torch.zeros_like(x)
    for position in itertools.product(*(range(o) for o in grad_out.shape[2:])):
        slices = []
        for d, o in enumerate(position):
            start = o * stride[d] - padding[d]
            slices.append(slice(max(start, 0), min(start + kernel[d], sizes[d])))
        index = (slice(None), slice(None), *slices)
        window = x[index]
        flat = window.reshape(x.shape[0], x.shape[1], -1)
        weights = torch.exp(beta * (flat - flat.max(dim=-1, keepdim=True).values))
        weights = weights / weights.sum(dim=-1, keepdim=True)
        y = (weights * flat).sum(dim=-1, keepdim=True)
        g = grad_out[(slice(None), slice(None), *position)].unsqueeze(-1)
        contribution = g * weights * (1 + beta * (flat - y))
        grad_in[index] += contribution.reshape(window.shape)
    return grad_in


def assert_close(actual: torch.Tensor, expected: torch.Tensor, atol: float, rtol: float, what: str = "") -> None:
    """Like torch.testing.assert_close, but reports how many and which elements differ."""
    actual64 = actual.detach().to(torch.float64).cpu()
    expected64 = expected.detach().to(torch.float64).cpu()
    assert actual64.shape == expected64.shape, f"{what}: shape {tuple(actual64.shape)} != {tuple(expected64.shape)}"
    bad = ~(
        ((actual64 - expected64).abs() <= atol + rtol * expected64.abs())
        | (actual64.isnan() & expected64.isnan())
    )
    if bad.any():
        indices = bad.nonzero()[:5].tolist()
        worst = (actual64 - expected64).abs().nan_to_num(math.inf).max().item()
        details = ", ".join(
            f"{tuple(i)}: {actual64[tuple(i)].item():.6g} vs {expected64[tuple(i)].item():.6g}" for i in indices
        )
        raise AssertionError(
            f"{what}: {int(bad.sum())} of {bad.numel()} elements differ (max abs diff {worst:.3g}); first: {details}"
        )


# (dtype, atol, rtol) for comparing a result in that dtype with the float64 reference.
TOLERANCES = {
    torch.float64: (1e-10, 1e-10),
    torch.float32: (1e-5, 1e-5),
    torch.float16: (2e-3, 2e-3),
    torch.bfloat16: (2e-2, 2e-2),
}


def soft_pool_reference_nonfinite(
    x: torch.Tensor, grad_out: torch.Tensor, kernel_size, stride=None, padding=0, ceil_mode=False, beta=1.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """SoftPool and its gradient for inputs that may hold +-inf and NaN, by explicit loops in float64.

    Per window (its valid positions; padding is not part of it):

    - a NaN in the window: y is NaN, and every value of the window gets a NaN gradient;
    - else a +inf in the window: y = +inf; each +inf value gets g / (number of +inf values),
      every other value 0 (max pooling's ties split evenly; the limit of the formula);
    - else a window of only -inf: y = -inf, gradient 0;
    - else SoftPool of the finite values (-inf values weigh 0 and get gradient 0):
      y = sum w_i x_i with w = softmax(beta x) over them, gradient g w_i (1 + beta (x_i - y)).

    The same rules hold for every beta >= 0 (beta = 0: the mean of the finite values).
    Returns (y, grad_x) for ``grad_out`` the incoming gradient.
    """
    rank = x.dim() - 2
    kernel = _as_tuple(kernel_size, rank)
    stride = kernel if stride is None else _as_tuple(stride, rank)
    padding = _as_tuple(padding, rank)
    sizes = x.shape[2:]
    out_sizes = [output_size(sizes[d], kernel[d], stride[d], padding[d], ceil_mode) for d in range(rank)]
    x = x.to(torch.float64)
    grad_out = grad_out.to(torch.float64)
    y = torch.empty(*x.shape[:2], *out_sizes, dtype=torch.float64)
    grad_in = torch.zeros_like(x)
    for n, c in itertools.product(range(x.shape[0]), range(x.shape[1])):
        for position in itertools.product(*(range(o) for o in out_sizes)):
            slices = []
            for d, o in enumerate(position):
                start = o * stride[d] - padding[d]
                slices.append(slice(max(start, 0), min(start + kernel[d], sizes[d])))
            window = x[(n, c, *slices)]
            g = grad_out[(n, c, *position)].item()
            values = window.reshape(-1)
            if values.isnan().any():
                y[(n, c, *position)] = math.nan
                grad = torch.full_like(values, math.nan)
            elif (values == math.inf).any():
                y[(n, c, *position)] = math.inf
                hot = values == math.inf
                grad = hot.to(torch.float64) * (g / hot.sum().item())  # torch.where would give float32
            elif (values == -math.inf).all():
                y[(n, c, *position)] = -math.inf
                grad = torch.zeros_like(values)
            else:
                finite = values > -math.inf
                kept = values[finite]
                weights = torch.softmax(beta * kept, dim=0)
                pooled = (weights * kept).sum()
                y[(n, c, *position)] = pooled
                grad = torch.zeros_like(values)
                grad[finite] = g * weights * (1 + beta * (kept - pooled))
            grad_in[(n, c, *slices)] += grad.reshape(window.shape)
    return y, grad_in


def nonfinite_input(shape, kernel_size, dtype, seed: int) -> torch.Tensor:
    """Random values with about a quarter -inf, and +inf and NaN rare enough that many windows
    hold none (8% and 3% of small windows' values); the first window of the first plane all
    -inf, and a window-sized block at the far corner of the last plane all +inf."""
    rank = len(shape) - 2
    kernel = kernel_size if isinstance(kernel_size, tuple) else (kernel_size,) * rank
    volume = math.prod(kernel)
    positive, nan = min(0.08, 0.5 / volume), min(0.03, 0.3 / volume)
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(shape, generator=generator, dtype=torch.float64)
    draw = torch.rand(shape, generator=generator, dtype=torch.float64)
    x[draw < 0.25] = -math.inf
    x[(draw >= 0.25) & (draw < 0.25 + positive)] = math.inf
    x[(draw >= 0.25 + positive) & (draw < 0.25 + positive + nan)] = math.nan
    planes = x.view(-1, *shape[2:])
    planes[(0, *(slice(0, k) for k in kernel))] = -math.inf
    planes[(-1, *(slice(-k, None) for k in kernel))] = math.inf
    return x.to(dtype)


def assert_matches_nonfinite(actual: torch.Tensor, expected: torch.Tensor, atol: float, rtol: float, what: str) -> None:
    """NaN where expected is NaN, the same infinities where it is infinite, and close elsewhere."""
    actual = actual.detach().double().cpu()
    nan = expected.isnan()
    infinite = expected.isinf()
    assert torch.equal(actual.isnan(), nan), f"{what}: NaN at {(actual.isnan() != nan).nonzero()[:5].tolist()}"
    assert torch.equal(actual[infinite], expected[infinite]), f"{what}: infinities differ"
    finite = ~(nan | infinite)
    assert_close(actual[finite], expected[finite], atol, rtol, what)
