"""The library's Numba CPU engine (`softpool.cpu.engine`): float tensors, forward and backward,
against tests/reference.py.

Numba compiles each new window once and caches it on disk, so the cases below reuse a few
windows on purpose.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

import softpool
from softpool._arguments import pool_geometry

from reference import TOLERANCES, assert_close, soft_pool_reference, soft_pool_reference_grad

pytest.importorskip("numba")

from softpool.cpu import engine as _cpu_kernels  # noqa: E402


def float_geometry(x: torch.Tensor, kernel, stride, padding, ceil_mode):
    return pool_geometry(tuple(x.shape[2:]), kernel, stride, padding, ceil_mode)


class TestFloatKernels:
    @pytest.mark.parametrize(
        "shape, kernel, stride, padding, ceil_mode",
        [
            ((2, 3, 9, 10), 2, None, 0, False),  # whole windows, odd sizes leave samples out
            ((2, 3, 8, 8), (2, 2), (2, 3), 0, False),  # whole windows with gaps between them
            ((2, 3, 9, 10), 3, 2, 1, True),  # general: overlap, padding, ceil_mode
            ((1, 2, 11), 2, None, 0, False),  # 1D whole windows
            ((1, 2, 11), 3, 2, 1, False),  # 1D general
            ((1, 2, 4, 6, 6), 2, None, 0, False),  # 3D whole windows
            ((1, 2, 5, 6, 7), (3, 2, 2), (2, 1, 2), (1, 1, 0), True),  # 3D general
            ((1, 1, 9, 9), 5, 5, 2, True),  # a window larger than the unrolled kernels take
        ],
    )
    @pytest.mark.parametrize("beta", [1.0, 9.0, 0.0])
    def test_forward_backward_match_reference(self, shape, kernel, stride, padding, ceil_mode, beta):
        self.check_against_reference(torch.float32, shape, kernel, stride, padding, ceil_mode, beta)

    @pytest.mark.parametrize(
        "shape, kernel, stride, padding, ceil_mode",
        [
            ((2, 3, 9, 10), 2, None, 0, False),  # whole windows
            ((2, 3, 9, 10), 3, 2, 1, True),  # general
            ((1, 2, 5, 6, 7), (3, 2, 2), (2, 1, 2), (1, 1, 0), True),  # 3D general
        ],
    )
    def test_float64_matches_reference(self, shape, kernel, stride, padding, ceil_mode):
        self.check_against_reference(torch.float64, shape, kernel, stride, padding, ceil_mode, 1.0)

    @staticmethod
    def check_against_reference(dtype, shape, kernel, stride, padding, ceil_mode, beta):
        torch.manual_seed(0)
        x = (torch.randn(shape, dtype=dtype) * 3).requires_grad_()
        geometry = float_geometry(x, kernel, stride, padding, ceil_mode)
        assert _cpu_kernels.supports(x)
        y = _cpu_kernels.soft_pool_cpu(x, geometry, beta)
        grad_y = torch.randn_like(y)
        y.backward(grad_y)
        atol, rtol = TOLERANCES[dtype]
        what = f"{shape} k={kernel} s={stride} p={padding} ceil={ceil_mode} beta={beta} {dtype}"
        assert_close(y, soft_pool_reference(x.detach(), kernel, stride, padding, ceil_mode, beta), atol, rtol, what)
        expected_grad = soft_pool_reference_grad(x.detach(), grad_y, kernel, stride, padding, ceil_mode, beta)
        assert_close(x.grad, expected_grad, 10 * atol, 10 * rtol, what + " grad")

    @pytest.mark.parametrize("kernel, stride, padding, ceil_mode", [(2, None, 0, False), (3, 2, 1, True)])
    def test_gradcheck(self, kernel, stride, padding, ceil_mode):
        x = torch.randn(1, 2, 5, 6, dtype=torch.float64, requires_grad=True)
        geometry = float_geometry(x, kernel, stride, padding, ceil_mode)
        assert torch.autograd.gradcheck(lambda t: _cpu_kernels.soft_pool_cpu(t, geometry, 1.5), (x,))

    def test_non_contiguous_and_channels_last(self):
        torch.manual_seed(1)
        base = torch.randn(2, 4, 10, 12)
        geometry = float_geometry(base, 2, None, 0, False)
        expected = _cpu_kernels.soft_pool_cpu_forward(base, geometry, 1.0)
        for variant in (base.contiguous(memory_format=torch.channels_last), base.transpose(2, 3).transpose(2, 3)):
            assert torch.equal(_cpu_kernels.soft_pool_cpu_forward(variant, geometry, 1.0), expected)
        sliced = torch.randn(2, 4, 10, 24)[..., ::2]  # (2, 4, 10, 12), stride 2 in W
        assert_close(
            _cpu_kernels.soft_pool_cpu_forward(sliced, geometry, 1.0),
            soft_pool_reference(sliced, 2),
            *TOLERANCES[torch.float32],
            "sliced",
        )

    @pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
    def test_half_types_compute_in_float32(self, dtype):
        x = torch.randn(1, 2, 8, 8).to(dtype).requires_grad_()
        geometry = float_geometry(x, 2, None, 0, False)
        y = _cpu_kernels.soft_pool_cpu(x, geometry, 1.0)
        y.sum().backward()
        assert y.dtype == dtype and x.grad.dtype == dtype
        atol, rtol = TOLERANCES[dtype]
        assert_close(y, soft_pool_reference(x.detach().double(), 2), atol, rtol, f"{dtype}")

    def test_deterministic_whatever_the_thread_count(self):
        torch.manual_seed(2)
        x = torch.randn(2, 3, 64, 96, requires_grad=True)
        geometry = float_geometry(x, 3, 2, 1, True)
        results = []
        threads = torch.get_num_threads()
        try:
            for count in (1, 2, 2):
                torch.set_num_threads(count)
                y = _cpu_kernels.soft_pool_cpu(x, geometry, 1.0)
                (grad,) = torch.autograd.grad(y, x, torch.ones_like(y))
                results.append((y, grad))
        finally:
            torch.set_num_threads(threads)
        for y, grad in results[1:]:
            assert torch.equal(y, results[0][0]) and torch.equal(grad, results[0][1])

    def test_nan_and_extremes(self):
        x = torch.tensor([[[0.0, float("nan"), 1.0, 2.0, -1e30, 5.0, 1e4, -1e4]]])
        geometry = float_geometry(x, 2, None, 0, False)
        y = _cpu_kernels.soft_pool_cpu_forward(x, geometry, 1.0)
        assert torch.isnan(y[0, 0, 0])
        assert_close(y[..., 1:], soft_pool_reference(x[..., 2:].double(), 2), 1e-5, 1e-5, "extremes")

    def test_backward_without_autograd_matches(self):
        x = torch.randn(1, 3, 6, 8)
        geometry = float_geometry(x, 2, None, 0, False)
        grad_y = torch.randn(1, 3, 3, 4)
        grad_x = _cpu_kernels.soft_pool_cpu_backward(grad_y, x, geometry, 2.0)
        assert_close(grad_x, soft_pool_reference_grad(x, grad_y, 2, beta=2.0), 1e-4, 1e-4, "backward")

    def test_supports(self):
        x = torch.randn(1, 1, 4, 4)
        assert _cpu_kernels.supports(x)
        assert not _cpu_kernels.supports(x[:0])

    def test_tensor_beta_is_routed_to_pytorch_ops(self, monkeypatch):
        # These kernels compute no gradient for beta: a tensor beta must never reach them.
        def refuse(*arguments):
            raise AssertionError("the CPU kernels were called with a tensor beta")

        monkeypatch.setattr(_cpu_kernels, "soft_pool_cpu", refuse)
        beta = torch.tensor(1.5, requires_grad=True)
        y = softpool.soft_pool2d(torch.randn(1, 2, 4, 4), 2, beta=beta)
        y.sum().backward()
        assert beta.grad is not None and torch.isfinite(beta.grad)

    @pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
    def test_forked_child_can_pool(self):
        """No thread pool survives a call, so a forked child (a DataLoader worker) pools as well."""
        x = torch.randn(1, 2, 64, 64)
        geometry = float_geometry(x, 2, None, 0, False)
        expected = _cpu_kernels.soft_pool_cpu_forward(x, geometry, 1.0)
        child = os.fork()
        if child == 0:  # pragma: no cover - runs in the child
            same = torch.equal(_cpu_kernels.soft_pool_cpu_forward(x, geometry, 1.0), expected)
            os._exit(0 if same else 1)
        _, status = os.waitpid(child, 0)
        assert os.waitstatus_to_exitcode(status) == 0


def test_module_imports_and_declines_without_numba():
    """With Numba missing the engine still imports, and its `supports` says no."""
    script = (
        "import sys; sys.modules['numba'] = None\n"
        "import torch\n"
        "from softpool.cpu import engine\n"
        "x = torch.randn(1, 1, 4, 4)\n"
        "assert not engine.supports(x)\n"
        "assert torch.allclose(__import__('softpool').soft_pool2d(x, 2), __import__('softpool').soft_pool2d(x, 2, backend='torch'))\n"
    )
    subprocess.run([sys.executable, "-c", script], check=True)
