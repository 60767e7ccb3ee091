"""One still image: decoded in strips, pooled by every method asked for, encoded with its metadata.

On the CPU the picture is never held decoded whole: strips of stored rows, a few hundred
kilobytes each, go through the pixel engine as they are decoded, each into its rows of the
(small) results. The windows of the upright picture are counted on the stored one (EXIF
orientation: axes swapped and reversed as the orientation says), and only the results are
turned upright, when they are written. A comparison's original panel is pooled in the same
pass (average pooling to the panel's size), so a comparison costs no second decode either.

On a GPU the picture is decoded whole and pooled by PyTorch and the library's kernels.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from softpool_cli.errors import MediaError, SoftpoolError
from softpool_cli.media.image_read import ORIENTATION_AXES, ImageInput
from softpool_cli.pipeline.geometry import SpatialGeometry
from softpool_cli.pixels.windows import AxisWindows

# Decoded input per strip: small enough to stay in the CPU's caches with its working memory.
STRIP_BYTES = 1 << 20


@dataclass
class Pooled:
    """A pooled picture in the input's stored orientation: samples, (H, W, C), sample type."""

    buffer: bytearray
    shape: tuple[int, int, int]
    sample_type: str

    def array(self, orientation: int = 1):
        """As an upright NumPy array (H, W, C)."""
        import numpy as np

        from softpool_cli.media.image_read import apply_orientation

        pixels = np.frombuffer(self.buffer, np.dtype(self.sample_type)).reshape(self.shape)
        return apply_orientation(pixels, orientation)


@dataclass
class PooledImage:
    """One image pooled with several methods.

    Attributes:
        results: Method -> pooled picture, stored orientation, in the order asked for.
        original_panel: The original averaged down to the comparison panel's size (stored
            orientation), when a panel size was given.
        seconds: Decoding and pooling time, for the summary line.
    """

    results: dict[str, Pooled]
    original_panel: Pooled | None = None
    seconds: float = 0.0
    upright_size: tuple[int, int] = (0, 0)
    orientation: int = 1  # of the results: the input's on the CPU, 1 (upright) from the GPU
    windows: tuple[AxisWindows, AxisWindows] | None = field(default=None, repr=False)


def stored_windows(upright: tuple[AxisWindows, AxisWindows], orientation: int) -> tuple[AxisWindows, AxisWindows]:
    """The (rows, columns) windows on the stored picture for windows of the upright one."""
    stored: list[AxisWindows | None] = [None, None]
    for along, (axis, backwards) in zip(upright, ORIENTATION_AXES[orientation]):
        stored[axis] = along.reversed() if backwards else along
    return stored[0], stored[1]  # type: ignore[return-value]


def pool_image(
    source: ImageInput,
    geometry: SpatialGeometry,
    methods: Sequence[str],
    *,
    beta: float = 1.0,
    device: str = "cpu",
    panel_size: tuple[int, int] | None = None,
) -> PooledImage:
    """Pool ``source`` with each of ``methods`` over the windows ``geometry`` gives its upright size.

    Args:
        source: An opened image (`softpool_cli.media.image_read.open_image`).
        geometry: The windows or target size.
        methods: "soft", "max" and/or "avg".
        beta: SoftPool's sharpness.
        device: "cpu" or "cuda" (already resolved).
        panel_size: (height, width) of a comparison's original panel, upright.

    Raises:
        MediaError: a window larger than the image, or damaged data.
    """
    started = time.perf_counter()
    height, width = source.display_size
    try:
        upright = geometry.windows(height, width)
    except SoftpoolError as error:
        raise MediaError(source.name, f"image {error}" if str(error).startswith("is ") else str(error)) from None
    if device != "cpu":
        result = _pool_on_gpu(source, upright, methods, beta, device, panel_size)
    else:
        result = _pool_in_strips(source, upright, methods, beta, panel_size)
    result.seconds = time.perf_counter() - started
    result.orientation = source.orientation if device == "cpu" else 1
    result.upright_size = (upright[0].count, upright[1].count)
    result.windows = upright
    return result


