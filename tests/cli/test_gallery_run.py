"""`softpool gallery` end to end, on tiny images and clips the tests generate: discovery by
content, and the run with its README tables. Gallery outputs are checked against what
`softpool downsample` and `softpool video` write for the same input.
"""

from __future__ import annotations

import re

import numpy as np
from click.testing import CliRunner
from PIL import Image

from softpool_cli.media.discovery import Candidate, classify, discover, output_bases
from softpool_cli.main import cli
from softpool_cli.gallery.markdown import GalleryEntry, GallerySettings, render_readme
from softpool_cli.gallery.metrics import Scores

from helpers.gallery import (
    few_colour_frames,
    images_in,
    read_gif_frames,
    read_mp4_frames,
    rendered_tables,
    run,
    smooth_image,
    sources,
    strict_tables,
    summary,
)


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
