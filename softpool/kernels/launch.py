"""Launch plans: how a call's tensors map onto the kernels' five axes, tiles and flags.

The kernels see every input as five axes: batch, channel and three spatial axes (rank 1 and 2
are lifted with size-1 axes). The plan orders the axes by the input's strides, innermost last,
then merges neighbours that form one longer axis (an axis without a window into the next one
when that one's windows tile it exactly: N, C and H of a contiguous (N, C, H, W) tensor pooled
2x2 become one axis of N*C*H rows). Each program takes a tile over the two innermost axes:
along W for (N, C, H, W) tensors, along C for channels_last ones, so neighbouring lanes read
neighbouring memory without a copy.

Plans are cached on shapes, strides and settings: working them out costs more than the launch
of a small call.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import torch
import triton
import triton.language as tl

from .._geometry import PoolGeometry
from . import config


@dataclass(frozen=True)
class _Axis:
    """One of the five axes the kernels see, with its window (1, 1, 0 for batch and channel)."""

    in_size: int
    out_size: int
    kernel: int
    stride: int
    padding: int

    @property
    def reaches_past_input(self) -> bool:
        """Whether some window starts in the left padding or ends past the input (needs a mask)."""
        return self.padding > 0 or (self.out_size - 1) * self.stride + self.kernel > self.in_size

    @property
    def tiled_exactly(self) -> bool:
        """Whether the windows cover the axis edge to edge, each input in exactly one."""
        return self.kernel == self.stride and self.padding == 0 and self.out_size * self.stride == self.in_size

    def offset_bound(self, stride: int) -> int:
        """A bound on |position| and |position x stride| over every input or window position the
        kernels form along this axis."""
        return (self.in_size + self.out_size * self.stride + 2 * self.kernel) * max(abs(stride), 1)


_UNIT = _Axis(1, 1, 1, 1, 0)
# A CUDA grid's second and third axes hold at most 65535 programs.
MAX_GRID_YZ = 65535


@dataclass(frozen=True)
class _Tile:
    """Launch shape: a rows x columns tile over the two innermost axes, and the program count."""

    rows: int
    columns: int
    num_warps: int
    programs: int


def non_overlapping(geometry: PoolGeometry) -> bool:
    """Whether no input lies in two windows (kernel <= stride everywhere): the backward then
    recomputes each window from x, and the forward saves no statistics."""
    return all(k <= s for k, s in zip(geometry.kernel_size, geometry.stride))


def covers_input(geometry: PoolGeometry) -> bool:
    """Whether every input lies in some window (non-overlapping windows: kernel = stride, and the
    last window reaches the end); otherwise the backward's gradient starts from zeros."""
    return all(
        k == s and o * s - p >= n
        for k, s, p, n, o in zip(
            geometry.kernel_size, geometry.stride, geometry.padding, geometry.input_size, geometry.output_size
        )
    )


def _previous_power_of_2(n: int) -> int:
    return 1 << (max(n, 1).bit_length() - 1)


def _power_of_2_dividing(values, cap: int) -> int:
    """The largest power of two up to ``cap`` that divides every value (0 divides by anything)."""
    alignment = cap
    for value in values:
        while alignment > 1 and value % alignment:
            alignment //= 2
    return alignment


def _fit(length: int, cap: int, floor: int) -> int:
    """A power-of-two tile edge in [floor, cap] for ``length`` positions: the largest that
    divides it (no lanes idle, no masks), else the largest unless a smaller one idles a share of
    positions IDLE_SHARE_WORTH_A_SMALLER_TILE lower."""

    def idle(edge: int) -> float:
        padded = triton.cdiv(length, edge) * edge
        return (padded - length) / padded

    edges = [cap >> shift for shift in range(cap.bit_length()) if cap >> shift >= max(floor, 1)]
    exact = [edge for edge in edges if length % edge == 0]
    if exact:
        return exact[0]
    best = edges[0]
    for edge in edges[1:]:
        if idle(edge) < idle(best) - config.IDLE_SHARE_WORTH_A_SMALLER_TILE:
            best = edge
    return best


