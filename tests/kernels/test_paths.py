"""Code paths of the Triton kernels that the reference tests in test_triton_kernels.py do not
reach with the interpreter's default large tiles: tiles that divide the output (no masks),
several tiles per axis, the flat grid, layouts without row blocks, the backward of
non-overlapping windows in its chunked and 64-bit forms, and inputs that lie in no window.
"""

from __future__ import annotations

import pytest
import torch

from reference import assert_close
from softpool import soft_pool2d, soft_pool3d
from softpool._arguments import pool_geometry
from test_triton_kernels import DEVICES, _check_forward_and_backward, poisoned_allocations

soft_pool_nd = pytest.importorskip("softpool.kernels.soft_pool_nd", reason="Triton is not installed")
from softpool.kernels import config, launch  # noqa: E402  (after the skip: both import Triton)


@pytest.mark.parametrize("device", DEVICES)
class TestNonOverlappingWindows:
    @pytest.mark.parametrize(
        ("shape", "kernel", "stride", "padding", "ceil_mode"),
        [
            ((1, 2, 8, 16), 2, 2, 0, False),  # row blocks, tiles divide the output: no masks at all
            ((2, 3, 8, 12), (2, 4), (2, 4), 0, False),  # row blocks of four, N, C and H merged into rows
            ((1, 2, 9, 10), 2, 3, 0, False),  # stride > kernel: gaps in no window, gradient 0
            ((1, 2, 7, 9), 2, 2, 0, True),  # ceil_mode: the last row and column hold one value
            ((1, 1, 4, 6, 8), 2, 2, 0, False),  # 3D 2x2x2: window parts along depth
        ],
        ids=["2x2-even", "2x4-merged", "gaps", "ceil", "3d"],
    )
    @pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.float64])
    def test_against_reference(self, shape, kernel, stride, padding, ceil_mode, dtype, device):
        torch.manual_seed(11)
        x = torch.randn(shape, device=device).to(dtype)
        _check_forward_and_backward(x, kernel, stride, padding, ceil_mode, beta=2.0)

    @pytest.mark.parametrize(
        "layout", ["channels_last", "channels_last_3d", "every_other_column", "transposed", "broadcast"]
    )
    def test_layouts(self, layout, device):
        # Each changes the axes the kernels tile, or gives the gradient other strides than x.
        torch.manual_seed(12)
        if layout == "channels_last_3d":
            x = torch.randn(1, 3, 4, 6, 8, device=device).contiguous(memory_format=torch.channels_last_3d)
        elif layout == "channels_last":
            x = torch.randn(2, 4, 8, 12, device=device).contiguous(memory_format=torch.channels_last)
        elif layout == "every_other_column":
            x = torch.randn(2, 2, 8, 24, device=device)[..., ::2]
        elif layout == "transposed":
            x = torch.randn(1, 2, 12, 8, device=device).transpose(2, 3).contiguous().transpose(2, 3)
        else:
            x = torch.randn(1, 1, 8, 12, device=device).expand(2, 3, 8, 12)
        _check_forward_and_backward(x, 2, 2, 0, False, beta=1.0)

    @pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
    def test_every_element_written(self, dtype, device):
        # Stride 3 > kernel 2 leaves every third row and column in no window, and 10 rows a last
        # one: their gradient must be written as 0.
        torch.manual_seed(13)
        x = torch.randn(1, 2, 10, 11, device=device).to(dtype).requires_grad_(True)
        with poisoned_allocations():
            y = soft_pool2d(x, 2, 3, backend="triton")
            y.backward(torch.ones_like(y))
        assert not y.isnan().any() and not x.grad.isnan().any()
        rows, columns = x.grad[..., [2, 5, 8, 9], :], x.grad[..., [2, 5, 8]]
        assert_close(rows, torch.zeros_like(rows), 0.0, 0.0, "rows in no window")
        assert_close(columns, torch.zeros_like(columns), 0.0, 0.0, "columns in no window")

    @pytest.mark.parametrize("forced", ["chunked", "wide", "small-tiles", "flat-grid"])
    def test_forced_paths(self, forced, device, monkeypatch):
        # chunked: 2x2 windows through the online-max chunks; wide: 64-bit offsets in tiles;
        # small-tiles: many tiles per axis, with lanes past the output inside the tensor;
        # flat-grid: the program index decomposed from one grid axis.
        if forced == "chunked":
            monkeypatch.setattr(config, "MAX_UNROLLED_WINDOW", 0)
            monkeypatch.setattr(config, "MAX_WINDOW_BLOCK", 2)
        elif forced == "wide":
            monkeypatch.setattr(config, "INT32_MAX", 0)
        elif forced == "small-tiles":
            monkeypatch.setattr(config, "INTERPRETER_ELEMENTS", 32)
        else:
            monkeypatch.setattr(launch, "MAX_GRID_YZ", 0)
        torch.manual_seed(14)
        x = torch.randn(2, 3, 9, 14, device=device)
        _check_forward_and_backward(x, 2, 2, 1, True, beta=1.5)

    def test_backward_without_autograd_needs_no_statistics(self, device):
        # For a custom op's backward: the same gradient as autograd's, from x alone.
        torch.manual_seed(15)
        x = torch.randn(1, 2, 8, 10, device=device, requires_grad=True)
        geometry = pool_geometry((8, 10), 2, 2, 0, False)
        y = soft_pool_nd.soft_pool_triton(x, geometry, 1.5)
        grad_y = torch.randn_like(y)
        y.backward(grad_y)
        grad_x = soft_pool_nd.soft_pool_triton_backward(grad_y, x.detach(), geometry, 1.5)
        assert torch.equal(grad_x, x.grad)

    def test_gradcheck(self, device):
        torch.manual_seed(16)
        x = torch.randn(1, 1, 4, 6, 4, device=device, dtype=torch.float64, requires_grad=True)
        assert torch.autograd.gradcheck(lambda t: soft_pool3d(t, 2, beta=1.5, backend="triton"), (x,))


