"""``softpool batch``: a tree in, its pooled mirror out, on this machine or on Dask.

Outputs are checked against ``softpool downsample`` / ``softpool video`` run on each file in the
same environment (byte for byte: the same code in the same process writes them), failures
against the report, interruptions and a killed worker against the files left behind.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from softpool_cli.main import cli

RUN_ENV = {**os.environ, "PYTHONUNBUFFERED": "1"}


def photo(height: int, width: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, size=(height // 4 + 1, width // 4 + 1, 3)).astype(np.float64)
    smooth = np.kron(base, np.ones((4, 4, 1)))[:height, :width]
    return np.clip(smooth + rng.normal(0, 8, smooth.shape), 0, 255).astype(np.uint8)


def make_tree(root: Path, images: int = 6) -> Path:
    (root / "sub").mkdir(parents=True)
    for index in range(images):
        folder = root / ("sub" if index % 2 else "")
        Image.fromarray(photo(24, 32, index)).save(folder / f"p{index}.{'png' if index % 3 else 'jpg'}", quality=90)
    frames = [Image.fromarray(photo(16, 20, 50 + i)).quantize(64) for i in range(4)]
    frames[0].save(root / "sub" / "clip.gif", save_all=True, append_images=frames[1:], duration=100, loop=0)
    (root / "notes.txt").write_text("not media, ignored")
    return root


def leftovers(root: Path) -> list[str]:
    """Temporary files anywhere under ``root``."""
    return sorted(str(p) for p in root.rglob("*") if ".tmp" in p.name)


def outputs(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and not p.name.startswith(".") and p.name != "softpool-report.jsonl"
    }


def run(*args) -> object:
    return CliRunner().invoke(cli, ["batch", *map(str, args)])


class TestLocal:
    def test_outputs_are_what_downsample_and_video_write(self, tmp_path):
        source = make_tree(tmp_path / "src")
        result = run(source, tmp_path / "dst", "-j", "1")
        assert result.exit_code == 0, result.output
        assert "7 done, 0 skipped, 0 failed" in result.stderr
        written = outputs(tmp_path / "dst")
        assert set(written) == {"p0.jpg", "sub/p1.png", "p2.png", "sub/p3.jpg", "p4.png", "sub/p5.png", "sub/clip.gif"}
        for name in ("p0.jpg", "sub/p1.png"):
            direct = tmp_path / "direct" / name
            direct.parent.mkdir(parents=True, exist_ok=True)
            assert CliRunner().invoke(cli, ["downsample", str(source / name), str(direct), "-q"]).exit_code == 0
            assert written[name] == direct.read_bytes(), name
        direct_clip = tmp_path / "direct" / "clip.gif"
        assert CliRunner().invoke(cli, ["video", str(source / "sub/clip.gif"), str(direct_clip), "-q"]).exit_code == 0
        assert written["sub/clip.gif"] == direct_clip.read_bytes()

    def test_rerun_skips_and_force_redoes(self, tmp_path):
        source = make_tree(tmp_path / "src")
        assert run(source, tmp_path / "dst", "-j", "1").exit_code == 0
        again = run(source, tmp_path / "dst", "-j", "1")
        assert "0 done, 7 skipped" in again.stderr
        changed = source / "p2.png"
        Image.fromarray(photo(24, 32, 99)).save(changed)  # a new modification time and content
        os.utime(changed, ns=(time.time_ns(), time.time_ns() + 10**9))
        third = run(source, tmp_path / "dst", "-j", "1", "--beta", "1.0")
        assert "1 done, 6 skipped" in third.stderr
        assert "7 done, 0 skipped" in run(source, tmp_path / "dst", "-j", "1", "--force").stderr
        assert "7 done, 0 skipped" in run(source, tmp_path / "dst", "-j", "1", "--beta", "2").stderr  # new settings

    def test_bad_files_are_reported_and_the_rest_completes(self, tmp_path):
        source = make_tree(tmp_path / "src")
        (source / "broken.jpg").write_bytes(b"\xff\xd8\xff garbage")
        (source / "sub" / "empty.png").write_bytes(b"")
        result = run(source, tmp_path / "dst", "-j", "2")
        assert result.exit_code == 1
        assert "7 done, 0 skipped, 2 failed" in result.stderr
        report = [json.loads(line) for line in (tmp_path / "dst" / "softpool-report.jsonl").read_text().splitlines()]
        assert sorted(Path(entry["path"]).name for entry in report) == ["broken.jpg", "empty.png"]
        assert all(entry["reason"] for entry in report)
        assert leftovers(tmp_path) == []


@pytest.fixture(scope="module")
def dask_client():
    distributed = pytest.importorskip("distributed")
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None)
    client = distributed.Client(cluster)
    yield client
    client.close()
    cluster.close()


class TestDask:
    def test_local_cluster_with_bad_files(self, tmp_path, dask_client):
        source = make_tree(tmp_path / "src")
        (source / "broken.jpg").write_bytes(b"\xff\xd8\xff garbage")
        (source / "empty.png").write_bytes(b"")
        local = run(source, tmp_path / "local", "-j", "1")
        result = run(source, tmp_path / "dask", "--scheduler", dask_client.scheduler.address)
        assert result.exit_code == 1, result.output
        assert outputs(tmp_path / "dask") == outputs(tmp_path / "local")
        report = (tmp_path / "dask" / "softpool-report.jsonl").read_text().splitlines()
        assert sorted(Path(json.loads(line)["path"]).name for line in report) == ["broken.jpg", "empty.png"]
        assert local.exit_code == 1

    def test_a_killed_worker_is_replaced(self, tmp_path, dask_client):
        from softpool_cli.batch import cluster
        from softpool_cli.batch.core import BatchSettings
        from softpool_cli.batch.plan import find_items

        source = make_tree(tmp_path / "src", images=12)
        items = list(find_items(str(source), str(tmp_path / "dst")))
        groups = [[(item.source, item.target_base, item.fingerprint)] for item in items]
        pids = list(dask_client.run(os.getpid).values())
        results = []
        for index, result in enumerate(cluster.run_groups(groups, BatchSettings(), dask_client)):
            results.append(result)
            if index == 1:
                os.kill(pids[0], signal.SIGKILL)  # a worker dies mid-batch: its tasks run elsewhere
        assert sorted(r.status for r in results if r.status != "ignored") == ["done"] * 13
        for result in results:
            if result.status == "done":
                Image.open(result.target).load() if result.kind == "image" else Path(result.target).stat()
        assert leftovers(tmp_path) == []


def _start_batch(source: Path, destination: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "softpool_cli", "batch", str(source), str(destination), "-j", "2", "-q"],
        env=RUN_ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
    )  # fmt: skip


def _wait_for_outputs(destination: Path, count: int, process: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        if len([p for p in destination.rglob("*") if p.is_file() and not p.name.startswith(".")]) >= count:
            return
        time.sleep(0.05)


class TestInterruptions:
    def test_sigint_then_sigkill_then_rerun_gives_the_uninterrupted_outputs(self, tmp_path):
        source = make_tree(tmp_path / "src", images=40)
        assert run(source, tmp_path / "whole", "-j", "1").exit_code == 0

        first = _start_batch(source, tmp_path / "dst")
        _wait_for_outputs(tmp_path / "dst", 3, first)
        first.send_signal(signal.SIGINT)
        assert first.wait(60) == 130

        second = _start_batch(source, tmp_path / "dst")
        _wait_for_outputs(tmp_path / "dst", 12, second)
        os.killpg(second.pid, signal.SIGKILL)  # the driver and its workers, with nothing cleaned up
        second.wait(60)

        rerun = subprocess.run(
            [sys.executable, "-m", "softpool_cli", "batch", str(source), str(tmp_path / "dst"), "-j", "2"],
            env=RUN_ENV, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert rerun.returncode == 0, rerun.stderr
        assert outputs(tmp_path / "dst") == outputs(tmp_path / "whole")
        assert not [p for p in (tmp_path / "dst").rglob("*") if ".tmp" in p.name]

    def test_sigterm_stops_the_workers(self, tmp_path):
        source = make_tree(tmp_path / "src", images=40)
        process = _start_batch(source, tmp_path / "dst")
        _wait_for_outputs(tmp_path / "dst", 3, process)
        process.send_signal(signal.SIGTERM)
        assert process.wait(60) == 143
        deadline = time.monotonic() + 10  # multiprocessing's resource tracker leaves once it sees its parent gone
        alive = ["?"]
        while alive and time.monotonic() < deadline:
            alive = subprocess.run(["pgrep", "-s", str(process.pid)], capture_output=True, text=True).stdout.split()
            time.sleep(0.2)
        details = subprocess.run(["ps", "-o", "pid,args", "-p", ",".join(alive) or "1"], capture_output=True, text=True).stdout
        assert alive == [], f"processes left behind: {details}"


_WORKER_WRITING = """
import sys, time
from pathlib import Path
from softpool_cli.batch.local import _init_worker
_init_worker(1)
temporary = Path(sys.argv[1])
try:
    temporary.write_bytes(b"half a file")
    print("writing", flush=True)
    time.sleep(30)
