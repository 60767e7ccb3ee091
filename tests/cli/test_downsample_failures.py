"""`softpool downsample` on bad inputs and outputs: one line naming the file, exit code 1,
nothing written or changed; usage errors; and the command group (help, version).
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from softpool_cli.media import files
from softpool_cli.errors import MediaError
from softpool_cli.main import cli

from helpers.cli import assert_fails_cleanly, snapshot
from helpers.cli import downsample as run
from helpers.images import photo, read_cv2, write_cv2


# ---------------------------------------------------------------- bad input, nothing lost


def animated_gif(path: Path) -> Path:
    frames = [Image.fromarray(photo(8, 8, seed=seed)).convert("P") for seed in range(3)]
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=100, loop=0)
    return path


def tiny_mp4(path: Path) -> Path:
    import av

    with av.open(str(path), "w", format="mp4") as container:
        stream = container.add_stream("mpeg4", rate=10)
        stream.width, stream.height, stream.pix_fmt = 16, 16, "yuv420p"
        for seed in range(3):
            frame = av.VideoFrame.from_ndarray(photo(16, 16, seed=seed), format="rgb24")
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return path


def float_tiff(path: Path) -> Path:
    Image.fromarray(np.zeros((8, 8), np.float32)).save(path)
    return path


def written(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def animated_png(path: Path, text_bytes: int = 0) -> Path:
    """An APNG; with ``text_bytes``, a text chunk that long before the animation chunk, so that
    the animation is found by walking the chunks, not in the file's first bytes."""
    frames = [Image.fromarray(photo(8, 8, seed=seed)) for seed in range(3)]
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=100, loop=0)
    if text_bytes:
        data = path.read_bytes()
        assert data[12:16] == b"IHDR"
        ihdr_end = 8 + 12 + 13
        body = b"Comment\0" + b"x" * text_bytes
        chunk = len(body).to_bytes(4, "big") + b"tEXt" + body + zlib.crc32(b"tEXt" + body).to_bytes(4, "big")
        path.write_bytes(data[:ihdr_end] + chunk + data[ihdr_end:])
    return path


