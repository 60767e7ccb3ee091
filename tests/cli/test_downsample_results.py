"""`softpool downsample` end to end, on small images the tests generate: pooled values,
bit depths, channels, orientation, formats and the comparison.

Outputs are decoded with OpenCV (IMREAD_UNCHANGED keeps bit depth and channels),
independently of the command's own reader, and compared with the library's
`soft_pool2d` applied in float64 to the decoded input.
"""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageOps

from softpool_cli.media import image_read as images
from softpool_cli.media.compare import BACKGROUND, MIN_PANEL_WIDTH, compose_comparison

from helpers.cli import downsample as run
from helpers.images import assert_close_pixels, background_runs, library_soft, photo, read_cv2, write_cv2


# ---------------------------------------------------------------- results and formats


def test_rgb_png_matches_the_library(tmp_path):
    pixels = photo(24, 30)
    source = write_cv2(tmp_path / "in.png", pixels)
    result = run(source, tmp_path / "out.png")
    assert result.exit_code == 0, result.output
    assert "30x24 -> " in result.stdout and "15x12" in result.stdout
    assert_close_pixels(read_cv2(tmp_path / "out.png"), library_soft(pixels))


@pytest.mark.parametrize("suffix", [".png", ".tif"])
def test_16bit_colour_stays_16bit(tmp_path, suffix):
    pixels = photo(16, 20, dtype=np.uint16, seed=1)
    source = write_cv2(tmp_path / f"in{suffix}", pixels)
    result = run(source, tmp_path / f"out{suffix}")
    assert result.exit_code == 0, result.output
    output = read_cv2(tmp_path / f"out{suffix}")
    assert output.dtype == np.uint16
    assert_close_pixels(output, library_soft(pixels))


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_grayscale_stays_grayscale(tmp_path, dtype):
    pixels = photo(12, 14, channels=1, dtype=dtype, seed=2)[..., 0]
    source = write_cv2(tmp_path / "in.png", pixels)
    assert run(source, tmp_path / "out.png").exit_code == 0
    output = read_cv2(tmp_path / "out.png")
    assert output.ndim == 2 and output.dtype == dtype
    assert_close_pixels(output, library_soft(pixels))


def test_rgba_keeps_alpha_averaged(tmp_path):
    pixels = photo(12, 16, channels=4, seed=3)
    source = write_cv2(tmp_path / "in.png", pixels)
    assert run(source, tmp_path / "out.png").exit_code == 0
    output = read_cv2(tmp_path / "out.png")
    assert output.shape == (6, 8, 4)
    assert_close_pixels(output, library_soft(pixels))
    alpha_mean = pixels[..., 3].astype(np.float64).reshape(6, 2, 8, 2).mean(axis=(1, 3))
    assert np.abs(output[..., 3] - np.rint(alpha_mean)).max() <= 1


def test_gray_alpha_stays_gray_alpha(tmp_path):
    pixels = photo(10, 12, channels=2, seed=4)
    Image.fromarray(pixels, "LA").save(tmp_path / "in.png")
    assert run(tmp_path / "in.png", tmp_path / "out.png").exit_code == 0
    with Image.open(tmp_path / "out.png") as output:
        assert output.mode == "LA"
        assert_close_pixels(np.asarray(output), library_soft(pixels))


@pytest.mark.parametrize(
    ("args", "kernel", "stride", "ceil_mode", "size"),
    [
        ([], (2, 2), (2, 2), False, (12, 15)),  # odd sizes: the last row and column are dropped
        (["--ceil"], (2, 2), (2, 2), True, (13, 16)),  # ... or pooled over what is there
        (["--factor", "3"], (3, 3), (3, 3), False, (8, 10)),
        (["--kernel", "3x2", "--stride", "2x1"], (3, 2), (2, 1), False, (12, 30)),
    ],
)
def test_windows_and_odd_sizes(tmp_path, args, kernel, stride, ceil_mode, size):
    pixels = photo(25, 31, seed=5)
    source = write_cv2(tmp_path / "in.png", pixels)
    result = run(source, tmp_path / "out.png", *args)
    assert result.exit_code == 0, result.output
    output = read_cv2(tmp_path / "out.png")
    assert output.shape[:2] == size
    assert_close_pixels(output, library_soft(pixels, kernel, stride, ceil_mode=ceil_mode))


