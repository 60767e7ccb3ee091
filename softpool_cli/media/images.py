"""Still images in and out: decoding, checks, orientation, and encoding.

Pillow identifies the file by its content (never by its extension), reads the
header (size, frames, EXIF orientation, ICC profile) and decodes the pixels.
OpenCV decodes and encodes only what Pillow cannot hold: PNG and TIFF with
16-bit colour samples, which Pillow would reduce to 8 bits.

Pixels travel as an ``(H, W, C)`` uint8 or uint16 array in RGB order, with
C = 1 (gray), 2 (gray + alpha), 3 (RGB) or 4 (RGBA).
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from softpool_cli.errors import MediaError

DEFAULT_MAX_PIXELS = 200_000_000

# Output format by extension: (Pillow format name, keeps alpha, keeps 16 bits).
OUTPUT_FORMATS: dict[str, tuple[str, bool, bool]] = {
    ".jpg": ("JPEG", False, False),
    ".jpeg": ("JPEG", False, False),
    ".png": ("PNG", True, True),
    ".webp": ("WEBP", True, False),
    ".tif": ("TIFF", True, True),
    ".tiff": ("TIFF", True, True),
    # Pillow writes 32-bit BMPs whose fourth byte readers treat as padding, so alpha is lost.
    ".bmp": ("BMP", False, False),
}
IMAGE_EXTENSIONS = frozenset(OUTPUT_FORMATS)

# Formats Pillow may try when identifying an input. Its JPEG reader also opens the
# multi-picture JPEGs many cameras write (format "MPO"): the first picture is the photo.
_INPUT_FORMATS = ("JPEG", "PNG", "WEBP", "TIFF", "BMP", "GIF")
_ANIMATED_FORMATS = {"GIF", "PNG", "WEBP"}

_EXIF_ORIENTATION = 0x0112
_FLATTEN_BACKGROUND = 255  # transparent areas become white in formats without alpha

# Pillow's own decompression-bomb guard (a warning past 89 Mpx, an error past twice
# that) would contradict the user's --max-pixels; read_image checks that limit instead.
Image.MAX_IMAGE_PIXELS = None


@dataclass
class DecodedImage:
    """A decoded still image.

    Attributes:
        pixels: ``(H, W, C)`` uint8 or uint16, RGB(A) order, orientation applied.
        format: Pillow's name of the input format ("JPEG", "PNG", ...).
        icc_profile: The embedded colour profile, carried into the outputs.
    """

    pixels: np.ndarray
    format: str
    icc_profile: bytes | None = field(default=None, repr=False)

    @property
    def bit_depth(self) -> int:
        return 16 if self.pixels.dtype == np.uint16 else 8


def _video_container(data: bytes) -> str | None:
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


def _png_bit_depth(data: bytes) -> int:
    # IHDR is always the first chunk: 8-byte signature, length, type, width, height, then depth.
    return data[24]


def _has_16bit_colour(image: Image.Image, data: bytes) -> bool:
    """Whether the file has 16-bit samples in more than one channel (Pillow keeps 8 of them)."""
    if image.mode.startswith("I;16"):
        return False  # 16-bit gray: Pillow keeps all 16 bits
    if image.format == "PNG":
        return _png_bit_depth(data) == 16
    if image.format == "TIFF":
        bits = image.tag_v2.get(258, (8,))
        bits = bits if isinstance(bits, tuple) else (bits,)
        return len(bits) > 1 and all(value == 16 for value in bits)
    return False


def _pixels_from_pillow(image: Image.Image) -> np.ndarray:
    """Decoded pixels as (H, W, C), converting modes that are not gray/RGB(A) at 8 or 16 bits."""
    mode = image.mode
    if mode.startswith("I;16"):
        return np.asarray(image).astype(np.uint16)[..., None]  # big-endian variants become native
    if mode in ("1", "L"):
        image = image.convert("L")
    elif mode in ("LA", "La"):
        image = image.convert("LA")
    elif mode in ("RGBA", "RGBa", "PA") or (mode == "P" and "transparency" in image.info):
        image = image.convert("RGBA")
    elif mode != "RGB":
        image = image.convert("RGB")  # P, CMYK, YCbCr, LAB, ...
    pixels = np.array(image)
    return pixels[..., None] if pixels.ndim == 2 else pixels


def _pixels_from_opencv(data: bytes, source_mode: str) -> np.ndarray:
    import cv2

    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)  # errors are ours to report
    pixels = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if pixels is None:
        raise ValueError("OpenCV could not decode it")
    if pixels.ndim == 2:
        return pixels[..., None]
    if source_mode == "LA":
        return np.ascontiguousarray(pixels[..., [0, 3]])  # OpenCV expands gray + alpha to BGRA
    order = [2, 1, 0, 3][: pixels.shape[2]]  # BGR(A) -> RGB(A)
    return np.ascontiguousarray(pixels[..., order])


def apply_orientation(pixels: np.ndarray, orientation: int) -> np.ndarray:
    """Turn ``(H, W, ...)`` pixels the way EXIF orientation 1-8 says the image displays.

    Same transforms as ``PIL.ImageOps.exif_transpose``; unknown values leave the pixels as they are.
    """
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


def read_image(path: Path, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> DecodedImage:
    """Read a still image, recognised by its content, with its EXIF orientation applied.

    Args:
        path: The image file.
        max_pixels: Refuse images with more pixels than this before decoding them
            (a guard against decompression bombs); 0 means no limit.

    Returns:
        The decoded image.

    Raises:
        MediaError: missing, empty, truncated or corrupt files, files that are not
            images (or are videos or animations), images over the pixel limit.
    """
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise MediaError(path, "no such file") from None
    except IsADirectoryError:
        raise MediaError(path, "is a directory, not a file") from None
    except OSError as error:
        raise MediaError(path, f"cannot read: {error.strerror or error}") from None
    if not data:
        raise MediaError(path, "file is empty")
    container = _video_container(data)
    if container:
        raise MediaError(path, f"is {container}, not a still image; use 'softpool video' for clips")

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # e.g. Pillow's "Corrupt EXIF data": the pixels still decode
        try:
            image = Image.open(io.BytesIO(data), formats=_INPUT_FORMATS)
        except Image.UnidentifiedImageError:
            raise MediaError(path, "not an image softpool can read (JPEG, PNG, WebP, TIFF, BMP)") from None
        except Exception as error:  # noqa: BLE001 - any decoder failure means a damaged header
            raise MediaError(path, f"corrupt image header: {error}") from None

        if image.format in _ANIMATED_FORMATS and getattr(image, "is_animated", False):
            kind = {"GIF": "an animated GIF", "PNG": "an animated PNG", "WEBP": "an animated WebP"}[image.format]
            raise MediaError(path, f"is {kind}, not a still image; use 'softpool video' for clips")

        width, height = image.size
        if max_pixels and width * height > max_pixels:
            raise MediaError(
                path,
                f"image is {width}x{height} ({width * height / 1e6:.1f} megapixels), over the limit of "
                f"{max_pixels:,} pixels (raise it with --max-pixels or SOFTPOOL_MAX_PIXELS)",
            )

        if image.mode in ("I", "F"):
            raise MediaError(path, "32-bit or floating-point samples are not supported (8- or 16-bit images only)")
        try:
            if _has_16bit_colour(image, data):
                pixels = _pixels_from_opencv(data, image.mode)
            else:
                image.load()
                pixels = _pixels_from_pillow(image)
        except MemoryError:
            raise
        except Exception as error:  # noqa: BLE001 - Pillow raises OSError, SyntaxError, ValueError, ...
            raise MediaError(path, f"truncated or corrupt image data: {error}") from None
        # Read after decoding: a PNG may keep its EXIF after the pixel data.
        try:
            orientation = image.getexif().get(_EXIF_ORIENTATION, 1)
        except Exception:  # noqa: BLE001 - unreadable EXIF: show the pixels as stored
            orientation = 1

    if pixels.dtype not in (np.uint8, np.uint16):
        raise MediaError(path, f"{pixels.dtype} samples are not supported (8- or 16-bit images only)")
    return DecodedImage(
        pixels=apply_orientation(pixels, orientation),
        format=image.format or "unknown",
        icc_profile=image.info.get("icc_profile"),
    )


def _flatten_alpha(pixels: np.ndarray) -> np.ndarray:
    """Composite (H, W, 2 or 4) pixels over white, dropping the alpha channel."""
    maxval = np.iinfo(pixels.dtype).max
    colour = pixels[..., :-1].astype(np.float32)
    alpha = pixels[..., -1:].astype(np.float32) / maxval
    flat = colour * alpha + _FLATTEN_BACKGROUND / 255 * maxval * (1 - alpha)
    return np.rint(flat).astype(pixels.dtype)


def _to_8bit(pixels: np.ndarray) -> np.ndarray:
    return np.rint(pixels / 257.0).astype(np.uint8) if pixels.dtype == np.uint16 else pixels


def encode_image(
    pixels: np.ndarray, suffix: str, *, icc_profile: bytes | None = None
) -> tuple[bytes, list[str]]:
    """Encode pixels in the format named by a file suffix.

    Formats that cannot hold what the pixels have are served the nearest thing,
    and each such change is returned as a note for the user: 16-bit results go to
    JPEG, WebP and BMP as 8 bits (rounded); alpha goes to JPEG and BMP flattened onto
    white; gray goes to WebP as RGB; 16-bit gray + alpha, which no available writer
    stores, becomes 16-bit RGBA.
    JPEG is written at quality 95 without chroma subsampling, WebP at quality 95.

    Args:
        pixels: ``(H, W)`` or ``(H, W, C)`` uint8 or uint16 in RGB(A) order, C in 1..4.
        suffix: The output file's suffix (``".png"``); must be in :data:`IMAGE_EXTENSIONS`.
        icc_profile: A colour profile to embed (not written for 16-bit colour PNG/TIFF).

    Returns:
        The encoded file and the notes (possibly none).
    """
    format_name, keeps_alpha, keeps_16bit = OUTPUT_FORMATS[suffix.lower()]
    shown_name = {"WEBP": "WebP"}.get(format_name, format_name)
    pixels = pixels[..., None] if pixels.ndim == 2 else pixels
    notes: list[str] = []
    if pixels.shape[2] in (2, 4) and not keeps_alpha:
        pixels = _flatten_alpha(pixels)
        notes.append(f"{shown_name} has no alpha channel: transparent areas were flattened onto white")
    if pixels.dtype == np.uint16 and not keeps_16bit:
        pixels = _to_8bit(pixels)
        notes.append(f"{shown_name} stores 8 bits per sample: the 16-bit result was reduced to 8 bits")
    if format_name == "WEBP" and pixels.shape[2] <= 2:
        notes.append("WebP has no grayscale mode: the image was written as RGB")

    if pixels.dtype == np.uint16 and pixels.shape[2] > 1:
        if pixels.shape[2] == 2:
            pixels = pixels[..., [0, 0, 0, 1]]
            notes.append("16-bit gray + alpha is written as 16-bit RGBA")
        return _encode_with_opencv(pixels, suffix), notes

    image = Image.fromarray(pixels[..., 0] if pixels.shape[2] == 1 else pixels)
    options: dict[str, object] = {}
    if icc_profile:
        options["icc_profile"] = icc_profile
    if format_name == "JPEG":
        options.update(quality=95, subsampling=0)
    elif format_name == "WEBP":
        options.update(quality=95)
    elif format_name == "TIFF":
        options.update(compression="tiff_deflate")
    buffer = io.BytesIO()
    image.save(buffer, format=format_name, **options)
    return buffer.getvalue(), notes


def _encode_with_opencv(pixels: np.ndarray, suffix: str) -> bytes:
    import cv2

    order = [2, 1, 0, 3][: pixels.shape[2]]  # RGB(A) -> BGR(A)
    ok, encoded = cv2.imencode(suffix.lower(), np.ascontiguousarray(pixels[..., order]))
    if not ok:
        raise ValueError(f"OpenCV could not encode a {pixels.shape} {pixels.dtype} image as {suffix}")
    return encoded.tobytes()
