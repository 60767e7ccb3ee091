"""How close a pooled result stays to its original: PSNR and SSIM after upsampling back.

A pooled image is smaller than its original, so it is first upsampled back with one fixed
interpolation, **bicubic** (OpenCV's ``INTER_CUBIC``), and then compared with the original by
scikit-image's ``skimage.metrics``. Bicubic is the usual reconstruction when downsamplers are
compared (super-resolution benchmarks score bicubic upsampling), which keeps the numbers
comparable with published ones. Nearest-neighbour upsampling would make average pooling the
least-squares optimum by construction (a window's mean minimises its squared error), so the
PSNR column would only restate the definition of the mean. OpenCV's pixel-centre grid puts
each pooled pixel at the centre of its window when kernel = stride, so nothing is shifted.

Pooling drops a last partial window (max pooling's shape rule), so a pooled result covers
the original's first ``h * factor`` rows and ``w * factor`` columns; the scores are computed
over that region. Both scores use the full range of the sample type (255 for 8-bit, 65535
for 16-bit) as ``data_range``; SSIM uses scikit-image's defaults (7 x 7 uniform window, the
mean over channels).

Clips are pooled in time too: pooled frame ``k`` stands for original frames
``k * time_factor`` to ``(k + 1) * time_factor - 1`` (a last, shorter window stands for the
frames it has), so each of those is compared with it.
Scoring every frame of a long clip would cost more than pooling it, so :class:`ClipScorer`
scores every window of a short clip and an evenly spaced subset of at most
:data:`MAX_SCORED_WINDOWS` windows of a longer one. A clip's PSNR is that of the mean squared
error over all scored frames (PSNR of the frames stacked into one array); its SSIM is the mean
of the per-frame SSIMs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

# OpenCV and scikit-image are imported where they are used: the gallery's README writer
# imports this module for its constants and Scores, and should not pay for them.

INTERPOLATION = "bicubic"
# Past this many pooled windows a clip is scored on an evenly spaced subset of them.
MAX_SCORED_WINDOWS = 16
# scikit-image's default SSIM window; smaller images get the largest odd window that fits.
SSIM_WINDOW = 7


@dataclass(frozen=True)
class Scores:
    """PSNR in dB (``inf`` for identical pictures) and SSIM (1.0 for identical pictures)."""

    psnr: float
    ssim: float


def data_range(dtype: np.dtype) -> float:
    """The full range of an integer sample type: 255 for uint8, 65535 for uint16."""
    return float(np.iinfo(dtype).max)


def upsample(pooled: np.ndarray, factor: int, dtype_range: float) -> np.ndarray:
    """Upsample a pooled image ``factor`` times in height and width, bicubically.

    Args:
        pooled: ``(h, w)`` or ``(h, w, C)`` pixels, any numeric type.
        factor: The pooling factor (kernel = stride) in both dimensions.
        dtype_range: Largest valid sample value; bicubic overshoot is clipped to [0, it].

    Returns:
        ``(h * factor, w * factor[, C])`` float32 pixels.
    """
    import cv2

    height, width = pooled.shape[:2]
    samples = pooled.astype(np.float32)
    upsampled = cv2.resize(samples, (width * factor, height * factor), interpolation=cv2.INTER_CUBIC)
    # OpenCV drops a trailing channel axis of length 1; put it back.
    upsampled = upsampled.reshape((height * factor, width * factor) + pooled.shape[2:])
    return np.clip(upsampled, 0.0, dtype_range, out=upsampled)


def _common_region(original: np.ndarray, upsampled: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both pictures cropped to the rows and columns they share (top-left aligned)."""
    height = min(original.shape[0], upsampled.shape[0])
    width = min(original.shape[1], upsampled.shape[1])
    return original[:height, :width], upsampled[:height, :width]


