"""Regenerate the sample media in ``samples/``: photographs, clips and a chart.

The photographs are the colour photos that scikit-image bundles inside its
wheel (public domain or CC0, see ``samples/README.md``); they are read straight
from the installed package, so nothing is downloaded. The clips are camera
pans and zooms over those photos, and the chart is drawn from formulas.
Every parameter is fixed, so two runs write the same pictures.

Usage::

    python samples/make_samples.py            # rewrite samples/
    python samples/make_samples.py --out DIR  # write somewhere else
"""

from __future__ import annotations

import argparse
import hashlib
import math
import os
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import av
import cv2
import imageio.v3 as iio
import numpy as np
import skimage.data
from PIL import Image

SAMPLES_DIR = Path(__file__).resolve().parent
# The photos are read from the installed wheel's data folder, never through
# skimage.data's fetchers, which may download.
BUNDLED_DATA_DIR = Path(skimage.data.__file__).resolve().parent

JPEG_QUALITY = 92


@dataclass(frozen=True)
class Photo:
    """A photograph bundled with scikit-image and where it goes in samples/."""

    bundled_name: str  # file name inside skimage/data/
    sha256: str  # pins the exact bytes, so the outputs cannot drift silently
    output_name: str  # .jpg re-encodes at JPEG_QUALITY; same suffix copies bytes


# Hashes as listed in scikit-image's data registry (skimage/data/_registry.py).
PHOTOS = {
    "astronaut": Photo(
        "astronaut.png",
        "88431cd9653ccd539741b555fb0a46b61558b301d4110412b5bc28b5e3ea6cb5",
        "astronaut.jpg",
    ),
    "coffee": Photo(
        "coffee.png",
        "cc02f8ca188b167c775a7101b5d767d1e71792cf762c33d6fa15a4599b5a8de7",
        "coffee.jpg",
    ),
    "chelsea": Photo(
        "chelsea.png",
        "596aa1e7cb875eb79f437e310381d26b338a81c2da23439704a73c4651e8c4bb",
        "chelsea.png",
    ),
    "rocket": Photo(
        "rocket.jpg",
        "c2dd0de7c538df8d111e479619b129464d0269d0ae5fd18ca91d33a7fdfea95c",
        "rocket.jpg",
    ),
}


def bundled_photo_path(photo: Photo) -> Path:
    """Return the path of a bundled photo after checking its bytes.

    Raises:
        FileNotFoundError: if the installed scikit-image does not ship the file.
        ValueError: if the file differs from the one the samples were made from.
    """
    path = BUNDLED_DATA_DIR / photo.bundled_name
    if not path.is_file():
        raise FileNotFoundError(f"scikit-image does not bundle {photo.bundled_name} at {path}")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != photo.sha256:
        raise ValueError(f"{path} has sha256 {digest}, expected {photo.sha256}")
    return path


def load_photo(name: str) -> np.ndarray:
    """Load one of ``PHOTOS`` as an (H, W, 3) uint8 RGB array."""
    return iio.imread(bundled_photo_path(PHOTOS[name]), plugin="pillow", mode="RGB")


# --- writing -------------------------------------------------------------------------


