"""`softpool gallery` end to end, on tiny images and clips the tests generate.

The README is parsed back twice: by a strict GFM table check written here, and by GitHub's
own Markdown parser (cmark-gfm, through the `cmarkgfm` package) when it is installed. The
metrics are recomputed here from the files the gallery wrote, with OpenCV and scikit-image
called directly. Gallery outputs are checked against what `softpool downsample` and
`softpool video` write for the same input.
"""

from __future__ import annotations

import math
import os
import re
from html.parser import HTMLParser
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from softpool_cli.media.discovery import Candidate, classify, discover, output_bases
from softpool_cli.main import cli
from softpool_cli.gallery.markdown import GalleryEntry, GallerySettings, render_readme
from softpool_cli.gallery.metrics import ClipScorer, Scores, image_scores

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


# ----------------------------------------------------------------------- discovery


class TestDiscovery:
    def test_kinds_by_content_not_extension(self, sources):
        assert classify(sources / "photo.png") == "image"
        assert classify(sources / "sub" / "jpeg_inside.dat") == "image"  # a JPEG without .jpg
        assert classify(sources / "loop.gif") == "clip"  # animated
        assert classify(sources / "movie.bin") == "clip"  # an MP4 named .bin
        assert classify(sources / "notes.txt") is None

    def test_still_gif_is_an_image_and_animated_png_a_clip(self, tmp_path):
        Image.fromarray(smooth_image(8, 8, 0)).save(tmp_path / "still.gif")
        frames = [Image.fromarray(frame) for frame in few_colour_frames(3, 8, 8, 0)]
        frames[0].save(tmp_path / "moving.png", save_all=True, append_images=frames[1:], duration=100)
        assert classify(tmp_path / "still.gif") == "image"
        assert classify(tmp_path / "moving.png") == "clip"

    def test_damaged_file_with_media_extension_is_kept_to_be_reported(self, tmp_path):
        (tmp_path / "broken.jpg").write_bytes(b"this is no JPEG")
        (tmp_path / "empty.mp4").write_bytes(b"")
        assert classify(tmp_path / "broken.jpg") == "image"
        assert classify(tmp_path / "empty.mp4") == "clip"

    def test_recursive_sorted_without_hidden_text_or_output_folder(self, sources):
        out = sources / "gallery"  # an output folder inside the source folder
        out.mkdir()
        Image.fromarray(smooth_image(8, 8, 0)).save(out / "old_soft.png")
        found = discover([sources], out)
        assert [candidate.name for candidate in found] == ["loop.gif", "movie.bin", "photo.png", "sub/jpeg_inside.dat"]
        assert [candidate.kind for candidate in found] == ["clip", "clip", "image", "image"]

    def test_explicit_file_that_is_not_media_is_a_candidate_to_report(self, sources, tmp_path):
        found = discover([sources / "notes.txt", sources / "photo.png"], tmp_path / "out")
        assert [(candidate.name, candidate.kind) for candidate in found] == [("notes.txt", None), ("photo.png", "image")]

    def test_output_names_are_distinct(self, tmp_path):
        names = ["a.jpg", "a.png", "b.gif", "x/a.jpg"]
        bases = output_bases([Candidate(tmp_path / name, name, "image") for name in names])
        assert bases == ["a_jpg", "a_png", "b", "x/a"]
        same = output_bases([Candidate(tmp_path / "a.jpg", "a.jpg", "image")] * 2)
        assert len(set(same)) == 2


# ------------------------------------------------------------------------ the run


