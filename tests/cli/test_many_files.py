"""Many inputs in one run: -o DIR, a folder as the last argument, --recursive, the default
OUT beside each input, and a bad file among good ones."""

from __future__ import annotations

import re

import pytest

from helpers.cli import downsample, files_in, video
from helpers.clips import frames_of, read_gif, smooth_frames, write_gif, write_mp4
from helpers.images import photo, read_cv2, write_cv2

SUMMARY = re.compile(r"^(\d+) files, (\d+) failed, \d+\.\d s$", re.MULTILINE)


def images(folder, *names):
    """8x12 images (height x width) under ``folder``, one per name."""
    paths = []
    for seed, name in enumerate(names):
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        paths.append(write_cv2(path, photo(8, 12, seed=seed)))
    return paths


def summary(result) -> tuple[int, int]:
    match = SUMMARY.search(result.stderr)
    assert match, f"no summary line on stderr: {result.stderr!r}"
    return int(match[1]), int(match[2])


def test_inputs_into_a_folder(tmp_path):
    sources = images(tmp_path, "a.png", "b.jpg", "c.webp")
    result = downsample(*sources, "-o", tmp_path / "out")
    assert result.exit_code == 0, result.output
    assert files_in(tmp_path / "out") == {"a.png", "b.jpg", "c.webp"}
    for name in ("a.png", "b.jpg", "c.webp"):
        assert read_cv2(tmp_path / "out" / name).shape == (4, 6, 3)
    assert summary(result) == (3, 0)


@pytest.mark.parametrize("slash", ["", "/"])
def test_a_folder_as_the_last_argument(tmp_path, slash):
    sources = images(tmp_path, "a.png", "b.png")
    if not slash:
        (tmp_path / "out").mkdir()  # an existing folder
    result = downsample(*sources, f"{tmp_path / 'out'}{slash}")  # with a slash, created
    assert result.exit_code == 0, result.output
    assert files_in(tmp_path / "out") == {"a.png", "b.png"}


def test_two_inputs_without_a_folder_is_in_and_out(tmp_path):
    (source,) = images(tmp_path, "a.png")
    assert downsample(source, tmp_path / "b.png").exit_code == 0
    assert read_cv2(tmp_path / "b.png").shape == (4, 6, 3)


def test_three_inputs_need_a_folder(tmp_path):
    sources = images(tmp_path, "a.png", "b.png", "c.png")
    result = downsample(*sources)
    assert result.exit_code == 2 and "-o DIR" in result.stderr
    assert files_in(tmp_path) == {"a.png", "b.png", "c.png"}


def test_recursive_keeps_the_tree(tmp_path):
    images(tmp_path / "src", "a.png", "sub/b.jpg", "sub/deeper/c.png", "sub/old_softpool.png")
    (tmp_path / "src" / "notes.txt").write_text("not an image")
    write_gif(tmp_path / "src" / "sub" / "clip.gif", frames_of(3, 8, 8), [50] * 3)  # a clip: video's
    result = downsample(tmp_path / "src", "-o", tmp_path / "out", "--recursive")
    assert result.exit_code == 0, result.output
    assert files_in(tmp_path / "out") == {"a.png", "sub/b.jpg", "sub/deeper/c.png"}
    assert read_cv2(tmp_path / "out" / "sub" / "deeper" / "c.png").shape == (4, 6, 3)


def test_a_folder_needs_recursive(tmp_path):
    images(tmp_path / "src", "a.png")
    result = downsample(tmp_path / "src", "-o", tmp_path / "out")
    assert result.exit_code == 1 and "--recursive" in result.stderr
    assert not (tmp_path / "out").exists()


def test_default_output_beside_each_input(tmp_path):
    (source,) = images(tmp_path, "photo.jpg")
    result = downsample(source)
    assert result.exit_code == 0, result.output
    assert files_in(tmp_path) == {"photo.jpg", "photo_softpool.jpg"}
    assert read_cv2(tmp_path / "photo_softpool.jpg").shape == (4, 6, 3)


def test_video_default_output_and_folder(tmp_path):
    gif = write_gif(tmp_path / "clip.gif", frames_of(4, 8, 8), [50] * 4)
    mp4 = write_mp4(tmp_path / "talk.mp4", smooth_frames(4, 16, 16), fps=10)
    result = video(gif)
    assert result.exit_code == 0, result.output
    assert read_gif(tmp_path / "clip_softpool.gif")[0].shape == (2, 4, 4, 3)
    result = video(gif, mp4, "-o", tmp_path / "out")
    assert result.exit_code == 0, result.output
    assert files_in(tmp_path / "out") == {"clip.gif", "talk.mp4"}
    assert summary(result) == (2, 0)


def test_a_bad_file_among_good_ones(tmp_path):
    good = images(tmp_path, "a.png", "c.png")
    bad = tmp_path / "b.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n not really")
    result = downsample(good[0], bad, good[1], "-o", tmp_path / "out")
    assert result.exit_code == 1
    assert files_in(tmp_path / "out") == {"a.png", "c.png"}
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error: ")]
    assert len(errors) == 1 and "b.png" in errors[0]
    assert summary(result) == (3, 1)
    assert "Error" not in result.stdout


def test_a_bad_clip_among_good_ones(tmp_path):
    good = write_gif(tmp_path / "a.gif", frames_of(4, 8, 8), [50] * 4)
    bad = tmp_path / "b.gif"
    bad.write_bytes(good.read_bytes()[:40])
    result = video(good, bad, f"{tmp_path / 'out'}/")  # a folder to create
    assert result.exit_code == 1
    assert files_in(tmp_path / "out") == {"a.gif"}
    assert "b.gif" in result.stderr
    assert summary(result) == (2, 1)
