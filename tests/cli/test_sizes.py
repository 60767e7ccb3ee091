"""Target sizes through the command line: --width, --height, --size and --scale for images
and clips, and --fps for clips. Outputs are decoded with OpenCV, Pillow or PyAV and compared
with the library's pooling of the decoded input."""

from __future__ import annotations

from fractions import Fraction

import av
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from helpers.cli import downsample, video
from helpers.clips import frames_of, probe, read_animation, read_gif, smooth_frames, write_gif, write_mp4
from helpers.images import assert_close_pixels, library_adaptive_soft, library_soft, photo, read_cv2, write_cv2


@pytest.fixture
def picture(tmp_path):
    """A 40x28 RGB PNG (width x height)."""
    pixels = photo(28, 40, seed=3)
    return write_cv2(tmp_path / "in.png", pixels), pixels


# ---------------------------------------------------------------- images


@pytest.mark.parametrize(
    "args, size",  # size as (width, height)
    [
        (["--width", "10"], (10, 7)),  # height follows: 28 * 10 / 40
        (["--height", "7"], (10, 7)),  # width follows
        (["--width", "13"], (13, 9)),  # 28 * 13 / 40 = 9.1
        (["--size", "13x9"], (13, 9)),
        (["--size", "40x1"], (40, 1)),
        (["--scale", "50%"], (20, 14)),
        (["--scale", "0.25"], (10, 7)),
    ],
)
def test_image_sizes(tmp_path, picture, args, size):
    source, _ = picture
    result = downsample(source, tmp_path / "out.png", *args)
    assert result.exit_code == 0, result.output
    height, width = read_cv2(tmp_path / "out.png").shape[:2]
    assert (width, height) == size


def test_a_size_that_divides_pools_tiles(tmp_path, picture):
    source, pixels = picture
    assert downsample(source, tmp_path / "out.png", "--width", "10").exit_code == 0  # 4x4 tiles
    assert_close_pixels(read_cv2(tmp_path / "out.png"), library_soft(pixels, kernel=(4, 4)))


@pytest.mark.parametrize("args", [["--size", "13x9"], ["--scale", "30%"]])  # 40x28 -> 13x9, 12x8: no factor
def test_a_size_that_does_not_divide_is_adaptive_softpool(tmp_path, picture, args):
    source, pixels = picture
    assert downsample(source, tmp_path / "out.png", *args).exit_code == 0
    actual = read_cv2(tmp_path / "out.png")
    assert_close_pixels(actual, library_adaptive_soft(pixels, actual.shape[:2]))


def test_adaptive_windows_at_the_beta_extremes(tmp_path, picture):
    """beta 0 is adaptive average pooling and --method max adaptive max pooling, whatever the
    normalisation: exactly F.adaptive_avg_pool2d / F.adaptive_max_pool2d on the pixels."""
    source, pixels = picture
    x = torch.from_numpy(pixels.astype(np.float64)).permute(2, 0, 1)  # (C, H, W)
    assert downsample(source, tmp_path / "avg.png", "--size", "13x9", "--beta", "0").exit_code == 0
    assert downsample(source, tmp_path / "max.png", "--size", "13x9", "--method", "max").exit_code == 0
    expected_avg = F.adaptive_avg_pool2d(x, (9, 13)).round().permute(1, 2, 0).numpy().astype(np.uint8)
    expected_max = F.adaptive_max_pool2d(x, (9, 13)).permute(1, 2, 0).numpy().astype(np.uint8)
    assert_close_pixels(read_cv2(tmp_path / "avg.png"), expected_avg)
    assert_close_pixels(read_cv2(tmp_path / "max.png"), expected_max, levels=0)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--width", "41"], "larger than the input"),
        (["--size", "10x0"], "not WxH"),
        (["--scale", "150%"], "at most 100%"),
        (["--size", "10x7", "--width", "10"], "twice"),  # the size said twice
    ],
)
def test_impossible_sizes(tmp_path, picture, args, message):
    source, _ = picture
    result = downsample(source, tmp_path / "out.png", *args)
    assert result.exit_code != 0 and message in result.output + result.stderr
    assert not (tmp_path / "out.png").exists()


