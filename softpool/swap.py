"""Replace the pooling layers of an existing model with SoftPool layers.

Each matching layer becomes the SoftPool layer with the same windows: `nn.MaxPool*d` and
`nn.AvgPool*d` keep kernel_size, stride, padding and ceil_mode; `nn.AdaptiveMaxPool*d` and
`nn.AdaptiveAvgPool*d` keep output_size. What SoftPool cannot reproduce is left in place, with
the reason, rather than changed silently:

- max pooling with ``dilation`` != 1 (SoftPool windows are dense) or ``return_indices=True``
  (the model consumes the indices, e.g. in `nn.MaxUnpool2d`);
- average pooling with ``divisor_override`` (a rescaled sum, not a mean).

Average pooling with ``padding`` and ``count_include_pad=True`` (its default) is replaced: its
zero padding is not reproduced, since SoftPool leaves padding out of its windows as max pooling
does; the record says so.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from .modules import (
    AdaptiveSoftPool1d,
    AdaptiveSoftPool2d,
    AdaptiveSoftPool3d,
    SoftPool1d,
    SoftPool2d,
    SoftPool3d,
)

_SOFT_POOLS = {
    nn.MaxPool1d: SoftPool1d,
    nn.MaxPool2d: SoftPool2d,
    nn.MaxPool3d: SoftPool3d,
    nn.AvgPool1d: SoftPool1d,
    nn.AvgPool2d: SoftPool2d,
    nn.AvgPool3d: SoftPool3d,
    nn.AdaptiveMaxPool1d: AdaptiveSoftPool1d,
    nn.AdaptiveMaxPool2d: AdaptiveSoftPool2d,
    nn.AdaptiveMaxPool3d: AdaptiveSoftPool3d,
    nn.AdaptiveAvgPool1d: AdaptiveSoftPool1d,
    nn.AdaptiveAvgPool2d: AdaptiveSoftPool2d,
    nn.AdaptiveAvgPool3d: AdaptiveSoftPool3d,
}
_MAX_POOLS = (nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d)
_AVG_POOLS = (nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d)
_ADAPTIVE_MAX_POOLS = (nn.AdaptiveMaxPool1d, nn.AdaptiveMaxPool2d, nn.AdaptiveMaxPool3d)


@dataclass(frozen=True)
class PoolingSwap:
    """One pooling layer that `swap_pooling` matched.

    Attributes:
        name: its qualified name in the model ("" for the model itself).
        original: the pooling layer that was matched.
        replacement: the SoftPool layer now in its place, or None when it was left in place.
        note: why it was left in place, or what the replacement does differently; "" if nothing.
    """

    name: str
    original: nn.Module
    replacement: nn.Module | None
    note: str = ""

    @property
    def replaced(self) -> bool:
        return self.replacement is not None


def _is_one(value) -> bool:
    return all(v == 1 for v in value) if isinstance(value, (tuple, list)) else value == 1


def _soft_pool_for(layer: nn.Module, beta: float, learn_beta: bool, backend: str) -> tuple[nn.Module | None, str]:
    """The SoftPool layer with ``layer``'s windows, or None and the reason it has none."""
    soft_pool = next(soft for kind, soft in _SOFT_POOLS.items() if isinstance(layer, kind))
    options = {"beta": beta, "learn_beta": learn_beta, "backend": backend}
    if isinstance(layer, _MAX_POOLS + _ADAPTIVE_MAX_POOLS) and layer.return_indices:
        return None, "return_indices=True: the model uses the indices of the maxima, which SoftPool has not"
    if isinstance(layer, _MAX_POOLS) and not _is_one(layer.dilation):
        return None, f"dilation={layer.dilation}: SoftPool windows are not dilated"
    if isinstance(layer, _AVG_POOLS) and layer.divisor_override is not None:
        return None, f"divisor_override={layer.divisor_override}: a rescaled sum, not a weighted mean"
    if soft_pool in (AdaptiveSoftPool1d, AdaptiveSoftPool2d, AdaptiveSoftPool3d):
        return soft_pool(layer.output_size, **options), ""
    note = ""
    if isinstance(layer, _AVG_POOLS) and layer.count_include_pad and any(
        p != 0 for p in (layer.padding if isinstance(layer.padding, (tuple, list)) else (layer.padding,))
    ):
        note = "count_include_pad=True is not reproduced: padding is left out of SoftPool windows"
    replacement = soft_pool(layer.kernel_size, layer.stride, layer.padding, bool(layer.ceil_mode), **options)
    return replacement, note


def swap_pooling(
    model: nn.Module,
    types: type[nn.Module] | tuple[type[nn.Module], ...] = (nn.MaxPool2d, nn.AvgPool2d),
    beta: float = 1.0,
    *,
    learn_beta: bool = False,
    backend: str = "auto",
) -> tuple[nn.Module, list[PoolingSwap]]:
    """Replace, in place, the pooling layers of ``model`` that are instances of ``types`` with SoftPool.

    Args:
        model: the model; changed in place (the model itself is returned as the replacement
            when it is a matching pooling layer).
        types: the pooling classes to replace, among `nn.MaxPool*d`, `nn.AvgPool*d`,
            `nn.AdaptiveMaxPool*d` and `nn.AdaptiveAvgPool*d`. Add `nn.AdaptiveAvgPool2d` to
            turn a classifier's global average pooling into global SoftPool.
        beta: the sharpness of every new layer (>= 0; > 0 with ``learn_beta``).
        learn_beta: give each new layer its own learned scalar beta (see `softpool.modules`).
        backend: the new layers' backend, "auto", "triton" or "torch".

    Returns:
        The model and one `PoolingSwap` per matching layer, in `named_modules` order: what
        replaced it, or why it was left in place.

    Examples:
        >>> model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.MaxPool2d(2), nn.Flatten())
        >>> model, swaps = swap_pooling(model)
        >>> [(s.name, type(s.replacement).__name__) for s in swaps]
        [('1', 'SoftPool2d')]
    """
    types = types if isinstance(types, tuple) else (types,)
    for kind in types:
        if not (isinstance(kind, type) and issubclass(kind, tuple(_SOFT_POOLS))):
            supported = ", ".join(sorted(k.__name__ for k in _SOFT_POOLS))
            raise ValueError(f"types must be pooling classes among {supported}, got {kind!r}")

    device = next((p.device for p in model.parameters()), None)
    swaps: list[PoolingSwap] = []
    new_layers: dict[int, tuple[nn.Module | None, str]] = {}  # a layer shared by several parents swaps once
    for name, layer in list(model.named_modules(remove_duplicate=False)):
        if not isinstance(layer, types):
            continue
        if id(layer) not in new_layers:
            replacement, note = _soft_pool_for(layer, beta, learn_beta, backend)
            if replacement is not None:
                replacement.train(layer.training)
                if device is not None:
                    replacement.to(device)
            new_layers[id(layer)] = (replacement, note)
        replacement, note = new_layers[id(layer)]
        swaps.append(PoolingSwap(name, layer, replacement, note))
        if replacement is None:
            continue
        if name == "":
            model = replacement
        else:
            parent_name, _, child_name = name.rpartition(".")
            setattr(model.get_submodule(parent_name), child_name, replacement)
    return model, swaps
