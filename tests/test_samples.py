"""samples/make_samples.py: what it writes, that it writes it the same way twice, and that
the committed samples/ folder holds what the script declares.

The script is not a package module, so it is loaded from its path. Expected values come
from the bundled photos read directly, from OpenCV/NumPy crops and block means, and from
the files read back with Pillow and PyAV, not from the script's own helpers.

Two runs in one environment must write the same bytes (determinism). Files made in another
environment are judged by their decoded pixels: OpenCV draws anti-aliased lines and text a
little differently from one release to the next, and a scikit-image release may replace a
bundled photo (the tests that need one are then skipped, naming it; the script itself refuses).
"""

from __future__ import annotations

import hashlib
import importlib.util
import sys
from pathlib import Path

import av
import cv2
import imageio.v3 as iio
import numpy as np
import pytest
import skimage.data
from PIL import Image
from skimage.metrics import structural_similarity

SAMPLES_DIR = Path(__file__).resolve().parents[1] / "samples"
BUNDLED_DATA_DIR = Path(skimage.data.__file__).resolve().parent
# The samples are meant to stay small enough to ship in the repository.
MAX_SAMPLES_BYTES = 4 * 1024 * 1024


def _load_script():
    spec = importlib.util.spec_from_file_location("make_samples", SAMPLES_DIR / "make_samples.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the file runs
    spec.loader.exec_module(module)
    return module


make_samples = _load_script()
CLIPS = {clip.output_name: clip for clip in make_samples.CLIPS}


def _psnr(expected: np.ndarray, actual: np.ndarray) -> float:
    """PSNR in dB of uint8 pictures or clips ((..., H, W, 3), peak 255)."""
    # cv2.PSNR takes 2-D or 3-D arrays, so a clip's frames are stacked vertically.
    rows = (-1, *expected.shape[-2:])  # (T * H, W, 3)
    return cv2.PSNR(expected.reshape(rows), actual.reshape(rows))


def _require_bundled(*names: str) -> None:
    """Skip the test, naming the file, when scikit-image no longer ships the photo the samples
    were made from (``make_samples.py`` itself refuses to run then)."""
    for name in names:
        photo = make_samples.PHOTOS[name]
        try:
            make_samples.bundled_photo_path(photo)
        except (FileNotFoundError, ValueError) as error:
            pytest.skip(
                f"scikit-image {skimage.__version__} ships another {photo.bundled_name} than the samples "
                f"were made from: {error}"
            )


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _write_twice(write, tmp_path: Path) -> tuple[Path, Path]:
    """Run ``write(out_dir)`` into two fresh folders; return both paths."""
    first = write(tmp_path / "first")
    second = write(tmp_path / "second")
    return first, second


class TestPhotos:
    def test_same_format_is_copied_byte_for_byte(self, tmp_path):
        _require_bundled("rocket")
        written = make_samples.write_photo("rocket", tmp_path)
        assert written.name == "rocket.jpg"
        assert written.read_bytes() == (BUNDLED_DATA_DIR / "rocket.jpg").read_bytes()

    def test_png_to_jpeg_is_close_and_repeatable(self, tmp_path):
        _require_bundled("coffee")
        first, second = _write_twice(lambda out: make_samples.write_photo("coffee", out), tmp_path)
        assert _sha256(first) == _sha256(second)
        original = np.asarray(Image.open(BUNDLED_DATA_DIR / "coffee.png").convert("RGB"))
        with Image.open(first) as image:
            assert image.format == "JPEG"
            decoded = np.asarray(image.convert("RGB"))
        assert decoded.shape == original.shape == (400, 600, 3)
        assert _psnr(original, decoded) > 35.0

    def test_changed_bundled_file_is_refused(self):
        wrong = make_samples.Photo("coffee.png", "0" * 64, "coffee.jpg")
        with pytest.raises(ValueError, match="expected 0000"):
            make_samples.bundled_photo_path(wrong)


class TestRenderView:
    def test_unit_scale_at_pixel_aligned_centre_is_a_crop(self):
        _require_bundled("chelsea")
        photo = make_samples.load_photo("chelsea")
        width, height, left, top = 64, 48, 100, 70
        center = (left + (width - 1) / 2, top + (height - 1) / 2)
        frame = make_samples.render_view(photo, center, 1.0, (width, height))
        np.testing.assert_array_equal(frame, photo[top : top + height, left : left + width])

    def test_half_scale_is_the_mean_of_2x2_blocks(self):
        _require_bundled("astronaut")
        photo = make_samples.load_photo("astronaut")  # 512x512, so halving is exact
        width, height, left, top = 40, 30, 120, 80
        # The frame's first pixel covers photo pixels left, left + 1: its centre is left + 0.5.
        center = (left + 0.5 + (width - 1), top + 0.5 + (height - 1))
        frame = make_samples.render_view(photo, center, 2.0, (width, height))
        block = photo[top : top + 2 * height, left : left + 2 * width].astype(np.float64)
        expected = block.reshape(height, 2, width, 2, 3).mean(axis=(1, 3))
        assert np.abs(frame - expected).max() <= 1.0  # uint8 rounding only


# Writing is what takes time, so the writer tests encode the first frames of each clip;
# TestCommittedSamples checks the full clips.
WRITTEN_FRAMES = 24


@pytest.fixture(scope="module")
def gif_clip() -> tuple[object, np.ndarray]:
    clip = CLIPS["chelsea_pan.gif"]
    _require_bundled(clip.photo)
    return clip, make_samples.clip_frames(clip)[:WRITTEN_FRAMES]  # (T, H, W, 3)


@pytest.fixture(scope="module")
def mp4_clip() -> tuple[object, np.ndarray]:
    # The zoom is the clip on which x264 with MB-tree wrote different bytes on each run.
    clip = CLIPS["astronaut_zoom.mp4"]
    _require_bundled(clip.photo)
    return clip, make_samples.clip_frames(clip)[:WRITTEN_FRAMES]  # (T, H, W, 3)


def _write_clip_twice(writer, clip, frames: np.ndarray, tmp_path: Path) -> tuple[Path, Path]:
    def write(out_dir: Path) -> Path:
        writer(out_dir / clip.output_name, frames, clip.fps)
        return out_dir / clip.output_name

    return _write_twice(write, tmp_path)


class TestGif:
    def test_frames_rate_loop_and_repeatability(self, gif_clip, tmp_path):
        clip, frames = gif_clip
        first, second = _write_clip_twice(make_samples.write_gif, clip, frames, tmp_path)
        assert _sha256(first) == _sha256(second)
        durations = []
        with Image.open(first) as image:
            assert image.size == clip.frame_size
            assert image.info["loop"] == 0
            for index in range(image.n_frames):
                image.seek(index)
                durations.append(image.info["duration"])
        assert len(durations) == len(frames)
        assert set(durations) == {1000 / clip.fps}
        decoded = iio.imread(first, plugin="pillow", mode="RGB")  # (T, H, W, 3)
        assert decoded.shape == frames.shape
        # Palette quantization without dithering: close to the rendered frames, not equal.
        assert _psnr(frames, decoded) > 30.0
        assert all(not np.array_equal(decoded[i - 1], decoded[i]) for i in range(1, len(decoded)))

    def test_equal_consecutive_frames_are_refused(self, gif_clip, tmp_path):
        _, frames = gif_clip
        repeated = np.concatenate([frames[:2], frames[1:3]])
        with pytest.raises(ValueError, match="frames 1 and 2 are equal"):
            make_samples.write_gif(tmp_path / "clip.gif", repeated, 20)
        assert not list(tmp_path.iterdir())

    def test_rate_that_is_not_whole_centiseconds_is_refused(self, gif_clip, tmp_path):
        _, frames = gif_clip
        with pytest.raises(ValueError, match="fps=15"):
            make_samples.write_gif(tmp_path / "clip.gif", frames[:3], 15)


class TestMp4:
    def test_stream_properties_frames_and_repeatability(self, mp4_clip, tmp_path):
        clip, frames = mp4_clip
        first, second = _write_clip_twice(make_samples.write_mp4, clip, frames, tmp_path)
        assert _sha256(first) == _sha256(second)
        with av.open(str(first)) as container:
            stream = container.streams.video[0]
            assert stream.codec_context.name == "h264"
            assert stream.format.name == "yuv420p"
            assert (stream.width, stream.height) == clip.frame_size
            assert stream.average_rate == clip.fps
            decoded = np.stack(
                [frame.to_ndarray(format="rgb24") for frame in container.decode(stream)]
            )  # (T, H, W, 3)
        assert decoded.shape == frames.shape
        assert _psnr(frames, decoded) > 35.0

    def test_odd_frame_size_is_refused(self, tmp_path):
        frames = np.zeros((2, 31, 40, 3), np.uint8)
        with pytest.raises(ValueError, match="even frame size, got 40x31"):
            make_samples.write_mp4(tmp_path / "clip.mp4", frames, 24)


class TestChart:
    def test_png_round_trip_and_repeatability(self, tmp_path):
        first, second = _write_twice(make_samples.write_chart, tmp_path)
        assert _sha256(first) == _sha256(second)
        with Image.open(first) as image:
            assert (image.format, image.mode, image.size) == ("PNG", "RGB", (512, 512))
            np.testing.assert_array_equal(np.asarray(image), make_samples.make_chart())

    def test_every_quadrant_has_full_contrast(self):
        chart = make_samples.make_chart().astype(np.int16)
        for rows in (slice(0, 255), slice(257, 512)):
            for columns in (slice(0, 255), slice(257, 512)):
                quadrant = chart[rows, columns]
                assert quadrant.min() < 30 and quadrant.max() > 225

    def test_zone_plate_stays_below_nyquist(self):
        plate = make_samples.zone_plate(256)
        spectrum = np.abs(np.fft.fftshift(np.fft.fft2(plate - plate.mean())))
        frequencies = np.fft.fftshift(np.fft.fftfreq(256))  # cycles per pixel
        radius = np.hypot(*np.meshgrid(frequencies, frequencies, indexing="ij"))
        # A square plate is finest at its corners, on the diagonals: past Nyquist there, its
        # energy shows up beyond radius 0.5 (a plate 10% too fine puts 3.5% there, ours 1.2%).
        assert spectrum[radius > 0.5].sum() < 0.02 * spectrum.sum()


class TestCommittedSamples:
    """samples/ holds every file the script writes, as the script describes it."""

    def test_photo_sizes(self):
        for photo in make_samples.PHOTOS.values():
            _require_bundled(photo.output_name.split(".")[0])
            with Image.open(BUNDLED_DATA_DIR / photo.bundled_name) as original:
                expected_size = original.size
            with Image.open(SAMPLES_DIR / photo.output_name) as committed:
                assert committed.size == expected_size, photo.output_name

    def test_chart_is_what_the_script_draws(self):
        """The committed chart against the script's drawing here, quadrant by quadrant.

        The zone plate and the Siemens star are formulas and area averages: equal to the level.
        The gratings and the line fan are close (OpenCV's anti-aliased lines vary slightly). The
        text is OpenCV's Hershey font, whose glyphs and line heights change between releases:
        about the same amount of ink, over about the same rows.
        """
        with Image.open(SAMPLES_DIR / make_samples.CHART_NAME) as image:
            assert (image.format, image.mode, image.size) == ("PNG", "RGB", (512, 512))
            committed = np.asarray(image).astype(np.float64)
        drawn = make_samples.make_chart().astype(np.float64)
        zone, star = (slice(0, 255), slice(0, 255)), (slice(0, 255), slice(257, 512))
        lines, text = (slice(257, 512), slice(0, 255)), (slice(257, 512), slice(257, 512))
        for quadrant in (zone, star):
            assert np.abs(committed[quadrant] - drawn[quadrant]).max() <= 1
        assert structural_similarity(committed[lines], drawn[lines], channel_axis=2, data_range=255) > 0.98
        committed_ink, drawn_ink = 255 - committed[text], 255 - drawn[text]
        assert 0.8 < drawn_ink.mean() / committed_ink.mean() < 1.25
        committed_rows, drawn_rows = (np.flatnonzero(ink.max(axis=(1, 2)) > 64) for ink in (committed_ink, drawn_ink))
        assert abs(committed_rows[0] - drawn_rows[0]) <= 8 and abs(committed_rows[-1] - drawn_rows[-1]) <= 24

    @pytest.mark.parametrize("name", sorted(CLIPS))
    def test_clips(self, name):
        clip = CLIPS[name]
        if name.endswith(".gif"):
            with Image.open(SAMPLES_DIR / name) as image:
                assert image.size == clip.frame_size
                assert image.n_frames == clip.frame_count
                assert image.info["duration"] == 1000 / clip.fps
            return
        with av.open(str(SAMPLES_DIR / name)) as container:
            stream = container.streams.video[0]
            assert (stream.width, stream.height) == clip.frame_size
            assert stream.average_rate == clip.fps
            assert sum(1 for _ in container.demux(stream) if _.size) == clip.frame_count

    def test_total_size(self):
        names = [photo.output_name for photo in make_samples.PHOTOS.values()]
        names += [*CLIPS, make_samples.CHART_NAME]
        assert sum((SAMPLES_DIR / name).stat().st_size for name in names) <= MAX_SAMPLES_BYTES
