"""Comparison frames of a clip: the first original frame of each window, then each method's
pooled frame, labelled, every panel at one display size (at most ``max_width`` wide).

The original panel is the frame average-pooled down to the panel's size (so it does not
alias); pooled frames are enlarged or reduced to it with nearest-neighbour, as the image
comparison shows them.
"""

from __future__ import annotations

import numpy as np

from softpool_cli.pixels.windows import AxisWindows

METHODS = ("soft", "max", "avg")


class ClipComparison:
    def __init__(self, frame_height: int, frame_width: int, beta: float, max_width: int) -> None:
        from softpool_cli.media.compare import ComparisonLayout, comparison_labels

        panel = None  # the layout's default: the frame's size, enlarged if it is small
        if frame_width > max_width:
            panel = (max(1, round(frame_height * max_width / frame_width)), max_width)
        self._panel = panel
        self._layout = ComparisonLayout(frame_height, frame_width, comparison_labels(METHODS, beta), panel_size=panel)

    def frames(self, originals: np.ndarray, results: dict[str, np.ndarray]) -> np.ndarray:
        """(T', H, W, 3) comparison frames from T' originals and each method's T' pooled frames."""
        from softpool_cli.pixels.pool import pool_windows_array

        if self._panel is not None:
            count = len(originals)
            axes = [
                AxisWindows(tuple(range(count)), tuple(range(1, count + 1)), count),
                AxisWindows.adaptive(originals.shape[1], self._panel[0]),
                AxisWindows.adaptive(originals.shape[2], self._panel[1]),
            ]
            originals = pool_windows_array(originals, axes, method="avg")
        return np.stack(
            [self._layout.compose([original] + [results[m][i] for m in METHODS]) for i, original in enumerate(originals)]
        )  # (T', H, W, 3)
