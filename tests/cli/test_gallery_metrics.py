"""`softpool gallery`'s metrics: recomputed here from the files the gallery wrote, with
OpenCV and scikit-image called directly.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
from PIL import Image
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from softpool_cli.gallery.metrics import ClipScorer, image_scores

from helpers.gallery import few_colour_frames, numbers_of, read_gif_frames, run, sources


# ------------------------------------------------------------------------ metrics


def expected_image_scores(original: np.ndarray, pooled: np.ndarray, factor: int) -> tuple[float, float]:
    height, width = pooled.shape[:2]
    upsampled = cv2.resize(pooled.astype(np.float32), (width * factor, height * factor), interpolation=cv2.INTER_CUBIC)
    upsampled = np.clip(upsampled, 0, 255).reshape((height * factor, width * factor) + pooled.shape[2:])
    reference = original[: height * factor, : width * factor].astype(np.float32)
    channel_axis = -1 if reference.ndim == 3 else None
    return (
        peak_signal_noise_ratio(reference, upsampled, data_range=255),
        structural_similarity(reference, upsampled, data_range=255, channel_axis=channel_axis),
    )


class TestMetrics:
    def test_readme_numbers_match_a_direct_computation(self, sources, tmp_path):
        out = tmp_path / "gallery"
        assert run(sources / "photo.png", sources / "loop.gif", "--out", out, "--jobs", 1).exit_code == 0
        numbers = numbers_of((out / "README.md").read_text())

        original = np.asarray(Image.open(sources / "photo.png").convert("RGB"))
        expected = {}
        for method in ("soft", "max", "avg"):
            pooled = np.asarray(Image.open(out / f"photo_{method}.png"))  # PNG: the exact pooled pixels
            expected[method] = expected_image_scores(original, pooled, 2)
        assert numbers["photo.png"] == [
            text for method in ("soft", "max", "avg") for text in (f"{expected[method][0]:.2f}", f"{expected[method][1]:.4f}")
        ]

        # Clip: each pooled frame against the 2 original frames of its window; PSNR of the stack.
        originals = read_gif_frames(sources / "loop.gif")  # (6, 12, 16, 3)
        clip_expected = []
        for method in ("soft", "max", "avg"):
            pooled = read_gif_frames(out / f"loop_{method}.gif")  # (3, 6, 8, 3): few colours, exact
            references, compared = [], []
            for index, original in enumerate(originals):
                frame = pooled[index // 2]
                up = cv2.resize(frame.astype(np.float32), (16, 12), interpolation=cv2.INTER_CUBIC)
                references.append(original.astype(np.float32))
                compared.append(np.clip(up, 0, 255))
            psnr = peak_signal_noise_ratio(np.stack(references), np.stack(compared), data_range=255)
            ssim = np.mean(
                [structural_similarity(r, c, data_range=255, channel_axis=-1) for r, c in zip(references, compared)]
            )
            clip_expected += [f"{psnr:.2f}", f"{ssim:.4f}"]
        assert numbers["loop.gif"] == clip_expected

        mean_row = numbers["**Mean**"]
        for column in range(6):
            values = [float(numbers[name][column]) for name in ("photo.png", "loop.gif")]
            assert abs(float(mean_row[column].strip("*")) - sum(values) / 2) <= 0.011

    def test_image_scores_on_odd_sizes_gray_and_16_bit(self):
        rng = np.random.default_rng(0)
        gray = rng.integers(0, 256, size=(21, 17), dtype=np.uint8)
        pooled = gray[:20, :16].reshape(10, 2, 8, 2).max(axis=(1, 3))
        scores = image_scores(gray, pooled, 2)
        psnr, ssim = expected_image_scores(gray, pooled, 2)
        assert scores.psnr == pytest.approx(psnr, rel=1e-6)
        assert scores.ssim == pytest.approx(ssim, rel=1e-6)

        deep = rng.integers(0, 65536, size=(16, 16, 3), dtype=np.uint16)
        pooled = deep.reshape(8, 2, 8, 2, 3).mean(axis=(1, 3)).round().astype(np.uint16)
        upsampled = np.clip(cv2.resize(pooled.astype(np.float32), (16, 16), interpolation=cv2.INTER_CUBIC), 0, 65535)
        scores = image_scores(deep, pooled, 2)
        assert scores.psnr == pytest.approx(
            peak_signal_noise_ratio(deep.astype(np.float32), upsampled, data_range=65535), rel=1e-6
        )
        assert scores.ssim == pytest.approx(
            structural_similarity(deep.astype(np.float32), upsampled, data_range=65535, channel_axis=-1), rel=1e-6
        )

    def test_identical_is_infinite_psnr_and_unit_ssim(self):
        flat = np.full((8, 8, 3), 77, np.uint8)
        scores = image_scores(flat, flat[::2, ::2], 2)
        assert math.isinf(scores.psnr) and scores.ssim == pytest.approx(1.0)

    def test_long_clip_is_scored_on_a_spaced_subset(self):
        frames = few_colour_frames(40, 8, 8, seed=5)
        pooled = frames.reshape(20, 2, 4, 2, 4, 2, 3).mean(axis=(1, 3, 5)).round().astype(np.uint8)
        scorer = ClipScorer(factor=2, time_factor=2, step=4)
        scorer.add(frames[:16], pooled[:8])  # two chunks, as a clip is streamed
        scorer.add(frames[16:], pooled[8:])
        assert scorer.frames_scored == 5 * 2  # windows 0, 4, 8, 12, 16
        chosen = [window * 2 + offset for window in range(0, 20, 4) for offset in (0, 1)]
        upsampled = [np.clip(cv2.resize(pooled[index // 2].astype(np.float32), (8, 8), interpolation=cv2.INTER_CUBIC), 0, 255) for index in chosen]
        expected = peak_signal_noise_ratio(frames[chosen].astype(np.float32), np.stack(upsampled), data_range=255)
        assert scorer.result().psnr == pytest.approx(expected, rel=1e-6)