# ---------------------------------------------------------------- clips


@pytest.mark.parametrize(
    "args, size",  # size as (width, height), from 40x28 frames
    [
        (["--width", "10"], (10, 7)),
        (["--height", "7"], (10, 7)),
        (["--size", "13x9"], (13, 9)),
        (["--scale", "50%"], (20, 14)),
    ],
)
def test_gif_sizes(tmp_path, args, size):
    source = write_gif(tmp_path / "in.gif", frames_of(4, 28, 40), [50] * 4)
    result = video(source, tmp_path / "out.gif", "--time-factor", "1", *args)
    assert result.exit_code == 0, result.output
    frames, durations, _ = read_gif(tmp_path / "out.gif")
    assert frames.shape[:3] == (4, size[1], size[0])
    assert durations == [50] * 4


@pytest.mark.parametrize(
    "args, size",  # (width, height) of the encoded H.264 frames, from 40x24 and 40x28 frames
    [
        (["--width", "10"], (10, 6)),  # 24 * 10 / 40 = 6
        (["--height", "6"], (10, 6)),
        (["--scale", "50%"], (20, 12)),
    ],
)
def test_mp4_sizes(tmp_path, args, size):
    source = write_mp4(tmp_path / "in.mp4", smooth_frames(4, 24, 40), fps=10)
    result = video(source, tmp_path / "out.mp4", "--time-factor", "1", *args)
    assert result.exit_code == 0, result.output
    assert probe(tmp_path / "out.mp4")["frames"].shape[:3] == (4, size[1], size[0])


def test_mp4_followed_side_is_even(tmp_path):
    """28 * 10 / 40 = 7 rows would need a padding row in H.264: the followed side is made even."""
    source = write_mp4(tmp_path / "in.mp4", smooth_frames(4, 28, 40), fps=10)
    result = video(source, tmp_path / "out.mp4", "--time-factor", "1", "--width", "10")
    assert result.exit_code == 0, result.output
    assert probe(tmp_path / "out.mp4")["frames"].shape[1:3] == (8, 10)
    assert "even" not in result.stderr  # nothing was padded


def test_clip_adaptive_size_is_adaptive_softpool(tmp_path):
    """GIF in (few colours) and APNG out are lossless: the frames are the library's, frame by frame."""
    frames = frames_of(3, 28, 40)
    source = write_gif(tmp_path / "in.gif", frames, [50] * 3)
    decoded = read_gif(source)[0]
    result = video(source, tmp_path / "out.png", "--time-factor", "1", "--size", "13x9")
    assert result.exit_code == 0, result.output
    actual, durations = read_animation(tmp_path / "out.png")
    assert durations == [50] * 3
    assert_close_pixels(actual, np.stack([library_adaptive_soft(frame, (9, 13)) for frame in decoded]))


@pytest.mark.parametrize(
    "fps, frames_out",
    [
        (6, 6),  # every 2 frames of 12 fps
        (4, 4),  # every 3
        (5, 5),  # windows of 3, 2, 3, 2, 2 frames by their times: a variable rate, 5 on average
    ],
)
def test_fps(tmp_path, fps, frames_out):
    source = write_mp4(tmp_path / "in.mp4", smooth_frames(12, 16, 16), fps=12)
    result = video(source, tmp_path / "out.mp4", "--fps", fps)
    assert result.exit_code == 0, result.output
    out = probe(tmp_path / "out.mp4")
    assert len(out["frames"]) == frames_out
    with av.open(str(tmp_path / "out.mp4")) as container:
        assert container.streams.video[0].average_rate == Fraction(fps)
    assert out["duration"] == pytest.approx(1.0, abs=0.05)


def test_fps_on_a_gif_keeps_the_duration(tmp_path):
    source = write_gif(tmp_path / "in.gif", frames_of(8, 8, 8), [50] * 8)  # 20 fps, 0.4 s
    result = video(source, tmp_path / "out.gif", "--fps", "10")
    assert result.exit_code == 0, result.output
    frames, durations, _ = read_gif(tmp_path / "out.gif")
    assert len(frames) == 4 and sum(durations) == 400