class TestGallery:
    def test_outputs_readme_and_links(self, sources, tmp_path):
        out = tmp_path / "gallery"
        result = run(sources, "--out", out, "--jobs", 1)
        assert result.exit_code == 0, result.output
        assert summary(result) == (4, 0, 0)
        readme = (out / "README.md").read_text()

        images, clips, metrics = strict_tables(readme)
        assert [cell.replace("\\", "") for cell in images[0][1:]] == ["photo.png", "sub/jpeg_inside.dat"]
        assert [cell.replace("\\", "") for cell in clips[0][1:]] == ["loop.gif", "movie.bin"]
        for table in (images, clips):
            assert [row[0] for row in table[1:]] == ["Original", "SoftPool", "Max pool", "Avg pool", "Side by side"]
            for row in table[1:5]:
                for cell in row[1:]:
                    (tag,) = images_in(cell)
                    assert tag["width"] == "130"
                    assert (out / tag["src"]).is_file(), tag["src"]
            for cell in table[5][1:]:
                link = re.fullmatch(r"\[compare\]\((.+)\)", cell).group(1)
                assert (out / link).is_file()
        # Clips are shown as GIFs; the MP4's original gets a GIF copy, the GIF is linked as it is.
        assert images_in(clips[1][2])[0]["src"] == "movie_original.gif"
        assert images_in(clips[1][1])[0]["src"] == "../src/loop.gif"
        assert all(images_in(cell)[0]["src"].endswith(".gif") for row in clips[2:5] for cell in row[1:])
        assert [row[0].replace("\\", "") for row in metrics[1:]] == [
            "photo.png", "sub/jpeg_inside.dat", "loop.gif", "movie.bin", "**Mean**",
        ]
        # Formats: a PNG stays PNG, the JPEG (named .dat) gives JPEG, clips GIF.
        assert Image.open(out / "photo_soft.png").format == "PNG"
        assert Image.open(out / "sub" / "jpeg_inside_soft.jpg").format == "JPEG"
        assert Image.open(out / "movie_soft.gif").format == "GIF"
        assert not list(out.rglob(".*.tmp*"))

    def test_readme_renders_as_github_renders_it(self, sources, tmp_path):
        out = tmp_path / "gallery"
        assert run(sources, "--out", out, "--jobs", 1, "--width", 90).exit_code == 0
        tables = rendered_tables((out / "README.md").read_text())
        assert len(tables) == 3
        images, clips, metrics = tables
        assert [text for text, _ in images[0][1:]] == ["photo.png", "sub/jpeg_inside.dat"]
        for table in (images, clips):
            for row in table[1:5]:
                for _, tags in row[1:]:
                    assert len(tags) == 1 and tags[0]["width"] == "90"
                    assert (out / tags[0]["src"]).is_file()
        assert [row[0][0] for row in metrics[1:]] == ["photo.png", "sub/jpeg_inside.dat", "loop.gif", "movie.bin", "Mean"]
        assert all(len(row) == 7 for row in metrics)

    def test_awkward_names_cannot_break_the_tables(self, tmp_path):
        name = "a|b *c* <d> & [e](f) `g`.png"
        entry = GalleryEntry(name, "image", f"x/{name}", {"soft": "s p.png"}, "c#1.png", {"soft": Scores(30.0, 0.9)})
        readme = render_readme([entry], GallerySettings(2, ("soft",), 130, "0"))
        images, metrics = strict_tables(readme)
        assert len(images[0]) == 2 and len(metrics[1]) == 3
        assert images_in(images[1][1])[0]["src"] == "x/a%7Cb%20%2Ac%2A%20%3Cd%3E%20%26%20%5Be%5D%28f%29%20%60g%60.png"
        rendered_images, rendered_metrics = rendered_tables(readme)
        assert rendered_images[0][1][0] == name
        assert rendered_metrics[1][0][0] == name

    def test_images_are_what_softpool_downsample_writes(self, sources, tmp_path):
        out = tmp_path / "gallery"
        assert run(sources, "--out", out, "--jobs", 1).exit_code == 0
        source = sources / "photo.png"
        for method in ("soft", "max", "avg"):
            expected = tmp_path / f"expected_{method}.png"
            assert CliRunner().invoke(cli, ["downsample", str(source), str(expected), "--method", method, "-q"]).exit_code == 0
            assert (out / f"photo_{method}.png").read_bytes() == expected.read_bytes()
        comparison = tmp_path / "expected_compare.png"
        CliRunner().invoke(cli, ["downsample", str(source), str(tmp_path / "x.png"), "--compare", str(comparison), "-q"])
        assert (out / "photo_compare.png").read_bytes() == comparison.read_bytes()

    def test_clips_are_what_softpool_video_writes(self, sources, tmp_path):
        out = tmp_path / "gallery"
        assert run(sources / "movie.bin", "--out", out, "--jobs", 1).exit_code == 0
        for method in ("soft", "max", "avg"):
            expected = tmp_path / f"expected_{method}.gif"
            arguments = ["video", str(sources / "movie.bin"), str(expected), "--method", method, "-q"]
            if method == "soft":
                arguments += ["--compare", str(tmp_path / "expected_compare.mp4")]
            assert CliRunner().invoke(cli, arguments).exit_code == 0
            assert (out / f"movie_{method}.gif").read_bytes() == expected.read_bytes()
        # The comparison is linked, not shown inline: an MP4, as `softpool video --compare x.mp4` writes it.
        assert (out / "movie_compare.mp4").read_bytes() == (tmp_path / "expected_compare.mp4").read_bytes()
        np.testing.assert_array_equal(read_gif_frames(out / "movie_original.gif"), read_mp4_frames(sources / "movie.bin"))

    def test_subset_of_methods(self, sources, tmp_path):
        out = tmp_path / "gallery"
        assert run(sources / "photo.png", sources / "loop.gif", "--out", out, "--methods", "avg,soft", "--jobs", 1).exit_code == 0
        images, clips, metrics = strict_tables((out / "README.md").read_text())
        assert [row[0] for row in images[1:]] == ["Original", "Avg pool", "SoftPool", "Side by side"]
        assert metrics[0][1:] == ["Avg pool PSNR (dB)", "Avg pool SSIM", "SoftPool PSNR (dB)", "SoftPool SSIM"]
        assert not (out / "photo_max.png").exists()

    def test_output_folder_cannot_be_the_source_folder(self, sources):
        result = run(sources, "--out", sources)
        assert result.exit_code == 2
        assert "is the SRC folder" in result.output

    def test_bad_methods_is_a_usage_error(self, sources, tmp_path):
        result = run(sources, "--out", tmp_path / "g", "--methods", "soft,median")
        assert result.exit_code == 2
        assert "median" in result.output


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


