"""`torch.nn.Module` wrappers around the SoftPool functions, shaped like `nn.MaxPool*d` and
`nn.AdaptiveAvgPool*d`.

Every Module takes ``learn_beta``: beta then becomes a parameter, ``beta = softplus(raw_beta)``,
so it stays >= 0 whatever the optimizer does, starting from the given ``beta`` (which must then
be > 0: softplus never reaches 0). It is one scalar, or one value per channel with
``num_channels=C``. Its gradient is exact, dy/dbeta = sum_i w_i (x_i - y)^2 (the
softmax-weighted variance of the window), and it runs on the PyTorch path, also for CUDA tensors.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from . import _routing
from ._arguments import check_backend, check_beta, check_output_size
# The Modules call the functions' common body with their already-checked beta.
from .adaptive import _adaptive_soft_pool
from .functional import _soft_pool


def inverse_softplus(value: float) -> float:
    """The ``raw`` with ``softplus(raw) == value`` for ``value > 0``: log(exp(v) - 1), written stably."""
    return value + math.log(-math.expm1(-value))


class _Sharpness(nn.Module):
    """The ``beta`` of a SoftPool Module: a fixed float, or ``softplus(raw_beta)`` when learned."""

    def _init_beta(self, beta: float, learn_beta: bool, num_channels: int | None, backend: str) -> None:
        beta = check_beta(beta)
        if not isinstance(learn_beta, bool):
            raise TypeError(f"learn_beta must be a bool, got {learn_beta!r}")
        if num_channels is not None and not learn_beta:
            raise ValueError("num_channels sets the size of a learned beta: it needs learn_beta=True")
        if not learn_beta:
            self._fixed_beta = beta
            self.register_parameter("raw_beta", None)
            return
        _routing.check_request(backend, learned_beta=True)
        if beta == 0:
            raise ValueError("a learned beta starts from beta > 0 (softplus never reaches 0), got 0.0")
        if num_channels is None:
            shape: tuple[int, ...] = ()
        elif isinstance(num_channels, int) and not isinstance(num_channels, bool) and num_channels > 0:
            shape = (num_channels,)
        else:
            raise ValueError(f"num_channels must be a positive int or None, got {num_channels!r}")
        self._fixed_beta = None
        self.raw_beta = nn.Parameter(torch.full(shape, inverse_softplus(beta)))

    @property
    def beta(self) -> float | torch.Tensor:
        """The sharpness: a float, or ``softplus(raw_beta)`` (a tensor, () or (C,)) when learned."""
        if self.raw_beta is None:
            return self._fixed_beta
        return F.softplus(self.raw_beta)

    @beta.setter
    def beta(self, value: float) -> None:
        value = check_beta(value)
        if self.raw_beta is None:
            self._fixed_beta = value
            return
        if value == 0:
            raise ValueError("a learned beta must stay > 0 (softplus never reaches 0), got 0.0")
        with torch.no_grad():
            self.raw_beta.fill_(inverse_softplus(value))

    def _beta_repr(self) -> str:
        if self.raw_beta is None:
            return f"beta={self._fixed_beta}"
        values = self.beta.detach().flatten().tolist()
        shown = f"{values[0]:.6g}" if self.raw_beta.dim() == 0 else f"({len(values)} values)"
        return f"beta={shown}, learn_beta=True"


class _SoftPoolNd(_Sharpness):
    _rank = 2

    def __init__(
        self,
        kernel_size,
        stride=None,
        padding=0,
        ceil_mode: bool = False,
        *,
        beta: float = 1.0,
        learn_beta: bool = False,
        num_channels: int | None = None,
        backend: str = "auto",
    ) -> None:
        super().__init__()
        self.kernel_size = kernel_size
        self.stride = kernel_size if stride is None else stride
        self.padding = padding
        self.ceil_mode = ceil_mode
        self.backend = check_backend(backend)
        self._init_beta(beta, learn_beta, num_channels, self.backend)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _soft_pool(
            x, self._rank, self.kernel_size, self.stride, self.padding, self.ceil_mode, self.beta, self.backend, True
        )

    def extra_repr(self) -> str:
        return (
            f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}, "
            f"ceil_mode={self.ceil_mode}, {self._beta_repr()}, backend={self.backend!r}"
        )


class SoftPool1d(_SoftPoolNd):
    """SoftPool over one spatial dimension; see :func:`softpool.soft_pool1d`.

    ``learn_beta=True`` learns beta as ``softplus(raw_beta)``, one scalar or one per channel
    with ``num_channels=C`` (see `softpool.modules`).

    Examples:
        >>> SoftPool1d(2)(torch.randn(2, 3, 10)).shape
        torch.Size([2, 3, 5])
    """

    _rank = 1


class SoftPool2d(_SoftPoolNd):
    """SoftPool over height and width; see :func:`softpool.soft_pool2d`.

    ``learn_beta=True`` learns beta as ``softplus(raw_beta)``, one scalar or one per channel
    with ``num_channels=C`` (see `softpool.modules`).

    Examples:
        >>> SoftPool2d(kernel_size=2, beta=1.0)(torch.randn(1, 3, 8, 8)).shape
        torch.Size([1, 3, 4, 4])
        >>> pool = SoftPool2d(2, learn_beta=True, num_channels=3)
        >>> [name for name, _ in pool.named_parameters()]
        ['raw_beta']
    """

    _rank = 2


class SoftPool3d(_SoftPoolNd):
    """SoftPool over depth (or time), height and width; see :func:`softpool.soft_pool3d`.

    ``learn_beta=True`` learns beta as ``softplus(raw_beta)``, one scalar or one per channel
    with ``num_channels=C`` (see `softpool.modules`).

    Examples:
        >>> SoftPool3d(kernel_size=(2, 2, 2))(torch.randn(1, 3, 4, 8, 8)).shape
        torch.Size([1, 3, 2, 4, 4])
    """

    _rank = 3


class _AdaptiveSoftPoolNd(_Sharpness):
    _rank = 2

    def __init__(
        self,
        output_size,
        *,
        beta: float = 1.0,
        learn_beta: bool = False,
        num_channels: int | None = None,
        backend: str = "auto",
    ) -> None:
        super().__init__()
        check_output_size(output_size, (1,) * self._rank)  # type, length and sign; None entries pass
        self.output_size = output_size
        self.backend = check_backend(backend)
        self._init_beta(beta, learn_beta, num_channels, self.backend)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _adaptive_soft_pool(x, self._rank, self.output_size, self.beta, self.backend, True)

    def extra_repr(self) -> str:
        return f"output_size={self.output_size}, {self._beta_repr()}, backend={self.backend!r}"


class AdaptiveSoftPool1d(_AdaptiveSoftPoolNd):
    """Adaptive SoftPool over one spatial dimension; see :func:`softpool.adaptive_soft_pool1d`.

    ``learn_beta=True`` learns beta as ``softplus(raw_beta)``, one scalar or one per channel
    with ``num_channels=C`` (see `softpool.modules`).

    Examples:
        >>> AdaptiveSoftPool1d(4)(torch.randn(2, 3, 10)).shape
        torch.Size([2, 3, 4])
    """

    _rank = 1


class AdaptiveSoftPool2d(_AdaptiveSoftPoolNd):
    """Adaptive SoftPool over height and width; see :func:`softpool.adaptive_soft_pool2d`.

    ``AdaptiveSoftPool2d(1)`` is global SoftPool, for classifier heads.

    ``learn_beta=True`` learns beta as ``softplus(raw_beta)``, one scalar or one per channel
    with ``num_channels=C`` (see `softpool.modules`).

    Examples:
        >>> AdaptiveSoftPool2d(1)(torch.randn(2, 512, 7, 7)).shape
        torch.Size([2, 512, 1, 1])
    """

    _rank = 2


class AdaptiveSoftPool3d(_AdaptiveSoftPoolNd):
    """Adaptive SoftPool over depth (or time), height and width; see :func:`softpool.adaptive_soft_pool3d`.

    ``learn_beta=True`` learns beta as ``softplus(raw_beta)``, one scalar or one per channel
    with ``num_channels=C`` (see `softpool.modules`).

    Examples:
        >>> AdaptiveSoftPool3d((1, 7, 7))(torch.randn(1, 3, 8, 14, 14)).shape
        torch.Size([1, 3, 1, 7, 7])
    """

    _rank = 3