def _ssim(original: np.ndarray, upsampled: np.ndarray, dtype_range: float) -> float:
    """scikit-image's SSIM, with the window shrunk for pictures smaller than 7 pixels."""
    from skimage.metrics import structural_similarity

    side = min(original.shape[:2])
    window = min(SSIM_WINDOW, side if side % 2 else side - 1)
    if window < 3:
        return math.nan  # no meaningful structure to compare in a 1- or 2-pixel picture
    channel_axis = -1 if original.ndim == 3 else None
    return float(
        structural_similarity(
            original, upsampled, win_size=window, data_range=dtype_range, channel_axis=channel_axis
        )
    )


def image_scores(original: np.ndarray, pooled: np.ndarray, factor: int) -> Scores:
    """PSNR and SSIM of a pooled image, upsampled back, against its original.

    Args:
        original: ``(H, W)`` or ``(H, W, C)`` uint8 or uint16 pixels.
        pooled: The pooled pixels, same type and channels, about ``factor`` times smaller.
        factor: The pooling factor (kernel = stride) in both dimensions.
    """
    from skimage.metrics import peak_signal_noise_ratio

    dtype_range = data_range(original.dtype)
    reference, upsampled = _common_region(original, upsample(pooled, factor, dtype_range))
    reference = reference.astype(np.float32)
    with np.errstate(divide="ignore"):  # identical pictures: infinite PSNR, no warning
        psnr = float(peak_signal_noise_ratio(reference, upsampled, data_range=dtype_range))
    return Scores(psnr=psnr, ssim=_ssim(reference, upsampled, dtype_range))


def window_step(window_count: int | None) -> int:
    """Score every ``step``-th window so that at most :data:`MAX_SCORED_WINDOWS` are scored.

    Args:
        window_count: Number of pooled frames, or an estimate; None when unknown (then every
            window is scored).
    """
    if not window_count:
        return 1
    return max(1, math.ceil(window_count / MAX_SCORED_WINDOWS))


class ClipScorer:
    """Accumulates PSNR and SSIM over the windows of a clip, fed chunk by chunk.

    Args:
        factor: Spatial pooling factor (kernel = stride in height and width).
        time_factor: Temporal pooling factor (frames per window).
        step: Score windows ``0, step, 2 * step, ...`` (see :func:`window_step`).
    """

    def __init__(self, factor: int, time_factor: int, step: int = 1) -> None:
        self.factor = factor
        self.time_factor = time_factor
        self.step = step
        self._windows_seen = 0
        self._squared_error_sum = 0.0
        self._ssim_sum = 0.0
        self._frames = 0
        self._dtype_range: float | None = None

    def add(self, originals: np.ndarray, pooled: np.ndarray) -> None:
        """Score the next windows of the clip.

        Args:
            originals: ``(T, H, W, C)`` original frames, starting at a window boundary.
            pooled: ``(k, h, w, C)`` pooled frames for those windows, in order; frame ``i``
                is compared with originals ``i * time_factor`` up to the next window (or
                the end, for a last, shorter window).
        """
        from skimage.metrics import mean_squared_error

        if self._dtype_range is None:
            self._dtype_range = data_range(originals.dtype)
        for index, pooled_frame in enumerate(pooled):
            window = self._windows_seen + index
            if window % self.step:
                continue
            upsampled = upsample(pooled_frame, self.factor, self._dtype_range)
            first = index * self.time_factor
            for original in originals[first : first + self.time_factor]:
                reference, compared = _common_region(original, upsampled)
                reference = reference.astype(np.float32)
                self._squared_error_sum += float(mean_squared_error(reference, compared))
                self._ssim_sum += _ssim(reference, compared, self._dtype_range)
                self._frames += 1
        self._windows_seen += len(pooled)

    @property
    def frames_scored(self) -> int:
        """How many original frames have been compared so far."""
        return self._frames

    def result(self) -> Scores:
        """The clip's scores (NaN when no frame was scored)."""
        if not self._frames or self._dtype_range is None:
            return Scores(psnr=math.nan, ssim=math.nan)
        mean_squared = self._squared_error_sum / self._frames
        psnr = math.inf if mean_squared == 0 else 10 * math.log10(self._dtype_range**2 / mean_squared)
        return Scores(psnr=psnr, ssim=self._ssim_sum / self._frames)