def _write_atomically(path: Path, write: Callable[[Path], None]) -> None:
    """Call ``write(temporary_path)`` and rename the result onto ``path``.

    A run that fails or is interrupted leaves the previous file, not half a file.
    The temporary name keeps the suffix because the writers pick the format from it.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.stem}.partial{path.suffix}")
    try:
        write(temporary)
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def write_photo(name: str, out_dir: Path) -> Path:
    """Write one bundled photo into ``out_dir`` and return its path.

    A photo whose output suffix matches the bundled file is copied byte for
    byte (no second round of compression); a PNG bound for .jpg is re-encoded
    at ``JPEG_QUALITY`` to keep the samples small.
    """
    photo = PHOTOS[name]
    source = bundled_photo_path(photo)
    target = out_dir / photo.output_name
    if source.suffix == target.suffix:
        _write_atomically(target, lambda path: shutil.copyfile(source, path))
    else:
        pixels = load_photo(name)
        _write_atomically(
            target,
            lambda path: iio.imwrite(path, pixels, plugin="pillow", quality=JPEG_QUALITY),
        )
    return target


def write_gif(path: Path, frames: np.ndarray, fps: int) -> None:
    """Write (T, H, W, 3) uint8 frames as a looping GIF.

    GIF stores frame delays in hundredths of a second, so ``fps`` must divide
    100 for the clip to keep its rate.

    Raises:
        ValueError: if the rate is not representable or two consecutive frames
            are equal (Pillow would merge them and the frame count would drop).
    """
    if 100 % fps:
        raise ValueError(f"GIF frame delays are whole centiseconds, fps={fps} does not divide 100")
    frames = _quantize_to_shared_palette(frames)
    for index in range(1, len(frames)):
        if np.array_equal(frames[index - 1], frames[index]):
            raise ValueError(f"frames {index - 1} and {index} are equal; the GIF would merge them")
    _write_atomically(
        path,
        lambda temporary: iio.imwrite(
            temporary, frames, plugin="pillow", duration=1000 // fps, loop=0
        ),
    )


# Half of GIF's 256: a panned photo changes every pixel of every frame, so the
# file grows with the palette. For this clip 256 colours made it 21% larger;
# 64 made it 19% smaller but visibly lost the green of the cat's eyes.
GIF_COLOURS = 128


def _quantize_to_shared_palette(frames: np.ndarray) -> np.ndarray:
    """Map every frame onto one shared palette of ``GIF_COLOURS``, without dithering.

    One palette for the whole clip keeps colours from flickering between frames;
    dithering would add a noise pattern that crawls as the camera moves.
    With at most 256 colours the GIF writer stores the frames exactly.
    """
    # A mosaic of every 8th frame stands in for the colours of the whole clip.
    mosaic = Image.fromarray(np.concatenate(frames[::8], axis=1))  # (H, W * k, 3)
    palette = mosaic.quantize(colors=GIF_COLOURS, method=Image.Quantize.MEDIANCUT)
    quantized = [
        Image.fromarray(frame).quantize(palette=palette, dither=Image.Dither.NONE)
        for frame in frames
    ]
    return np.stack([np.asarray(image.convert("RGB")) for image in quantized])  # (T, H, W, 3)


# Constant quality near visually lossless, since the clips are inputs to compare
# against. MB-tree is off because with it x264 wrote different bytes (and
# frames) on each run for the same input; without it every run is identical.
X264_OPTIONS = {"preset": "medium", "crf": "16", "x264-params": "mbtree=0"}


def write_mp4(path: Path, frames: np.ndarray, fps: int) -> None:
    """Write (T, H, W, 3) uint8 RGB frames as H.264 yuv420p MP4 at a constant ``fps``.

    PyAV is called directly because imageio's writer has no way to pass
    encoder options, and ``X264_OPTIONS`` are what make the output repeatable.

    Raises:
        ValueError: if the frame size is odd, which 4:2:0 chroma cannot store.
    """
    height, width = frames.shape[1:3]
    if height % 2 or width % 2:
        raise ValueError(f"H.264 yuv420p needs an even frame size, got {width}x{height}")

    def encode(temporary: Path) -> None:
        with av.open(str(temporary), mode="w") as container:
            stream = container.add_stream("libx264", rate=fps, options=X264_OPTIONS)
            stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
            for index, frame in enumerate(frames):
                video_frame = av.VideoFrame.from_ndarray(frame, format="rgb24")
                video_frame.pts = index  # in the stream's time base, 1 / fps
                container.mux(stream.encode(video_frame))
            container.mux(stream.encode(None))  # flush the frames x264 holds back

    _write_atomically(path, encode)


# --- clips ---------------------------------------------------------------------------


def render_view(
    photo: np.ndarray,
    center_xy: tuple[float, float],
    source_pixels_per_frame_pixel: float,
    frame_size: tuple[int, int],
) -> np.ndarray:
    """Render what a camera sees of ``photo``, at sub-pixel position and zoom.

    Args:
        photo: (H, W, 3) uint8 image.
        center_xy: photo coordinates (x, y) at the centre of the frame; pixel
            centres sit on integers.
        source_pixels_per_frame_pixel: how many photo pixels one frame pixel
            spans (above 1 zooms out, below 1 zooms in).
        frame_size: (width, height) of the frame.

    Returns:
        (height, width, 3) uint8 frame.
    """
    width, height = frame_size
    scale = source_pixels_per_frame_pixel
    # Bilinear warping alone aliases when it shrinks, so area-average down to
    # the wanted scale first (rounded up to whole pixels); what is left for the
    # warp is a shrink of well under 1%.
    if scale > 1.0:
        shrunk_size = (
            math.ceil(photo.shape[1] / scale),
            math.ceil(photo.shape[0] / scale),
        )
        source = cv2.resize(photo, shrunk_size, interpolation=cv2.INTER_AREA)
    else:
        source = photo
    scale_x = source.shape[1] / photo.shape[1]
    scale_y = source.shape[0] / photo.shape[0]
    # Frame pixel u maps to photo x = cx + (u - (width - 1) / 2) * scale, and
    # photo x maps to resized column (x + 0.5) * scale_x - 0.5 (cv2.resize's grid).
    center_x, center_y = center_xy
    frame_to_source = np.array(
        [
            [scale_x * scale, 0.0, scale_x * (center_x - (width - 1) / 2 * scale + 0.5) - 0.5],
            [0.0, scale_y * scale, scale_y * (center_y - (height - 1) / 2 * scale + 0.5) - 0.5],
        ]
    )
    return cv2.warpAffine(
        source,
        frame_to_source,
        (width, height),
        flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
        borderMode=cv2.BORDER_REFLECT101,
    )


@dataclass(frozen=True)
class Clip:
    """A camera move over one photo, written as one file."""

    photo: str  # key of PHOTOS
    output_name: str
    frame_size: tuple[int, int]  # (width, height)
    fps: int
    frame_count: int
    # (frame index, frame count) -> (center x, center y, photo pixels per frame pixel)
    camera: Callable[[int, int], tuple[float, float, float]]


def _circular_pan(index: int, frame_count: int) -> tuple[float, float, float]:
    """Chelsea (451x300): the camera circles the cat's face at constant speed,
    so the GIF loops seamlessly and no frame equals the one before."""
    angle = 2 * math.pi * index / frame_count
    return 225.0 + 60.0 * math.cos(angle), 150.0 + 28.0 * math.sin(angle), 1.4


def _smoothstep(progress: float) -> float:
    """Ease in and out: 0 -> 0, 1 -> 1, with zero speed at both ends."""
    return progress * progress * (3 - 2 * progress)


def _zoom_in(index: int, frame_count: int) -> tuple[float, float, float]:
    """Astronaut (512x512): from the whole width down onto the face. The scale
    changes geometrically, which looks like a steady zoom."""
    eased = _smoothstep(index / (frame_count - 1))
    scale = 2.0 * (0.875 / 2.0) ** eased
    center_x = 255.5 + (215.0 - 255.5) * eased
    center_y = 255.5 + (120.0 - 255.5) * eased
    return center_x, center_y, scale


def _tilt_up(index: int, frame_count: int) -> tuple[float, float, float]:
    """Rocket (640x427): from the launch pad lights up to the nose cone, with
    the lattice towers' thin struts in view all the way."""
    eased = _smoothstep(index / (frame_count - 1))
    return 319.5, 268.0 + (158.0 - 268.0) * eased, 1.45


