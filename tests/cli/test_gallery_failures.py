"""`softpool gallery` names the inputs it could not include in README.md, each with its
one-line reason, besides reporting them on stderr."""

from __future__ import annotations


import cmarkgfm

from helpers.cli import gallery
from helpers.clips import frames_of, write_gif
from helpers.images import photo, write_cv2
from softpool_cli.gallery.markdown import GalleryFailure, failures_list


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
