"""Still images in: recognised by content, checked from the header, decoded in strips by libvips.

libvips opens a file without decoding it (size, bands, depth, EXIF orientation, ICC, XMP),
then decodes rows on demand, top to bottom, so that pooling a photo never holds its decoded
pixels whole: memory stays near that of the pooled result. Pillow reads what libvips does not
(BMP). Samples come out as uint8 or uint16, RGB(A) or gray(+alpha): CMYK, Lab and the like are
converted to sRGB on the way.

Pixels are handled in their stored orientation; `orientation_axes` says how each displayed
axis maps to a stored one, so that the pooling windows of the displayed picture can be
counted on the stored one and only the small result is turned upright (`apply_orientation`).
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from softpool_cli.errors import MediaError

DEFAULT_MAX_PIXELS = 200_000_000
_HEAD_BYTES = 64  # what the container checks read
# Per EXIF orientation, for the displayed (rows, columns): the stored axis each comes from and
# whether it runs backwards along it.
ORIENTATION_AXES = {
    1: ((0, False), (1, False)),
    2: ((0, False), (1, True)),
    3: ((0, True), (1, True)),
    4: ((0, True), (1, False)),
    5: ((1, False), (0, False)),
    6: ((1, False), (0, True)),
    7: ((1, True), (0, True)),
    8: ((1, True), (0, False)),
}
_SAMPLE_TYPES = {"uchar": "uint8", "ushort": "uint16"}
_LOADER_FORMATS = {"jpegload": "JPEG", "pngload": "PNG", "webpload": "WEBP", "tiffload": "TIFF", "gifload": "GIF",
                   "heifload": "HEIF", "svgload": "SVG"}  # fmt: skip
_METADATA_BLOBS = ("icc-profile-data", "exif-data", "xmp-data", "iptc-data")


@dataclass
class ImageMetadata:
    """What an output carries over from its input: profiles and tags, and the resolution."""

    blobs: dict[str, bytes] = field(default_factory=dict, repr=False)  # libvips field -> data
    resolution: tuple[float, float] | None = None  # (x, y) pixels per millimetre, as stored

    @property
    def icc_profile(self) -> bytes | None:
        return self.blobs.get("icc-profile-data")


@dataclass
class ImageInput:
    """A still image opened for reading in strips of stored rows, top to bottom.

    Attributes:
        name: How messages name it (the path, or "-" for standard input).
        image: The libvips image, sequential access, in its stored orientation.
        format: "JPEG", "PNG", "WEBP", "TIFF", "BMP", "GIF", ...
        orientation: EXIF orientation 1-8 (1 when the file has none).
        metadata: What outputs carry over.
    """

    name: str
    image: object
    format: str
    orientation: int
    metadata: ImageMetadata
    _region: object = field(default=None, repr=False)

    @property
    def sample_type(self) -> str:
        return _SAMPLE_TYPES[self.image.format]

    @property
    def channels(self) -> int:
        return self.image.bands

    @property
    def stored_size(self) -> tuple[int, int]:
        """(height, width) as stored."""
        return self.image.height, self.image.width

    @property
    def display_size(self) -> tuple[int, int]:
        """(height, width) as shown, orientation applied."""
        height, width = self.stored_size
        return (width, height) if self.orientation >= 5 else (height, width)

    def rows(self, first: int, end: int) -> object:
        """Stored rows ``first`` to ``end`` (exclusive) as a writable buffer of (rows, W, C)
        samples. Calls must move down the picture (a strip may repeat the last rows of the one
        before).

        Raises:
            MediaError: the data is truncated or corrupt.
        """
        import pyvips

        if self._region is None:
            self._region = pyvips.Region.new(self.image)
        try:
            return self._region.fetch(0, first, self.image.width, end - first)
        except pyvips.Error as error:
            raise _damaged(self.name, error) from None

    def read_ahead(self, strip_rows: int) -> StripReader:
        """The stored rows in strips of ``strip_rows``, top to bottom, decoded ahead in a
        thread: see `StripReader`."""
        return StripReader(self, strip_rows)


class StripReader:
    """Strips of an image's stored rows, decoded by a thread a few strips ahead of the caller.

    Decoding (libvips, which releases the GIL) runs while the caller pools the strips before,
    and while it loads what pooling needs: decoding is most of a photo's time, and the rest
    hides behind it. At most ``ahead`` decoded strips wait, so memory stays bounded. Use it as
    a context manager: leaving stops the decoder and waits for it, whatever happens.

    Iterating gives ``(first, end, rows)``: consecutive ranges of ``strip_rows`` rows (the
    last one shorter) down the picture, ``rows`` a writable buffer of (end - first, W, C) samples.

    Raises:
        MediaError: (while iterating) the data is truncated or corrupt.
    """

    def __init__(self, source: ImageInput, strip_rows: int, ahead: int = 3) -> None:
        import queue
        import threading

        from softpool.cpu.threads import Workers

        self._source = source
        self._strip_rows = max(1, strip_rows)
        self._stop = threading.Event()
        self._queue: queue.Queue = queue.Queue(ahead)
        self._done = False
        self._workers = Workers([self._decode], names=["decode"])

    def _decode(self) -> None:
        import pyvips

        image = self._source.image
        height = image.height
        row_bytes = image.width * image.bands * (2 if image.format == "ushort" else 1)
        strip: dict = {}

        def start(first: int) -> None:
            end = min(height, first + self._strip_rows)
            strip.update(first=first, end=end, rows=bytearray((end - first) * row_bytes), filled=0)

        def on_write(chunk) -> int:
            if self._stop.is_set():
                return -1  # libvips stops saving
            data = memoryview(chunk).cast("B")
            taken = 0
            while taken < len(data):
                rows, filled = strip["rows"], strip["filled"]
                count = min(len(data) - taken, len(rows) - filled)
                rows[filled : filled + count] = data[taken : taken + count]
                strip["filled"] = filled + count
                taken += count
                if strip["filled"] == len(rows):
                    if not self._put((strip["first"], strip["end"], rows)):
                        return -1
                    if strip["end"] < height:
                        start(strip["end"])
            return len(chunk)

        try:
            start(0)
            target = pyvips.TargetCustom()
            target.on_write(on_write)
            try:
                image.rawsave_target(target)
            except pyvips.Error as error:
                if not self._stop.is_set():
                    self._put(_damaged(self._source.name, error))
                return
            self._put(None)
        except BaseException as error:  # noqa: BLE001 - handed to the caller, who raises it
            self._put(error)

    def _put(self, item: object) -> bool:
        from softpool.cpu.threads import put_unless_stopped

        return put_unless_stopped(self._queue, item, self._stop)

    def __iter__(self) -> Iterator[tuple[int, int, object]]:
        while not self._done:
            item = self._queue.get()
            if item is None:
                self._done = True
                return
            if isinstance(item, BaseException):
                self._done = True
                raise item
            yield item

    def __enter__(self) -> StripReader:
        return self

    def __exit__(self, kind, error, traceback) -> None:
        self._stop.set()
        interrupted = self._workers.wait(on_interrupt=self._stop.set)
        if interrupted is not None and error is None:
            raise interrupted


def open_image(path: Path | str, data: bytes | None = None, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> ImageInput:
    """Open a still image (the file at ``path``, or ``data`` read from a pipe) without decoding it.

    Args:
        path: The file; with ``data``, only the name used in messages.
        data: The whole file, when it comes from standard input.
        max_pixels: Refuse images with more pixels than this before decoding them (a guard
            against decompression bombs); 0 means no limit.

    Raises:
        MediaError: missing, empty, unreadable files, files that are not still images (videos,
            animations), images over the pixel limit, sample types other than 8 or 16 bits.
    """
    import pyvips

    name = str(path)
    # A file is sniffed from its first bytes, then decoded as libvips reads it: reading it
    # whole first would cost as long again for a large PNG, and its size in memory.
    head = _read_head(Path(path)) if data is None else data[:_HEAD_BYTES]
    if not head:
        raise MediaError(name, "file is empty")
    container = video_container(head)
    if container:
        raise MediaError(name, f"is {container}, not a still image; use 'softpool video' for clips")
    if head[:2] == b"BM":
        image = _bmp_through_pillow(name, data if data is not None else _read_file(Path(path)))
        loader = "BMP"
    else:
        try:
            # fail_on="truncated": a cut file is an error, not a grey bottom.
            options = {"access": "sequential", "fail_on": "truncated"}
            if data is not None:
                image = pyvips.Image.new_from_buffer(data, "", **options)
            else:
                image = pyvips.Image.new_from_source(pyvips.Source.new_from_file(name), "", **options)
        except pyvips.Error:
            raise MediaError(name, "not an image softpool can read (JPEG, PNG, WebP, TIFF, BMP, HEIF)") from None
        loader = _LOADER_FORMATS.get(image.get("vips-loader").replace("_buffer", "").replace("_source", ""), "image")
    _check_still(name, image, loader, data if data is not None else Path(path))
    width, height = image.width, image.height
    if max_pixels and width * height > max_pixels:
        raise MediaError(
            name,
            f"image is {width}x{height} ({width * height / 1e6:.1f} megapixels), over the limit of "
            f"{max_pixels:,} pixels (raise it with --max-pixels or SOFTPOOL_MAX_PIXELS)",
        )
    fields = set(image.get_fields())
    orientation = image.get("orientation") if "orientation" in fields else 1
    orientation = orientation if orientation in ORIENTATION_AXES else 1
    metadata = ImageMetadata(
        blobs={key: image.get(key) for key in _METADATA_BLOBS if key in fields},
        resolution=(image.xres, image.yres),
    )
    return ImageInput(name, _as_samples(name, image), loader, orientation, metadata)


def _read_file(path: Path) -> bytes:
    return _read(path, lambda stream: stream.read())


def _read_head(path: Path) -> bytes:
    """The first bytes of the file, enough to tell what it holds."""
    return _read(path, lambda stream: stream.read(_HEAD_BYTES))


def _read(path: Path, how) -> bytes:
    try:
        with open(path, "rb") as stream:
            return how(stream)
    except FileNotFoundError:
        raise MediaError(path, "no such file") from None
    except IsADirectoryError:
        raise MediaError(path, "is a directory, not a file") from None
    except OSError as error:
        raise MediaError(path, f"cannot read: {error.strerror or error}") from None


def _check_still(name: str, image, loader: str, data: bytes | Path) -> None:
    pages = image.get("n-pages") if "n-pages" in image.get_fields() else 1
    if pages > 1 and loader in ("GIF", "WEBP") or (loader == "PNG" and _is_animated_png(name, data)):
        kind = {"GIF": "an animated GIF", "PNG": "an animated PNG", "WEBP": "an animated WebP"}[loader]
        raise MediaError(name, f"is {kind}, not a still image; use 'softpool video' for clips")


def _as_samples(name: str, image):
    """The image as uint8/uint16 gray(+alpha) or RGB(+alpha) samples."""
    if image.format not in _SAMPLE_TYPES:
        raise MediaError(name, f"{image.format} samples are not supported (8- or 16-bit images only)")
    interpretation = image.interpretation
    if interpretation in ("cmyk", "lab", "labs", "lch", "cmc", "xyz", "yxy", "scrgb", "hsv"):
        sixteen = image.format == "ushort"
        image = image.colourspace("rgb16" if sixteen else "srgb")
        image = image.cast("ushort" if sixteen else "uchar")
    if image.bands > 4:
        image = image.extract_band(0, n=4)
    return image


def _is_animated_png(name: str, data: bytes | Path) -> bool:
    """Whether a PNG (its bytes, or the file) holds an animation: an acTL chunk before the
    first IDAT (the APNG rule). Reads the chunk headers only."""
    try:
        with io.BytesIO(data) if isinstance(data, bytes) else open(data, "rb") as stream:
            stream.seek(8)  # the signature
            while True:
                header = stream.read(8)
                if len(header) < 8 or header[4:8] == b"IDAT":
                    return False
                if header[4:8] == b"acTL":
                    return True
                stream.seek(int.from_bytes(header[:4], "big") + 4, io.SEEK_CUR)  # the data, the CRC
    except OSError as error:
        raise MediaError(name, f"cannot read: {error.strerror or error}") from None


def _bmp_through_pillow(name: str, data: bytes):
    """BMP, which libvips does not read, decoded by Pillow into a libvips image."""
    import pyvips
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data), formats=("BMP",)) as image:
            image.load()
            image = image.convert("RGBA" if "A" in image.mode or "transparency" in image.info else "RGB")
            bands = len(image.getbands())
            return pyvips.Image.new_from_memory(image.tobytes(), image.width, image.height, bands, "uchar")
    except Exception as error:  # noqa: BLE001 - any decoder failure means a damaged file
        raise MediaError(name, f"truncated or corrupt image data: {error}") from None


def video_container(data: bytes) -> str | None:
    """Name the video container ``data`` starts with, if any (by its magic bytes)."""
    if data[4:8] == b"ftyp":
        # HEIF and AVIF stills share the ISO media file layout: tell them apart by brand.
        if data[8:12] in {b"heic", b"heix", b"heim", b"heis", b"mif1", b"msf1", b"avif", b"avis"}:
            return None
        return "an MP4/QuickTime video"
    if data[:4] == b"\x1a\x45\xdf\xa3":
        return "a WebM/Matroska video"
    if data[:4] == b"RIFF" and data[8:12] == b"AVI ":
        return "an AVI video"
    if data[:3] == b"FLV":
        return "an FLV video"
    if data[:4] in (b"\x00\x00\x01\xba", b"\x00\x00\x01\xb3"):
        return "an MPEG video"
    return None


def _damaged(name: str, error: Exception) -> MediaError:
    """What a decoding failure of libvips's is, for the user."""
    return MediaError(name, f"truncated or corrupt image data: {_first_line(error)}")