def _tile(
    outer: int, rows: int, columns: int, cost: int, per_thread: int, min_columns: int, min_programs: int
) -> _Tile:
    """Pick a power-of-two tile for ``outer`` planes of rows x columns positions.

    Each position costs ``cost`` elements (window values, or loads in the gather). The tile takes
    up to the positions CUDA_WARPS warps serve at ``per_thread`` elements each: columns first
    (the contiguous axis, at least ``min_columns`` for whole sectors), with edges that leave few
    positions idle (`_fit`), then rows. It then shrinks until the launch has ``min_programs``
    programs, if it can; the warps follow the tile's size. Under the interpreter the tile is the
    largest that holds up to INTERPRETER_ELEMENTS elements instead.

    Raises:
        ValueError: when the launch would need more programs than a grid allows.
    """
    budget = config.INTERPRETER_ELEMENTS if config.INTERPRETED else per_thread * 32 * config.CUDA_WARPS
    positions = _previous_power_of_2(budget // cost)
    column_cap = min(triton.next_power_of_2(columns), positions)
    min_columns = min(_previous_power_of_2(min_columns), column_cap)
    if config.INTERPRETED:  # idle lanes cost the interpreter little, each program a lot
        tile_columns = column_cap
        tile_rows = max(1, min(triton.next_power_of_2(rows), positions // tile_columns))
    else:
        tile_columns = _fit(columns, column_cap, min_columns)
        row_cap = max(1, min(triton.next_power_of_2(rows), positions // tile_columns))
        tile_rows = _fit(rows, row_cap, max(1, row_cap // 8))

    def programs() -> int:
        return outer * triton.cdiv(rows, tile_rows) * triton.cdiv(columns, tile_columns)

    while programs() < min_programs and (tile_rows > 1 or tile_columns > min_columns):
        if tile_rows > 1:
            tile_rows //= 2
        else:
            tile_columns //= 2
    if programs() > config.MAX_PROGRAMS:
        raise ValueError(
            f"the Triton SoftPool kernels would need {programs()} programs ({outer} x {rows} x {columns} "
            f"positions in tiles of {tile_rows} x {tile_columns}), more than the {config.MAX_PROGRAMS} a launch allows"
        )
    threads = tile_rows * tile_columns * cost // per_thread
    num_warps = min(config.CUDA_WARPS, _previous_power_of_2(threads // 32))
    return _Tile(tile_rows, tile_columns, num_warps, programs())


def _logical_axes(batch: int, channels: int, geometry: PoolGeometry) -> list[_Axis]:
    """The five kernel axes in logical order: batch, channel, spatial (leading size-1 axes for rank < 3)."""
    spatial = [
        _Axis(*sizes)
        for sizes in zip(
            geometry.input_size, geometry.output_size, geometry.kernel_size, geometry.stride, geometry.padding
        )
    ]
    return [_Axis(batch, batch, 1, 1, 0), _Axis(channels, channels, 1, 1, 0), *[_UNIT] * (3 - geometry.rank), *spatial]


def _lifted_strides(strides: tuple[int, ...], rank: int) -> list[int]:
    """Strides of an (N, C, *spatial) tensor for the five kernel axes (0 for the lifted size-1 axes)."""
    return [strides[0], strides[1], *([0] * (3 - rank)), *strides[2:]]


def _kernel_axes(
    shape: tuple[int, ...], geometry: PoolGeometry, input_strides: tuple, output_strides: tuple
) -> tuple[list[_Axis], list[list[int]], list[list[int]]]:
    """The kernel's five axes, outermost first, and each tensor's strides along them.

    ``input_strides`` are those of the input-shaped tensors (x first: its strides set the order),
    ``output_strides`` those of the output-shaped ones. Axes are ordered size-1 first, then by
    x's strides, and an axis without a window is merged into the next (inner) one when that
    one's windows tile it exactly and every tensor steps over it as over one longer axis; merged
    offsets must stay within 32 bits.
    """
    logical = _logical_axes(shape[0], shape[1], geometry)
    lifted_in = [_lifted_strides(s, geometry.rank) for s in input_strides]
    lifted_out = [_lifted_strides(s, geometry.rank) for s in output_strides]
    x_strides = lifted_in[0]
    order = sorted(range(5), key=lambda a: (logical[a].in_size > 1 or logical[a].out_size > 1, -x_strides[a], a))
    axes = [logical[a] for a in order]
    ins = [[s[a] for a in order] for s in lifted_in]
    outs = [[s[a] for a in order] for s in lifted_out]

    inner = len(axes) - 1
    while inner > 0:
        a, b = axes[inner - 1], axes[inner]
        merged = _Axis(a.in_size * b.in_size, a.out_size * b.out_size, b.kernel, b.stride, 0)
        mergeable = (
            a.in_size > 1
            and (a.kernel, a.stride, a.padding) == (1, 1, 0)
            and b.tiled_exactly
            and all(s[inner - 1] == b.in_size * s[inner] for s in ins)
            and all(s[inner - 1] == b.out_size * s[inner] for s in outs)
            and all(merged.offset_bound(s[inner]) <= config.INT32_MAX for s in ins + outs)
        )
        if mergeable:
            axes[inner - 1 : inner + 1] = [merged]
            for s in ins + outs:
                s[inner - 1 : inner + 1] = [s[inner]]
        inner -= 1
    padding = 5 - len(axes)
    axes = [_UNIT] * padding + axes
    return axes, [[0] * padding + s for s in ins], [[0] * padding + s for s in outs]


def _needs_wide_offsets(axes: list[_Axis], *strides: list[int]) -> bool:
    """Whether offsets within a tile (axes 3 and 4, kernel order) could pass 2**31 for some tensor."""
    return any(axes[3].offset_bound(s[3]) + axes[4].offset_bound(s[4]) > config.INT32_MAX for s in strides)


def _window_arguments(axes: list[_Axis]) -> dict[str, int]:
    """The constexpr window arguments K0..K4, S0..S4, P0..P4 of the kernels."""
    arguments = {}
    for name, field in (("K", "kernel"), ("S", "stride"), ("P", "padding")):
        arguments.update({f"{name}{d}": getattr(axis, field) for d, axis in enumerate(axes)})
    return arguments


def compute_dtype(dtype: torch.dtype) -> tuple[torch.dtype, tl.dtype]:
    """Arithmetic in float32, float64 for float64 inputs."""
    return (torch.float64, tl.float64) if dtype == torch.float64 else (torch.float32, tl.float32)


def _output_tiling(
    axes: list[_Axis], x_strides: list[int], out_strides: list[list[int]], dtype: torch.dtype, sm_count: int
) -> tuple[tuple[int, ...], tuple[int, ...], dict]:
    """Tile, grid integers and flags shared by the kernels that take one lane per output (the
    forward and the backward of non-overlapping windows)."""
    window_volume = math.prod(axis.kernel for axis in axes)
    rows, columns = axes[3], axes[4]
    # Small windows are unrolled (WINDOW_BLOCK 0); large ones go in chunks of window_block lanes.
    window_block = 0
    if window_volume > config.MAX_UNROLLED_WINDOW:
        window_block = min(triton.next_power_of_2(window_volume), config.MAX_WINDOW_BLOCK)
    # Row blocks: windows along the innermost axis side by side, a power of two wide (a tensor axis).
    row_block = window_block == 0 and columns.kernel == columns.stride > 1
    row_block = row_block and columns.kernel & (columns.kernel - 1) == 0
    element = torch.empty((), dtype=dtype).element_size()
    vector = config.VECTOR_BYTES // element  # elements in one 16-byte access
    contiguous = x_strides[4] == 1
    min_columns = config.SECTOR_BYTES // (element * columns.stride) if contiguous else 1
    outer = axes[0].out_size * axes[1].out_size * axes[2].out_size
    min_programs = 0 if config.INTERPRETED else config.MIN_PROGRAMS_PER_SM * sm_count
    if window_block:
        per_thread = config.CHUNKED_LOADS_PER_THREAD
        tile = _tile(outer, rows.out_size, columns.out_size, window_block, per_thread, 1, min_programs)
    else:
        tile = _tile(
            outer, rows.out_size, columns.out_size, window_volume, config.ELEMENTS_PER_THREAD, min_columns, min_programs
        )
    lanes = tile.columns * columns.kernel if row_block else tile.columns
    # The divisibility facts the kernels are told (see window._part_offsets): every outer and row
    # offset is a multiple of x_align elements; the column checks hold over aligned runs of
    # column_align lanes (their edges, at 0 and in_4 relative to -padding, fall on run borders).
    # Axes whose positions are always 0 (size 1, no window) do not count.
    moving = [d for d in range(4) if axes[d] != _UNIT]
    x_align = _power_of_2_dividing([x_strides[d] for d in moving], vector) if contiguous else 1
    y_align = _power_of_2_dividing([s[d] for s in out_strides for d in moving], vector)
    # A window part's lanes run contiguously from a tile-aligned start: row blocks, or windows of
    # one value along axis 4 (with kernel > 1 at stride 1 each part starts k4 further on).
    lanes_contiguous = contiguous and (row_block or columns.kernel == columns.stride == 1)
    column_align = 1
    if lanes_contiguous:
        column_align = _power_of_2_dividing([lanes, columns.padding, columns.in_size + columns.padding], vector)
    output_column_align = _power_of_2_dividing([tile.columns, columns.out_size], vector)
    even_rows = rows.out_size % tile.rows == 0
    even_columns = columns.out_size % tile.columns == 0
    integers = (
        *(axis.in_size for axis in axes),
        *(axis.out_size for axis in axes),
        triton.cdiv(rows.out_size, tile.rows),
        triton.cdiv(columns.out_size, tile.columns),
    )
    options = dict(
        **_window_arguments(axes),
        BLOCK_3=tile.rows,
        BLOCK_4=tile.columns,
        ROW_BLOCK=row_block,
        # Outputs per thread after a row block is summed over its K4 lanes (see _window_columns).
        OUTPUT_VECTOR=max(1, min(tile.columns, vector // columns.kernel)) if row_block else 1,
        EDGE=any(axis.reaches_past_input for axis in axes),
        OUTER_EDGE=any(axis.reaches_past_input for axis in axes[:3]),
        MASK_ROWS=rows.reaches_past_input or not even_rows,
        MASK_COLUMNS=columns.reaches_past_input or not even_columns,
        MASK_OUTPUT_ROWS=not even_rows,
        MASK_OUTPUT_COLUMNS=not even_columns,
        X_ALIGN=x_align,
        COLUMN_ALIGN=column_align,
        Y_ALIGN=y_align,
        OUTPUT_COLUMN_ALIGN=output_column_align,
        WINDOW_BLOCK=window_block,
        WINDOW_CHUNKS=triton.cdiv(window_volume, window_block) if window_block else 0,
        WIDE=_needs_wide_offsets(axes, x_strides, *out_strides),
        COMPUTE_DTYPE=compute_dtype(dtype)[1],
        FAST_MATH=not config.INTERPRETED and dtype != torch.float64,
        num_warps=tile.num_warps,
        num_stages=1,  # nothing to software-pipeline: the loads are unrolled or one per chunk
    )
    tiles_3, tiles_4 = integers[-2:]
    grid = (tile.programs,)
    if tiles_3 <= MAX_GRID_YZ and outer <= MAX_GRID_YZ:
        grid = (tiles_4, tiles_3, outer)
    options["GRID_3D"] = len(grid) == 3
    return grid, integers, options


@functools.lru_cache(maxsize=1024)
def forward_plan(
    shape: tuple[int, ...],
    x_strides: tuple[int, ...],
    y_strides: tuple[int, ...],
    dtype: torch.dtype,
    geometry: PoolGeometry,
    save_stats: bool,
    save_reference: bool,
    sm_count: int,
    tunables: tuple,
) -> tuple[tuple[int], tuple[int, ...], dict]:
    """Grid, integer arguments and keyword arguments of the forward kernel (y and the statistics
    share y's strides)."""
    axes, (x_lifted,), (y_lifted,) = _kernel_axes(shape, geometry, (x_strides,), (y_strides,))
    grid, integers, options = _output_tiling(axes, x_lifted, [y_lifted], dtype, sm_count)
    options.update(SAVE_STATS=save_stats, SAVE_REFERENCE=save_reference)
    return grid, (*integers, *x_lifted, *y_lifted), options


@functools.lru_cache(maxsize=1024)
def window_backward_plan(
    shape: tuple[int, ...],
    x_strides: tuple[int, ...],
    dy_strides: tuple[int, ...],
    dx_strides: tuple[int, ...],
    dtype: torch.dtype,
    geometry: PoolGeometry,
    sm_count: int,
    tunables: tuple,
) -> tuple[tuple[int], tuple[int, ...], dict]:
    """Grid, integer arguments and keyword arguments of the backward for non-overlapping windows."""
    axes, (x_lifted, dx_lifted), (dy_lifted,) = _kernel_axes(shape, geometry, (x_strides, dx_strides), (dy_strides,))
    grid, integers, options = _output_tiling(axes, x_lifted, [dy_lifted], dtype, sm_count)
    options.update(WIDE=options["WIDE"] or _needs_wide_offsets(axes, dx_lifted), DX_LIKE_X=dx_lifted == x_lifted)
    return grid, (*integers, *x_lifted, *dy_lifted, *dx_lifted), options


@functools.lru_cache(maxsize=1024)
def gather_backward_plan(
    shape: tuple[int, ...],
    x_strides: tuple[int, ...],
    dx_strides: tuple[int, ...],
    stats_strides: tuple[int, ...],
    dy_strides: tuple[int, ...],
    dtype: torch.dtype,
    geometry: PoolGeometry,
    sm_count: int,
    tunables: tuple,
) -> tuple[tuple[int], tuple[int, ...], dict]:
    """Grid, integer arguments and keyword arguments of the gather backward (overlapping windows)."""
    axes, (x_lifted, dx_lifted), (stats_lifted, dy_lifted) = _kernel_axes(
        shape, geometry, (x_strides, dx_strides), (stats_strides, dy_strides)
    )
    covering = math.prod(-(-axis.kernel // axis.stride) for axis in axes)
    outer = axes[0].in_size * axes[1].in_size * axes[2].in_size
    element = torch.empty((), dtype=dtype).element_size()
    min_columns = config.SECTOR_BYTES // element if x_lifted[4] == 1 else 1
    min_programs = 0 if config.INTERPRETED else config.MIN_PROGRAMS_PER_SM * sm_count
    tile = _tile(
        outer, axes[3].in_size, axes[4].in_size, covering, config.BACKWARD_LOADS_PER_THREAD, min_columns, min_programs
    )
    integers = (
        *(axis.in_size for axis in axes),
        *(axis.out_size for axis in axes),
        triton.cdiv(axes[3].in_size, tile.rows),
        triton.cdiv(axes[4].in_size, tile.columns),
        *x_lifted,
        *dx_lifted,
        *stats_lifted,
        *dy_lifted,
    )
    options = dict(
        **_window_arguments(axes),
        BLOCK_3=tile.rows,
        BLOCK_4=tile.columns,
        WIDE=_needs_wide_offsets(axes, x_lifted, dx_lifted, stats_lifted, dy_lifted),
        UNROLL=covering <= config.MAX_UNROLLED_WINDOWS,
        GRAD_LIKE_STATS=dy_lifted == stats_lifted,
        COMPUTE_DTYPE=compute_dtype(dtype)[1],
        num_warps=tile.num_warps,
        num_stages=1,
    )
    return (tile.programs,), integers, options
