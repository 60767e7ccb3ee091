"""`softpool video` end to end, on tiny clips the tests generate with known timings.

Inputs are decoded here with Pillow (GIF) or PyAV (MP4), independently of the command's
reader, and the expected frames are the library's `soft_pool3d` in float64 on the
ImageNet-normalised decoded frames. GIF output is lossless for frames of at most 256
colours, so values are checked exactly (up to float rounding); MP4 output is H.264, so
values are checked by PSNR.
"""

from __future__ import annotations

import os
import subprocess
import sys
from fractions import Fraction
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

from helpers.cli import video as run
from helpers.clips import (
    assert_frames_equal,
    frames_of,
    library_pool,
    probe,
    psnr,
    read_gif,
    smooth_frames,
    write_gif,
    write_mp4,
)

# ---------------------------------------------------------------- helpers


def assert_failed_cleanly(result, tmp_path: Path, inputs: set[str], *names: str) -> None:
    """Exit code 1, one line on stderr naming the file, nothing left behind."""
    assert result.exit_code == 1, (result.exit_code, result.output)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert any(name in lines[0] for name in names), lines[0]
    assert {path.name for path in tmp_path.iterdir()} == inputs, "output or temporary file left behind"


# ---------------------------------------------------------------- GIF: values and timing


def test_gif_values_durations_and_loop(tmp_path):
    frames = frames_of(6, 12, 16)
    source = write_gif(tmp_path / "clip.gif", frames, [30, 40, 50, 60, 70, 90], loop=3)
    result = run(source)
    assert result.exit_code == 0, result.output
    decoded, _, _ = read_gif(source)
    output, durations, loop = read_gif(tmp_path / "clip_softpool.gif")  # the default OUT
    assert_frames_equal(output, library_pool(decoded, (2, 2, 2)))
    assert durations == [70, 110, 160]  # each window's durations, summed
    assert loop == 3


def test_gif_that_plays_once_stays_so(tmp_path):
    source = write_gif(tmp_path / "once.gif", frames_of(4, 8, 8), [100] * 4, loop=None)
    assert run(source, tmp_path / "out.gif").exit_code == 0
    with Image.open(tmp_path / "out.gif") as image:
        assert "loop" not in image.info


@pytest.mark.parametrize("method", ["soft", "max", "avg"])
def test_partial_last_window_and_odd_sizes(tmp_path, method):
    # 5 frames, 11x13 pixels, window 2: a last window of one frame; the odd row and column dropped.
    frames = frames_of(5, 11, 13, seed=1)
    source = write_gif(tmp_path / "odd.gif", frames, [20, 30, 40, 50, 60])
    assert run(source, tmp_path / "out.gif", "--method", method).exit_code == 0
    decoded, _, _ = read_gif(source)
    output, durations, _ = read_gif(tmp_path / "out.gif")
    assert output.shape == (3, 5, 6, 3)
    assert_frames_equal(output, library_pool(decoded, (2, 2, 2), method))
    assert durations == [50, 90, 60]


def test_beta_and_kernel(tmp_path):
    frames = frames_of(6, 9, 12, seed=2)
    source = write_gif(tmp_path / "clip.gif", frames, [50] * 6)
    result = run(source, tmp_path / "out.gif", "--kernel", "3x3x4", "--beta", "3")
    assert result.exit_code == 0, result.output
    decoded, _, _ = read_gif(source)
    output, durations, _ = read_gif(tmp_path / "out.gif")
    assert_frames_equal(output, library_pool(decoded, (3, 3, 4), beta=3.0))
    assert durations == [150, 150]


def test_large_beta(tmp_path):
    # Weights this sharp need each window's maximum subtracted before exp (float32 range).
    frames = frames_of(4, 8, 8, seed=7, levels=6)
    source = write_gif(tmp_path / "clip.gif", frames, [50] * 4)
    assert run(source, tmp_path / "out.gif", "--beta", "40").exit_code == 0
    decoded, _, _ = read_gif(source)
    assert_frames_equal(read_gif(tmp_path / "out.gif")[0], library_pool(decoded, (2, 2, 2), beta=40.0))


def test_time_factor_1_pools_each_frame(tmp_path):
    frames = frames_of(3, 8, 10, seed=3)
    source = write_gif(tmp_path / "clip.gif", frames, [40, 70, 100])
    assert run(source, tmp_path / "out.gif", "--time-factor", "1").exit_code == 0
    decoded, _, _ = read_gif(source)
    output, durations, _ = read_gif(tmp_path / "out.gif")
    assert_frames_equal(output, library_pool(decoded, (1, 2, 2)))
    assert durations == [40, 70, 100]