def truncated(path: Path, suffix: str) -> Path:
    write_cv2(path.with_suffix(suffix), photo(32, 32))
    data = path.with_suffix(suffix).read_bytes()
    path.with_suffix(suffix).unlink()
    path.write_bytes(data[: len(data) * 2 // 3])
    return path


@pytest.mark.parametrize(
    ("make_input", "message"),
    [
        (lambda d: d / "missing.png", "no such file"),
        (lambda d: written(d / "empty.png", b""), "empty"),
        (lambda d: truncated(d / "cut.png", ".png"), "truncated"),
        (lambda d: truncated(d / "cut.jpg", ".jpg"), "truncated"),
        (lambda d: written(d / "notes.jpg", b"not an image"), "not an image"),
        (lambda d: animated_gif(d / "anim.gif"), "softpool video"),
        (lambda d: animated_png(d / "anim.png"), "an animated PNG"),
        (lambda d: animated_png(d / "anim.png", text_bytes=70_000), "an animated PNG"),
        (lambda d: tiny_mp4(d / "clip.png"), "softpool video"),  # a video whatever its name
        (lambda d: (d / "folder.png").mkdir() or d / "folder.png", "directory"),
        (lambda d: float_tiff(d / "float.tif"), "not supported"),
    ],
    ids=["missing", "empty", "truncated-png", "truncated-jpeg", "text", "animated-gif", "animated-png",
         "animated-png-late-chunk", "video", "directory", "float"],
)
def test_bad_inputs(tmp_path, make_input, message):
    source = make_input(tmp_path)
    before = snapshot(tmp_path)
    result = run(source, tmp_path / "out.png", "--compare", tmp_path / "cmp.png")
    assert_fails_cleanly(result, tmp_path, before, source.name)
    assert message in result.stderr


def test_a_still_png_with_the_letters_of_an_animation_chunk_in_its_text(tmp_path):
    """Only chunk types count: "acTL" inside a chunk's data is not an animation."""
    from PIL import PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add_text("Comment", "acTL acTL")
    source = tmp_path / "still.png"
    Image.fromarray(photo(8, 8)).save(source, pnginfo=info)
    assert b"acTL" in source.read_bytes()
    assert run(source, tmp_path / "out.png").exit_code == 0


def test_a_file_name_with_brackets(tmp_path):
    """A name that looks like libvips's "name[options]" is just a name."""
    source = write_cv2(tmp_path / "photo[page=1].png", photo(8, 8))
    result = run(source, tmp_path / "out[2].png")
    assert result.exit_code == 0, result.stderr
    assert read_cv2(tmp_path / "out[2].png").shape == (4, 4, 3)


def test_a_failure_while_pooling_stops_the_decoder(tmp_path, monkeypatch):
    """The strips are decoded ahead in a thread: a failure in the pooling step stops it, and
    the command waits for it before unwinding."""
    from softpool_cli.pipeline import image as image_pipeline
    from softpool_cli.pixels import engine

    source = write_cv2(tmp_path / "tall.png", photo(4000, 64))
    monkeypatch.setattr(image_pipeline, "STRIP_BYTES", 64 * 3 * 16)  # 16 rows a strip: 250 strips
    calls = []

    def failing_pool(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise MediaError(source, "pooling failed on purpose")
        return real_pool(*args, **kwargs)

    real_pool = engine.pool
    monkeypatch.setattr(engine, "pool", failing_pool)
    before = snapshot(tmp_path)
    result = run(source, tmp_path / "out.png")
    assert_fails_cleanly(result, tmp_path, before, "tall.png", "pooling failed on purpose")
    assert len(calls) == 3
    assert [t.name for t in threading.enumerate() if t.name == "decode"] == []


def test_pixel_limit(tmp_path):
    source = write_cv2(tmp_path / "in.png", photo(20, 30))
    before = snapshot(tmp_path)
    result = run(source, tmp_path / "out.png", "--max-pixels", 599)
    assert_fails_cleanly(result, tmp_path, before, "in.png", "over the limit")
    result = run(source, tmp_path / "out.png", env={"SOFTPOOL_MAX_PIXELS": "100"})
    assert_fails_cleanly(result, tmp_path, before, "in.png", "over the limit")
    assert run(source, tmp_path / "out.png", "--max-pixels", 600).exit_code == 0


def test_kernel_larger_than_image(tmp_path):
    source = write_cv2(tmp_path / "in.png", photo(5, 9))
    before = snapshot(tmp_path)
    result = run(source, tmp_path / "out.png", "--factor", 6)
    assert_fails_cleanly(result, tmp_path, before, "in.png", "smaller than the 6x6 window")


@pytest.mark.parametrize("name", ["out.gif", "out.xyz", "out"])
def test_unsupported_output_extension(tmp_path, name):
    source = write_cv2(tmp_path / "in.png", photo(8, 8))
    before = snapshot(tmp_path)
    assert_fails_cleanly(run(source, tmp_path / name), tmp_path, before, name, "unsupported output format")


def test_unwritable_output_directory(tmp_path):
    source = write_cv2(tmp_path / "in.png", photo(8, 8))
    before = snapshot(tmp_path)
    result = run(source, tmp_path / "nowhere" / "out.png")
    assert_fails_cleanly(result, tmp_path, before, "out.png", "does not exist")
    result = run(source, tmp_path / "in.png" / "out.png")
    assert_fails_cleanly(result, tmp_path, before, "out.png", "not a directory")


def test_read_only_output_directory(tmp_path, monkeypatch):
    source = write_cv2(tmp_path / "in.png", photo(8, 8))
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    if os.name == "posix" and os.geteuid() == 0:
        # Permissions do not bind root: let the access check see the directory as others would.
        real_access = os.access

        def access(path, mode: int) -> bool:
            return real_access(path, mode) and not (Path(path) == locked and mode & os.W_OK)

        monkeypatch.setattr(files.os, "access", access)
    try:
        before = snapshot(tmp_path)
        assert_fails_cleanly(run(source, locked / "out.png"), tmp_path, before, "out.png", "not writable")
    finally:
        locked.chmod(0o700)


def test_output_equal_to_input_is_refused(tmp_path):
    source = write_cv2(tmp_path / "in.png", photo(8, 8))
    (tmp_path / "sub").mkdir()
    (tmp_path / "link.png").symlink_to(source)
    before = snapshot(tmp_path)
    for output in [source, tmp_path / "sub" / ".." / "in.png", tmp_path / "link.png"]:
        for extra in ([], ["--overwrite"]):
            result = run(source, output, *extra)
            assert_fails_cleanly(result, tmp_path, before, "is the input file")
    result = run(source, tmp_path / "out.png", "--compare", tmp_path / "in.png", "--overwrite")
    assert_fails_cleanly(result, tmp_path, before, "is the input file")


def test_existing_output_needs_overwrite(tmp_path):
    source = write_cv2(tmp_path / "in.png", photo(8, 8))
    (tmp_path / "out.png").write_bytes(b"keep me")
    before = snapshot(tmp_path)
    result = run(source, tmp_path / "out.png")
    assert_fails_cleanly(result, tmp_path, before, "out.png", "--overwrite")
    assert run(source, tmp_path / "out.png", "--overwrite").exit_code == 0
    assert read_cv2(tmp_path / "out.png").shape == (4, 4, 3)


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA GPU is present")
def test_cuda_without_gpu(tmp_path):
    source = write_cv2(tmp_path / "in.png", photo(8, 8))
    before = snapshot(tmp_path)
    assert_fails_cleanly(run(source, tmp_path / "out.png", "--device", "cuda"), tmp_path, before, "no CUDA GPU")


@pytest.mark.parametrize(
    "args",
    [["--factor", "2", "--kernel", "3"], ["--stride", "2"], ["--kernel", "2x"], ["--beta", "-1"], ["--beta", "inf"],
     ["--factor", "0"], ["--method", "median"]],
)
def test_usage_errors_exit_2(tmp_path, args):
    source = write_cv2(tmp_path / "in.png", photo(8, 8))
    before = snapshot(tmp_path)
    result = run(source, tmp_path / "out.png", *args)
    assert result.exit_code == 2, result.output
    assert snapshot(tmp_path) == before


def test_failure_while_writing_leaves_nothing(tmp_path, monkeypatch):
    source = write_cv2(tmp_path / "in.png", photo(8, 8))
    before = snapshot(tmp_path)
    real_write = Path.write_bytes

    def write_half_then_fail(self: Path, data: bytes) -> int:
        real_write(self, data[: len(data) // 2])
        if self.name.startswith(".cmp.png"):
            raise OSError(28, "No space left on device")
        return len(data)

    monkeypatch.setattr(Path, "write_bytes", write_half_then_fail)
    result = run(source, tmp_path / "out.png", "--compare", tmp_path / "cmp.png")
    assert_fails_cleanly(result, tmp_path, before, "cmp.png", "No space left")


def test_interrupt_inside_atomic_outputs_removes_temporaries(tmp_path):
    targets = (tmp_path / "a.png", tmp_path / "b.mp4")
    with pytest.raises(KeyboardInterrupt):
        with files.atomic_outputs(*targets) as temporaries:
            assert [t.suffix for t in temporaries] == [".png", ".mp4"]  # encoders see the format
            for temporary in temporaries:
                temporary.write_bytes(b"partial")
            raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []


def test_atomic_outputs_refuses_a_file_that_appeared(tmp_path):
    target = tmp_path / "out.png"
    with pytest.raises(MediaError, match="already exists"):
        with files.atomic_outputs(target) as (temporary,):
            temporary.write_bytes(b"new")
            target.write_bytes(b"someone else's")
    assert target.read_bytes() == b"someone else's"
    assert [p.name for p in tmp_path.iterdir()] == ["out.png"]


def test_debug_shows_the_traceback(tmp_path):
    result = run(tmp_path / "missing.png", tmp_path / "out.png", "--debug")
    assert isinstance(result.exception, MediaError)


# ---------------------------------------------------------------- the command group


def test_help_does_not_import_heavy_modules():
    code = (
        "import sys\n"
        "from softpool_cli.main import cli\n"
        "for args in (['--help'], ['downsample', '--help']):\n"
        "    try:\n"
        "        cli(args)\n"
        "    except SystemExit as exit:\n"
        "        assert exit.code == 0, exit.code\n"
        "heavy = {'torch', 'numpy', 'cv2', 'PIL'} & set(sys.modules)\n"
        "assert not heavy, heavy\n"
    )
    completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert completed.returncode == 0, completed.stderr
    assert "downsample" in completed.stdout and "video" in completed.stdout and "gallery" in completed.stdout


def test_version():
    result = CliRunner().invoke(cli, ["--version"])
    assert result.exit_code == 0
    from softpool_cli import __version__

    assert result.stdout.strip() == f"softpool {__version__}"


def test_a_command_whose_module_is_missing(monkeypatch):
    monkeypatch.setitem(cli.lazy_commands, "ghost", ("softpool_cli.ghost:ghost", "Not installed here."))
    listing = CliRunner().invoke(cli, ["--help"])
    assert listing.exit_code == 0 and "Not installed here." in listing.stdout
    result = CliRunner().invoke(cli, ["ghost"])
    assert result.exit_code == 2
    assert "'ghost' command is not available" in result.stderr
