"""Still images out, through libvips (Pillow for BMP), with the input's metadata.

Formats that cannot hold what the pixels have are served the nearest thing, and each such
change is returned as a note for the user: 16-bit results go to JPEG, WebP and BMP as 8 bits
(rounded); alpha goes to JPEG and BMP flattened onto white; gray goes to WebP as RGB.

Metadata: the input's ICC profile, EXIF (camera, date, GPS, ...), XMP and IPTC are kept unless
``strip``; the EXIF orientation is reset, since the pixels are written upright; the resolution
(DPI) is divided by the pooling factor, so that the picture keeps its printed size.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

from softpool_cli.media.image_read import ImageMetadata

# Output format by extension: (name in messages, keeps alpha, keeps 16 bits).
OUTPUT_FORMATS: dict[str, tuple[str, bool, bool]] = {
    ".jpg": ("JPEG", False, False),
    ".jpeg": ("JPEG", False, False),
    ".png": ("PNG", True, True),
    ".webp": ("WebP", True, False),
    ".tif": ("TIFF", True, True),
    ".tiff": ("TIFF", True, True),
    # Readers treat a 32-bit BMP's fourth byte as padding, so alpha is lost.
    ".bmp": ("BMP", False, False),
}
IMAGE_EXTENSIONS = frozenset(OUTPUT_FORMATS)
DEFAULT_QUALITY = 95  # JPEG and WebP; JPEG without chroma subsampling
_FLATTEN_BACKGROUND = 255  # transparent areas become white in formats without alpha
_SAMPLE_FORMATS = {"uint8": "uchar", "uint16": "ushort"}


def encode_image(
    pixels: object,
    suffix: str,
    *,
    shape: Sequence[int] | None = None,
    sample_type: str | None = None,
    metadata: ImageMetadata | None = None,
    orientation: int = 1,
    scale: tuple[float, float] = (1.0, 1.0),
    quality: int = DEFAULT_QUALITY,
    strip: bool = False,
    stored_orientation: int = 1,
) -> tuple[bytes, list[str]]:
    """Encode pixels in the format named by a file suffix.

    Args:
        pixels: (H, W) or (H, W, C) NumPy uint8/uint16, or a buffer with ``shape`` and ``sample_type``;
            RGB(A) or gray(+alpha), in stored orientation when ``orientation`` is not 1.
        suffix: The output file's suffix (``".png"``); one of :data:`IMAGE_EXTENSIONS`.
        shape: (H, W, C) of a buffer.
        sample_type: "uint8" or "uint16" of a buffer.
        metadata: What to carry over from the input.
        orientation: EXIF orientation of ``pixels``, applied before writing.
        scale: (x, y) upright output size over upright input size, to scale the resolution by.
        quality: JPEG and WebP quality, 1-100.
        strip: Write no metadata at all.
        stored_orientation: The input's orientation, which its resolution is stored in.

    Returns:
        The encoded file and the notes (possibly none).
    """
    import pyvips

    if shape is None:  # a NumPy array
        array = pixels if pixels.ndim == 3 else pixels[..., None]
        shape, sample_type = array.shape, array.dtype.name
        pixels = array.tobytes() if not array.flags["C_CONTIGUOUS"] else array.data
    height, width, channels = shape
    image = pyvips.Image.new_from_memory(pixels, width, height, channels, _SAMPLE_FORMATS[sample_type])
    sixteen = sample_type == "uint16"
    image = image.copy(interpretation=("grey16" if sixteen else "b-w") if channels <= 2 else ("rgb16" if sixteen else "srgb"))
    if orientation != 1:
        image = image.copy()
        image.set_type(pyvips.GValue.gint_type, "orientation", orientation)
        image = image.autorot()
    format_name, keeps_alpha, keeps_16bit = OUTPUT_FORMATS[suffix.lower()]
    notes: list[str] = []
    if channels in (2, 4) and not keeps_alpha:
        image = _flatten(image, sixteen)
        channels -= 1
        notes.append(f"{format_name} has no alpha channel: transparent areas were flattened onto white")
    if sixteen and not keeps_16bit:
        image = (image / 257.0).rint().cast("uchar").copy(interpretation="b-w" if channels == 1 else "srgb")
        sixteen = False
        notes.append(f"{format_name} stores 8 bits per sample: the 16-bit result was reduced to 8 bits")
    if format_name == "WebP" and channels <= 2:
        image = image.colourspace("srgb")
        notes.append("WebP has no grayscale mode: the image was written as RGB")
    image = _with_metadata(image, metadata if not strip else None, scale, stored_orientation >= 5)
    if format_name == "BMP":
        return _bmp_through_pillow(image), notes
    keep = {"keep": "none"} if strip else {}
    if format_name == "JPEG":
        data = image.jpegsave_buffer(Q=quality, subsample_mode="off", **keep)
    elif format_name == "WebP":
        data = image.webpsave_buffer(Q=quality, **keep)
    elif format_name == "PNG":
        data = image.pngsave_buffer(**keep)
    else:
        data = image.tiffsave_buffer(compression="deflate", **keep)
    return bytes(data), notes


def _flatten(image, sixteen: bool):
    """Composite over white, rounding: c a + white (1 - a), a = alpha / max."""
    maxval = 65535.0 if sixteen else 255.0
    colour = image.extract_band(0, n=image.bands - 1).cast("double")
    alpha = image.extract_band(image.bands - 1).cast("double") / maxval
    flat = colour * alpha + (alpha * -1 + 1) * (_FLATTEN_BACKGROUND / 255 * maxval)
    interpretation = image.interpretation
    return flat.rint().cast("ushort" if sixteen else "uchar").copy(interpretation=interpretation)


def _with_metadata(image, metadata: ImageMetadata | None, scale: tuple[float, float], transposed: bool):
    """The input's profiles and tags on ``image`` (upright), orientation reset to 1, and its
    resolution scaled with the pooling, so that the printed size stays the same."""
    import pyvips

    image = image.copy()
    if metadata is None:
        return image
    for name, data in metadata.blobs.items():
        image.set_type(pyvips.GValue.blob_type, name, data)
    # libvips writes this field into the EXIF orientation tag: the pixels are upright now.
    image.set_type(pyvips.GValue.gint_type, "orientation", 1)
    if metadata.resolution is not None:
        x, y = metadata.resolution[::-1] if transposed else metadata.resolution
        image = image.copy(xres=x * scale[0], yres=y * scale[1])
    return image


def _bmp_through_pillow(image) -> bytes:
    from PIL import Image

    mode = {1: "L", 3: "RGB"}[image.bands]
    picture = Image.frombytes(mode, (image.width, image.height), image.write_to_memory())
    buffer = io.BytesIO()
    picture.save(buffer, format="BMP")
    return buffer.getvalue()