finally:
    temporary.unlink(missing_ok=True)
"""


def test_sigterm_to_a_worker_unwinds_the_file_it_was_writing(tmp_path):
    """The parent stops its workers with SIGTERM: one in the middle of storing a file removes
    its temporary on the way out (a worker that died on the spot left it beside the outputs),
    and ends with 143 and no traceback."""
    temporary = tmp_path / ".out.png.123.batch.tmp.png"
    worker = subprocess.Popen([sys.executable, "-c", _WORKER_WRITING, str(temporary)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    assert worker.stdout.readline() == "writing\n"
    assert temporary.exists()
    worker.send_signal(signal.SIGTERM)
    _, stderr = worker.communicate(timeout=30)
    assert worker.returncode == 143, stderr
    assert "Traceback" not in stderr
    assert not temporary.exists()


_WORKER_IN_A_CALLBACK = """
import ctypes, sys, time
from softpool_cli.batch import local
local._init_worker(1)

@ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p)
def compare(a, b):  # called from C, as pyvips's callbacks are
    print("in the callback", flush=True)
    deadline = time.monotonic() + 30
    while local._ending is None and time.monotonic() < deadline:
        time.sleep(0.01)
    return 0

values = (ctypes.c_int * 2)(1, 2)
ctypes.CDLL(None).qsort(values, 2, ctypes.sizeof(ctypes.c_int), compare)
print("after the callback", flush=True)
local._pool_group([("never.png", "never", "")], None)
print("went on", flush=True)
"""


def test_a_sigterm_lost_in_a_callback_still_ends_the_worker_quietly(tmp_path):
    worker = subprocess.Popen([sys.executable, "-c", _WORKER_IN_A_CALLBACK],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    assert worker.stdout.readline() == "in the callback\n"
    worker.send_signal(signal.SIGTERM)
    stdout, stderr = worker.communicate(timeout=30)
    assert worker.returncode == 143, stderr
    assert "after the callback" in stdout and "went on" not in stdout
    assert "Traceback" not in stderr and "Exception ignored" not in stderr


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def s3_server(monkeypatch):
    pytest.importorskip("moto")
    pytest.importorskip("s3fs")
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    endpoint = f"http://127.0.0.1:{port}"
    for name, value in {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_DEFAULT_REGION": "us-east-1",
                        "FSSPEC_S3_ENDPOINT_URL": endpoint}.items():  # fmt: skip
        monkeypatch.setenv(name, value)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        except OSError:
            time.sleep(0.1)
    import fsspec

    fsspec.config.conf.clear()
    fsspec.config.set_conf_env(fsspec.config.conf)
    yield endpoint
    server.terminate()
    server.wait(10)


def test_object_store_round_trip(tmp_path, s3_server):
    import fsspec

    source = make_tree(tmp_path / "src")
    filesystem = fsspec.filesystem("s3", skip_instance_cache=True)
    filesystem.mkdir("data")
    filesystem.put(str(source), "data/raw", recursive=True)
    result = run("s3://data/raw", "s3://data/half", "-j", "1")
    assert result.exit_code == 0, result.output
    assert run(source, tmp_path / "local", "-j", "1").exit_code == 0
    remote = {path.split("data/half/", 1)[1]: filesystem.cat_file(path) for path in filesystem.find("data/half")}
    remote = {name: data for name, data in remote.items() if not name.startswith(".") and name != "softpool-report.jsonl"}
    assert remote == outputs(tmp_path / "local")
    assert "0 done, 7 skipped" in run("s3://data/raw", "s3://data/half", "-j", "1").stderr
