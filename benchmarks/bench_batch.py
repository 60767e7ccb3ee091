"""`softpool batch` on one machine and on Dask: files/s, and what the scheduler costs per task.

    python benchmarks/bench_batch.py                  # 1000 512x512 JPEGs + 20 clips, 3 runs each
    python benchmarks/bench_batch.py --images 200 --repeats 1

Each engine pools the same generated dataset as a whole `softpool batch` process (start-up,
walking the tree, the record and the report included), into a fresh destination each run:

- single process: ``--jobs 1``;
- local workers: ``--jobs N`` (N = usable CPUs), the default;
- Dask: ``--scheduler local``, a LocalCluster of N single-threaded worker processes
  (its start-up is part of the command, as it is for a user).

Then the scheduler's own cost: a LocalCluster of N workers runs no-op tasks, one after another
in flight (latency) and many at once (throughput), and the table turns that into the files/s
a cluster can reach before the scheduler is the bottleneck.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

SOFTPOOL = [sys.executable, "-m", "softpool_cli.main"]


def make_dataset(root: Path, images: int, clips: int) -> None:
    """Photos-like JPEGs (smooth gradients plus noise, so they compress like photos) in
    folders of 100, and short MP4 clips."""
    import av
    from PIL import Image

    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:512, 0:512]
    for index in range(images):
        folder = root / "images" / f"{index // 100:03}"
        folder.mkdir(parents=True, exist_ok=True)
        phase = rng.uniform(0, 6.3, 3)
        base = np.stack([128 + 100 * np.sin(x / (40 + 9 * c) + y / 70 + phase[c]) for c in range(3)], axis=-1)
        pixels = np.clip(base + rng.normal(0, 12, base.shape), 0, 255).astype(np.uint8)
        Image.fromarray(pixels).save(folder / f"{index:05}.jpg", quality=90)
    (root / "clips").mkdir(parents=True, exist_ok=True)
    for index in range(clips):
        with av.open(str(root / "clips" / f"{index:02}.mp4"), "w") as container:
            stream = container.add_stream("libx264", rate=30)
            stream.width, stream.height, stream.pix_fmt = 320, 240, "yuv420p"
            base = rng.integers(0, 256, (240, 320, 3), dtype=np.uint8)
            for frame_index in range(30):
                frame = av.VideoFrame.from_ndarray(np.roll(base, 4 * frame_index, axis=1), format="rgb24")
                container.mux(stream.encode(frame))
            container.mux(stream.encode())


def run_batch(source: Path, destination: Path, extra: list[str]) -> float:
    shutil.rmtree(destination, ignore_errors=True)
    started = time.perf_counter()
    result = subprocess.run([*SOFTPOOL, "batch", str(source), str(destination), "--quiet", *extra],
                            capture_output=True, text=True)  # fmt: skip
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"softpool batch {' '.join(extra)} failed:\n{result.stderr}")
    return elapsed


def _noop(value: int) -> int:
    return value


def scheduler_overhead(workers: int, tasks: int) -> tuple[float, float]:
    """(latency of one task in ms, throughput cost per task in ms) on a LocalCluster."""
    from distributed import Client, LocalCluster, wait

    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        with Client(cluster) as client:
            client.submit(_noop, 0, pure=False).result()  # warm up
            started = time.perf_counter()
            for index in range(200):
                client.submit(_noop, index, pure=False).result()
            latency = (time.perf_counter() - started) / 200
            started = time.perf_counter()
            wait(client.map(_noop, range(tasks), pure=False))
            throughput = (time.perf_counter() - started) / tasks
    return latency * 1e3, throughput * 1e3


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--clips", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--tasks", type=int, default=2000, help="no-op tasks for the scheduler's overhead")
    arguments = parser.parse_args(argv)

    from softpool.cpu.threads import usable_cpus
    from softpool_cli.commands.batch import GROUP_SIZE

    cpus = usable_cpus()
    with tempfile.TemporaryDirectory(prefix="softpool-bench-batch-") as scratch:
        root = Path(scratch)
        started = time.perf_counter()
        make_dataset(root / "src", arguments.images, arguments.clips)
        files = arguments.images + arguments.clips
        print(f"dataset: {arguments.images} 512x512 JPEGs + {arguments.clips} clips (320x240, 30 frames) "
              f"in {time.perf_counter() - started:.1f} s")  # fmt: skip
        engines = {
            "single process (--jobs 1)": ["--jobs", "1"],
            f"local workers (--jobs {cpus})": ["--jobs", str(cpus)],
            f"Dask LocalCluster ({cpus} workers)": ["--scheduler", "local"],
        }
        times: dict[str, list[float]] = {name: [] for name in engines}
        for _ in range(arguments.repeats):  # interleaved, so drifting load hits every engine alike
            for name, extra in engines.items():
                times[name].append(run_batch(root / "src", root / "dst", extra))
        latency, per_task = scheduler_overhead(cpus, arguments.tasks)

    print()
    print(f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs ({cpus} usable), "
          f"Python {platform.python_version()}; {time.strftime('%Y-%m-%d')}; median of {arguments.repeats}")  # fmt: skip
    print()
    print("| engine | wall s (median) | files/s | ratio |")
    print("|---|---|---|---|")
    medians = {name: statistics.median(values) for name, values in times.items()}
    names = list(engines)
    for index, name in enumerate(names):
        baseline = medians[names[0]] if index < 2 else medians[names[1]]
        against = "single" if index < 2 else "local workers"
        ratio = "1.00" if index == 0 else f"{baseline / medians[name]:.2f}x {against}"
        print(f"| {name} | {medians[name]:.2f} | {files / medians[name]:.1f} | {ratio} |")
    print()
    per_file = medians[names[0]] / files  # one core's seconds per file, start-up spread over the batch
    print(f"Scheduler: {latency:.2f} ms for one task end to end, {per_task:.3f} ms a task in bulk "
          f"({arguments.tasks} no-op tasks on {cpus} workers).")  # fmt: skip
    group_seconds = GROUP_SIZE * per_file
    ceiling = GROUP_SIZE / (per_task / 1e3)
    print(f"A task is {GROUP_SIZE} files, {group_seconds * 1e3:.0f} ms of one core's work here; "
          f"the scheduler alone could hand out {ceiling:,.0f} files/s, "
          f"so it keeps about {group_seconds / (per_task / 1e3):,.0f} cores busy before it is the limit.")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
