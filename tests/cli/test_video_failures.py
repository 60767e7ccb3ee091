"""`softpool video` on bad inputs and outputs (one line naming the file, exit code 1, nothing
left behind), and its options: the window vocabulary, usage errors, --quiet, --help.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from PIL import Image

from softpool_cli.commands import video as video_module
from softpool_cli.pipeline import clip as clip_pipeline
from softpool_cli.commands.video import time_geometry
from softpool_cli.options import SquareWindow, spatial_geometry

from helpers.cli import assert_failed_cleanly
from helpers.cli import video as run
from helpers.clips import frames_of, read_gif, smooth_frames, write_gif, write_mp4


# ---------------------------------------------------------------- bad input, nothing lost


def _truncated_gif(path: Path) -> None:
    write_gif(path, frames_of(6, 16, 16), [50] * 6)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) * 2 // 3])


def _truncated_mp4(path: Path) -> None:
    write_mp4(path, smooth_frames(6, 16, 16), fps=10)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _audio_only(path: Path) -> None:
    with av.open(str(path), "w", format="wav") as container:
        stream = container.add_stream("pcm_s16le", rate=8000)
        stream.layout = "mono"
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 800), np.int16), format="s16", layout="mono")
        frame.sample_rate = 8000
        container.mux(stream.encode(frame))
        container.mux(stream.encode(None))


BAD_INPUTS = {
    "missing": ("clip.gif", lambda path: None, "no such file"),
    "empty": ("clip.mp4", lambda path: path.write_bytes(b""), "empty"),
    "text named .mp4": ("clip.mp4", lambda path: path.write_text("not a video\n" * 50), "not a clip"),
    "text named .jpg": ("clip.jpg", lambda path: path.write_text("not an image\n" * 50), "not a clip PyAV can read"),
    "random bytes named .gif": ("clip.gif", lambda path: path.write_bytes(np.random.default_rng(0).bytes(4000)), "not a clip"),
    "truncated gif": ("clip.gif", _truncated_gif, "truncated"),
    "truncated mp4": ("clip.mp4", _truncated_mp4, "truncated"),
    "still png": ("clip.png", lambda path: Image.fromarray(frames_of(1, 8, 8)[0]).save(path), "softpool downsample"),
    "still jpeg named .mp4": ("clip.mp4", lambda path: Image.fromarray(frames_of(1, 8, 8)[0]).save(path, "JPEG"), "softpool downsample"),
    "one-frame gif": ("clip.gif", lambda path: write_gif(path, frames_of(1, 8, 8), [100]), "softpool downsample"),
    "audio only": ("clip.wav", _audio_only, "no video track"),
    "shorter than the window": ("clip.gif", lambda path: write_gif(path, frames_of(2, 8, 8), [50, 50]), "fewer than the 3-frame window"),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_inputs(tmp_path, case):
    name, make, message = BAD_INPUTS[case]
    make(tmp_path / name)
    inputs = {path.name for path in tmp_path.iterdir()}
    result = run(tmp_path / name, tmp_path / "out.mp4", "--compare", tmp_path / "cmp.gif", "--time-factor", "3")
    assert_failed_cleanly(result, tmp_path, inputs, name)
    assert message in result.stderr


def test_frames_smaller_than_the_window(tmp_path):
    source = write_gif(tmp_path / "clip.gif", frames_of(4, 6, 6), [50] * 4)
    result = run(source, tmp_path / "out.gif", "--factor", "8", "--time-factor", "1")
    assert_failed_cleanly(result, tmp_path, {"clip.gif"}, "clip.gif")
    assert "smaller than the 8x8 window" in result.stderr


def test_failure_midway_leaves_nothing(tmp_path, monkeypatch):
    # Chunks of one window: the first frames are encoded before the damage is met.
    write_gif(tmp_path / "clip.gif", frames_of(8, 16, 16), [50] * 8)
    data = (tmp_path / "clip.gif").read_bytes()
    (tmp_path / "clip.gif").write_bytes(data[: len(data) * 3 // 4])
    monkeypatch.setattr(clip_pipeline, "CHUNK_BYTES", 1)
    result = run(tmp_path / "clip.gif", tmp_path / "out.mp4", "--compare", tmp_path / "cmp.mp4")
    assert_failed_cleanly(result, tmp_path, {"clip.gif"}, "clip.gif")


@pytest.mark.parametrize("name", ["out.avi", "out.jpg", "out"])
def test_unsupported_output_format(tmp_path, name):
    source = write_gif(tmp_path / "clip.gif", frames_of(4, 8, 8), [50] * 4)
    assert_failed_cleanly(run(source, tmp_path / name), tmp_path, {"clip.gif"}, name)


def test_output_equal_to_input_is_refused(tmp_path):
    source = write_gif(tmp_path / "clip.gif", frames_of(4, 8, 8), [50] * 4)
    before = source.read_bytes()
    assert_failed_cleanly(run(source, source, "--overwrite"), tmp_path, {"clip.gif"}, "clip.gif")
    assert source.read_bytes() == before


def test_existing_output_needs_overwrite(tmp_path):
    source = write_gif(tmp_path / "clip.gif", frames_of(4, 8, 8), [50] * 4)
    target = tmp_path / "clip_softpool.gif"
    target.write_bytes(b"keep me")
    assert_failed_cleanly(run(source), tmp_path, {"clip.gif", "clip_softpool.gif"}, "clip_softpool.gif")
    assert target.read_bytes() == b"keep me"
    assert run(source, "--overwrite").exit_code == 0
    assert len(read_gif(target)[0]) == 2


def test_default_output_keeps_the_container_or_is_mp4(tmp_path):
    assert video_module.default_output(tmp_path / "talk.MOV") == tmp_path / "talk_softpool.mov"
    assert video_module.default_output(tmp_path / "clip.webm") == tmp_path / "clip_softpool.webm"
    assert video_module.default_output(tmp_path / "old.avi") == tmp_path / "old_softpool.mp4"


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is present")
def test_cuda_without_gpu(tmp_path):
    source = write_gif(tmp_path / "clip.gif", frames_of(4, 8, 8), [50] * 4)
    result = run(source, "--device", "cuda")
    assert result.exit_code == 1 and "cuda" in result.stderr.lower()
    assert {path.name for path in tmp_path.iterdir()} == {"clip.gif"}


# ---------------------------------------------------------------- options


@pytest.mark.parametrize(
    "factor, time_factor, kernel, window",
    [
        (None, None, None, (2, 2, 2)),
        (3, None, None, (3, 3, 3)),
        (4, 1, None, (1, 4, 4)),
        (None, None, SquareWindow((3, 3)), (3, 3, 3)),  # --kernel 3: a cube, as --factor 3 (and downsample's 3x3)
        (None, None, (3, 3), (2, 3, 3)),  # --kernel 3x3: pixels only, time from the default factor
        (None, 1, SquareWindow((3, 3)), (1, 3, 3)),
        (None, 5, (2, 3), (5, 2, 3)),
        (None, None, (1, 2, 4), (1, 2, 4)),
    ],
)
def test_window_vocabulary(factor, time_factor, kernel, window):
    time = time_geometry(factor, time_factor, kernel, None, None)
    spatial = spatial_geometry(factor, tuple(kernel[-2:]) if kernel else None, None, False, None, None, None, None)
    assert (time.kernel, *(spatial.kernel or (2, 2))) == window


@pytest.mark.parametrize(
    "args",
    [["--factor", "2", "--kernel", "3"], ["--kernel", "1x2x2", "--time-factor", "2"], ["--kernel", "2x2x2x2"],
     ["--factor", "0"], ["--method", "median"], ["--beta", "-1"]],
)
def test_usage_errors_exit_2(tmp_path, args):
    source = write_gif(tmp_path / "clip.gif", frames_of(4, 8, 8), [50] * 4)
    assert run(source, *args).exit_code == 2
    assert {path.name for path in tmp_path.iterdir()} == {"clip.gif"}


def test_quiet_prints_nothing(tmp_path):
    source = write_gif(tmp_path / "clip.gif", frames_of(4, 8, 8), [50] * 4)
    result = run(source, "--quiet")
    assert result.exit_code == 0 and result.output == ""


def test_help_does_not_import_heavy_modules():
    code = (
        "import sys\n"
        "from click.testing import CliRunner\n"
        "from softpool_cli.main import cli\n"
        "assert CliRunner().invoke(cli, ['video', '--help']).exit_code == 0\n"
        "heavy = sorted({'torch', 'av', 'cv2', 'numpy', 'PIL'} & set(sys.modules))\n"
        "assert not heavy, heavy\n"
    )
    completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env={**os.environ})
    assert completed.returncode == 0, completed.stderr


def test_an_mp4_on_the_cpu_imports_neither_torch_nor_pillow(tmp_path):
    """An MP4 is recognised by its first bytes: Pillow (which would load all its plugins to
    find it does not know the file) and PyTorch (no GPU here: --device auto is the CPU) stay out."""
    source = write_mp4(tmp_path / "in.mp4", smooth_frames(4, 16, 16), fps=10)
    code = (
        "import sys\n"
        "from click.testing import CliRunner\n"
        "from softpool_cli.main import cli\n"
        f"result = CliRunner().invoke(cli, ['video', {str(source)!r}, {str(tmp_path / 'out.mp4')!r}, '--quiet'])\n"
        "assert result.exit_code == 0, result.output\n"
        "heavy = sorted({'torch', 'PIL'} & set(sys.modules))\n"
        "assert not heavy, heavy\n"
    )
    completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env={**os.environ})
    assert completed.returncode == 0, completed.stderr
    assert (tmp_path / "out.mp4").stat().st_size > 0
