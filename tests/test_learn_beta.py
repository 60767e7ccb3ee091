"""A learned beta: tensor beta in the functions, softplus-parametrised beta in the Modules."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
import torch.nn.functional as F

from reference import assert_close, soft_pool_reference
from softpool import AdaptiveSoftPool2d, SoftPool1d, SoftPool2d, SoftPool3d, adaptive_soft_pool2d, soft_pool2d


def beta_gradient_reference(x, grad_out, kernel, stride, padding, ceil_mode, beta) -> torch.Tensor:
    """d sum(grad_out * y) / d beta per channel, by loops: sum_w g_w sum_i w_i (x_i - y_w)^2."""
    rank = x.dim() - 2
    kernel, stride, padding = ((v,) * rank if isinstance(v, int) else v for v in (kernel, stride, padding))
    result = torch.zeros(x.shape[1], dtype=torch.float64)
    for position in itertools.product(*(range(o) for o in grad_out.shape[2:])):
        slices = []
        for d, o in enumerate(position):
            start = o * stride[d] - padding[d]
            slices.append(slice(max(start, 0), min(start + kernel[d], x.shape[2 + d])))
        window = x[(slice(None), slice(None), *slices)].reshape(x.shape[0], x.shape[1], -1).double()
        weights = torch.softmax(beta * window, dim=-1)
        y = (weights * window).sum(dim=-1, keepdim=True)
        variance = (weights * (window - y) ** 2).sum(dim=-1)  # (N, C)
        result += (grad_out[(slice(None), slice(None), *position)].double() * variance).sum(dim=0)
    return result


class TestTensorBeta:
    @pytest.mark.parametrize(
        "kernel,stride,padding,ceil_mode",
        [
            (2, None, 0, False),  # non-overlapping
            (3, 2, 1, True),  # overlap, padding, ceil_mode
        ],
    )
    @pytest.mark.parametrize("per_channel", [False, True])
    def test_gradcheck_x_and_beta(self, kernel, stride, padding, ceil_mode, per_channel):
        x = torch.randn(2, 3, 5, 6, dtype=torch.float64, requires_grad=True)
        beta = (torch.rand(3 if per_channel else (), dtype=torch.float64) * 2 + 0.1).requires_grad_()
        assert torch.autograd.gradcheck(
            lambda t, b: soft_pool2d(t, kernel, stride, padding, ceil_mode, beta=b), (x, beta)
        )

    @pytest.mark.parametrize("beta_value", [0.0, 0.7, 3.0])
    def test_beta_gradient_is_the_weighted_variance(self, beta_value):
        x = torch.randn(2, 3, 7, 8, dtype=torch.float64)
        beta = torch.full((3,), beta_value, dtype=torch.float64, requires_grad=True)
        y = soft_pool2d(x, 3, 2, 1, True, beta=beta)
        grad_out = torch.randn_like(y)
        (grad,) = torch.autograd.grad(y, beta, grad_out)
        expected = beta_gradient_reference(x, grad_out, 3, 2, 1, True, beta_value)
        assert_close(grad, expected, 1e-10, 1e-10, what="d/dbeta")

    def test_tensor_beta_equals_float_beta(self):
        x = torch.randn(2, 3, 9, 7, dtype=torch.float64)
        y = soft_pool2d(x, 3, 2, 1, True, beta=torch.tensor([0.5, 1.0, 2.0], dtype=torch.float64))
        for channel, beta in enumerate([0.5, 1.0, 2.0]):
            expected = soft_pool_reference(x[:, channel : channel + 1], 3, 2, 1, True, beta)
            assert_close(y[:, channel : channel + 1], expected, 1e-12, 1e-12, what=f"channel {channel}")

    def test_adaptive_gradcheck_with_beta(self):
        x = torch.randn(1, 2, 7, 5, dtype=torch.float64, requires_grad=True)
        beta = torch.tensor([0.5, 2.0], dtype=torch.float64, requires_grad=True)
        assert torch.autograd.gradcheck(lambda t, b: adaptive_soft_pool2d(t, (3, 2), beta=b), (x, beta))

    @pytest.mark.parametrize(
        "beta,kwargs,error,message",
        [
            (torch.ones(2), {}, ValueError, r"one value or one per channel \(3\), got shape \(2,\)"),
            (torch.ones(1, 3), {}, ValueError, r"one value or one per channel \(3\), got shape \(1, 3\)"),
            (torch.ones(3, dtype=torch.int64), {}, TypeError, "beta must be a float or a floating-point tensor"),
            (torch.ones(()), {"backend": "triton"}, ValueError, "backend='triton' takes a float beta"),
        ],
    )
    def test_bad_tensor_beta(self, beta, kwargs, error, message):
        with pytest.raises(error, match=message):
            soft_pool2d(torch.randn(1, 3, 8, 8), 2, beta=beta, **kwargs)


class TestLearnedBetaModules:
    @pytest.mark.parametrize(
        "module_class,shape", [(SoftPool1d, (2, 3, 9)), (SoftPool2d, (2, 3, 8, 7)), (SoftPool3d, (2, 3, 4, 5, 6))]
    )
    def test_starts_at_beta_and_equals_fixed_beta(self, module_class, shape):
        x = torch.randn(*shape)
        learned = module_class(3, 2, 1, True, beta=1.5, learn_beta=True)
        fixed = module_class(3, 2, 1, True, beta=1.5)
        assert [name for name, _ in learned.named_parameters()] == ["raw_beta"]
        assert list(fixed.parameters()) == [] and list(fixed.state_dict()) == []
        assert math.isclose(F.softplus(learned.raw_beta).item(), 1.5, rel_tol=1e-6)
        assert_close(learned(x), fixed(x), 1e-6, 1e-6, what="learned vs fixed")

    def test_per_channel_parameter_and_gradient(self):
        x = torch.randn(2, 4, 8, 8, dtype=torch.float64)
        pool = SoftPool2d(3, 2, 1, learn_beta=True, beta=0.8, num_channels=4).double()
        assert pool.raw_beta.shape == (4,)
        y = pool(x)
        grad_out = torch.randn_like(y)
        y.backward(grad_out)
        # Chain rule through softplus: d/d raw = d/d beta * sigmoid(raw). The parameter was made
        # in float32, so its beta is 0.8 only to float32 precision: use the value it holds.
        beta = pool.beta[0].item()
        expected = beta_gradient_reference(x, grad_out, 3, 2, 1, False, beta) * torch.sigmoid(pool.raw_beta.detach())
        assert_close(pool.raw_beta.grad, expected, 1e-9, 1e-9, what="d/d raw_beta")

    def test_beta_stays_non_negative_under_a_huge_step(self):
        pool = SoftPool2d(2, learn_beta=True, beta=0.5)
        optimizer = torch.optim.SGD(pool.parameters(), lr=1e6)
        x = torch.randn(4, 3, 8, 8)
        for _ in range(3):
            optimizer.zero_grad()
            pool(x).var().backward()  # any loss; the step is far too large on purpose
            optimizer.step()
            assert pool.beta.item() >= 0 and torch.isfinite(pool(x)).all()

    def test_training_moves_beta_towards_max_pooling(self):
        torch.manual_seed(0)
        x = torch.randn(8, 2, 8, 8)
        target = F.max_pool2d(x, 2)
        pool = SoftPool2d(2, learn_beta=True, beta=1.0, num_channels=2)
        optimizer = torch.optim.Adam(pool.parameters(), lr=0.1)
        first_loss = None
        for _ in range(30):
            optimizer.zero_grad()
            loss = F.mse_loss(pool(x), target)
            first_loss = loss.item() if first_loss is None else first_loss
            loss.backward()
            optimizer.step()
        assert loss.item() < first_loss / 2
        assert (pool.beta > 2.0).all()

    def test_adaptive_module_learns_beta(self):
        pool = AdaptiveSoftPool2d(1, learn_beta=True, beta=2.0, num_channels=3)
        x = torch.randn(2, 3, 5, 5, requires_grad=True)
        pool(x).sum().backward()
        assert pool.raw_beta.grad.shape == (3,) and x.grad.shape == x.shape
        assert_close(pool(x), adaptive_soft_pool2d(x, 1, beta=2.0), 1e-6, 1e-6, what="adaptive learned")

    def test_setting_beta(self):
        pool = SoftPool2d(2, learn_beta=True, num_channels=2)
        pool.beta = 3.0
        assert_close(pool.beta, torch.tensor([3.0, 3.0]), 1e-6, 1e-6, what="set beta")
        fixed = SoftPool2d(2)
        fixed.beta = 0.25
        assert fixed.beta == 0.25 and "beta=0.25" in repr(fixed)
        with pytest.raises(ValueError, match="beta must be finite and >= 0"):
            fixed.beta = -1.0

    def test_repr(self):
        assert repr(SoftPool2d(2, learn_beta=True, beta=1.5)) == (
            "SoftPool2d(kernel_size=2, stride=2, padding=0, ceil_mode=False, beta=1.5, learn_beta=True, "
            "backend='auto')"
        )
        assert "beta=(5 values), learn_beta=True" in repr(SoftPool2d(2, learn_beta=True, num_channels=5))

    @pytest.mark.parametrize(
        "kwargs,error,message",
        [
            ({"beta": 0.0, "learn_beta": True}, ValueError, "a learned beta starts from beta > 0"),
            ({"num_channels": 3}, ValueError, "num_channels sets the size of a learned beta: it needs learn_beta=True"),
            ({"learn_beta": True, "num_channels": 0}, ValueError, "num_channels must be a positive int or None, got 0"),
            ({"learn_beta": True, "backend": "triton"}, ValueError, "learn_beta=True runs on the PyTorch path"),
            ({"learn_beta": 1}, TypeError, "learn_beta must be a bool, got 1"),
        ],
    )
    def test_bad_arguments(self, kwargs, error, message):
        with pytest.raises(error, match=message):
            SoftPool2d(2, **kwargs)