CLIPS = (
    Clip("chelsea", "chelsea_pan.gif", (224, 168), fps=20, frame_count=60, camera=_circular_pan),
    Clip("astronaut", "astronaut_zoom.mp4", (256, 192), fps=25, frame_count=60, camera=_zoom_in),
    Clip("rocket", "rocket_tilt.mp4", (384, 216), fps=24, frame_count=48, camera=_tilt_up),
)


def clip_frames(clip: Clip) -> np.ndarray:
    """Render every frame of ``clip`` as a (T, H, W, 3) uint8 array."""
    photo = load_photo(clip.photo)
    frames = []
    for index in range(clip.frame_count):
        center_x, center_y, scale = clip.camera(index, clip.frame_count)
        frames.append(render_view(photo, (center_x, center_y), scale, clip.frame_size))
    return np.stack(frames)  # (T, H, W, 3)


def write_clip(clip: Clip, out_dir: Path) -> Path:
    """Render ``clip`` and write it into ``out_dir``; return its path."""
    frames = clip_frames(clip)
    target = out_dir / clip.output_name
    if target.suffix == ".gif":
        write_gif(target, frames, clip.fps)
    else:
        write_mp4(target, frames, clip.fps)
    return target


# --- chart ---------------------------------------------------------------------------

CHART_NAME = "aliasing_chart.png"
CHART_SIZE = 512
# Details finer than a pixel are drawn at this many times the size and then
# area-averaged, so the chart itself is free of aliasing.
SUPERSAMPLING = 4