# ---------------------------------------------------- parallel and incremental runs


class TestReruns:
    def test_two_jobs_give_the_same_gallery(self, sources, tmp_path):
        (sources / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n cut short")  # a failure in a worker too
        one, two = tmp_path / "one", tmp_path / "two"
        assert run(sources, "--out", one, "--jobs", 1).exit_code == 1
        result = run(sources, "--out", two, "--jobs", 2)
        assert result.exit_code == 1, result.output
        assert summary(result) == (5, 1, 0)
        assert "broken.png: " in result.stderr

        def made(folder: Path) -> list[Path]:
            return sorted(path.relative_to(folder) for path in folder.rglob("*") if path.is_file())

        assert made(one) == made(two)
        for path in made(one):
            if path.name != ".softpool-gallery.json":  # it holds the modification times
                assert (one / path).read_bytes() == (two / path).read_bytes(), path

    def test_rerun_skips_up_to_date_and_redoes_what_changed(self, sources, tmp_path):
        out = tmp_path / "gallery"
        assert run(sources, "--out", out, "--jobs", 1).exit_code == 0
        stamps = {path: path.stat().st_mtime_ns for path in out.rglob("*_*.*")}

        again = run(sources, "--out", out, "--jobs", 1)
        assert summary(again) == (4, 0, 4)
        assert {path: path.stat().st_mtime_ns for path in stamps} == stamps

        # Same content, new modification time: the content hash says it is up to date.
        os.utime(sources / "photo.png", ns=(1, 1))
        assert summary(run(sources, "--out", out, "--jobs", 1)) == (4, 0, 4)

        # New content: only that input is redone.
        Image.fromarray(smooth_image(20, 26, seed=9)).save(sources / "photo.png")
        assert summary(run(sources, "--out", out, "--jobs", 1)) == (4, 0, 3)
        assert (out / "photo_soft.png").stat().st_mtime_ns != stamps[out / "photo_soft.png"]
        assert (out / "loop_soft.gif").stat().st_mtime_ns == stamps[out / "loop_soft.gif"]

        # A deleted output is made again.
        (out / "loop_max.gif").unlink()
        assert summary(run(sources, "--out", out, "--jobs", 1)) == (4, 0, 3)
        assert (out / "loop_max.gif").is_file()

    def test_settings_and_force_invalidate(self, sources, tmp_path):
        out = tmp_path / "gallery"
        photo = sources / "photo.png"
        assert run(photo, "--out", out, "--jobs", 1).exit_code == 0
        assert summary(run(photo, "--out", out, "--jobs", 1, "--width", 200)) == (1, 0, 1)  # README only
        assert 'width="200"' in (out / "README.md").read_text()
        result = run(photo, "--out", out, "--jobs", 1, "--factor", 3)
        assert summary(result) == (1, 0, 0)
        assert Image.open(out / "photo_soft.png").size == (26 // 3, 20 // 3)
        assert summary(run(photo, "--out", out, "--jobs", 1, "--factor", 3, "--force")) == (1, 0, 0)


# ------------------------------------------------------------------------ failures


class TestFailures:
    def test_corrupt_file_is_reported_and_the_rest_completes(self, sources, tmp_path):
        (sources / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
        (sources / "cut.gif").write_bytes((sources / "loop.gif").read_bytes()[:200])
        out = tmp_path / "gallery"
        result = run(sources, "--out", out, "--jobs", 1)
        assert result.exit_code == 1
        assert summary(result) == (6, 2, 0)
        errors = [line for line in result.stderr.splitlines() if line.startswith("Error: ")]
        assert len(errors) == 2
        assert any("broken.jpg: " in line for line in errors) and any("cut.gif: " in line for line in errors)
        readme = (out / "README.md").read_text()
        tables, not_included = readme.split("## Not included")
        assert "broken" not in tables and "cut" not in tables
        assert "broken.jpg" in not_included and "cut.gif" in not_included
        assert [row[0].replace("\\", "") for row in strict_tables(readme)[-1][1:-1]] == [
            "photo.png", "sub/jpeg_inside.dat", "loop.gif", "movie.bin",
        ]
        assert not list(out.glob("broken*")) and not list(out.glob("cut*"))
        assert not list(out.rglob(".*.tmp*"))

    def test_nothing_to_do_is_an_error(self, tmp_path):
        (tmp_path / "empty").mkdir()
        result = run(tmp_path / "empty", "--out", tmp_path / "gallery")
        assert result.exit_code == 1
        assert "no images or clips found" in result.output

    def test_ctrl_c_while_writing_leaves_no_partial_files(self, sources, tmp_path, monkeypatch):
        from softpool_cli.media import clip_write as clips

        out = tmp_path / "gallery"
        original_write = clips.GifWriter.write
        calls = {"count": 0}

        def interrupted_write(self, chunk):
            calls["count"] += 1
            if calls["count"] == 3:  # the third GIF of the first clip, mid-way through its outputs
                raise KeyboardInterrupt
            original_write(self, chunk)

        monkeypatch.setattr(clips.GifWriter, "write", interrupted_write)
        result = CliRunner().invoke(cli, ["gallery", str(sources), "--out", str(out), "--jobs", "1"])
        assert result.exit_code == 130
        assert "Interrupted" in result.output
        left = sorted(path.name for path in out.rglob("*") if path.is_file())
        assert left == [], left  # the first input in order is a clip: nothing of it, no temporary file

        monkeypatch.setattr(clips.GifWriter, "write", original_write)
        result = run(sources, "--out", out, "--jobs", 1)
        assert summary(result) == (4, 0, 0)

    def test_ctrl_c_after_some_files_keeps_them_for_the_next_run(self, sources, tmp_path, monkeypatch):
        from softpool_cli.gallery import jobs as gallery_jobs

        out = tmp_path / "gallery"
        original_make_image = gallery_jobs._make_image

        def interrupted(job):
            raise KeyboardInterrupt

        monkeypatch.setattr(gallery_jobs, "_make_image", interrupted)
        result = CliRunner().invoke(cli, ["gallery", str(sources), "--out", str(out), "--jobs", "1"])
        assert result.exit_code == 130
        assert not (out / "README.md").exists()
        assert not list(out.rglob(".*.tmp*"))
        monkeypatch.setattr(gallery_jobs, "_make_image", original_make_image)
        assert summary(run(sources, "--out", out, "--jobs", 1)) == (4, 0, 2)  # the two clips were done


def test_help_does_not_import_torch():
    import subprocess
    import sys

    code = (
        "import sys; from click.testing import CliRunner; from softpool_cli.main import cli; "
        "r = CliRunner().invoke(cli, ['gallery', '--help']); assert r.exit_code == 0, r.output; "
        "assert '--factor' in r.output; assert 'torch' not in sys.modules, 'torch imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
