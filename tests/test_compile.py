"""torch.compile: the custom ops, one graph without breaks, and eager's outputs and gradients.

Most tests compile with the "aot_eager" backend: it runs the same graph capture (dynamo, the
fake implementations, the registered backward) as inductor without generating C++, which
keeps them at a few seconds. One test runs inductor itself on a SoftPool-only model.
"""

from __future__ import annotations

import shutil

import pytest
import torch
from torch import nn

from reference import assert_close, soft_pool_reference_grad
from softpool import AdaptiveSoftPool2d, SoftPool2d, SoftPool3d
from softpool._arguments import pool_geometry
from softpool._ops import soft_pool_backward_op, soft_pool_op


def _op_arguments(x: torch.Tensor, kernel, stride, padding, ceil_mode, beta) -> tuple:
    geometry = pool_geometry(tuple(x.shape[2:]), kernel, stride, padding, ceil_mode)
    return (
        x,
        list(geometry.kernel_size),
        list(geometry.stride),
        list(geometry.padding),
        list(geometry.output_size),
        beta,
        "auto",
    )


class TestCustomOps:
    @pytest.mark.parametrize(
        "shape,kernel,stride,padding,ceil_mode,dtype",
        [
            ((2, 3, 9, 11), 3, 2, 1, True, torch.float64),  # overlap, padding, ceil_mode
            ((1, 2, 6, 8), 2, None, 0, False, torch.float32),  # plain non-overlapping
            ((1, 2, 3, 5, 6), (1, 3, 2), (1, 2, 2), (0, 1, 1), False, torch.float64),  # 3D
        ],
    )
    def test_opcheck(self, shape, kernel, stride, padding, ceil_mode, dtype):
        # Checks the schema, the fake implementation against the real one and the autograd registration.
        x = torch.randn(*shape, dtype=dtype, requires_grad=True)
        torch.library.opcheck(soft_pool_op, _op_arguments(x, kernel, stride, padding, ceil_mode, 1.5))

    def test_opcheck_channels_last(self):
        # The output follows the input's channels_last layout in the fake and the real implementation.
        x = torch.randn(2, 3, 9, 11).to(memory_format=torch.channels_last).requires_grad_()
        arguments = _op_arguments(x, 3, 2, 1, False, 1.0)
        torch.library.opcheck(soft_pool_op, arguments)
        assert soft_pool_op(*arguments).is_contiguous(memory_format=torch.channels_last)

    def test_backward_op_is_the_exact_gradient(self):
        x = torch.randn(2, 3, 9, 11, dtype=torch.float64)
        arguments = _op_arguments(x, 3, 2, 1, True, 2.0)
        grad_out = torch.randn(2, 3, *arguments[4], dtype=torch.float64)
        grad = soft_pool_backward_op(grad_out, *arguments)
        expected = soft_pool_reference_grad(x, grad_out, 3, 2, 1, True, 2.0)
        assert_close(grad, expected, 1e-10, 1e-10, what="backward op")

    def test_gradcheck_through_the_op(self):
        x = torch.randn(1, 2, 6, 7, dtype=torch.float64, requires_grad=True)
        arguments = _op_arguments(x, 3, 2, 1, True, 1.0)
        assert torch.autograd.gradcheck(lambda t: soft_pool_op(t, *arguments[1:]), (x,))


def small_cnn() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(3, 6, 3, padding=1),
        SoftPool2d(3, 2, 1, True, beta=2.0),  # float beta: the custom op
        nn.ReLU(),
        SoftPool2d(2, learn_beta=True, num_channels=6),  # tensor beta: traced PyTorch ops
        AdaptiveSoftPool2d((3, 2)),  # uneven windows: traced PyTorch ops
        AdaptiveSoftPool2d(1),  # global: the custom op
        nn.Flatten(),
        nn.Linear(6, 2),
    )


def _outputs_and_gradients(model: nn.Module, x: torch.Tensor):
    x = x.clone().requires_grad_()
    y = model(x)
    y.backward(torch.ones_like(y))
    return y.detach(), x.grad, [p.grad.clone() for p in model.parameters()]


