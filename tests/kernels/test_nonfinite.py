"""The Triton kernels on inputs holding -inf, +inf and NaN, against the float64 loop reference.

The rules (`reference.soft_pool_reference_nonfinite`): -inf weighs 0 (a window of only -inf
gives -inf, gradient 0), +inf wins (y = +inf, its gradient g split evenly among the window's
+inf values, 0 for the others), NaN propagates to the output and the window's gradient. Runs
through the Triton interpreter on CPU (TRITON_INTERPRET=1, set by conftest.py).
"""

from __future__ import annotations

import math

import pytest
import torch

from reference import TOLERANCES, assert_matches_nonfinite, nonfinite_input, soft_pool_reference_nonfinite
from softpool import soft_pool1d, soft_pool2d, soft_pool3d

soft_pool_nd = pytest.importorskip("softpool.kernels.soft_pool_nd", reason="Triton is not installed")
from softpool.kernels import config  # noqa: E402  (after the skip: it imports Triton)

FUNCTIONS = {1: soft_pool1d, 2: soft_pool2d, 3: soft_pool3d}
DEVICE = "cpu" if soft_pool_nd.INTERPRETED else "cuda"
pytestmark = pytest.mark.skipif(
    DEVICE == "cuda" and not torch.cuda.is_available(), reason="needs TRITON_INTERPRET=1 or a CUDA GPU"
)

# (shape, kernel_size, stride, padding, ceil_mode); one comment per case on the path it takes.
CASES = [
    ((1, 2, 8, 12), 2, 2, 0, False),  # window backward, row blocks of pairs (K4 = S4 = 2)
    ((1, 2, 7, 9), 2, 2, 1, True),  # window backward; padded edge windows of one or two values
    ((1, 2, 9, 16), (3, 4), (3, 4), 0, False),  # window backward, row blocks of four (summed, not split)
    ((2, 1, 9, 11), 3, 2, 1, True),  # overlapping: statistics and the gather backward
    ((1, 2, 9, 10), (2, 3), (2, 3), (1, 1), True),  # window backward, one value per lane (K4 = 3)
    ((1, 1, 4, 6, 7), (2, 3, 2), (1, 2, 2), (1, 1, 0), True),  # 3D overlapping, padding, ceil_mode
    ((1, 2, 12, 16), (6, 8), (6, 8), 0, False),  # 48 values: chunked windows, window backward
    ((1, 2, 6, 16), (6, 8), (2, 4), (3, 4), True),  # chunked windows, gather backward
    ((2, 3, 17), 3, 3, 1, True),  # 1D, window backward, padding
]
CASE_IDS = ["2x2", "2x2-pad-ceil", "3x4-rows-of-4", "3x3s2-gather", "2x3-lanes", "3d-gather", "chunked-window",
            "chunked-gather", "1d"]  # fmt: skip


def _check(x: torch.Tensor, kernel, stride, padding, ceil_mode, beta: float) -> torch.Tensor:
    """Forward and backward against the reference; returns the reference output."""
    atol, rtol = TOLERANCES[x.dtype]
    x = x.to(DEVICE).requires_grad_(True)
    y = FUNCTIONS[x.dim() - 2](x, kernel, stride, padding, ceil_mode, beta=beta, backend="triton")
    grad_y = torch.randn(y.shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64).to(x.dtype)
    expected, expected_grad = soft_pool_reference_nonfinite(
        x.detach().cpu(), grad_y, kernel, stride, padding, ceil_mode, beta
    )
    assert_matches_nonfinite(y, expected, atol, rtol, "forward")
    y.backward(grad_y.to(DEVICE))
    assert_matches_nonfinite(x.grad, expected_grad, atol, rtol, "backward")
    return expected


@pytest.mark.parametrize("beta", [0.0, 1.5])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
@pytest.mark.parametrize(("shape", "kernel", "stride", "padding", "ceil_mode"), CASES, ids=CASE_IDS)
def test_infinities_and_nan(shape, kernel, stride, padding, ceil_mode, dtype, beta):
    expected = _check(nonfinite_input(shape, kernel, dtype, seed=0), kernel, stride, padding, ceil_mode, beta)
    # Every kind of window occurs, so that no rule passes untested.
    assert expected.isnan().any() and (expected == math.inf).any() and (expected == -math.inf).any()
    assert expected.isfinite().any()


@pytest.mark.parametrize(
    ("shape", "kernel", "stride", "padding", "ceil_mode"),
    [CASES[6], CASES[7]],
    ids=["window", "gather"],
)
def test_infinities_across_chunks(shape, kernel, stride, padding, ceil_mode, monkeypatch):
    # Chunks of 4 values: the online max meets +inf, -inf and NaN in later chunks than the
    # window's finite values, and windows stay all -inf for several chunks.
    monkeypatch.setattr(config, "MAX_UNROLLED_WINDOW", 0)
    monkeypatch.setattr(config, "MAX_WINDOW_BLOCK", 4)
    _check(nonfinite_input(shape, kernel, torch.float32, seed=3), kernel, stride, padding, ceil_mode, 1.0)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16, torch.float64])
def test_each_rule_in_its_own_window(dtype):
    # 2x2 windows of one row: finite; one -inf; only -inf; one +inf; two +inf and a -inf; NaN.
    x = torch.tensor([[[[1.0, 2.0, 0.5, -math.inf, -math.inf, -math.inf, 3.0, math.inf, math.inf, -math.inf, 1.0, 0.0],
                        [3.0, 4.0, 1.5, 2.5, -math.inf, -math.inf, 1.0, 2.0, math.inf, 5.0, math.nan, 2.0]]]])  # fmt: skip
    x = x.to(dtype).to(DEVICE).requires_grad_(True)
    y = soft_pool2d(x, 2, beta=1.0, backend="triton")
    y.backward(torch.full_like(y, 2.0))
    weights = torch.softmax(torch.tensor([0.5, 1.5, 2.5], dtype=torch.float64), 0)
    pooled = (weights * torch.tensor([0.5, 1.5, 2.5], dtype=torch.float64)).sum().item()
    assert y[0, 0, 0, 1].item() == pytest.approx(pooled, rel=TOLERANCES[dtype][1])
    assert y[0, 0, 0, 2].item() == -math.inf
    assert y[0, 0, 0, 3].item() == math.inf and y[0, 0, 0, 4].item() == math.inf
    assert math.isnan(y[0, 0, 0, 5].item())
    grad = x.grad.double().cpu()[0, 0]
    assert grad[:, 4:6].eq(0).all() and grad[0, 3] == 0  # -inf values, and a window of only -inf
    assert grad[1, 6] == 0 and grad[0, 6] == 0 and grad[0, 7] == 2.0  # the one +inf takes all of g
    assert grad[0, 8] == 1.0 and grad[1, 8] == 1.0 and grad[0, 9] == 0 and grad[1, 9] == 0  # two share it
    assert grad[:, 10:12].isnan().all()
    assert grad[:, :4].isfinite().all()