def zone_plate(size: int) -> np.ndarray:
    """A circular zone plate, (size, size) float in [0, 1].

    The local frequency grows linearly with the radius and reaches the Nyquist
    limit (0.5 cycles per pixel) exactly at the corners, so everything present
    is representable and any moire after downsampling comes from the downsampler.
    """
    coordinates = np.arange(size) - (size - 1) / 2
    y, x = np.meshgrid(coordinates, coordinates, indexing="ij")
    corner_radius = math.hypot((size - 1) / 2, (size - 1) / 2)
    # phase = pi r^2 / (2 R) gives a local frequency r / (2 R) cycles per pixel.
    phase = math.pi * (x * x + y * y) / (2 * corner_radius)
    return 0.5 + 0.5 * np.cos(phase)


def siemens_star(size: int, spokes: int) -> np.ndarray:
    """A star of black and white wedges, (size, size) float in [0, 1], antialiased."""
    fine = size * SUPERSAMPLING
    coordinates = (np.arange(fine) + 0.5) / SUPERSAMPLING - size / 2
    y, x = np.meshgrid(coordinates, coordinates, indexing="ij")
    wedges = (np.cos(spokes * np.arctan2(y, x)) > 0).astype(np.float32)
    star = cv2.resize(wedges, (size, size), interpolation=cv2.INTER_AREA)
    # A grey disc covers the centre, where the wedges would pass the Nyquist
    # limit (a 2 px period at radius spokes / pi, 11.5 px).
    disc = (x * x + y * y) < (size / 16) ** 2
    grey = cv2.resize(disc.astype(np.float32), (size, size), interpolation=cv2.INTER_AREA)
    return star * (1 - grey) + 0.5 * grey


def line_gratings(size: int) -> np.ndarray:
    """One-pixel lines and a fan of thin slanted lines, (size, size) float in [0, 1].

    The top half holds bands of lines with periods 6, 5, 4, 3 and 2 px, vertical
    on the left and horizontal on the right; the bottom half a fan of thin
    antialiased lines from the bottom left corner, whose angles step by 3.6 deg.
    """
    tile = np.ones((size, size), np.float32)
    half = size // 2
    band_height = half // 5
    for band, period in enumerate((6, 5, 4, 3, 2)):
        rows = slice(band * band_height, (band + 1) * band_height - 3)  # 3 px white gap
        vertical_lines = np.arange(half) % period == 0
        tile[rows, :half][:, vertical_lines] = 0.0
        band_rows = np.arange(band * band_height, (band + 1) * band_height - 3)
        horizontal_rows = band_rows[(band_rows - band_rows[0]) % period == 0]
        tile[horizontal_rows, half:] = 0.0
    fine_size = (size * SUPERSAMPLING, half * SUPERSAMPLING)  # (width, height)
    fan = np.full(fine_size[::-1], 255, np.uint8)
    origin = (0, fine_size[1] - 1)
    for step in range(25):
        angle = math.radians(2 + 3.6 * step)
        end = (
            round(origin[0] + 2 * fine_size[0] * math.cos(angle)),
            round(origin[1] - 2 * fine_size[0] * math.sin(angle)),
        )
        cv2.line(fan, origin, end, 0, thickness=SUPERSAMPLING, lineType=cv2.LINE_AA)
    tile[half:] = cv2.resize(fan, (size, size - half), interpolation=cv2.INTER_AREA) / 255
    return tile