class TestCompile:
    def test_one_graph_with_the_custom_op(self):
        graphs = []

        def record(graph_module, example_inputs):
            graphs.append(graph_module)
            return graph_module.forward

        model = small_cnn()
        compiled = torch.compile(model, fullgraph=True, backend=record)  # fullgraph: a break would raise
        x = torch.randn(2, 3, 12, 10)
        assert_close(compiled(x), model(x), 0, 0, what="recorded graph")
        assert len(graphs) == 1
        targets = [node.target for node in graphs[0].graph.nodes if node.op == "call_function"]
        assert targets.count(torch.ops.softpool.soft_pool.default) == 2

    def test_same_outputs_and_gradients_as_eager(self):
        torch.manual_seed(0)
        model = small_cnn()
        x = torch.randn(2, 3, 12, 10)
        expected = _outputs_and_gradients(model, x)
        model.zero_grad()
        actual = _outputs_and_gradients(torch.compile(model, fullgraph=True, backend="aot_eager"), x)
        assert_close(actual[0], expected[0], 1e-6, 1e-6, what="output")
        assert_close(actual[1], expected[1], 1e-6, 1e-6, what="input gradient")
        for index, (got, want) in enumerate(zip(actual[2], expected[2])):
            assert_close(got, want, 1e-6, 1e-5, what=f"parameter {index} gradient")

    def test_dynamic_shapes(self):
        # dynamic=True also traces the Module's float beta symbolically.
        model = SoftPool3d(2, beta=0.5)
        compiled = torch.compile(model, fullgraph=True, backend="aot_eager", dynamic=True)
        for shape in [(1, 2, 4, 6, 6), (2, 3, 6, 8, 10)]:
            x = torch.randn(*shape)
            assert_close(compiled(x), model(x), 1e-6, 1e-6, what=f"dynamic {shape}")

    @pytest.mark.skipif(
        shutil.which("c++") is None and shutil.which("g++") is None, reason="inductor needs a C++ compiler"
    )
    def test_inductor(self):
        model = SoftPool2d(3, 2, 1, True, beta=1.5)
        x = torch.randn(2, 3, 9, 11, dtype=torch.float64)
        expected = _outputs_and_gradients(model, x)
        actual = _outputs_and_gradients(torch.compile(model, fullgraph=True), x)
        assert_close(actual[0], expected[0], 1e-12, 1e-12, what="inductor output")
        assert_close(actual[1], expected[1], 1e-12, 1e-12, what="inductor gradient")


class TestTritonThroughTheOps:
    """The ops with backend="triton": the kernels under the Triton interpreter on CPU tensors."""

    @pytest.fixture(autouse=True)
    def _needs_triton(self):
        from softpool.kernels import unavailable_reason

        reason = unavailable_reason(torch.zeros(1))
        if reason is not None:
            pytest.skip(reason)

    def test_forward_and_backward_ops(self):
        x = torch.randn(2, 3, 9, 11, dtype=torch.float64)
        arguments = (*_op_arguments(x, 3, 2, 1, True, 2.0)[:-1], "triton")
        y = soft_pool_op(*arguments)
        assert_close(y, soft_pool_op(*arguments[:-1], "torch"), 1e-10, 1e-10, what="triton forward op")
        grad_out = torch.randn_like(y)
        expected = soft_pool_reference_grad(x, grad_out, 3, 2, 1, True, 2.0)
        assert_close(soft_pool_backward_op(grad_out, *arguments), expected, 1e-10, 1e-10, what="triton backward op")

    def test_compiled_model_with_triton_backend(self):
        model = nn.Sequential(nn.Conv2d(2, 3, 1), SoftPool2d(2, beta=1.5, backend="triton"))
        x = torch.randn(1, 2, 6, 8)
        expected = _outputs_and_gradients(model, x)
        model.zero_grad()
        actual = _outputs_and_gradients(torch.compile(model, fullgraph=True, backend="aot_eager"), x)
        for got, want, what in zip(actual[:2], expected[:2], ["output", "input gradient"]):
            assert_close(got, want, 1e-6, 1e-6, what=what)
