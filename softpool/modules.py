"""`torch.nn.Module` wrappers around the SoftPool functions, shaped like `nn.MaxPool*d`."""

from __future__ import annotations

import torch
from torch import nn

from ._arguments import check_backend, check_beta
from .functional import soft_pool1d, soft_pool2d, soft_pool3d


class _SoftPoolNd(nn.Module):
    _function = staticmethod(soft_pool2d)

    def __init__(
        self,
        kernel_size,
        stride=None,
        padding=0,
        ceil_mode: bool = False,
        *,
        beta: float = 1.0,
        backend: str = "auto",
    ) -> None:
        super().__init__()
        self.kernel_size = kernel_size
        self.stride = kernel_size if stride is None else stride
        self.padding = padding
        self.ceil_mode = ceil_mode
        self.beta = check_beta(beta)
        self.backend = check_backend(backend)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._function(
            x, self.kernel_size, self.stride, self.padding, self.ceil_mode, beta=self.beta, backend=self.backend
        )

    def extra_repr(self) -> str:
        return (
            f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}, "
            f"ceil_mode={self.ceil_mode}, beta={self.beta}, backend={self.backend!r}"
        )


class SoftPool1d(_SoftPoolNd):
    """SoftPool over one spatial dimension; see :func:`softpool.soft_pool1d`.

    Examples:
        >>> SoftPool1d(2)(torch.randn(2, 3, 10)).shape
        torch.Size([2, 3, 5])
    """

    _function = staticmethod(soft_pool1d)


class SoftPool2d(_SoftPoolNd):
    """SoftPool over height and width; see :func:`softpool.soft_pool2d`.

    Examples:
        >>> SoftPool2d(kernel_size=2, beta=1.0)(torch.randn(1, 3, 8, 8)).shape
        torch.Size([1, 3, 4, 4])
    """

    _function = staticmethod(soft_pool2d)


class SoftPool3d(_SoftPoolNd):
    """SoftPool over depth (or time), height and width; see :func:`softpool.soft_pool3d`.

    Examples:
        >>> SoftPool3d(kernel_size=(2, 2, 2))(torch.randn(1, 3, 4, 8, 8)).shape
        torch.Size([1, 3, 2, 4, 4])
    """

    _function = staticmethod(soft_pool3d)
