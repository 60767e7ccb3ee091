"""Output quality (--quality, --crf, --preset) and image metadata: EXIF camera, date and GPS,
DPI, XMP and ICC kept by default, the orientation applied and reset to 1, the DPI scaled
with the pooling, and --strip. Everything is read back with Pillow or PyAV."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageCms, ImageOps

from helpers.cli import downsample, video
from helpers.clips import probe, smooth_frames, write_mp4
from helpers.images import assert_close_pixels, library_soft, photo, read_cv2

MAKE, MODEL, ORIENTATION, EXIF_IFD, GPS_IFD, DATE_TIME_ORIGINAL = 0x010F, 0x0110, 0x0112, 0x8769, 0x8825, 0x9003
XMP = (
    b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
    b'<rdf:Description xmlns:xmp="http://ns.adobe.com/xap/1.0/" xmp:Rating="4"/></rdf:RDF></x:xmpmeta>'
)
GPS = {1: "N", 2: (52.0, 22.0, 1.5), 3: "E", 4: (4.0, 53.0, 2.0)}


def camera_exif(orientation: int = 1) -> Image.Exif:
    exif = Image.Exif()
    exif[MAKE], exif[MODEL], exif[ORIENTATION] = "Canon", "EOS 5D", orientation
    exif.get_ifd(EXIF_IFD)[DATE_TIME_ORIGINAL] = "2024:05:06 07:08:09"
    exif.get_ifd(GPS_IFD).update(GPS)
    return exif


def srgb_profile() -> bytes:
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def camera_file(path, pixels: np.ndarray, orientation: int = 1, **extra):
    """``pixels`` (stored orientation) with EXIF, 72 dpi, an ICC profile and XMP where Pillow writes it."""
    Image.fromarray(pixels).save(path, exif=camera_exif(orientation), dpi=(72, 72), icc_profile=srgb_profile(), **extra)
    return path


# ---------------------------------------------------------------- metadata


@pytest.mark.parametrize("suffix", [".jpg", ".webp", ".png"])
def test_metadata_is_kept(tmp_path, suffix):
    xmp = {"xmp": XMP} if suffix != ".png" else {}  # Pillow writes no XMP into PNG
    source = camera_file(tmp_path / f"in{suffix}", photo(16, 24), **xmp)
    assert downsample(source, tmp_path / f"out{suffix}").exit_code == 0
    with Image.open(tmp_path / f"out{suffix}") as image:
        exif = image.getexif()
        assert (exif[MAKE], exif[MODEL], exif[ORIENTATION]) == ("Canon", "EOS 5D", 1)
        assert exif.get_ifd(EXIF_IFD)[DATE_TIME_ORIGINAL] == "2024:05:06 07:08:09"
        assert dict(exif.get_ifd(GPS_IFD)) == GPS
        assert image.info["icc_profile"] == srgb_profile()
        if xmp:
            assert b'xmp:Rating="4"' in image.info["xmp"]


@pytest.mark.parametrize("args, dpi", [([], 36), (["--factor", "4"], 18)])  # from 72 dpi
def test_dpi_scales_with_the_pooling(tmp_path, args, dpi):
    source = camera_file(tmp_path / "in.jpg", photo(16, 24))
    assert downsample(source, tmp_path / "out.jpg", *args).exit_code == 0
    with Image.open(tmp_path / "out.jpg") as image:
        assert image.info["dpi"] == pytest.approx((dpi, dpi), abs=0.01)  # JFIF
        assert (image.getexif()[0x011A], image.getexif()[0x011B]) == pytest.approx((dpi, dpi))  # EXIF


def test_dpi_scales_per_axis(tmp_path):
    """--size 12x4 from 24x16 halves x and quarters y. (libvips writes JPEG's JFIF density
    with one value for both axes, so PNG's pHYs is what is read here.)"""
    source = camera_file(tmp_path / "in.png", photo(16, 24))
    assert downsample(source, tmp_path / "out.png", "--size", "12x4").exit_code == 0
    with Image.open(tmp_path / "out.png") as image:
        assert image.info["dpi"] == pytest.approx((36, 18), abs=0.01)
        assert (image.getexif()[0x011A], image.getexif()[0x011B]) == pytest.approx((36, 18), abs=0.01)  # pHYs holds 72.009


@pytest.mark.parametrize("suffix", [".jpg", ".png"])
def test_orientation_is_applied_and_reset(tmp_path, suffix):
    """Orientation 6: the stored 24x16 picture is shown turned 90 degrees clockwise, 16x24."""
    stored = photo(16, 24, seed=5)
    source = camera_file(tmp_path / f"in{suffix}", stored, orientation=6)
    assert downsample(source, tmp_path / "out.png").exit_code == 0
    with Image.open(source) as image:
        upright = np.asarray(ImageOps.exif_transpose(image).convert("RGB"))
    with Image.open(tmp_path / "out.png") as image:
        assert image.size == (8, 12)
        assert image.getexif()[ORIENTATION] == 1
    assert_close_pixels(read_cv2(tmp_path / "out.png"), library_soft(upright))


@pytest.mark.parametrize("suffix", [".jpg", ".webp", ".png"])
def test_strip_drops_everything(tmp_path, suffix):
    source = camera_file(tmp_path / f"in{suffix}", photo(16, 24), **({"xmp": XMP} if suffix != ".png" else {}))
    assert downsample(source, tmp_path / f"out{suffix}", "--strip").exit_code == 0
    with Image.open(tmp_path / f"out{suffix}") as image:
        assert dict(image.getexif()) == {}
        assert "icc_profile" not in image.info and "xmp" not in image.info and "exif" not in image.info


# ---------------------------------------------------------------- quality


@pytest.mark.parametrize("suffix", [".jpg", ".webp"])
def test_quality_orders_the_sizes(tmp_path, suffix):
    source = camera_file(tmp_path / "in.png", photo(128, 128, noise=0.3))
    sizes = []
    for quality in (20, 60, 95):
        target = tmp_path / f"q{quality}{suffix}"
        assert downsample(source, target, "--quality", quality, "--strip").exit_code == 0
        assert read_cv2(target).shape == (64, 64, 3)
        sizes.append(target.stat().st_size)
    assert sizes == sorted(sizes) and len(set(sizes)) == 3, sizes


def test_crf_and_preset_change_the_video(tmp_path):
    source = write_mp4(tmp_path / "in.mp4", smooth_frames(6, 64, 64), fps=10)
    sizes = {}
    for name, args in {"crf10": ["--crf", "10"], "crf40": ["--crf", "40"], "fast": ["--preset", "ultrafast"],
                       "slow": ["--preset", "slow"]}.items():  # fmt: skip
        target = tmp_path / f"{name}.mp4"
        assert video(source, target, *args).exit_code == 0
        assert probe(target)["frames"].shape == (3, 32, 32, 3)
        sizes[name] = target.stat().st_size
    assert sizes["crf10"] > sizes["crf40"]
    assert sizes["fast"] != sizes["slow"]


def test_vp9_crf_changes_the_video(tmp_path):
    source = write_mp4(tmp_path / "in.mp4", smooth_frames(6, 64, 64), fps=10)
    for crf in (10, 60):
        assert video(source, tmp_path / f"crf{crf}.webm", "--crf", crf, "--preset", "8").exit_code == 0
    assert (tmp_path / "crf10.webm").stat().st_size > (tmp_path / "crf60.webm").stat().st_size
