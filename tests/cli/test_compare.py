"""--compare: the side-by-side panels are at most --compare-width wide (1024 px for images,
960 for clips by default), whatever the input's width; the output itself is unchanged."""

from __future__ import annotations

import av
import pytest

from helpers.cli import downsample, video
from helpers.clips import frames_of, read_animation, read_gif, write_gif
from helpers.images import panel_widths, photo, read_cv2, write_cv2


@pytest.mark.parametrize(
    "width, args, panel",
    [
        (1500, [], 1024),  # wider than the default: reduced to 1024
        (1500, ["--compare-width", "300"], 300),
        (400, [], 400),  # narrower: its own width
    ],
)
def test_image_panels(tmp_path, width, args, panel):
    source = write_cv2(tmp_path / "in.png", photo(60, width))
    result = downsample(source, tmp_path / "out.png", "--compare", tmp_path / "cmp.png", *args)
    assert result.exit_code == 0, result.output
    assert read_cv2(tmp_path / "out.png").shape == (30, width // 2, 3)
    comparison = read_cv2(tmp_path / "cmp.png")
    assert panel_widths(comparison) == [panel] * 4
    assert comparison.shape[1] < 4 * panel + 200  # the margins between panels


@pytest.mark.parametrize(
    "width, args, panel",
    [
        (1200, [], 960),
        (1200, ["--compare-width", "500"], 500),
    ],
)
def test_clip_panels(tmp_path, width, args, panel):
    """The comparison is written as APNG here, lossless, so the background is exact."""
    source = write_gif(tmp_path / "in.gif", frames_of(4, 40, width), [50] * 4)
    result = video(source, tmp_path / "out.gif", "--compare", tmp_path / "cmp.png", *args)
    assert result.exit_code == 0, result.output
    assert read_gif(tmp_path / "out.gif")[0].shape == (2, 20, width // 2, 3)
    frames, _ = read_animation(tmp_path / "cmp.png")
    assert len(frames) == 2
    assert all(panel_widths(frame) == [panel] * 4 for frame in frames)


def test_clip_comparison_as_mp4_fits_h264(tmp_path):
    source = write_gif(tmp_path / "in.gif", frames_of(2, 40, 2000), [50] * 2)
    result = video(source, tmp_path / "out.gif", "--compare", tmp_path / "cmp.mp4")
    assert result.exit_code == 0, result.output
    with av.open(str(tmp_path / "cmp.mp4")) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264"
        assert stream.width <= 4096 and stream.width >= 4 * 960
