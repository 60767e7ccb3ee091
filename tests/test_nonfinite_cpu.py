"""Every CPU path on inputs holding -inf, +inf and NaN, against the float64 loop reference.

The rules are the Triton kernels' (`reference.soft_pool_reference_nonfinite`, and
tests/kernels/test_nonfinite.py): -inf weighs 0 (a window of only -inf gives -inf, gradient 0),
+inf wins (y = +inf, its gradient g split evenly among the window's +inf values), NaN propagates
to the output and to the whole window's gradient. Each engine below is named by its id.
"""

from __future__ import annotations

import math

import pytest
import torch

import softpool
from reference import TOLERANCES, assert_matches_nonfinite, nonfinite_input, soft_pool_reference_nonfinite
from softpool import _routing, soft_pool1d, soft_pool2d, soft_pool3d
from softpool._arguments import pool_geometry
from softpool.torch_path.gather import regular_windows, soft_pool_gathered
from softpool.torch_path.unfold import soft_pool_torch_backward

FUNCTIONS = {1: soft_pool1d, 2: soft_pool2d, 3: soft_pool3d}

# (shape, kernel_size, stride, padding, ceil_mode); the Numba kernel each case takes.
CASES = [
    ((1, 2, 8, 12), 2, 2, 0, False),  # whole windows that tile the input
    ((2, 2, 9, 16), (3, 4), (3, 5), 0, False),  # whole windows with gaps, inputs left out
    ((2, 1, 9, 11), 3, 2, 1, True),  # any windows: overlap, padding, ceil_mode (gathering backward)
    ((1, 1, 4, 6, 7), (2, 3, 2), (1, 2, 2), (1, 1, 0), True),  # any windows in 3D
    ((1, 2, 10, 10), 5, 5, 0, False),  # 25 values: too large for the whole-window kernels
    ((2, 3, 17), 3, 3, 1, True),  # 1D, padding
]
CASE_IDS = ["2x2-tiles", "3x4-gaps", "3x3s2-overlap", "3d", "5x5-large", "1d"]


def _numba_engine(x, kernel, stride, padding, ceil_mode, beta):
    # backend="auto" on a CPU tensor: the Numba kernels, forward and backward.
    assert _routing.resolve(x, "auto") == "cpu"
    return FUNCTIONS[x.dim() - 2](x, kernel, stride, padding, ceil_mode, beta=beta)


def _torch_unfold(x, kernel, stride, padding, ceil_mode, beta):
    # backend="torch": PyTorch ops over unfold views, autograd through them.
    return FUNCTIONS[x.dim() - 2](x, kernel, stride, padding, ceil_mode, beta=beta, backend="torch")


def _torch_tensor_beta(x, kernel, stride, padding, ceil_mode, beta):
    # A tensor beta: the unfold ops again, with beta as a tensor in every product.
    beta = torch.tensor(beta, dtype=torch.float64)
    return FUNCTIONS[x.dim() - 2](x, kernel, stride, padding, ceil_mode, beta=beta, backend="torch")


def _torch_gather(x, kernel, stride, padding, ceil_mode, beta):
    # Gathered windows (what ONNX export records and uneven adaptive windows run), autograd.
    geometry = pool_geometry(tuple(x.shape[2:]), kernel, stride, padding, ceil_mode)
    return soft_pool_gathered(x, regular_windows(geometry, x.device), beta)


class _ClosedForm(torch.autograd.Function):
    """PyTorch ops forward, the closed-form backward that the custom op runs under torch.compile."""

    @staticmethod
    def forward(ctx, x, geometry, beta):
        ctx.save_for_backward(x)
        ctx.geometry, ctx.beta = geometry, beta
        return _routing.forward(x, geometry, beta, "torch")

    @staticmethod
    def backward(ctx, grad_y):
        (x,) = ctx.saved_tensors
        return soft_pool_torch_backward(grad_y, x, ctx.geometry, ctx.beta), None, None


def _torch_closed_form(x, kernel, stride, padding, ceil_mode, beta):
    geometry = pool_geometry(tuple(x.shape[2:]), kernel, stride, padding, ceil_mode)
    return _ClosedForm.apply(x, geometry, beta)


ENGINES = {
    "numba": _numba_engine,
    "torch-unfold": _torch_unfold,
    "torch-tensor-beta": _torch_tensor_beta,
    "torch-gather": _torch_gather,
    "torch-closed-form": _torch_closed_form,
}


def _check(engine, x: torch.Tensor, kernel, stride, padding, ceil_mode, beta: float) -> torch.Tensor:
    """Forward and backward against the reference; returns the reference output."""
    atol, rtol = TOLERANCES[x.dtype]
    x = x.clone().requires_grad_(True)
    y = engine(x, kernel, stride, padding, ceil_mode, beta)
    grad_y = torch.randn(y.shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64).to(x.dtype)
    expected, expected_grad = soft_pool_reference_nonfinite(
        x.detach(), grad_y, kernel, stride, padding, ceil_mode, beta
    )
    assert_matches_nonfinite(y, expected, atol, rtol, "forward")
    y.backward(grad_y)
    assert_matches_nonfinite(x.grad, expected_grad, 10 * atol, 10 * rtol, "backward")
    return expected


