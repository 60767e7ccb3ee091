"""One vocabulary for downsample and video: --kernel K is K x K pixels in both (video adds K
frames), --kernel KTxKHxKW and --stride name frames too, --time-factor, the output
containers video writes, and --factor 1 with nothing else to do."""

from __future__ import annotations

import av
import pytest
from PIL import Image

from helpers.cli import downsample, files_in, video
from helpers.clips import assert_frames_equal, frames_of, library_pool, probe, read_animation, read_gif, write_gif
from helpers.images import assert_close_pixels, library_soft, photo, read_cv2, write_cv2


@pytest.fixture
def clip(tmp_path):
    """A 6-frame 9x12 GIF (height x width) of few colours, 50 ms a frame; and its frames."""
    frames = frames_of(6, 9, 12, seed=2)
    path = write_gif(tmp_path / "in.gif", frames, [50] * 6)
    return path, read_gif(path)[0]


def test_kernel_k_is_k_by_k_pixels_in_downsample(tmp_path):
    pixels = photo(9, 12)
    source = write_cv2(tmp_path / "in.png", pixels)
    assert downsample(source, tmp_path / "out.png", "--kernel", "3").exit_code == 0
    assert_close_pixels(read_cv2(tmp_path / "out.png"), library_soft(pixels, kernel=(3, 3)))


@pytest.mark.parametrize(
    "args, window, stride, durations",
    [
        (["--kernel", "3"], (3, 3, 3), None, [150, 150]),  # K frames x K x K, as --factor 3
        (["--kernel", "3", "--stride", "2"], (3, 3, 3), (3, 2, 2), [150, 150]),  # S: pixels
        (["--kernel", "1x3x3"], (1, 3, 3), None, [50] * 6),
        (["--kernel", "3x2x2", "--stride", "3x1x2"], (3, 2, 2), (3, 1, 2), [150, 150]),
        (["--kernel", "3x3", "--time-factor", "3"], (3, 3, 3), None, [150, 150]),
        (["--factor", "3", "--time-factor", "2"], (2, 3, 3), None, [100, 100, 100]),
        (["--time-factor", "6"], (6, 2, 2), None, [300]),
    ],
)
def test_video_windows(tmp_path, clip, args, window, stride, durations):
    source, frames = clip
    result = video(source, tmp_path / "out.gif", *args)
    assert result.exit_code == 0, result.output
    actual, out_durations, _ = read_gif(tmp_path / "out.gif")
    assert out_durations == durations
    assert_frames_equal(actual, library_pool(frames, window, stride=stride))


def test_overlapping_time_windows_are_max_poolings(tmp_path, clip):
    """3 frames every 1 of 6: 4 windows (ceil_mode adds none that the last one covers); the
    clip keeps its 300 ms and no frame is shown for 0 ms."""
    source, frames = clip
    result = video(source, tmp_path / "out.gif", "--kernel", "3x3x3", "--stride", "1x3x3")
    assert result.exit_code == 0, result.output
    actual, durations, _ = read_gif(tmp_path / "out.gif")
    assert sum(durations) == 300 and min(durations) > 0
    assert_frames_equal(actual, library_pool(frames, (3, 3, 3), stride=(1, 3, 3)))


@pytest.mark.parametrize(
    "suffix, container, codec",
    [
        (".mov", "mov,mp4,m4a,3gp,3g2,mj2", "h264"),
        (".mkv", "matroska,webm", "h264"),
        (".webm", "matroska,webm", "vp9"),
    ],
)
def test_video_containers(tmp_path, clip, suffix, container, codec):
    source, _ = clip
    result = video(source, tmp_path / f"out{suffix}", "--time-factor", "2", "--kernel", "3x3")
    assert result.exit_code == 0, result.output
    out = probe(tmp_path / f"out{suffix}")
    assert out["frames"].shape == (3, 4 if codec == "h264" else 3, 4, 3)  # H.264: 3 rows padded to 4
    assert out["codec"] == codec
    assert out["duration"] == pytest.approx(0.3, abs=0.02)
    with av.open(str(tmp_path / f"out{suffix}")) as opened:
        assert opened.format.name == container


@pytest.mark.parametrize("suffix, format_name", [(".png", "PNG"), (".webp", "WEBP")])
def test_animated_images(tmp_path, clip, suffix, format_name):
    source, frames = clip
    result = video(source, tmp_path / f"out{suffix}", "--kernel", "3")
    assert result.exit_code == 0, result.output
    with Image.open(tmp_path / f"out{suffix}") as image:
        assert (image.format, image.n_frames, image.size, image.is_animated) == (format_name, 2, (4, 3), True)
    actual, durations = read_animation(tmp_path / f"out{suffix}")
    assert durations == [150, 150]
    if suffix == ".png":  # APNG is lossless
        assert_frames_equal(actual, library_pool(frames, (3, 3, 3)))


def test_factor_1_pools_nothing(tmp_path, clip):
    source, _ = clip
    image = write_cv2(tmp_path / "in.png", photo(8, 8))
    for result in (downsample(image, "--factor", "1"), video(source, "--factor", "1"),
                   video(source, "--kernel", "1", "--time-factor", "1")):  # fmt: skip
        assert result.exit_code == 2
        assert "pools nothing" in result.stderr
    assert files_in(tmp_path) == {"in.gif", "in.png"}


def test_factor_1_in_space_still_pools_time(tmp_path, clip):
    source, _ = clip
    result = video(source, tmp_path / "out.gif", "--kernel", "1x1", "--time-factor", "3")
    assert result.exit_code == 0, result.output
    frames, durations, _ = read_gif(tmp_path / "out.gif")
    assert frames.shape == (2, 9, 12, 3) and durations == [150, 150]
