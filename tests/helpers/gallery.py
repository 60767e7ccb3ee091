"""Inputs, runs and README parsing shared by the `softpool gallery` tests.

The README is parsed back twice: by a strict GFM table check written here, and by GitHub's
own Markdown parser (cmark-gfm, through the `cmarkgfm` package) when it is installed.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

import av
import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from softpool_cli.main import cli

SUMMARY = re.compile(r"^(\d+) files, (\d+) failed, \d+\.\d s \((\d+) up to date\)", re.MULTILINE)


# ------------------------------------------------------------------------- media


def smooth_image(height: int, width: int, seed: int) -> np.ndarray:
    """(H, W, 3) uint8: gradients and a sine, so pooling methods differ but not wildly."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    phase = rng.uniform(0, 2 * np.pi, size=3)
    channels = [127 + 100 * np.sin(x / (2 + c) + y / 3 + phase[c]) for c in range(3)]
    return np.clip(np.stack(channels, axis=-1) + rng.normal(0, 6, (height, width, 3)), 0, 255).astype(np.uint8)


def few_colour_frames(count: int, height: int, width: int, seed: int) -> np.ndarray:
    """(T, H, W, 3) uint8 frames of 8 colours, each frame different (exact in a GIF)."""
    rng = np.random.default_rng(seed)
    palette = rng.integers(0, 256, size=(8, 3), dtype=np.uint8)
    frames = palette[rng.integers(0, 8, size=(count, height, width))]
    frames[:, 0, 0] = (np.arange(count) * 31)[:, None]
    return frames


def write_gif(path: Path, frames: np.ndarray, duration_ms: int = 100) -> Path:
    images = [Image.fromarray(frame).quantize(colors=16, dither=Image.Dither.NONE) for frame in frames]
    images[0].save(path, format="GIF", save_all=True, append_images=images[1:], duration=duration_ms, loop=0)
    return path


def write_mp4(path: Path, frames: np.ndarray, fps: int = 10) -> Path:
    with av.open(str(path), "w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = "yuv420p"
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode(None))
    return path


def read_gif_frames(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        frames = []
        for index in range(image.n_frames):
            image.seek(index)
            frames.append(np.asarray(image.convert("RGB")))
    return np.stack(frames)


def read_mp4_frames(path: Path) -> np.ndarray:
    with av.open(str(path)) as container:
        return np.stack([frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)])


@pytest.fixture
def sources(tmp_path: Path) -> Path:
    """A folder of media told apart by content: a JPEG without its extension, an MP4 named .bin."""
    folder = tmp_path / "src"
    (folder / "sub").mkdir(parents=True)
    Image.fromarray(smooth_image(20, 26, seed=1)).save(folder / "photo.png")
    Image.fromarray(smooth_image(16, 16, seed=2)).save(folder / "sub" / "jpeg_inside.dat", format="JPEG", quality=95)
    write_gif(folder / "loop.gif", few_colour_frames(6, 12, 16, seed=3))
    write_mp4(folder / "movie.bin", (few_colour_frames(5, 16, 16, seed=4) // 2 + 60).astype(np.uint8))
    (folder / "notes.txt").write_text("not media\n")
    (folder / ".hidden.png").write_bytes((folder / "photo.png").read_bytes())
    return folder


def run(*arguments: object) -> object:
    return CliRunner().invoke(cli, ["gallery", *map(str, arguments)], catch_exceptions=False)


def summary(result: object) -> tuple[int, int, int]:
    match = SUMMARY.search(result.output)
    assert match, result.output
    return tuple(int(group) for group in match.groups())  # (files, failed, up to date)


# ----------------------------------------------------------------- Markdown checks


def split_row(line: str) -> list[str]:
    """Cells of a GFM table row: split on pipes that are not backslash-escaped."""
    assert line.startswith("| ") and line.endswith(" |"), line
    return [cell.strip() for cell in re.split(r"(?<!\\)\|", line[1:-1])]


def strict_tables(markdown: str) -> list[list[list[str]]]:
    """Every GFM table in ``markdown`` as rows of raw cells, checked strictly on the way:
    a delimiter row under the header, the same number of cells in every row."""
    tables, block = [], []
    for line in [*markdown.splitlines(), ""]:
        if line.startswith("|"):
            block.append(line)
            continue
        if block:
            header, delimiter, *body = (split_row(row) for row in block)
            assert all(re.fullmatch(r":?-{3,}:?", cell) for cell in delimiter), block[1]
            assert len(delimiter) == len(header)
            for row in body:
                assert len(row) == len(header), (row, header)
            tables.append([header, *body])
            block = []
    return tables


class _TableCollector(HTMLParser):
    """Tables of rendered HTML as rows of cells; each cell is (text, [img attribute dicts])."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: list[list[list[tuple[str, list[dict]]]]] = []
        self._cell: list | None = None

    def handle_starttag(self, tag: str, attrs: list) -> None:
        if tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self._cell = ["", []]
        elif tag == "img" and self._cell is not None:
            self._cell[1].append(dict(attrs))

    handle_startendtag = handle_starttag

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None:
            self.tables[-1][-1].append((self._cell[0].strip(), self._cell[1]))
            self._cell = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell[0] += data


def rendered_tables(markdown: str) -> list[list[list[tuple[str, list[dict]]]]]:
    """The tables as GitHub renders them (cmark-gfm with its table extension)."""
    cmarkgfm = pytest.importorskip("cmarkgfm")
    from cmarkgfm.cmark import Options

    html = cmarkgfm.github_flavored_markdown_to_html(markdown, options=Options.CMARK_OPT_UNSAFE)
    collector = _TableCollector()
    collector.feed(html)
    return collector.tables


def images_in(cell: str) -> list[dict]:
    collector = _TableCollector()
    collector.feed(f"<table><tr><td>{cell}</td></tr></table>")
    return collector.tables[0][0][0][1]


def numbers_of(readme: str) -> dict[str, list[str]]:
    """Metrics table rows by (unescaped) file name."""
    metrics = strict_tables(readme)[-1]
    return {row[0].replace("\\", ""): row[1:] for row in metrics[1:]}
