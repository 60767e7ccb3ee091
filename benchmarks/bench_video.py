"""Benchmark ``softpool video`` on a 1080p H.264 clip of a real photo, panned and zoomed.

Speed (default): frames per second of each stage (decode, pooling, encode, measured in
one streamed pass), then the whole command's wall time and peak RSS against an ffmpeg
transcode that halves the size (its scale filter) and the frame rate (its fps filter),
with the same x264 settings, using the ffmpeg binary bundled with imageio-ffmpeg.
Each timing is the median of ``--repeats`` runs, all in the same run of this script.

Memory (``--memory``): the command's peak RSS on a 10 s and on a 5 min 1080p clip. The
5 min clip is the 10 s one looped by ffmpeg with stream copy, which costs seconds
instead of the minutes of encoding 9000 frames.

The photo is ``astronaut.png`` from scikit-image's bundled data (no download).

Usage:
    python benchmarks/bench_video.py [--frames 300] [--repeats 3]
    python benchmarks/bench_video.py --memory
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import av
import cv2
import imageio_ffmpeg
import numpy as np
import skimage.data

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from softpool_cli.media.clip_read import FrameChunk, open_clip  # noqa: E402
from softpool_cli.media.clip_write import open_writer  # noqa: E402
from softpool_cli.pipeline.clip import CHUNK_BYTES, pool_windows  # noqa: E402

WIDTH, HEIGHT, FPS = 1920, 1080, 30
WINDOW = (2, 2, 2)
# Same encoder settings as `softpool video` writes MP4 with, so only the pipelines differ.
X264 = ["-c:v", "libx264", "-crf", "20", "-preset", "medium", "-pix_fmt", "yuv420p"]


def pan_and_zoom(photo: np.ndarray, index: int, count: int) -> np.ndarray:
    """Frame ``index`` of a slow zoom (1x to 1.6x) and diagonal pan over ``photo``, (H, W, 3)."""
    progress = index / max(1, count - 1)
    size = photo.shape[0]
    view_width = size / (1.0 + 0.6 * progress)
    view_height = view_width * HEIGHT / WIDTH
    centre_x = view_width / 2 + (size - view_width) * progress
    centre_y = view_height / 2 + (size - view_height) * (0.2 + 0.6 * progress)
    scale = WIDTH / view_width
    matrix = np.array([[scale, 0, -(centre_x - view_width / 2) * scale], [0, scale, -(centre_y - view_height / 2) * scale]])
    return cv2.warpAffine(photo, matrix, (WIDTH, HEIGHT), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)


def make_clip(path: Path, frames: int, preset: str) -> None:
    """Write a 1080p30 H.264 clip of the astronaut photo panned and zoomed."""
    photo = skimage.data.astronaut()  # (512, 512, 3) uint8, shipped with scikit-image
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=FPS, options={"crf": "18", "preset": preset})
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        for index in range(frames):
            frame = av.VideoFrame.from_ndarray(pan_and_zoom(photo, index, frames), format="rgb24")
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))


# Runs the command given as arguments and prints "wall_seconds peak_rss_kib cpu_seconds". A
# child's peak RSS counts the memory of the process it was forked from, so the command is
# started from this small interpreter rather than from the benchmark, which holds clips.
_MEASURE = """
import os, subprocess, sys, time
started = time.perf_counter()
process = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
_, status, usage = os.wait4(process.pid, 0)
seconds = time.perf_counter() - started
if os.waitstatus_to_exitcode(status) != 0:
    sys.stderr.write(process.stderr.read().decode(errors="replace")[-2000:])
    sys.exit(1)