class TestPlans:
    """What the launcher picks when compiling for a GPU (no GPU needed: plans only)."""

    @pytest.fixture(autouse=True)
    def compiled(self, monkeypatch):
        monkeypatch.setattr(config, "INTERPRETED", False)

    def _forward_options(self, shape, dtype=torch.float16, kernel=2, channels_last=False):
        x = torch.empty(shape, dtype=dtype, device="meta")
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        geometry = pool_geometry(tuple(shape[2:]), kernel, kernel, 0, False)
        y = soft_pool_nd._empty_output(x, (*shape[:2], *geometry.output_size))
        grid, _, options = launch.forward_plan(
            x.shape, x.stride(), y.stride(), dtype, geometry, False, False, config.DEFAULT_SM_COUNT, config.tunables()
        )
        return grid, options

    @pytest.mark.parametrize(
        ("shape", "tile"),
        [
            ((64, 64, 112, 112), (512, 8)),  # N, C, H merged; 56 outputs wide: 8 divides it, no idle lane
            ((1, 3, 2160, 3840), (8, 128)),  # 1920 outputs wide: 128 divides it; 3240 rows: 8 does
            ((32, 256, 56, 56), (128, 32)),  # 28 wide: no divisor keeps 32-byte rows; 32 (12.5% idle)
        ],
    )
    def test_tiles_for_common_widths(self, shape, tile):
        grid, options = self._forward_options(shape)
        assert (options["BLOCK_3"], options["BLOCK_4"]) == tile
        assert options["ROW_BLOCK"] and options["X_ALIGN"] == 8

    @pytest.mark.parametrize("shape", [(1, 3, 224, 224), (1, 64, 56, 56), (2, 16, 32, 32)])
    def test_every_sm_gets_four_programs(self, shape):
        grid, options = self._forward_options(shape)
        programs = grid[0] * (grid[1] if len(grid) > 1 else 1) * (grid[2] if len(grid) > 2 else 1)
        assert programs >= config.MIN_PROGRAMS_PER_SM * config.DEFAULT_SM_COUNT

    def test_axes_merge_only_where_windows_tile_exactly(self):
        # H = 7 is not tiled by 2x2 windows: only N and C merge, and H stays a tile axis.
        axes, _, _ = launch._kernel_axes((4, 8, 7, 16), pool_geometry((7, 16), 2, 2, 0, False),
                                         ((8 * 7 * 16, 7 * 16, 16, 1),), ((8 * 3 * 8, 3 * 8, 8, 1),))  # fmt: skip
        assert [axis.in_size for axis in axes] == [1, 1, 32, 7, 16]
