"""The gallery's ``README.md``: an image table, a clip table, a metrics table, and a list of
the inputs that failed, each with its reason.

The Markdown is GitHub's (GFM tables with inline HTML ``<img>`` tags). Every path is
relative to the README and percent-encoded; every file name shown as text is escaped, so
a name with ``|``, ``*`` or ``<`` in it cannot break a table or inject markup. The output
depends only on its arguments (no dates), so re-running an unchanged gallery rewrites the
same bytes.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from urllib.parse import quote

from softpool_cli.gallery.metrics import INTERPOLATION, MAX_SCORED_WINDOWS, Scores

METHOD_TITLES = {"soft": "SoftPool", "max": "Max pool", "avg": "Avg pool"}
# Characters with a meaning in Markdown inline text or in a GFM table row.
_MARKDOWN_SPECIAL = set("\\`*_{}[]<>()#+!|~&")


@dataclass(frozen=True)
class GalleryEntry:
    """One input as the README shows it.

    Attributes:
        name: The input's name as a column or row title (its path relative to its SRC).
        kind: ``"image"`` or ``"clip"``.
        original: Path, relative to the README, of a file showing the original.
        results: Method -> path, relative to the README, of the pooled result.
        comparison: Path, relative to the README, of the side-by-side comparison.
        scores: Method -> PSNR and SSIM of that method's result.
    """

    name: str
    kind: str
    original: str
    results: dict[str, str]
    comparison: str
    scores: dict[str, Scores] = field(default_factory=dict)


@dataclass(frozen=True)
class GalleryFailure:
    """An input left out of the gallery: its name (as `GalleryEntry.name`) and why, in one line."""

    name: str
    reason: str


@dataclass(frozen=True)
class GallerySettings:
    """What the README says about how the gallery was made."""

    factor: int
    methods: Sequence[str]
    width: int
    version: str


def escape_text(text: str) -> str:
    """Escape ``text`` so Markdown shows it literally, also inside a table cell."""
    return "".join(f"\\{character}" if character in _MARKDOWN_SPECIAL else character for character in text)


def url(path: str) -> str:
    """A relative POSIX path as a percent-encoded URL (spaces, ``#``, ``?``, quotes, ...)."""
    return quote(path, safe="/")


def image_tag(path: str, width: int, alt: str) -> str:
    """``<img src="..." width="..." alt="..." />`` with the path encoded and alt escaped.

    A literal ``|`` would end the table cell even inside an attribute, so it becomes ``&#124;``.
    """
    alt = html.escape(alt).replace("|", "&#124;")
    return f'<img src="{url(path)}" width="{width}" alt="{alt}" />'


def _row(cells: Sequence[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def table(header: Sequence[str], rows: Sequence[Sequence[str]], align_right_from: int | None = None) -> list[str]:
    """A GFM table: header, delimiter row, one line per row; every row has the header's width.

    Args:
        header: Header cells (already escaped).
        rows: Body rows (already escaped), each as long as ``header``.
        align_right_from: Right-align the columns from this index on (numbers).
    """
    for row in rows:
        if len(row) != len(header):
            raise ValueError(f"table row has {len(row)} cells, the header {len(header)}")
    delimiters = [
        "---:" if align_right_from is not None and index >= align_right_from else "---"
        for index in range(len(header))
    ]
    return [_row(header), _row(delimiters), *(_row(row) for row in rows)]


def media_table(entries: Sequence[GalleryEntry], settings: GallerySettings) -> list[str]:
    """Rows Original / each method / Side by side; a column per input."""
    header = [""] + [escape_text(entry.name) for entry in entries]
    rows = [["Original"] + [image_tag(entry.original, settings.width, f"{entry.name}, original") for entry in entries]]
    for method in settings.methods:
        title = METHOD_TITLES[method]
        rows.append(
            [title]
            + [image_tag(entry.results[method], settings.width, f"{entry.name}, {title}") for entry in entries]
        )
    rows.append(["Side by side"] + [f"[compare]({url(entry.comparison)})" for entry in entries])
    return table(header, rows)


def format_psnr(value: float) -> str:
    if math.isnan(value):
        return "n/a"
    return "∞" if math.isinf(value) else f"{value:.2f}"


def format_ssim(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value:.4f}"


def mean_scores(entries: Sequence[GalleryEntry], method: str) -> Scores:
    """Mean PSNR and SSIM of one method over the entries (ignoring n/a values)."""
    psnrs = [entry.scores[method].psnr for entry in entries if not math.isnan(entry.scores[method].psnr)]
    ssims = [entry.scores[method].ssim for entry in entries if not math.isnan(entry.scores[method].ssim)]
    return Scores(
        psnr=sum(psnrs) / len(psnrs) if psnrs else math.nan,
        ssim=sum(ssims) / len(ssims) if ssims else math.nan,
    )


def metrics_table(entries: Sequence[GalleryEntry], methods: Sequence[str]) -> list[str]:
    """A row per input and a last row with the mean per method; PSNR and SSIM per method."""
    header = ["File"]
    for method in methods:
        header += [f"{METHOD_TITLES[method]} PSNR (dB)", f"{METHOD_TITLES[method]} SSIM"]
    rows = []
    for entry in entries:
        row = [escape_text(entry.name)]
        for method in methods:
            row += [format_psnr(entry.scores[method].psnr), format_ssim(entry.scores[method].ssim)]
        rows.append(row)
    mean_row = ["**Mean**"]
    for method in methods:
        mean = mean_scores(entries, method)
        mean_row += [f"**{format_psnr(mean.psnr)}**", f"**{format_ssim(mean.ssim)}**"]
    rows.append(mean_row)
    return table(header, rows, align_right_from=1)


def failures_list(failures: Sequence[GalleryFailure]) -> list[str]:
    """A "Not included" section: one bullet per failed input, its name and its reason."""
    lines = ["## Not included", ""]
    for failure in failures:
        reason = failure.reason.strip().splitlines()[0] if failure.reason.strip() else "failed"
        lines.append(f"- {escape_text(failure.name)}: {escape_text(reason)}")
    return lines


def render_readme(
    entries: Sequence[GalleryEntry], settings: GallerySettings, failures: Sequence[GalleryFailure] = ()
) -> str:
    """The whole README: introduction, image table, clip table, metrics table and how they were
    computed, and the inputs that failed."""
    factor = settings.factor
    images = [entry for entry in entries if entry.kind == "image"]
    clips = [entry for entry in entries if entry.kind == "clip"]
    methods = ", ".join(METHOD_TITLES[method] for method in settings.methods)
    lines = [
        "# SoftPool gallery",
        "",
        f"Made by `softpool gallery` (softpool {settings.version}): each input downsampled by "
        f"{factor} with {methods}. Images are pooled in {factor} × {factor} windows; clips in "
        f"{factor} × {factor} × {factor} windows (time, height and width). Pixels are pooled the way "
        "a CNN sees them (ImageNet-normalised, SoftPool β = 1). Click a picture to see it at full "
        "size; *compare* shows the original and every method side by side, enlarged with "
        "nearest-neighbour so the pooled pixels show.",
        "",
    ]
    if images:
        lines += ["## Images", "", *media_table(images, settings), ""]
    if clips:
        lines += [
            "## Clips",
            "",
            "Pooled clips are written as GIF, which GitHub plays inline; an original that is not a GIF "
            "is shown through a GIF copy of it (256 colours per frame). The side-by-side comparisons "
            "are MP4 (H.264), which GitHub offers as a download.",
            "",
            *media_table(clips, settings),
            "",
        ]
    if entries:
        lines += [
            "## Metrics",
            "",
            f"PSNR and SSIM of each pooled result, upsampled back to the original size with {INTERPOLATION} "
            "interpolation (OpenCV `INTER_CUBIC`), against the original; computed with scikit-image's "
            "`skimage.metrics` (SSIM with its default 7 × 7 window, averaged over colour channels). Higher "
            "is better for both. Each pooled frame of a clip is compared with the original frames of its "
            f"window; clips longer than {MAX_SCORED_WINDOWS} windows are scored on at most {MAX_SCORED_WINDOWS} "
            "evenly spaced windows. These numbers measure closeness to the original, not visual quality: "
            "average pooling minimises the squared error of a window, so it tends to score highest here "
            "even where it looks blurrier.",
            "",
            *metrics_table([*images, *clips], settings.methods),
            "",
        ]
    else:
        lines += ["No input was pooled successfully.", ""]
    if failures:
        lines += [*failures_list(failures), ""]
    return "\n".join(lines)
