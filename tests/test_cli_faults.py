"""Faults: signals to each command, killed runs, full disks, oversized clips, damaged files.

Each command runs as a process of its own, in a session of its own, so that the tests can
tell whether anything it started outlived it (an orphaned worker keeps the session's id).
"""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import av
import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from softpool_cli.main import cli

SOFTPOOL = [sys.executable, "-m", "softpool_cli.main"]


def write_image(path: Path, height: int, width: int, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8)).save(path)
    return path


def write_mp4(path: Path, frames: int, height: int, width: int, fps: int = 30) -> Path:
    rng = np.random.default_rng(1)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"preset": "ultrafast"}
        base = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
        for index in range(frames):
            frame = av.VideoFrame.from_ndarray(np.roll(base, index, axis=1), format="rgb24")
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return path


def write_gif(path: Path, frames: list[np.ndarray], duration_ms: int = 100) -> Path:
    images = [Image.fromarray(frame) for frame in frames]
    images[0].save(path, save_all=True, append_images=images[1:], duration=duration_ms, loop=0)
    return path


def temporaries(folder: Path) -> list[str]:
    return sorted(entry.name for entry in folder.rglob("*") if ".tmp" in entry.name)


def start(*arguments: object, cwd: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [*SOFTPOOL, *map(str, arguments)], cwd=cwd, start_new_session=True,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def wait_until(process: subprocess.Popen, predicate, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if process.poll() is not None:
            raise AssertionError(f"the command ended before the signal: {process.communicate()[1]}")
        assert time.monotonic() < deadline, "the command never got going"
        time.sleep(0.05)


def session_is_gone(process: subprocess.Popen, timeout: float = 20.0) -> bool:
    """Whether every process of the command's session has ended (none orphaned)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.killpg(process.pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.1)
    os.killpg(process.pid, signal.SIGKILL)  # leave nothing behind for the next test
    return False


# Each command, on inputs that keep it busy for a few seconds on two cores, and what shows
# that it is at work (then the signal comes mid-run).
def _video(tmp: Path) -> tuple[list, Path]:
    write_mp4(tmp / "in.mp4", 150, 240, 320)
    return ["video", "in.mp4", "out/out.mp4", "--compare", "out/compare.mp4"], tmp / "out"


def _downsample(tmp: Path) -> tuple[list, Path]:
    (tmp / "in").mkdir()
    for index in range(40):
        write_image(tmp / "in" / f"{index:02}.png", 600, 800, seed=index)
    return ["downsample", "in", "--recursive", "-o", "out"], tmp / "out"


def _gallery(tmp: Path) -> tuple[list, Path]:
    (tmp / "in").mkdir()
    for index in range(6):
        write_image(tmp / "in" / f"{index}.png", 400, 600, seed=index)
    write_mp4(tmp / "in" / "clip.mp4", 40, 96, 128)
    return ["gallery", "in", "--out", "out", "--jobs", "2"], tmp / "out"


def _batch(tmp: Path) -> tuple[list, Path]:
    (tmp / "in").mkdir()
    for index in range(60):
        write_image(tmp / "in" / f"{index:02}.png", 400, 600, seed=index)
    return ["batch", "in", "out", "--jobs", "2", "--quiet"], tmp / "out"


COMMANDS = {"video": _video, "downsample": _downsample, "gallery": _gallery, "batch": _batch}


def _busy(out: Path) -> bool:
    return out.is_dir() and any(out.rglob("*"))


@pytest.mark.parametrize("name", COMMANDS)
@pytest.mark.parametrize("signum, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)], ids=["SIGINT", "SIGTERM"])
def test_a_signal_to_the_command_stops_it_cleanly(tmp_path, name, signum, code):
    arguments, out = COMMANDS[name](tmp_path)
    if name == "video":
        out.mkdir()
    process = start(*arguments, cwd=tmp_path)
    wait_until(process, lambda: _busy(out) if name != "video" else bool(temporaries(out)))
    process.send_signal(signum)  # to the command alone, not its session (`kill PID`)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == code, stderr
    assert "Traceback" not in stderr
    assert session_is_gone(process), "processes outlived the command"
    assert temporaries(tmp_path) == []


@pytest.mark.parametrize("name", COMMANDS)
def test_a_killed_run_leaves_nothing_after_the_next_one(tmp_path, name):
    arguments, out = COMMANDS[name](tmp_path)
    if name == "video":
        out.mkdir()
    process = start(*arguments, cwd=tmp_path)
    wait_until(process, lambda: bool(temporaries(out)) if name == "video" else _busy(out))
    os.killpg(process.pid, signal.SIGKILL)  # the machine going down, as far as the files can tell
    process.communicate(timeout=60)
    rerun = [*arguments, "--overwrite"] if name in ("video", "downsample") else arguments
    result = subprocess.run([*SOFTPOOL, *rerun], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert temporaries(tmp_path) == []


def test_a_signal_lost_in_a_callback_from_c_still_stops_the_command(tmp_path, monkeypatch):
    """Python raises a signal's exception in the next Python code to run; in a callback called
    from C (pyvips logs through one) the exception is printed as "ignored" and lost. The
    command must stop all the same, between files, without that traceback."""
    import ctypes

    from softpool_cli.pipeline import image_job

    compare = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p)

    def interrupted_in_callback(a, b):
        signal.raise_signal(signal.SIGINT)  # the handler's KeyboardInterrupt is raised here
        return 0

    real = image_job.downsample_one

    def downsample_one(task, settings):
        outcome = real(task, settings)
        values = (ctypes.c_int * 2)(2, 1)
        ctypes.CDLL(None).qsort(values, 2, ctypes.sizeof(ctypes.c_int), compare(interrupted_in_callback))
        return outcome

    monkeypatch.setattr(image_job, "downsample_one", downsample_one)
    (tmp_path / "in").mkdir()
    for index in range(3):
        write_image(tmp_path / "in" / f"{index}.png", 20, 30, seed=index)
    result = CliRunner().invoke(cli, ["downsample", str(tmp_path / "in"), "--recursive", "-o", str(tmp_path / "out")])
    assert result.exit_code == 130, result.output
    assert "Interrupted" in result.stderr
    assert "Exception ignored" not in result.stderr
    assert len(list((tmp_path / "out").iterdir())) == 1  # the first file, and no other


def test_stale_temporaries_are_removed_but_live_ones_kept(tmp_path):
    from softpool_cli.media.files import remove_stale_temporaries, temporary_name

    target = tmp_path / "out.mp4"
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = tmp_path / f".out.mp4.{dead.pid}-0badf00d.tmp.mp4"
    live = tmp_path / temporary_name(target, "c0ffee00")
    other = tmp_path / f".other.mp4.{dead.pid}-0badf00d.tmp.mp4"
    for path in (stale, live, other):
        path.write_bytes(b"partial")
    assert remove_stale_temporaries(target) == [stale]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([live.name, other.name])


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc")
def test_a_temporary_of_an_ended_but_uncollected_process_is_stale(tmp_path):
    """A killed run's workers linger as zombies until their new parent collects them; the
    rerun must not take their temporaries for files in use."""
    from softpool_cli.media.files import remove_stale_temporaries

    zombie = subprocess.Popen([sys.executable, "-c", "pass"])
    deadline = time.monotonic() + 30
    while Path(f"/proc/{zombie.pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z":
        assert time.monotonic() < deadline
        time.sleep(0.01)
    target = tmp_path / "out.png"
    stale = tmp_path / f".out.png.{zombie.pid}-0badf00d.tmp.png"
    stale.write_bytes(b"partial")
    try:
        assert remove_stale_temporaries(target) == [stale]
    finally:
        zombie.wait()


def test_video_refuses_oversized_frames_from_the_header(tmp_path):
    # A GIF of four 1x1 frames whose header declares a 12000x12000 screen.
    colours = [np.full((1, 1, 3), (60 * i, 255 - 60 * i, 0), np.uint8) for i in range(4)]
    data = bytearray(write_gif(tmp_path / "small.gif", colours).read_bytes())
    data[6:10] = (12000).to_bytes(2, "little") * 2
    (tmp_path / "bomb.gif").write_bytes(bytes(data))
    started = time.monotonic()
    result = subprocess.run([*SOFTPOOL, "video", "bomb.gif", "out.gif"], cwd=tmp_path,
                            capture_output=True, text=True, timeout=60)  # fmt: skip
    assert time.monotonic() - started < 20
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "Error: bomb.gif: frames are 12000x12000 (144.0 megapixels), over the limit of 50,000,000 pixels "
        "(raise it with --max-pixels or SOFTPOOL_MAX_PIXELS)"
    ]
    assert not (tmp_path / "out.gif").exists()


class _FullDisk:
    """A file that takes ``room`` bytes, then fails as a full disk does (on write or flush)."""

    def __init__(self, file, room: int) -> None:
        self._file, self._room = file, room

    def write(self, data) -> int:
        self._room -= len(data)
        if self._room < 0:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return self._file.write(data)

    def writelines(self, lines) -> None:
        for line in lines:
            self.write(line)

    def close(self) -> None:
        self._file.close()
        if self._room < 0:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


@pytest.mark.parametrize("room", [100, 1000], ids=["header", "frames"])
def test_a_full_disk_while_writing_a_gif_names_the_output(tmp_path, monkeypatch, room):
    import softpool_cli.media.clip_write as clip_write

    frames = [np.random.default_rng(i).integers(0, 256, (32, 48, 3), dtype=np.uint8) for i in range(6)]
    write_gif(tmp_path / "in.gif", frames)
    real_open = open
    monkeypatch.setattr(clip_write, "open", lambda path, mode: _FullDisk(real_open(path, mode), room), raising=False)
    result = CliRunner().invoke(cli, ["video", str(tmp_path / "in.gif"), str(tmp_path / "out.gif")])
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [f"Error: {tmp_path / 'out.gif'}: cannot write: No space left on device"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.gif"]


def test_gallery_redoes_an_input_edited_to_the_same_size(tmp_path):
    (tmp_path / "in").mkdir()
    source = tmp_path / "in" / "a.bmp"  # uncompressed: an edit keeps the byte length
    Image.fromarray(np.random.default_rng(1).integers(0, 256, (64, 96, 3), dtype=np.uint8)).save(source)
    arguments = ["gallery", str(tmp_path / "in"), "--out", str(tmp_path / "out"), "--jobs", "1"]
    assert CliRunner().invoke(cli, arguments).exit_code == 0
    outputs = {path.name: path.read_bytes() for path in (tmp_path / "out").glob("a_*")}
    assert outputs
    data = bytearray(source.read_bytes())
    data[-3000:] = bytes(255 - value for value in data[-3000:])
    status = source.stat()
    source.write_bytes(bytes(data))
    os.utime(source, ns=(status.st_atime_ns, status.st_mtime_ns + 10**9))
    assert source.stat().st_size == status.st_size
    result = CliRunner().invoke(cli, arguments)
    assert result.exit_code == 0
    assert "(0 up to date)" in result.output, result.output
    assert {path.name: path.read_bytes() for path in (tmp_path / "out").glob("a_*")} != outputs


# The decoders' boundary: damaged copies of small valid files. Each run ends with exit 0 and
# an output that decodes, or exit 1 and one line naming the file; never a traceback, a hang
# or a leftover file.


def _valid_file(kind: str, folder: Path) -> Path:
    rng = np.random.default_rng(7)
    if kind in ("jpg", "png"):
        path = folder / f"valid.{kind}"
        Image.fromarray(rng.integers(0, 256, (24, 32, 3), dtype=np.uint8)).save(path)
        return path
    if kind == "gif":
        return write_gif(folder / "valid.gif", [rng.integers(0, 256, (16, 24, 3), dtype=np.uint8) for _ in range(4)])
    return write_mp4(folder / "valid.mp4", 6, 32, 48)


def _damage(data: bytes, cut: float | None, flips: list[tuple[float, int]]) -> bytes:
    damaged = bytearray(data)
    for where, value in flips:
        damaged[int(where * (len(damaged) - 1))] ^= value
    if cut is not None:
        del damaged[int(cut * len(damaged)) :]
    return bytes(damaged)


def _decodes(path: Path, kind: str) -> bool:
    if kind in ("jpg", "png"):
        with Image.open(path) as image:
            image.load()
        return True
    with av.open(str(path)) as container:
        return sum(1 for _ in container.decode(video=0)) > 0


@pytest.fixture(scope="module")
def valid_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("valid")
    return {kind: _valid_file(kind, folder).read_bytes() for kind in ("jpg", "png", "gif", "mp4")}


@pytest.mark.parametrize("kind", ["jpg", "png", "gif", "mp4"])
@settings(max_examples=15, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    cut=st.none() | st.floats(0.0, 0.999),
    flips=st.lists(st.tuples(st.floats(0.0, 1.0), st.integers(1, 255)), max_size=4),
)
def test_damaged_files_fail_in_one_line_or_pool(tmp_path_factory, valid_files, kind, cut, flips):
    folder = tmp_path_factory.mktemp("case")
    source = folder / f"in.{kind}"
    source.write_bytes(_damage(valid_files[kind], cut, flips))
    command = "downsample" if kind in ("jpg", "png") else "video"
    target = folder / f"out.{kind}"
    result = subprocess.run([*SOFTPOOL, command, source.name, target.name, "--quiet"], cwd=folder,
                            capture_output=True, text=True, timeout=60)  # fmt: skip
    assert "Traceback" not in result.stderr, result.stderr
    assert result.returncode in (0, 1), result.stderr
    if result.returncode == 0:
        assert _decodes(target, kind)
        assert sorted(p.name for p in folder.iterdir()) == sorted([source.name, target.name])
    else:
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"Error: {source.name}: "), result.stderr
        assert sorted(p.name for p in folder.iterdir()) == [source.name]