@pytest.mark.parametrize("beta", [0.0, 1.5])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize(("shape", "kernel", "stride", "padding", "ceil_mode"), CASES, ids=CASE_IDS)
@pytest.mark.parametrize("engine", ENGINES.values(), ids=ENGINES.keys())
def test_infinities_and_nan(engine, shape, kernel, stride, padding, ceil_mode, dtype, beta):
    if engine is _numba_engine:
        pytest.importorskip("numba")
    x = nonfinite_input(shape, kernel, dtype, seed=0)
    expected = _check(engine, x, kernel, stride, padding, ceil_mode, beta)
    # Every kind of window occurs, so that no rule passes untested.
    assert expected.isnan().any() and (expected == math.inf).any() and (expected == -math.inf).any()
    assert expected.isfinite().any()


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("engine", [_numba_engine, _torch_unfold], ids=["numba", "torch-unfold"])
def test_half_types(engine, dtype):
    if engine is _numba_engine:
        pytest.importorskip("numba")
    _check(engine, nonfinite_input((1, 2, 9, 11), 3, dtype, seed=2), 3, 2, 1, True, 1.0)


@pytest.mark.parametrize("engine", ENGINES.values(), ids=ENGINES.keys())
def test_each_rule_in_its_own_window(engine):
    if engine is _numba_engine:
        pytest.importorskip("numba")
    # 2x2 windows of one row: finite; one -inf; only -inf; one +inf; two +inf and a -inf; NaN.
    x = torch.tensor([[[[1.0, 2.0, 0.5, -math.inf, -math.inf, -math.inf, 3.0, math.inf, math.inf, -math.inf, 1.0, 0.0],
                        [3.0, 4.0, 1.5, 2.5, -math.inf, -math.inf, 1.0, 2.0, math.inf, 5.0, math.nan, 2.0]]]])  # fmt: skip
    x.requires_grad_(True)
    y = engine(x, 2, 2, 0, False, 1.0)
    y.backward(torch.full_like(y, 2.0))
    weights = torch.softmax(torch.tensor([0.5, 1.5, 2.5], dtype=torch.float64), 0)
    pooled = (weights * torch.tensor([0.5, 1.5, 2.5], dtype=torch.float64)).sum().item()
    assert y[0, 0, 0, 1].item() == pytest.approx(pooled, rel=1e-6)
    assert y[0, 0, 0, 2].item() == -math.inf
    assert y[0, 0, 0, 3].item() == math.inf and y[0, 0, 0, 4].item() == math.inf
    assert math.isnan(y[0, 0, 0, 5].item())
    grad = x.grad[0, 0]
    assert grad[:, 4:6].eq(0).all() and grad[0, 3] == 0  # -inf values, and a window of only -inf
    assert grad[1, 6] == 0 and grad[0, 6] == 0 and grad[0, 7] == 2.0  # the one +inf takes all of g
    assert grad[0, 8] == 1.0 and grad[1, 8] == 1.0 and grad[0, 9] == 0 and grad[1, 9] == 0  # two share it
    assert grad[:, 10:12].isnan().all()
    assert grad[:, :4].isfinite().all()


def test_tensor_beta_gradient_stays_finite():
    # -inf values weigh 0 for any beta, so they leave dy/dbeta finite (the finite values' variance).
    x = torch.randn(1, 2, 6, 8, dtype=torch.float64)
    x[0, 0, 0, 0] = x[0, 1, 3, 5] = -math.inf
    beta = torch.tensor([1.0, 0.0], dtype=torch.float64, requires_grad=True)
    soft_pool2d(x, 2, beta=beta).sum().backward()
    assert torch.isfinite(beta.grad).all()


@pytest.mark.parametrize(
    "backend, numba",
    [("auto", True), ("torch", True), ("auto", False)],
    ids=["compiled-numba", "compiled-torch", "compiled-numba-off"],
)
def test_compiled(backend, numba, monkeypatch):
    # torch.compile keeps SoftPool as the custom op; its backward runs the engine's closed form.
    if numba:
        pytest.importorskip("numba")
    else:
        monkeypatch.setattr(softpool.cpu.engine, "NUMBA_AVAILABLE", False)
    shape, kernel, stride, padding, ceil_mode = CASES[2]
    compiled = torch.compile(
        lambda t: soft_pool2d(t, kernel, stride, padding, ceil_mode, beta=1.5, backend=backend),
        backend="aot_eager",
        fullgraph=True,
    )
    _check(lambda x, *_: compiled(x), nonfinite_input(shape, kernel, torch.float32, seed=4), *CASES[2][1:], 1.5)
