"""swap_pooling on small CNNs built here (and a torchvision ResNet-18 where torchvision is installed)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from reference import assert_close
from softpool import AdaptiveSoftPool2d, SoftPool1d, SoftPool2d, SoftPool3d, swap_pooling


class Unpooling(nn.Module):
    """Max pooling whose indices feed an unpooling: must be left in place."""

    def __init__(self) -> None:
        super().__init__()
        self.pool = nn.MaxPool2d(2, return_indices=True)
        self.unpool = nn.MaxUnpool2d(2)

    def forward(self, x):
        y, indices = self.pool(x)
        return self.unpool(y, indices)


def small_cnn() -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.MaxPool2d(3, stride=2, padding=1),  # "1": ResNet-style stem pooling
        nn.Sequential(
            nn.Conv2d(8, 8, 3, padding=1),
            nn.AvgPool2d(2, ceil_mode=True),  # "2.1": ceil_mode
            nn.AvgPool2d(3, stride=1, padding=1),  # "2.2": count_include_pad=True by default
        ),
        Unpooling(),  # "3.pool": indices used by the unpooling
        nn.MaxPool2d(2, dilation=2),  # "4": dilated
        nn.AvgPool2d(1, divisor_override=2),  # "5": a rescaled sum
        nn.AdaptiveAvgPool2d(1),  # "6": untouched unless asked for
        nn.Flatten(),
        nn.Linear(8, 4),
    )


def _by_name(swaps):
    return {swap.name: swap for swap in swaps}


class TestSmallCnn:
    def test_replaces_what_it_can_and_says_why_not(self):
        model = small_cnn()
        layers = dict(model.named_modules())
        model, swaps = swap_pooling(model)
        swaps = _by_name(swaps)
        assert list(swaps) == ["1", "2.1", "2.2", "3.pool", "4", "5"]

        stem = model[1]
        assert isinstance(stem, SoftPool2d) and swaps["1"].replacement is stem and swaps["1"].original is layers["1"]
        assert (stem.kernel_size, stem.stride, stem.padding, stem.ceil_mode, stem.beta) == (3, 2, 1, False, 1.0)
        avg = model[2][1]
        assert isinstance(avg, SoftPool2d) and (avg.kernel_size, avg.stride, avg.ceil_mode) == (2, 2, True)
        assert swaps["2.1"].note == ""
        assert "count_include_pad=True is not reproduced" in swaps["2.2"].note and swaps["2.2"].replaced

        for name, reason in [("3.pool", "return_indices=True"), ("4", "dilation=2"), ("5", "divisor_override=2")]:
            assert not swaps[name].replaced and reason in swaps[name].note
            assert model.get_submodule(name) is layers[name]
        assert isinstance(model[6], nn.AdaptiveAvgPool2d)
        assert model(torch.randn(2, 3, 16, 16)).shape == (2, 4)

    def test_replacements_keep_the_windows(self):
        # Large beta must give back max pooling, beta = 0 average pooling (count_include_pad=False),
        # which holds only if kernel_size, stride, padding and ceil_mode were all kept.
        x = torch.randperm(2 * 8 * 9 * 11, dtype=torch.float64).reshape(2, 8, 9, 11) / 10
        for original in [nn.MaxPool2d(3, 2, 1), nn.MaxPool2d((2, 3), (1, 2), ceil_mode=True)]:
            replacement = swap_pooling(original, beta=1e3)[0]
            assert_close(replacement(x), original(x), 1e-12, 0, what=repr(original))
        for original in [nn.AvgPool2d(3, 2, 1, ceil_mode=True, count_include_pad=False), nn.AvgPool2d(2)]:
            replacement = swap_pooling(original, beta=0.0)[0]
            assert_close(replacement(x), original(x), 1e-12, 1e-12, what=repr(original))

    def test_adaptive_layers_when_asked(self):
        x = torch.randn(2, 3, 7, 10, dtype=torch.float64)
        model = nn.Sequential(nn.AdaptiveAvgPool2d((3, None)), nn.AdaptiveMaxPool2d(2), nn.AdaptiveMaxPool2d(1, True))
        model, swaps = swap_pooling(model, types=(nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d), beta=0.0)
        assert [s.replaced for s in swaps] == [True, True, False]
        assert isinstance(model[0], AdaptiveSoftPool2d) and model[0].output_size == (3, None)
        assert_close(model[0](x), F.adaptive_avg_pool2d(x, (3, None)), 1e-12, 1e-12, what="adaptive avg")

    def test_other_ranks_and_a_single_type(self):
        model = nn.Sequential(nn.MaxPool1d(3, 2, 1), nn.AvgPool3d(2), nn.MaxPool2d(2))
        model, swaps = swap_pooling(model, types=(nn.MaxPool1d, nn.AvgPool3d), beta=2.0)
        assert isinstance(model[0], SoftPool1d) and isinstance(model[1], SoftPool3d)
        assert isinstance(model[2], nn.MaxPool2d) and model[0].beta == 2.0
        model, swaps = swap_pooling(model, types=nn.MaxPool2d)
        assert [s.name for s in swaps] == ["2"] and isinstance(model[2], SoftPool2d)

    def test_shared_layer_is_replaced_everywhere_once(self):
        pool = nn.MaxPool2d(2)
        model = nn.Sequential(pool, nn.Identity(), pool)
        model, swaps = swap_pooling(model)
        assert [s.name for s in swaps] == ["0", "2"]
        assert isinstance(model[0], SoftPool2d) and model[0] is model[2]

    def test_learned_beta_joins_the_parameters_in_the_same_mode(self):
        model = small_cnn().eval()
        before = len(list(model.parameters()))
        model, swaps = swap_pooling(model, learn_beta=True, beta=0.5)
        replaced = [s.replacement for s in swaps if s.replaced]
        assert len(list(model.parameters())) == before + len(replaced)
        assert all(layer.raw_beta is not None and not layer.training for layer in replaced)
        model(torch.randn(1, 3, 16, 16)).sum().backward()
        assert all(layer.raw_beta.grad is not None for layer in replaced)

    def test_model_that_is_a_pooling_layer(self):
        model, swaps = swap_pooling(nn.MaxPool2d(2))
        assert isinstance(model, SoftPool2d) and swaps[0].name == ""

    def test_rejects_types_it_cannot_swap(self):
        with pytest.raises(ValueError, match=r"types must be pooling classes among .*MaxPool2d.*, got <class .*Conv2d"):
            swap_pooling(small_cnn(), types=(nn.Conv2d,))


def test_torchvision_resnet18():
    models = pytest.importorskip("torchvision.models")
    model = models.resnet18(weights=None, num_classes=10).eval()
    model, swaps = swap_pooling(model, types=(nn.MaxPool2d, nn.AdaptiveAvgPool2d))
    assert [(s.name, type(s.replacement).__name__) for s in swaps] == [
        ("maxpool", "SoftPool2d"),
        ("avgpool", "AdaptiveSoftPool2d"),
    ]
    assert (model.maxpool.kernel_size, model.maxpool.stride, model.maxpool.padding) == (3, 2, 1)
    with torch.no_grad():
        assert model(torch.randn(1, 3, 64, 64)).shape == (1, 10)