def _first_line(error: Exception) -> str:
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return lines[-1] if lines else type(error).__name__


def apply_orientation(pixels, orientation: int):
    """Turn ``(H, W, ...)`` NumPy pixels the way EXIF orientation 1-8 says the image displays.

    Same transforms as ``PIL.ImageOps.exif_transpose``; unknown values leave the pixels as they are.
    """
    import numpy as np

    transforms = {
        2: lambda a: a[:, ::-1],
        3: lambda a: a[::-1, ::-1],
        4: lambda a: a[::-1],
        5: lambda a: a.swapaxes(0, 1),
        6: lambda a: np.rot90(a, -1),
        7: lambda a: a.swapaxes(0, 1)[::-1, ::-1],
        8: lambda a: np.rot90(a, 1),
    }
    transform = transforms.get(orientation)
    return pixels if transform is None else np.ascontiguousarray(transform(pixels))


@dataclass
class DecodedImage:
    """A still image decoded whole, upright: ``pixels`` (H, W, C) uint8/uint16 NumPy."""

    pixels: object
    format: str
    metadata: ImageMetadata = field(default_factory=ImageMetadata)

    @property
    def icc_profile(self) -> bytes | None:
        return self.metadata.icc_profile


def read_image(path: Path, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> DecodedImage:
    """Read a still image whole, orientation applied (for comparisons, galleries and metrics)."""
    import numpy as np

    source = open_image(path, max_pixels=max_pixels)
    height, width = source.stored_size
    dtype = np.dtype(source.sample_type)
    buffer = source.rows(0, height)
    pixels = np.frombuffer(buffer, dtype).reshape(height, width, source.channels).copy()
    return DecodedImage(apply_orientation(pixels, source.orientation), source.format, source.metadata)
