"""The steps the PyTorch paths share so that -inf, +inf and NaN follow the Triton kernels' rules.

Per window: a NaN gives y = NaN (and a NaN gradient to the whole window); else a +inf gives
y = +inf (its gradient split evenly among the +inf values); else a window of only -inf gives
y = -inf (gradient 0); else -inf values weigh 0 and y is SoftPool of the finite values.

No branch on the data (nothing to synchronise, nothing to break a compiled graph): the window
maximum m is shifted out as always (0 instead for a window of only -inf), and the differences
x - m are made finite by one more elementwise pass (`torch.nan_to_num`, about a tenth of the
forward's time on CPU):

- NaN (a NaN window, or +inf - +inf in a +inf window) becomes 0, a weight of 1, so that a
  +inf window's weights count its +inf values;
- -inf (a -inf value, or a finite value under a +inf maximum) becomes a finite value whose
  weight is exactly 0.

Every intermediate is then finite, so the ops that a `torch.where` leaves out of the output
also give autograd finite, zero contributions; the output takes m itself where m is not finite
(its gradient: max's, which shares g among the +inf values, and a NaN for a NaN window).
"""

from __future__ import annotations

import math

import torch

# As the Triton kernels: with beta raised to this, beta = 0 still sends a -inf difference to a
# weight of 0; the weights of finite values differ from uniform only past 2**76 apart.
BETA_FLOOR = 2.0**-100
# exp of this is 0 in float32 and float64, and it times any gradient factor stays finite.
LOWEST_EXPONENT = -1000.0


def floored_beta(beta: float | torch.Tensor) -> float | torch.Tensor:
    """``beta`` raised to `BETA_FLOOR`; a tensor keeps its gradient (the floor is added detached)."""
    if isinstance(beta, torch.Tensor):
        return beta + (BETA_FLOOR - beta).clamp_min(0).detach()
    return max(beta, BETA_FLOOR)


def window_shift(window_max: torch.Tensor) -> torch.Tensor:
    """What each window subtracts before ``exp``: its maximum, or 0 for a window of only -inf (detached)."""
    return torch.where(window_max == -math.inf, 0.0, window_max).detach()


def finite_differences(windows: torch.Tensor, shift: torch.Tensor, beta: float | torch.Tensor) -> torch.Tensor:
    """``windows - shift`` with NaN as 0 and -inf as a difference of weight 0 (one pass).

    -inf becomes ``LOWEST_EXPONENT / beta`` (``/ BETA_FLOOR`` for a tensor beta), whose weight
    is exactly 0 for every beta >= `BETA_FLOOR`, and which is as small as that allows: autograd
    multiplies it by the incoming gradient before the 0 weight (a gradient times
    ``finfo.min`` would overflow to inf, and inf * 0 to NaN).
    """
    lowest = LOWEST_EXPONENT / (BETA_FLOOR if isinstance(beta, torch.Tensor) else beta)
    return torch.nan_to_num(windows - shift, nan=0.0, posinf=0.0, neginf=lowest)


def safe_total(weights_sum: torch.Tensor) -> torch.Tensor:
    """The weight sum, 1 where it is 0 (a window of only -inf), so that dividing by it stays finite."""
    return torch.where(weights_sum > 0, weights_sum, 1.0)


def pooled_output(window_max: torch.Tensor, shift: torch.Tensor, relative: torch.Tensor) -> torch.Tensor:
    """y: ``shift + relative`` (relative = sum w (x - shift)) for a finite maximum, else the
    maximum itself (+inf or NaN, differentiable as max is; -inf without gradient)."""
    special = torch.where(window_max == -math.inf, window_max.detach(), window_max)
    return torch.where(window_max.isfinite(), shift + relative, special)