def fine_text(size: int) -> np.ndarray:
    """Lines of text, capitals 24 px down to 6 px tall, (size, size, 3) float RGB in [0, 1].

    Text is drawn directly at 1x: hairline glyphs are what pooling must keep.
    """
    tile = np.full((size, size, 3), 255, np.uint8)
    lines = (
        (0.9, (0, 0, 0), "SoftPool 2021"),
        (0.7, (200, 0, 0), "beta = 1: softmax"),
        (0.55, (0, 0, 190), "The quick brown fox"),
        (0.45, (0, 0, 0), "jumps over the lazy dog"),
        (0.38, (0, 120, 0), "0123456789 ABCDEFGHIJKLM"),
        (0.32, (0, 0, 0), "NOPQRSTUVWXYZ abcdefghijklm"),
        (0.28, (0, 0, 0), "nopqrstuvwxyz !?#%&()[]{}<>"),
        (0.25, (120, 0, 120), "max, average and soft pooling"),
        (0.22, (0, 0, 0), "Stergiou, Poppe, Kalliatakis, ICCV 2021"),
    )
    baseline = 8
    for font_scale, colour, text in lines:
        (_, text_height), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, font_scale, 1)
        baseline += text_height + 12
        cv2.putText(
            tile,
            text,
            (6, baseline),
            cv2.FONT_HERSHEY_SIMPLEX,
            font_scale,
            colour,
            thickness=1,
            lineType=cv2.LINE_AA,
        )
    return tile.astype(np.float32) / 255


def make_chart(size: int = CHART_SIZE) -> np.ndarray:
    """The aliasing chart, (size, size, 3) uint8 RGB.

    Quadrants: zone plate (top left), Siemens star (top right), line gratings
    and a fan of thin lines (bottom left), fine text (bottom right).
    """
    if size % 2:
        raise ValueError(f"chart size must be even, got {size}")
    half = size // 2
    chart = np.empty((size, size, 3), np.float32)
    chart[:half, :half] = zone_plate(half)[..., None]
    chart[:half, half:] = siemens_star(half, spokes=36)[..., None]
    chart[half:, :half] = line_gratings(half)[..., None]
    chart[half:, half:] = fine_text(half)
    # One-pixel grey separators keep the quadrants apart.
    chart[half - 1 : half + 1, :] = 0.5
    chart[:, half - 1 : half + 1] = 0.5
    return np.round(chart * 255).astype(np.uint8)


def write_chart(out_dir: Path) -> Path:
    """Write the aliasing chart as PNG into ``out_dir``; return its path."""
    chart = make_chart()
    target = out_dir / CHART_NAME
    _write_atomically(target, lambda path: iio.imwrite(path, chart, plugin="pillow"))
    return target


# --- command line --------------------------------------------------------------------


def generate_all(out_dir: Path) -> Iterator[Path]:
    """Write every sample into ``out_dir``, yielding each path as it is written."""
    for name in PHOTOS:
        yield write_photo(name, out_dir)
    for clip in CLIPS:
        yield write_clip(clip, out_dir)
    yield write_chart(out_dir)


def describe(path: Path) -> str:
    """One line read back from the written file: size, and frames/rate for clips."""
    kilobytes = path.stat().st_size / 1024
    if path.suffix in (".gif", ".mp4"):
        plugin = "pillow" if path.suffix == ".gif" else "pyav"
        frames = iio.imread(path, plugin=plugin)  # (T, H, W, 3)
        if path.suffix == ".gif":
            rate = f"{1000 / iio.immeta(path, plugin='pillow')['duration']:g} fps"
        else:
            rate = f"{iio.immeta(path, plugin='pyav')['fps']:g} fps"
        return (
            f"{path.name:24} {kilobytes:7.1f} KiB  {frames.shape[2]}x{frames.shape[1]}, "
            f"{frames.shape[0]} frames, {rate}"
        )
    pixels = iio.imread(path, plugin="pillow")
    return f"{path.name:24} {kilobytes:7.1f} KiB  {pixels.shape[1]}x{pixels.shape[0]}"


def main(argv: list[str] | None = None) -> None:
    """Parse the command line and regenerate the samples."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--out",
        type=Path,
        default=SAMPLES_DIR,
        help="folder to write into (default: the samples/ folder beside this script)",
    )
    arguments = parser.parse_args(argv)
    total_bytes = 0
    for path in generate_all(arguments.out):
        print(describe(path))
        total_bytes += path.stat().st_size
    print(f"{'total':24} {total_bytes / 1024:7.1f} KiB")


if __name__ == "__main__":
    main()
