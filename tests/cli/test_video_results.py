"""`softpool video` end to end, on tiny clips the tests generate with known timings: values,
durations, loops, chunking, MP4/WebM/AVI, audio and rotation.

Inputs are decoded here with Pillow (GIF) or PyAV (MP4), independently of the command's
reader, and the expected frames are the library's `soft_pool3d` in float64 on the
ImageNet-normalised decoded frames. GIF output is lossless for frames of at most 256
colours, so values are checked exactly (up to float rounding); MP4 output is H.264, so
values are checked by PSNR.
"""

from __future__ import annotations

from fractions import Fraction

import av
import numpy as np
import pytest
from PIL import Image

from softpool_cli.pipeline import clip as clip_pipeline

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


def test_windows_within_one_decoded_chunk_pool_it_in_place():
    """The frame buffer hands out consecutive frames of one chunk as a view of it, and copies
    only frames that span chunks; either way they are the frames asked for."""
    from softpool_cli.media.clip_read import FrameChunk

    rng = np.random.default_rng(0)
    chunks = [rng.integers(0, 256, (4, 3, 5, 3), dtype=np.uint8) for _ in range(2)]
    buffer = clip_pipeline._FrameBuffer()
    for index, pixels in enumerate(chunks):
        buffer.add(FrameChunk(pixels, np.arange(4) + 4 * index, np.ones(4, np.int64)))
    whole = np.concatenate(chunks)
    inside = buffer.take(1, 3)
    assert np.shares_memory(inside, chunks[0]) and np.array_equal(inside, whole[1:3])
    across = buffer.take(3, 6)
    assert not np.shares_memory(across, chunks[0]) and np.array_equal(across, whole[3:6])
    buffer.drop_before(4)
    later = buffer.take(4, 8)
    assert np.shares_memory(later, chunks[1]) and np.array_equal(later, whole[4:8])