print(seconds, usage.ru_maxrss, usage.ru_utime + usage.ru_stime)
"""


def run_measured(command: list[str]) -> tuple[float, float, float]:
    """Run ``command``; return its wall time (s), peak RSS (MiB) and CPU time (s)."""
    completed = subprocess.run([sys.executable, "-c", _MEASURE, *command], capture_output=True, text=True, cwd=ROOT)
    if completed.returncode != 0:
        raise RuntimeError(f"{command[:3]} failed: {completed.stderr}")
    seconds, rss_kib, cpu = completed.stdout.split()
    return float(seconds), int(rss_kib) / 1024, float(cpu)


def softpool_command(source: Path, target: Path) -> list[str]:
    return [sys.executable, "-m", "softpool_cli.main", "video", str(source), str(target), "--quiet", "--overwrite"]


def ffmpeg_command(source: Path, target: Path) -> list[str]:
    ffmpeg = imageio_ffmpeg.get_ffmpeg_exe()
    return [ffmpeg, "-v", "error", "-y", "-i", str(source), "-vf", f"fps={FPS // 2},scale=iw/2:ih/2", *X264, str(target)]


def stage_rates(source: Path, target: Path) -> dict[str, float]:
    """Frames per second of decode, pooling and encode, timed separately in one streamed pass."""
    reader = open_clip(source)
    info = reader.info
    writer = open_writer(target, "mp4", fps=info.fps / WINDOW[0], time_base=info.time_base, loop=0)
    windows = max(1, CHUNK_BYTES // (WINDOW[0] * info.width * info.height * 3))
    seconds = {"decode": 0.0, "pooling": 0.0, "encode": 0.0}
    frames_in = frames_out = 0
    chunks = reader.chunks(windows * WINDOW[0])
    while True:
        started = time.perf_counter()
        chunk = next(chunks, None)
        seconds["decode"] += time.perf_counter() - started
        if chunk is None:
            break
        started = time.perf_counter()
        pooled = pool_windows(chunk.pixels, WINDOW, "soft", 1.0, "cpu")
        seconds["pooling"] += time.perf_counter() - started
        starts = chunk.starts[:: WINDOW[0]]
        durations = np.add.reduceat(chunk.durations, np.arange(0, len(chunk.starts), WINDOW[0]))
        started = time.perf_counter()
        writer.write(FrameChunk(pooled, starts, durations))
        seconds["encode"] += time.perf_counter() - started
        frames_in += len(chunk.pixels)
        frames_out += len(pooled)
    started = time.perf_counter()
    writer.close()
    seconds["encode"] += time.perf_counter() - started
    reader.close()
    return {
        "decode (input frames/s)": frames_in / seconds["decode"],
        "pooling (input frames/s)": frames_in / seconds["pooling"],
        "encode (output frames/s)": frames_out / seconds["encode"],
    }


def speed(workdir: Path, frames: int, repeats: int) -> None:
    source = workdir / "pan_zoom_1080p.mp4"
    started = time.perf_counter()
    make_clip(source, frames, preset="veryfast")
    print(f"clip: {frames} frames {WIDTH}x{HEIGHT} at {FPS} fps, made in {time.perf_counter() - started:.1f} s")

    rates = [stage_rates(source, workdir / "stages.mp4") for _ in range(repeats)]
    for name in rates[0]:
        print(f"  {name:26s} {statistics.median(rate[name] for rate in rates):7.1f}")

    results: dict[str, list[tuple[float, float, float]]] = {"softpool video": [], "ffmpeg scale+fps": []}
    for _ in range(repeats):  # interleaved, so load from other users affects both alike
        results["softpool video"].append(run_measured(softpool_command(source, workdir / "softpool.mp4")))
        results["ffmpeg scale+fps"].append(run_measured(ffmpeg_command(source, workdir / "ffmpeg.mp4")))
    medians = {}
    for name, runs in results.items():
        wall = statistics.median(run[0] for run in runs)
        cpu = statistics.median(run[2] for run in runs)
        rss = max(run[1] for run in runs)
        medians[name] = (wall, cpu)
        print(
            f"  {name:18s} wall {wall:6.2f} s (runs: {', '.join(f'{run[0]:.2f}' for run in runs)}), "
            f"CPU {cpu:6.2f} s, peak RSS {rss:6.0f} MiB"
        )
    wall_ratio = medians["softpool video"][0] / medians["ffmpeg scale+fps"][0]
    cpu_ratio = medians["softpool video"][1] / medians["ffmpeg scale+fps"][1]
    print(f"  softpool video / ffmpeg: wall time {wall_ratio:.2f}x (target: within 2x), CPU time {cpu_ratio:.2f}x")


def memory(workdir: Path) -> None:
    short = workdir / "clip_10s.mp4"
    long = workdir / "clip_5min.mp4"
    started = time.perf_counter()
    make_clip(short, 10 * FPS, preset="ultrafast")
    ffmpeg = imageio_ffmpeg.get_ffmpeg_exe()
    subprocess.run([ffmpeg, "-v", "error", "-y", "-stream_loop", "29", "-i", str(short), "-c", "copy", str(long)], check=True)
    print(f"clips made in {time.perf_counter() - started:.1f} s")
    for path in (short, long):
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            length = float(container.duration / av.time_base)
            frames = stream.frames
        seconds, rss, cpu = run_measured(softpool_command(path, workdir / f"{path.stem}_out.mp4"))
        print(f"  {path.name}: {length:6.1f} s, {frames} frames -> wall {seconds:6.1f} s, CPU {cpu:6.1f} s, peak RSS {rss:6.0f} MiB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=300, help="frames in the speed clip (default 300, 10 s)")
    parser.add_argument("--repeats", type=int, default=3, help="runs per timing; the median is reported")
    parser.add_argument("--memory", action="store_true", help="measure peak RSS on a 10 s and a 5 min clip instead")
    parser.add_argument("--workdir", type=Path, default=None, help="where to write the clips (default: a temporary folder)")
    args = parser.parse_args()
    print(f"torch threads: {__import__('torch').get_num_threads()}, CPUs: {os.cpu_count()}, PyAV {av.__version__}")
    with tempfile.TemporaryDirectory(dir=args.workdir) as folder:
        if args.memory:
            memory(Path(folder))
        else:
            speed(Path(folder), args.frames, args.repeats)


if __name__ == "__main__":
    main()