def test_identical_consecutive_frames_are_kept(tmp_path):
    frames = frames_of(4, 8, 8, seed=4)
    frames[2:] = frames[:2]  # both windows pool to the same frame
    source = write_gif(tmp_path / "clip.gif", frames, [100, 100, 100, 100])
    assert run(source, tmp_path / "out.gif").exit_code == 0
    output, durations, _ = read_gif(tmp_path / "out.gif")
    assert len(output) == 2 and durations == [200, 200]


def test_chunked_run_equals_one_chunk(tmp_path, monkeypatch):
    frames = frames_of(7, 8, 12, seed=5)
    source = write_gif(tmp_path / "clip.gif", frames, [30] * 7)
    assert run(source, tmp_path / "whole.gif").exit_code == 0
    monkeypatch.setattr(clip_pipeline, "CHUNK_BYTES", 1)  # one window per chunk
    assert run(source, tmp_path / "chunked.gif").exit_code == 0
    assert (tmp_path / "whole.gif").read_bytes() == (tmp_path / "chunked.gif").read_bytes()


def test_compare_clip(tmp_path):
    frames = frames_of(4, 12, 16, seed=6)
    source = write_gif(tmp_path / "clip.gif", frames, [50, 60, 70, 80])
    result = run(source, tmp_path / "out.gif", "--compare", tmp_path / "cmp.gif")
    assert result.exit_code == 0, result.output
    compared, durations, _ = read_gif(tmp_path / "cmp.gif")
    assert durations == [110, 150] and len(compared) == 2
    # Four panels side by side, each at least as wide as the original.
    assert compared.shape[2] >= 4 * 16 and compared.shape[2] > 2 * compared.shape[1]


# ---------------------------------------------------------------- MP4 and WebM


def test_mp4_rate_duration_values_and_audio(tmp_path):
    # Large enough that 4:2:0 chroma subsampling leaves the colours of a smooth clip mostly intact.
    frames = smooth_frames(12, 64, 96)
    source = write_mp4(tmp_path / "clip.mp4", frames, fps=12, audio_seconds=1.0)
    result = run(source, tmp_path / "small.mp4")
    assert result.exit_code == 0, result.output
    before, after = probe(source), probe(tmp_path / "small.mp4")
    assert after["codec"] == "h264" and after["pix_fmt"] == "yuv420p"
    assert after["rate"] == Fraction(6)  # input fps / time factor
    assert after["frames"].shape == (6, 32, 48, 3)
    assert after["times"] == pytest.approx([index / 6 for index in range(6)], abs=1e-3)
    assert after["duration"] == pytest.approx(before["duration"], abs=0.01)
    assert after["audio_codec"] == "aac"
    assert after["audio_duration"] == pytest.approx(before["audio_duration"], abs=1e-3)
    assert psnr(after["frames"], library_pool(before["frames"], (2, 2, 2))) > 32


def test_mp4_in_chunks_of_one_window(tmp_path, monkeypatch):
    # 8 frames in chunks of 2: the last frame, held back for its duration, completes a chunk.
    source = write_mp4(tmp_path / "clip.mp4", smooth_frames(8, 16, 16), fps=8)
    monkeypatch.setattr(clip_pipeline, "CHUNK_BYTES", 1)
    assert run(source, tmp_path / "out.mp4").exit_code == 0
    after = probe(tmp_path / "out.mp4")
    assert len(after["frames"]) == 4
    assert after["duration"] == pytest.approx(1.0, abs=0.01)


def test_mp4_partial_window_keeps_duration(tmp_path):
    source = write_mp4(tmp_path / "clip.mp4", smooth_frames(11, 16, 16), fps=10)
    assert run(source, tmp_path / "out.mp4").exit_code == 0
    after = probe(tmp_path / "out.mp4")
    assert len(after["frames"]) == 6
    assert after["duration"] == pytest.approx(1.1, abs=0.01)


def test_mp4_odd_pooled_size_repeats_the_last_row_and_column(tmp_path):
    source = write_mp4(tmp_path / "clip.mp4", smooth_frames(4, 46, 62), fps=10)
    result = run(source, tmp_path / "out.mp4")
    assert result.exit_code == 0, result.output
    assert "even width and height" in result.stderr
    after = probe(tmp_path / "out.mp4")
    assert after["frames"].shape == (2, 24, 32, 3)  # 31x23 pooled, one row and column added
    expected = library_pool(probe(source)["frames"], (2, 2, 2))
    padded = np.pad(expected, ((0, 0), (0, 1), (0, 1), (0, 0)), mode="edge")
    assert psnr(after["frames"], padded) > 29


