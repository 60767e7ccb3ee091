"""`softpool gallery` run again, in parallel and incrementally: what is up to date is
skipped, what changed is redone; and --help imports no PyTorch.
"""

from __future__ import annotations

import os
from pathlib import Path

from PIL import Image


from helpers.gallery import run, smooth_image, sources, summary


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


def test_help_does_not_import_torch():
    import subprocess
    import sys

    code = (
        "import sys; from click.testing import CliRunner; from softpool_cli.main import cli; "
        "r = CliRunner().invoke(cli, ['gallery', '--help']); assert r.exit_code == 0, r.output; "
        "assert '--factor' in r.output; assert 'torch' not in sys.modules, 'torch imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
