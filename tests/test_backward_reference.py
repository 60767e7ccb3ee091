"""Every backend's backward against the float64 reference gradient, eager and under torch.compile.

Under `torch.compile` SoftPool is the ``softpool::soft_pool`` custom op, whose backward is each
engine's closed form rather than autograd through ops: with backend="torch", or with Numba
switched off, that is `softpool.torch_path.unfold.soft_pool_torch_backward`, which eager calls
never run. Each engine below is named by its id.
"""

from __future__ import annotations

import pytest
import torch

import softpool
from reference import assert_close, soft_pool_reference_grad
from softpool import _routing, soft_pool1d, soft_pool2d, soft_pool3d
from softpool._arguments import pool_geometry
from softpool.torch_path.gather import regular_windows, soft_pool_gathered
from softpool.torch_path.unfold import soft_pool_torch_backward

FUNCTIONS = {1: soft_pool1d, 2: soft_pool2d, 3: soft_pool3d}

# (shape, kernel_size, stride, padding, ceil_mode)
CASES = [
    ((2, 3, 8, 10), 2, 2, 0, False),  # whole windows (Numba's unrolled kernels)
    ((2, 2, 9, 11), 3, 2, 1, True),  # overlap, padding, ceil_mode (Numba's gathering backward)
    ((1, 2, 4, 5, 7), (2, 3, 2), (1, 2, 2), (1, 1, 0), True),  # 3D
    ((2, 2, 13), 3, 2, 1, False),  # 1D
]
CASE_IDS = ["2x2", "3x3s2-pad-ceil", "3d", "1d"]
BETAS = [0.0, 1.0, 2.5]


def _eager(backend: str):
    def run(x, kernel, stride, padding, ceil_mode, beta):
        return FUNCTIONS[x.dim() - 2](x, kernel, stride, padding, ceil_mode, beta=beta, backend=backend)

    return run


def _gathered(x, kernel, stride, padding, ceil_mode, beta):
    geometry = pool_geometry(tuple(x.shape[2:]), kernel, stride, padding, ceil_mode)
    return soft_pool_gathered(x, regular_windows(geometry, x.device), beta)


class _ClosedForm(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, geometry, beta):
        ctx.save_for_backward(x)
        ctx.geometry, ctx.beta = geometry, beta
        return _routing.forward(x, geometry, beta, "torch")

    @staticmethod
    def backward(ctx, grad_y):
        (x,) = ctx.saved_tensors
        return soft_pool_torch_backward(grad_y, x, ctx.geometry, ctx.beta), None, None


def _closed_form(x, kernel, stride, padding, ceil_mode, beta):
    geometry = pool_geometry(tuple(x.shape[2:]), kernel, stride, padding, ceil_mode)
    return _ClosedForm.apply(x, geometry, beta)


def _compiled(backend: str):
    compiled = {}  # the last arguments -> their compiled function (gradcheck calls it often)

    def run(x, kernel, stride, padding, ceil_mode, beta):
        key = (x.shape, kernel, stride, padding, ceil_mode, beta)
        if key not in compiled:
            function = FUNCTIONS[x.dim() - 2]
            # A fresh cache: a recompilation for a new beta would trace it as a symbolic float.
            torch._dynamo.reset()
            compiled.clear()
            compiled[key] = torch.compile(
                lambda t: function(t, kernel, stride, padding, ceil_mode, beta=beta, backend=backend),
                backend="aot_eager",
                fullgraph=True,
            )
        return compiled[key](x)

    return run


# id: (engine, needs Numba, Numba switched off)
ENGINES = {
    "numba": (_eager("auto"), True, False),  # the Numba kernels' own backward
    "torch-autograd": (_eager("torch"), False, False),  # autograd through the unfold ops
    "torch-closed-form": (_closed_form, False, False),  # soft_pool_torch_backward, called directly
    "torch-gather": (_gathered, False, False),  # autograd through gathered windows
    "compiled-numba": (_compiled("auto"), True, False),  # the custom op's backward: Numba kernels
    "compiled-torch": (_compiled("torch"), False, False),  # the custom op's backward: closed form
    "compiled-numba-off": (_compiled("auto"), False, True),  # auto without Numba: closed form
}


@pytest.fixture(params=ENGINES.keys())
def engine(request, monkeypatch):
    run, needs_numba, numba_off = ENGINES[request.param]
    if needs_numba:
        pytest.importorskip("numba")
    if numba_off:
        monkeypatch.setattr(softpool.cpu.engine, "NUMBA_AVAILABLE", False)
        assert _routing.resolve(torch.zeros(1, 1, 2), "auto") == "torch"
    return run


@pytest.mark.parametrize("beta", BETAS)
@pytest.mark.parametrize(("shape", "kernel", "stride", "padding", "ceil_mode"), CASES, ids=CASE_IDS)
def test_backward_matches_reference(engine, shape, kernel, stride, padding, ceil_mode, beta):
    x = torch.randn(shape, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 2
    x.requires_grad_(True)
    y = engine(x, kernel, stride, padding, ceil_mode, beta)
    grad_y = torch.randn(y.shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    y.backward(grad_y)
    expected = soft_pool_reference_grad(x.detach(), grad_y, kernel, stride, padding, ceil_mode, beta)
    assert_close(x.grad, expected, 1e-10, 1e-10, what=f"backward, beta={beta}")


@pytest.mark.parametrize(("shape", "kernel", "stride", "padding", "ceil_mode"), CASES[:2], ids=CASE_IDS[:2])
def test_gradcheck(engine, shape, kernel, stride, padding, ceil_mode):
    x = torch.randn(shape, generator=torch.Generator().manual_seed(2), dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: engine(t, kernel, stride, padding, ceil_mode, 1.5), (x,))


def test_triton_interpreter_backward_matches_reference():
    pytest.importorskip("triton")
    from softpool.kernels import unavailable_reason

    x = torch.randn(2, 2, 9, 11, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    if unavailable_reason(x) is not None:
        pytest.skip(unavailable_reason(x))
    x.requires_grad_(True)
    y = soft_pool2d(x, 3, 2, 1, True, beta=2.5, backend="triton")
    grad_y = torch.randn(y.shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    y.backward(grad_y)
    expected = soft_pool_reference_grad(x.detach(), grad_y, 3, 2, 1, True, 2.5)
    assert_close(x.grad, expected, 1e-10, 1e-10, what="triton backward")