def test_mp4_to_gif_keeps_total_duration(tmp_path):
    # 9 frames at 30 fps: windows of 1/15 s do not fall on centiseconds.
    source = write_mp4(tmp_path / "clip.mp4", smooth_frames(9, 16, 16), fps=30)
    assert run(source, tmp_path / "out.gif").exit_code == 0
    _, durations, loop = read_gif(tmp_path / "out.gif")
    assert len(durations) == 5 and sum(durations) == 300
    ends = np.cumsum(durations)
    assert np.abs(ends - np.array([2, 4, 6, 8, 9]) / 30 * 1000).max() <= 5
    assert loop == 0


def test_mp4_output_is_repeatable(tmp_path):
    # x264's MB-tree made each run's bytes differ; a regenerated gallery must not change.
    source = write_mp4(tmp_path / "clip.mp4", smooth_frames(12, 48, 64), fps=12)
    assert run(source, tmp_path / "one.mp4", "--compare", tmp_path / "one_cmp.mp4").exit_code == 0
    assert run(source, tmp_path / "two.mp4", "--compare", tmp_path / "two_cmp.mp4").exit_code == 0
    assert (tmp_path / "one.mp4").read_bytes() == (tmp_path / "two.mp4").read_bytes()
    assert (tmp_path / "one_cmp.mp4").read_bytes() == (tmp_path / "two_cmp.mp4").read_bytes()


def test_gif_of_many_colours_stays_close(tmp_path):
    # Smooth frames have thousands of colours: each GIF frame gets its own 256-colour palette.
    frames = smooth_frames(6, 48, 64)
    source = write_mp4(tmp_path / "clip.mp4", frames, fps=6)
    assert run(source, tmp_path / "out.gif").exit_code == 0
    output, _, _ = read_gif(tmp_path / "out.gif")
    expected = library_pool(probe(source)["frames"], (2, 2, 2))
    assert len(np.unique(expected.reshape(-1, 3), axis=0)) > 256
    assert psnr(output, expected) > 30


def test_webm_output_with_audio_reencoded(tmp_path):
    source = write_mp4(tmp_path / "clip.mp4", smooth_frames(8, 16, 16), fps=8, audio_seconds=1.0)
    assert run(source, tmp_path / "out.webm").exit_code == 0
    after = probe(tmp_path / "out.webm")
    assert after["codec"] == "vp9" and len(after["frames"]) == 4
    assert after["times"] == pytest.approx([0, 0.25, 0.5, 0.75], abs=1e-3)
    assert after["audio_codec"] == "opus"
    assert after["duration"] == pytest.approx(1.0, abs=0.05)


def test_avi_with_pcm_audio_to_mp4(tmp_path):
    # AVI stores no channel layout and MP4 takes no PCM: the audio is re-encoded to AAC.
    source = tmp_path / "clip.avi"
    with av.open(str(source), "w", format="avi") as container:
        video = container.add_stream("mpeg4", rate=10)
        video.width, video.height, video.pix_fmt = 32, 24, "yuv420p"
        audio = container.add_stream("pcm_s16le", rate=8000)
        audio.layout = "mono"
        for frame in smooth_frames(6, 24, 32):
            container.mux(video.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(video.encode(None))
        samples = av.AudioFrame.from_ndarray(np.zeros((1, 4800), np.int16), format="s16", layout="mono")
        samples.sample_rate = 8000
        container.mux(audio.encode(samples))
        container.mux(audio.encode(None))
    result = run(source)  # default OUT: MP4, AVI is no output format
    assert result.exit_code == 0, result.output
    after = probe(tmp_path / "clip_softpool.mp4")
    assert len(after["frames"]) == 3 and after["audio_codec"] == "aac"
    assert after["audio_duration"] == pytest.approx(0.6, abs=0.05)


def test_rotated_clip_comes_out_upright(tmp_path):
    frames = smooth_frames(2, 16, 32)
    source = write_mp4(tmp_path / "clip.mp4", frames, fps=10)
    rotated = tmp_path / "rotated.mp4"
    with av.open(str(source)) as inp, av.open(str(rotated), "w") as out:
        stream = out.add_stream_from_template(inp.streams.video[0])
        stream.set_display_rotation(90)
        for packet in inp.demux(inp.streams.video[0]):
            if packet.size:
                packet.stream = stream
                out.mux(packet)
    assert run(rotated, tmp_path / "out.gif", "--time-factor", "1").exit_code == 0
    output, _, _ = read_gif(tmp_path / "out.gif")
    assert output.shape[1:3] == (16, 8)  # 32x16 turned a quarter, then halved


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
