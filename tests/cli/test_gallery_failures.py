"""`softpool gallery` when files fail: the others complete, README.md names the inputs it
could not include, each with its one-line reason, besides reporting them on stderr; Ctrl-C
leaves no partial files and keeps finished ones for the next run."""

from __future__ import annotations

import cmarkgfm
from click.testing import CliRunner

from softpool_cli.gallery.markdown import GalleryFailure, failures_list
from softpool_cli.main import cli

from helpers.cli import gallery
from helpers.clips import frames_of, write_gif
from helpers.gallery import run, sources, strict_tables, summary
from helpers.images import photo, write_cv2


def not_included(readme: str) -> list[str]:
    """The bullets of README.md's "Not included" section."""
    section = readme.split("## Not included\n", 1)[1]
    return [line[2:] for line in section.splitlines() if line.startswith("- ")]


def test_failed_inputs_are_listed_with_their_reasons(tmp_path):
    source = tmp_path / "src"
    source.mkdir()
    write_cv2(source / "good.png", photo(16, 16))
    write_gif(source / "loop.gif", frames_of(4, 8, 8), [50] * 4)
    (source / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    (source / "tiny.png").write_bytes(b"")  # unreadable as well
    result = gallery(source, "--out", tmp_path / "out", "--jobs", 1)
    assert result.exit_code == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error: ")]
    readme = (tmp_path / "out" / "README.md").read_text()
    bullets = not_included(readme)
    assert [bullet.split(":", 1)[0] for bullet in bullets] == ["broken.jpg", "tiny.png"]
    for bullet, error in zip(bullets, errors):
        reason = bullet.split(": ", 1)[1]
        assert reason and "\n" not in reason
        assert error.endswith(reason.replace("\\", "")), (bullet, error)  # the reason stderr gave
        assert str(tmp_path) not in bullet  # names as in the tables, not paths on this machine
    tables = readme.split("## Not included")[0]
    assert "good.png" in tables and "loop.gif" in tables and "broken" not in tables


def test_a_gallery_where_everything_failed(tmp_path):
    (tmp_path / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    result = gallery(tmp_path / "bad.png", "--out", tmp_path / "out")
    assert result.exit_code == 1
    readme = (tmp_path / "out" / "README.md").read_text()
    assert "No input was pooled successfully." in readme
    assert [bullet.split(":", 1)[0] for bullet in not_included(readme)] == ["bad.png"]


def test_no_failures_no_section(tmp_path):
    write_cv2(tmp_path / "good.png", photo(16, 16))
    assert gallery(tmp_path / "good.png", "--out", tmp_path / "out").exit_code == 0
    assert "Not included" not in (tmp_path / "out" / "README.md").read_text()


def test_names_and_reasons_cannot_break_the_markdown():
    lines = failures_list([GalleryFailure("a|b*<c>.png", "bad [link](x) | `code`\nsecond line")])
    html = cmarkgfm.github_flavored_markdown_to_html("\n".join(lines))
    assert "<li>a|b*&lt;c&gt;.png: bad [link](x) | `code`</li>" in html
    assert "second line" not in html


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
