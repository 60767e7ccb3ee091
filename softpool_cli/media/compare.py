"""Side-by-side comparisons: original | SoftPool | max pool | avg pool, labelled.

Every panel has the original's display size: pooled results are enlarged with
nearest-neighbour, so each pooled pixel shows as a visible block and the three
methods can be compared pixel for pixel. Images narrower than
:data:`MIN_PANEL_WIDTH` are enlarged by a whole factor first.

Labels sit in a band above the panels, sized in proportion to the panel (about
11 % of its width), so they stay readable both at full size and when a README
shows each panel 130 px wide. Panels sit on a neutral gray background; an alpha
channel is composited onto that background.

:class:`ComparisonLayout` computes the layout and draws the labels once, so a
video can compose many frames cheaply; :func:`compose_comparison` is the
one-image shortcut.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

METHOD_LABELS = {"soft": "SoftPool", "max": "max pool", "avg": "avg pool"}
PANEL_LABELS = ("original", *METHOD_LABELS.values())
MIN_PANEL_WIDTH = 256
BACKGROUND = (200, 200, 200)  # light neutral gray: reads on light and dark pages alike
TEXT_COLOUR = (20, 20, 20)
LABEL_HEIGHT_RATIO = 0.11  # label text height / panel width
MIN_LABEL_HEIGHT = 12  # pixels; below this no font stays legible at full size
MAX_LABEL_WIDTH_RATIO = 0.92  # the longest label must fit within the panel


def to_display_rgb(pixels: np.ndarray) -> np.ndarray:
    """Any (H, W) or (H, W, C) uint8/uint16 pixels as (H, W, 3) uint8 RGB for display.

    16-bit values are rounded to 8 bits, gray is repeated into RGB, and alpha is
    composited onto :data:`BACKGROUND`.
    """
    pixels = pixels[..., None] if pixels.ndim == 2 else pixels
    if pixels.dtype == np.uint8 and pixels.shape[2] == 3:
        return pixels  # the common case, and the one a video meets on every frame
    if pixels.dtype == np.uint8 and pixels.shape[2] == 1:
        return np.repeat(pixels, 3, axis=2)
    values = pixels.astype(np.float32)
    if pixels.dtype == np.uint16:
        values /= 257.0
    channels = pixels.shape[2]
    colour = values[..., : 1 if channels < 3 else 3]
    if channels in (2, 4):
        alpha = values[..., -1:] / 255.0
        colour = colour * alpha + np.asarray(BACKGROUND[: colour.shape[2]], np.float32) * (1 - alpha)
    colour = np.clip(np.rint(colour), 0, 255).astype(np.uint8)
    return np.repeat(colour, 3, axis=2) if colour.shape[2] == 1 else colour


def comparison_labels(methods: Sequence[str], beta: float = 1.0) -> list[str]:
    """Panel labels for the original followed by ``methods`` ("soft", "max", "avg");
    SoftPool's label names β when it is not the paper's 1."""
    labels = ["original"]
    for method in methods:
        labels.append(f"SoftPool beta {beta:g}" if method == "soft" and beta != 1 else METHOD_LABELS[method])
    return labels


class ComparisonLayout:
    """A row of labelled panels of one display size on a neutral background.

    Args:
        height: Height of the original image (or frame).
        width: Width of the original image (or frame).
        labels: One label per panel, left to right.
        panel_size: ``(height, width)`` to show each panel at; by default the
            original's size, enlarged by a whole factor if narrower than
            :data:`MIN_PANEL_WIDTH`.

    Attributes:
        shape: ``(H, W, 3)`` of the composed image; H and W are even, as video encoders need.
    """

    def __init__(
        self,
        height: int,
        width: int,
        labels: Sequence[str] = PANEL_LABELS,
        panel_size: tuple[int, int] | None = None,
    ) -> None:
        if panel_size is None:
            scale = max(1, MIN_PANEL_WIDTH // width)
            panel_size = (height * scale, width * scale)
        self.labels = tuple(labels)
        self.panel_height, self.panel_width = panel_size
        self.gap = max(4, round(self.panel_width * 0.03))
        font, text_height = self._fit_font()
        self.band_height = text_height + self.gap
        count = len(self.labels)
        total_height = self.gap + self.band_height + self.panel_height + self.gap
        total_width = count * self.panel_width + (count + 1) * self.gap
        self.shape = (total_height + total_height % 2, total_width + total_width % 2, 3)
        self._template = self._draw_template(font)

    def _fit_font(self) -> tuple[ImageFont.FreeTypeFont | ImageFont.ImageFont, int]:
        """The largest font up to LABEL_HEIGHT_RATIO of the panel width whose longest label fits."""
        size = max(MIN_LABEL_HEIGHT, round(self.panel_width * LABEL_HEIGHT_RATIO))
        while True:
            font = ImageFont.load_default(size=size)
            widest = max(font.getbbox(label)[2] for label in self.labels)
            if widest <= self.panel_width * MAX_LABEL_WIDTH_RATIO or size <= MIN_LABEL_HEIGHT:
                ascent, descent = font.getmetrics() if hasattr(font, "getmetrics") else (size, 0)
                return font, ascent + descent
            size = max(MIN_LABEL_HEIGHT, int(size * 0.9))

    def panel_origin(self, index: int) -> tuple[int, int]:
        """Top-left ``(row, column)`` of panel ``index`` in the composed image."""
        return self.gap + self.band_height, self.gap + index * (self.panel_width + self.gap)

    def _draw_template(self, font: ImageFont.FreeTypeFont | ImageFont.ImageFont) -> np.ndarray:
        canvas = Image.new("RGB", (self.shape[1], self.shape[0]), BACKGROUND)
        draw = ImageDraw.Draw(canvas)
        for index, label in enumerate(self.labels):
            top, left = self.panel_origin(index)
            centre = (left + self.panel_width / 2, self.gap + self.band_height / 2)
            draw.text(centre, label, fill=TEXT_COLOUR, font=font, anchor="mm")
        return np.asarray(canvas).copy()

    def compose(self, panels: Sequence[np.ndarray]) -> np.ndarray:
        """Place the panels, each enlarged (or reduced) to the panel size with nearest-neighbour.

        Args:
            panels: One ``(h, w)`` or ``(h, w, C)`` uint8/uint16 array per label; sizes may differ.

        Returns:
            The ``(H, W, 3)`` uint8 RGB comparison.
        """
        if len(panels) != len(self.labels):
            raise ValueError(f"expected {len(self.labels)} panels ({', '.join(self.labels)}), got {len(panels)}")
        canvas = self._template.copy()
        for index, panel in enumerate(panels):
            rgb = to_display_rgb(panel)
            if rgb.shape[:2] != (self.panel_height, self.panel_width):
                rgb = cv2.resize(
                    rgb, (self.panel_width, self.panel_height), interpolation=cv2.INTER_NEAREST_EXACT
                )
            top, left = self.panel_origin(index)
            canvas[top : top + self.panel_height, left : left + self.panel_width] = rgb
        return canvas


def compose_comparison(
    original: np.ndarray,
    soft: np.ndarray,
    maximum: np.ndarray,
    average: np.ndarray,
    labels: Sequence[str] = PANEL_LABELS,
) -> np.ndarray:
    """Compose one comparison image: original | SoftPool | max pool | avg pool.

    Args:
        original: The input pixels, ``(H, W)`` or ``(H, W, C)``, uint8 or uint16.
        soft: The SoftPool result.
        maximum: The max-pooling result.
        average: The average-pooling result.
        labels: The four panel labels.

    Returns:
        ``(H', W', 3)`` uint8 RGB, H' and W' even.
    """
    layout = ComparisonLayout(original.shape[0], original.shape[1], labels)
    return layout.compose([original, soft, maximum, average])
