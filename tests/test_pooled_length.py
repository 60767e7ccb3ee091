"""The one pooled-length formula (`softpool._geometry.pooled_length`) against PyTorch's
max_pool, and every engine's output shape against it.

max_pool is the specification: SoftPool with the same kernel, stride, padding and ceil_mode
must pool exactly its windows, whichever engine runs.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from softpool import soft_pool1d, soft_pool2d, soft_pool3d
from softpool._geometry import pooled_length, window_bounds
from softpool_cli.pixels.pool import pool_array, pooled_shape

# Every length, kernel, stride and legal padding (at most half the kernel, as max_pool allows)
# small enough to try them all: the cases where ceil_mode drops a window that would start in
# the padding are among them (e.g. length 5, kernel 2, stride 2, padding 1).
ONE_DIMENSION = [
    (length, kernel, stride, padding, ceil_mode)
    for length, kernel, stride in itertools.product(range(1, 10), range(1, 5), range(1, 5))
    for padding in range(kernel // 2 + 1)
    for ceil_mode in (False, True)
]


def _max_pool_length(length, kernel, stride, padding, ceil_mode) -> int:
    x = torch.zeros(1, 1, length)
    try:
        return F.max_pool1d(x, kernel, stride, padding, ceil_mode=ceil_mode).shape[-1]
    except RuntimeError:  # "Output size is too small": the kernel does not fit
        return 0


def test_pooled_length_is_max_pools():
    wrong = [
        (case, pooled_length(*case), _max_pool_length(*case))
        for case in ONE_DIMENSION
        if pooled_length(*case) != _max_pool_length(*case)
    ]
    assert wrong == [], "(length, kernel, stride, padding, ceil_mode), ours, max_pool's"


def test_window_bounds_are_the_windows_max_pool_takes():
    """Over a strictly increasing input each window's maximum is its last element, and its
    minimum its first."""
    wrong = []
    for case in ONE_DIMENSION:
        length, kernel, stride, padding, ceil_mode = case
        bounds = window_bounds(*case)
        if _max_pool_length(*case) == 0:
            if bounds:
                wrong.append((case, bounds, []))
            continue
        x = torch.arange(length, dtype=torch.float64).view(1, 1, length)
        last = F.max_pool1d(x, kernel, stride, padding, ceil_mode=ceil_mode).flatten()
        first = -F.max_pool1d(-x, kernel, stride, padding, ceil_mode=ceil_mode).flatten()
        expected = [(int(start), int(end) + 1) for start, end in zip(first, last)]
        if bounds != expected:
            wrong.append((case, bounds, expected))
    assert wrong == [], "(length, kernel, stride, padding, ceil_mode), ours, max_pool's"


# Shapes for the engines: odd sizes, kernel != stride, padding, ceil_mode on every rank.
SHAPES = [
    ((7,), (2,), (2,), (1,)),
    ((9,), (3,), (2,), (0,)),
    ((5,), (1,), (2,), (0,)),  # kernel 1, stride 2: ceil_mode keeps the last sample
    ((5, 7), (2, 3), (2, 2), (1, 0)),
    ((6, 5), (3, 2), (1, 3), (1, 1)),
    ((3, 5, 7), (2, 2, 3), (2, 1, 2), (0, 1, 1)),
    ((4, 3, 5), (3, 1, 2), (2, 2, 2), (1, 0, 0)),
]
FUNCTIONS = {1: soft_pool1d, 2: soft_pool2d, 3: soft_pool3d}
MAX_POOLS = {1: F.max_pool1d, 2: F.max_pool2d, 3: F.max_pool3d}


def _expected(shape, kernel, stride, padding, ceil_mode) -> tuple[int, ...]:
    sizes = tuple(pooled_length(*arguments, ceil_mode) for arguments in zip(shape, kernel, stride, padding))
    x = torch.zeros(1, 1, *shape)
    assert MAX_POOLS[len(shape)](x, kernel, stride, padding, ceil_mode=ceil_mode).shape[2:] == sizes
    return sizes


def _engines() -> list:
    engines = ["torch", "cpu"]
    try:
        import softpool.kernels.soft_pool_nd as kernels
    except ImportError:
        return [*engines, pytest.param("triton", marks=pytest.mark.skip(reason="Triton is not installed"))]
    if kernels.INTERPRETED or torch.cuda.is_available():
        return [*engines, "triton"]
    return [*engines, pytest.param("triton", marks=pytest.mark.skip(reason="needs TRITON_INTERPRET=1 or CUDA"))]


@pytest.mark.parametrize("engine", _engines())
@pytest.mark.parametrize("ceil_mode", [False, True], ids=["floor", "ceil"])
@pytest.mark.parametrize("shape, kernel, stride, padding", SHAPES, ids=str)
def test_each_engine_pools_to_max_pools_shape(engine, shape, kernel, stride, padding, ceil_mode):
    expected = _expected(shape, kernel, stride, padding, ceil_mode)
    device = "cuda" if engine == "triton" and torch.cuda.is_available() else "cpu"
    x = torch.rand(1, 2, *shape, dtype=torch.float32, device=device, requires_grad=True)
    if engine == "cpu":
        from softpool.cpu import engine as cpu_engine

        if not cpu_engine.NUMBA_AVAILABLE:
            pytest.skip("Numba is not installed")
        backend = "auto"  # CPU tensors: the compiled CPU engine
    else:
        backend = engine
    y = FUNCTIONS[len(shape)](x, kernel, stride, padding, ceil_mode, backend=backend)
    assert tuple(y.shape) == (1, 2, *expected)
    y.sum().backward()
    assert x.grad.shape == x.shape


PIXEL_SHAPES = [
    ((5, 7), (2, 3), (3, 2)),
    ((6, 5), (3, 2), (1, 3)),
    ((5, 5), (1, 1), (2, 2)),  # kernel 1, stride 2
    ((3, 5, 7), (2, 1, 3), (1, 2, 2)),
    ((4, 3, 5), (3, 2, 2), (2, 2, 1)),
]


@pytest.mark.parametrize("method", ["soft", "max", "avg"])
@pytest.mark.parametrize("ceil_mode", [False, True], ids=["floor", "ceil"])
@pytest.mark.parametrize("shape, kernel, stride", PIXEL_SHAPES, ids=str)
def test_the_pixel_engine_pools_to_max_pools_shape(method, ceil_mode, shape, kernel, stride):
    """The command line's pixel engine (no padding: the commands take none)."""
    expected = _expected(shape, kernel, stride, (0,) * len(shape), ceil_mode)
    assert pooled_shape(shape, kernel, stride, ceil_mode) == expected
    rng = np.random.default_rng(0)
    for dtype in (np.uint8, np.uint16):
        pixels = rng.integers(0, np.iinfo(dtype).max, (*shape, 3), dtype=dtype)
        out = pool_array(pixels, kernel, stride, method=method, ceil_mode=ceil_mode)
        assert out.shape == (*expected, 3)
        assert out.dtype == dtype