def _pool_in_strips(source, upright, methods, beta, panel_size) -> PooledImage:
    rows, columns = stored_windows(upright, source.orientation)
    jobs = {method: (rows, columns) for method in methods}
    if panel_size is not None:
        panel = (AxisWindows.adaptive(source.display_size[0], panel_size[0]),
                 AxisWindows.adaptive(source.display_size[1], panel_size[1]))  # fmt: skip
        jobs["original"] = stored_windows(panel, source.orientation)
    channels, sample_type = source.channels, source.sample_type
    item = 2 if sample_type == "uint16" else 1
    stored_width = source.stored_size[1]
    budget_rows = max(1, STRIP_BYTES // (stored_width * channels * item))
    # Decoding starts first: loading the engine and its kernels happens meanwhile.
    with source.read_ahead(budget_rows) as strips:
        from softpool_cli.pixels.engine import Samples, pool
        from softpool_cli.pixels.normalisation import channel_statistics

        _, std, alpha = channel_statistics(channels)
        outputs = {name: Samples.empty((1, w[0].count, w[1].count, channels), sample_type) for name, w in jobs.items()}
        # Each job's next output row; strips of input rows advance all jobs together.
        next_row = {name: 0 for name in jobs}
        row_bytes_in = stored_width * channels * item
        carry, carry_first = bytearray(), 0  # decoded rows that unfinished windows still need
        for _, end, decoded in strips:
            strip = carry + decoded
            first = carry_first
            samples = Samples.of(strip, (end - first, stored_width, channels), sample_type)
            for name, (job_rows, job_columns) in jobs.items():
                done = next_row[name]
                # The output rows whose windows end in this strip (and start at or after `first`).
                stop = done
                while stop < job_rows.count and job_rows.ends[stop] <= end:
                    stop += 1
                if stop == done:
                    continue
                out_samples, buffer = outputs[name]
                row_bytes = job_columns.count * channels * item
                target = Samples(out_samples.address + done * row_bytes, (1, stop - done, job_columns.count, channels), sample_type, buffer)
                windows = [job_rows.select(done, stop).shifted(first, end - first), job_columns]
                method = "avg" if name == "original" else name
                pool(samples, windows, target, method, beta=beta, std=std, alpha=alpha)
                next_row[name] = stop
            # Keep the rows from the first window that is not finished yet (windows may span strips).
            pending = [rows_.starts[next_row[name]] for name, (rows_, _) in jobs.items() if next_row[name] < rows_.count]
            keep_from = min(pending, default=end)
            carry, carry_first = bytearray(strip[(keep_from - first) * row_bytes_in :]), keep_from
    results = {
        name: Pooled(buffer, (jobs[name][0].count, jobs[name][1].count, channels), sample_type)
        for name, (_, buffer) in outputs.items()
    }
    original = results.pop("original", None)
    return PooledImage(results, original)


def _pool_on_gpu(source, upright, methods, beta, device, panel_size) -> PooledImage:
    import numpy as np

    from softpool_cli.media.image_read import apply_orientation
    from softpool_cli.pixels.torch_pixels import pool_with_torch

    height, width = source.stored_size
    pixels = np.frombuffer(source.rows(0, height), np.dtype(source.sample_type)).reshape(height, width, -1)
    pixels = apply_orientation(pixels.copy(), source.orientation)
    kernel, stride, ceil, output_size = _torch_geometry(upright)
    results = {}
    for method in methods:
        pooled = pool_with_torch(pixels, kernel, stride, method, beta, ceil, device, output_size)
        results[method] = Pooled(bytearray(np.ascontiguousarray(pooled).tobytes()), pooled.shape, source.sample_type)
    original = None
    if panel_size is not None:
        panel = pool_with_torch(pixels, None, None, "avg", 0.0, False, device, panel_size)
        original = Pooled(bytearray(panel.tobytes()), panel.shape, source.sample_type)
    # Pooled upright already: written with orientation 1.
    return PooledImage(results, original)


def _torch_geometry(upright):
    """(kernel, stride, ceil_mode, output_size) that give ``upright``'s windows to PyTorch."""
    forms = [along.regular_form for along in upright]
    if None not in forms and all(along.starts == AxisWindows.regular(along.length, k, s, True).starts[: along.count]
                                 for along, (k, s, _) in zip(upright, forms)):  # fmt: skip
        kernel = tuple(k for k, _, _ in forms)
        stride = tuple(s for _, s, _ in forms)
        ceil = any(whole < along.count for along, (_, _, whole) in zip(upright, forms))
        return kernel, stride, ceil, None
    return None, None, False, tuple(along.count for along in upright)


def scale_of(source: ImageInput, pooled: Pooled) -> tuple[float, float]:
    """(x, y) stored output size over stored input size: how the resolution scales."""
    height, width = source.stored_size
    return pooled.shape[1] / width, pooled.shape[0] / height