def test_methods_and_beta(tmp_path):
    pixels = photo(16, 16, seed=6)
    source = write_cv2(tmp_path / "in.png", pixels)
    outputs = {}
    for name, args in {
        "max": ["--method", "max"],
        "avg": ["--method", "avg"],
        "beta0": ["--beta", "0"],
        "beta3": ["--beta", "3"],
    }.items():
        assert run(source, tmp_path / f"{name}.png", *args).exit_code == 0
        outputs[name] = read_cv2(tmp_path / f"{name}.png").astype(np.int64)
    blocks = pixels.astype(np.float64).reshape(8, 2, 8, 2, 3)
    assert np.array_equal(outputs["max"], blocks.max(axis=(1, 3)))
    assert np.abs(outputs["avg"] - np.rint(blocks.mean(axis=(1, 3)))).max() <= 1
    assert np.abs(outputs["beta0"] - outputs["avg"]).max() <= 1  # beta 0 is average pooling
    assert_close_pixels(outputs["beta3"].astype(np.uint8), library_soft(pixels, beta=3.0))


@pytest.mark.parametrize(("suffix", "orientation"), [(".jpg", 6), (".jpg", 3), (".jpg", 8), (".png", 6)])
def test_exif_orientation_is_applied(tmp_path, suffix, orientation):
    pixels = photo(20, 32, seed=7)
    exif = Image.Exif()
    exif[0x0112] = orientation
    source = tmp_path / f"in{suffix}"
    Image.fromarray(pixels).save(source, exif=exif.tobytes(), **({"quality": 95} if suffix == ".jpg" else {}))
    assert run(source, tmp_path / "out.png").exit_code == 0
    with Image.open(source) as shown:
        displayed = np.asarray(ImageOps.exif_transpose(shown))
    output = read_cv2(tmp_path / "out.png")
    assert output.shape[:2] == (displayed.shape[0] // 2, displayed.shape[1] // 2)
    assert_close_pixels(output, library_soft(displayed))


@pytest.mark.parametrize("orientation", range(1, 9))
def test_orientation_transforms_match_pillow(orientation):
    pixels = photo(3, 5, seed=orientation)
    image = Image.fromarray(pixels)
    exif = image.getexif()
    exif[0x0112] = orientation
    image.info["exif"] = exif.tobytes()
    assert np.array_equal(images.apply_orientation(pixels, orientation), np.asarray(ImageOps.exif_transpose(image)))


@pytest.mark.parametrize(("suffix", "pillow_format"), [
    (".jpg", "JPEG"), (".jpeg", "JPEG"), (".png", "PNG"), (".webp", "WEBP"), (".tif", "TIFF"), (".tiff", "TIFF"),
    (".bmp", "BMP"), (".PNG", "PNG"),
])
def test_output_format_follows_the_extension(tmp_path, suffix, pillow_format):
    pixels = photo(16, 18, seed=8, noise=0.0)  # smooth, so lossy formats stay close
    source = write_cv2(tmp_path / "in.png", pixels)
    assert run(source, tmp_path / f"out{suffix}").exit_code == 0
    with Image.open(tmp_path / f"out{suffix}") as output:
        assert output.format == pillow_format
        assert output.size == (9, 8)
        expected = library_soft(pixels)
        if pillow_format in ("JPEG", "WEBP"):
            # Lossy, with subsampled chroma that tiny images feel most: compare brightness only.
            luma = np.asarray(output.convert("L"), np.float64)
            assert np.abs(luma - np.asarray(Image.fromarray(expected).convert("L"), np.float64)).mean() < 3
        else:
            assert_close_pixels(np.asarray(output.convert("RGB")), expected)


@pytest.mark.parametrize("source_suffix", [".jpg", ".webp", ".tif", ".bmp"])
def test_inputs_are_recognised_by_content(tmp_path, source_suffix):
    pixels = photo(12, 12, seed=9)
    write_cv2(tmp_path / f"real{source_suffix}", pixels)
    disguised = tmp_path / "misnamed.png"
    disguised.write_bytes((tmp_path / f"real{source_suffix}").read_bytes())
    result = run(disguised, tmp_path / "out.png")
    assert result.exit_code == 0, result.output
    assert read_cv2(tmp_path / "out.png").shape == (6, 6, 3)


def test_16bit_into_jpeg_is_reduced_with_a_note(tmp_path):
    pixels = photo(16, 16, dtype=np.uint16, seed=10)
    source = write_cv2(tmp_path / "in.png", pixels)
    result = run(source, tmp_path / "out.jpg")
    assert result.exit_code == 0
    assert "8 bits" in result.stderr
    output = read_cv2(tmp_path / "out.jpg")
    expected = np.rint(library_soft(pixels) / 257.0)
    assert output.dtype == np.uint8 and np.abs(output - expected).mean() < 4


def test_alpha_into_jpeg_is_flattened_with_a_note(tmp_path):
    pixels = photo(8, 8, channels=4, seed=11)
    pixels[..., 3] = 0  # fully transparent: the JPEG is white
    source = write_cv2(tmp_path / "in.png", pixels)
    result = run(source, tmp_path / "out.jpg")
    assert result.exit_code == 0
    assert "flattened onto white" in result.stderr
    assert read_cv2(tmp_path / "out.jpg").min() >= 250


def test_quiet_prints_nothing(tmp_path):
    source = write_cv2(tmp_path / "in.png", photo(8, 8, channels=4))
    result = run(source, tmp_path / "out.jpg", "--quiet")
    assert result.exit_code == 0 and result.output == ""


# ---------------------------------------------------------------- comparison


@pytest.mark.parametrize(("height", "width", "scale"), [(40, 64, MIN_PANEL_WIDTH // 64), (45, 301, 1)])
def test_compare_layout(tmp_path, height, width, scale):
    pixels = photo(height, width, seed=12)
    source = write_cv2(tmp_path / "in.png", pixels)
    result = run(source, tmp_path / "out.png", "--compare", tmp_path / "cmp.png")
    assert result.exit_code == 0, result.output
    comparison = read_cv2(tmp_path / "cmp.png")
    assert comparison.shape[0] % 2 == 0 and comparison.shape[1] % 2 == 0
    # A row through the middle of the panels crosses four panels of the (enlarged) original's width.
    panel_height, panel_width = height * scale, width * scale
    rows = np.flatnonzero(np.any(comparison != np.asarray(BACKGROUND, np.uint8), axis=(1, 2)))
    middle = rows[-1] - panel_height // 2
    runs = background_runs(comparison[middle])
    assert [stop - start for start, stop in runs] == [panel_width] * 4
    # Second panel: the SoftPool output, each pooled pixel a block (factor x scale) wide.
    top = rows[-1] + 1 - panel_height
    soft_panel = comparison[top : top + panel_height, runs[1][0] : runs[1][1]]
    pooled = read_cv2(tmp_path / "out.png")
    block = 2 * scale
    covered = (pooled.shape[0] * block, pooled.shape[1] * block)
    if covered == (panel_height, panel_width):
        assert np.array_equal(soft_panel, pooled.repeat(block, 0).repeat(block, 1))
    else:  # odd sizes: nearest-neighbour to the panel size, blocks off by at most one pixel
        assert soft_panel.shape[:2] == (panel_height, panel_width)


def test_compare_handles_gray_16bit_and_alpha():
    gray16 = photo(10, 12, channels=1, dtype=np.uint16)[..., 0]
    rgba = photo(5, 6, channels=4)
    composed = compose_comparison(gray16, rgba, rgba[..., :3], gray16[:5, :6])
    assert composed.dtype == np.uint8 and composed.ndim == 3 and composed.shape[2] == 3
    assert composed.shape[0] % 2 == 0 and composed.shape[1] % 2 == 0
