"""'-' for IN (standard input) and OUT (standard output): stdout carries the file's bytes and
nothing else, messages go to stderr. Two tests run the command as a child process with real
pipes; the others use Click's runner, whose stdout and stderr are kept apart too."""

from __future__ import annotations

import io

import av
import numpy as np
import pytest
from PIL import Image

from helpers.cli import files_in, invoke, subprocess_run
from helpers.clips import frames_of, read_gif, smooth_frames, write_gif, write_mp4
from helpers.images import decode_cv2, photo, read_cv2, write_cv2


def decode_clip(data: bytes) -> tuple[str, np.ndarray]:
    """Container name and frames (T, H, W, 3) of a clip held in memory."""
    with av.open(io.BytesIO(data)) as container:
        return container.format.name, np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])


# ---------------------------------------------------------------- images


def test_image_through_real_pipes(tmp_path):
    source = write_cv2(tmp_path / "in.jpg", photo(16, 24))
    completed = subprocess_run("downsample", "-", "-", "--format", "png", stdin=source.read_bytes(), cwd=tmp_path)
    assert completed.returncode == 0, completed.stderr.decode()
    assert completed.stdout.startswith(b"\x89PNG\r\n\x1a\n") and completed.stdout.endswith(b"IEND\xaeB`\x82")
    with Image.open(io.BytesIO(completed.stdout)) as image:
        assert (image.format, image.size) == ("PNG", (12, 8))
    assert b"12x8" in completed.stderr  # the summary line
    assert files_in(tmp_path) == {"in.jpg"}


@pytest.mark.parametrize(
    "args, format_name",
    [
        (["-", "--format", "webp"], "WEBP"),
        (["-"], "JPEG"),  # IN's format without --format
    ],
)
def test_image_to_stdout(tmp_path, args, format_name):
    source = write_cv2(tmp_path / "in.jpg", photo(16, 24))
    result = invoke("downsample", source, *args)
    assert result.exit_code == 0, result.stderr
    with Image.open(io.BytesIO(result.stdout_bytes)) as image:
        assert (image.format, image.size) == (format_name, (12, 8))
    assert "12x8" in result.stderr
    assert files_in(tmp_path) == {"in.jpg"}


def test_image_from_stdin(tmp_path):
    source = write_cv2(tmp_path / "in.png", photo(16, 24))
    result = invoke("downsample", "-", tmp_path / "out.jpg", input=source.read_bytes())
    assert result.exit_code == 0, result.output
    assert read_cv2(tmp_path / "out.jpg").shape == (8, 12, 3)


def test_stdin_png_to_stdout_keeps_png(tmp_path):
    source = write_cv2(tmp_path / "in.png", photo(16, 24))
    result = invoke("downsample", "-", "-", input=source.read_bytes())
    assert result.exit_code == 0, result.stderr
    assert decode_cv2(result.stdout_bytes).shape == (8, 12, 3)
    assert result.stdout_bytes.startswith(b"\x89PNG")


def test_stdin_needs_an_out(tmp_path):
    result = invoke("downsample", "-", input=b"")
    assert result.exit_code == 2 and "needs an OUT" in result.stderr


# ---------------------------------------------------------------- clips


def test_clip_through_real_pipes(tmp_path):
    source = write_mp4(tmp_path / "in.mkv", smooth_frames(4, 16, 24), fps=10)
    completed = subprocess_run("video", "-", "-", "--format", "mkv", stdin=source.read_bytes(), cwd=tmp_path)
    assert completed.returncode == 0, completed.stderr.decode()
    container, frames = decode_clip(completed.stdout)
    assert container == "matroska,webm"
    assert frames.shape == (2, 8, 12, 3)
    assert b"2 frames" in completed.stderr
    assert files_in(tmp_path) == {"in.mkv"}


@pytest.mark.parametrize(
    "suffix, container",
    [(None, "matroska,webm"), ("webm", "matroska,webm"), ("gif", "gif")],  # no --format: MKV
)
def test_clip_to_stdout(tmp_path, suffix, container):
    source = write_gif(tmp_path / "in.gif", frames_of(4, 8, 12), [50] * 4)
    args = [] if suffix is None else ["--format", suffix]
    result = invoke("video", source, "-", *args)
    assert result.exit_code == 0, result.stderr
    name, frames = decode_clip(result.stdout_bytes)
    assert name == container and frames.shape == (2, 4, 6, 3)
    assert files_in(tmp_path) == {"in.gif"}


def test_mp4_from_stdin(tmp_path):
    """MP4 is read by seeking: standard input is copied to a temporary file first."""
    source = write_mp4(tmp_path / "in.mp4", smooth_frames(4, 16, 24), fps=10)
    result = invoke("video", "-", tmp_path / "out.gif", input=source.read_bytes())
    assert result.exit_code == 0, result.output
    assert read_gif(tmp_path / "out.gif")[0].shape == (2, 8, 12, 3)


@pytest.mark.parametrize("suffix", ["mp4", "mov", "png"])
def test_stdout_refuses_formats_that_do_not_stream(tmp_path, suffix):
    source = write_gif(tmp_path / "in.gif", frames_of(4, 8, 8), [50] * 4)
    result = invoke("video", source, "-", "--format", suffix)
    assert result.exit_code == 1 and "streams" in result.stderr
    assert result.stdout_bytes == b""
