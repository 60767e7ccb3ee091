"""Whole commands, start-up included, next to the tools a user would run instead.

    python benchmarks/bench_commands.py             # every row, median of 5 runs
    python benchmarks/bench_commands.py --repeats 3 --rows downsample-4k,video-1080p

Every row times whole processes (wall clock, and peak RSS from wait4) on the same generated
input, one command after another, rounds interleaved so that a drifting load hits every
command alike. The ratio is against the row's first peer. Peers: ffmpeg (the system's, else
the imageio-ffmpeg wheel's), ImageMagick's `convert` (Debian's `imagemagick`), a libvips
script (pyvips: sequential read, shrink, write) and an OpenCV script (read, INTER_AREA, write).
A peer that is not installed is left out of its row.

softpool runs as a user gets it: the installed `softpool` script, bytecode cached. Run it from
an environment with a regular install (`pip install -c constraints.txt torch==2.13.0 .`): an
editable one adds its import hook (about 8 ms) to every start.
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

PYTHON = sys.executable
# The installed command, as a user runs it (its script beside this Python), else the module.
_SCRIPT = Path(PYTHON).with_name("softpool")
SOFTPOOL = [str(_SCRIPT)] if _SCRIPT.exists() else [PYTHON, "-m", "softpool_cli.main"]
ROOT = Path(__file__).resolve().parents[1]

VIPS_SCRIPT = (
    "import sys, pyvips; pyvips.Image.new_from_file(sys.argv[1], access='sequential')"
    ".shrink(2, 2).write_to_file(sys.argv[2])"
)
CV2_SCRIPT = (
    "import sys, cv2; image = cv2.imread(sys.argv[1], cv2.IMREAD_UNCHANGED); "
    "cv2.imwrite(sys.argv[2], cv2.resize(image, (image.shape[1] // 2, image.shape[0] // 2), "
    "interpolation=cv2.INTER_AREA))"
)
# x264 as `softpool video` sets it (softpool_cli.media.clip_write.DEFAULT_X264), for ffmpeg.
X264 = ["-c:v", "libx264", "-crf", "20", "-preset", "medium", "-x264-params", "mbtree=0", "-pix_fmt", "yuv420p"]


def ffmpeg_binary() -> tuple[str | None, str]:
    path = shutil.which("ffmpeg")
    if path is None:
        try:
            import imageio_ffmpeg

            path = imageio_ffmpeg.get_ffmpeg_exe()
        except (ImportError, RuntimeError):
            return None, "none"
    version = subprocess.run([path, "-version"], capture_output=True, text=True).stdout.split("\n")[0]
    return path, f"{path}: {' '.join(version.split()[:3])}"


def convert_binary() -> tuple[str | None, str]:
    path = shutil.which("convert") or shutil.which("magick")
    if path is None:
        return None, "none"
    version = subprocess.run([path, "-version"], capture_output=True, text=True).stdout.split("\n")[0]
    return path, f"{path}: {version.removeprefix('Version: ')[:40]}"


def photo_like(height: int, width: int, seed: int, dtype=np.uint8) -> np.ndarray:
    """Smooth colour fields with edges and grain: compresses and pools like a photograph."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    channels = []
    for c in range(3):
        phase = rng.uniform(0, 6.3)
        field = 0.5 + 0.35 * np.sin(x / (97 + 31 * c) + phase) * np.cos(y / (61 + 17 * c) - phase)
        field += 0.1 * ((x // 240 + y // 180) % 2)  # hard edges
        channels.append(field)
    image = np.stack(channels, axis=-1) + rng.normal(0, 0.02, (height, width, 3)).astype(np.float32)
    top = 65535 if dtype == np.uint16 else 255
    return (np.clip(image, 0, 1) * top).astype(dtype)


def make_inputs(folder: Path, rows: set[str]) -> dict[str, Path]:
    import cv2

    inputs = {}
    if rows & {"downsample-4k", "methods-4k-png"}:
        inputs["4k.jpg"] = folder / "4k.jpg"
        cv2.imwrite(str(inputs["4k.jpg"]), photo_like(2160, 3840, 1)[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 90])
    if rows & {"downsample-24mp", "methods-24mp"}:
        inputs["24mp.jpg"] = folder / "24mp.jpg"
        cv2.imwrite(str(inputs["24mp.jpg"]), photo_like(4000, 6000, 2)[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 90])
    if "methods-4k-png" in rows:
        inputs["4k-8bit.png"] = folder / "4k-8bit.png"
        inputs["4k-16bit.png"] = folder / "4k-16bit.png"
        cv2.imwrite(str(inputs["4k-8bit.png"]), photo_like(2160, 3840, 3)[..., ::-1])
        cv2.imwrite(str(inputs["4k-16bit.png"]), photo_like(2160, 3840, 3, np.uint16)[..., ::-1])
    if "video-1080p" in rows:
        inputs["1080p.mp4"] = folder / "1080p.mp4"
        make_clip(inputs["1080p.mp4"], 1920, 1080, 150, 30)
    if "video-memory" in rows:  # the same picture, 10 s and 60 s long: memory must not grow
        for seconds in (10, 60):
            inputs[f"720p-{seconds}s.mp4"] = folder / f"720p-{seconds}s.mp4"
            make_clip(inputs[f"720p-{seconds}s.mp4"], 1280, 720, 30 * seconds, 30, pan=False)
    if "video-gif" in rows:
        inputs["480p.gif"] = folder / "480p.gif"
        make_gif(inputs["480p.gif"], 854, 480, 60)
    return inputs


def _pan(photo: np.ndarray, width: int, height: int, index: int) -> np.ndarray:
    return np.ascontiguousarray(photo[index * 2 : index * 2 + height, index * 3 : index * 3 + width])


def make_clip(path: Path, width: int, height: int, frames: int, fps: int, pan: bool = True) -> None:
    import av

    photo = photo_like(height + 2 * frames, width + 3 * frames, 4) if pan else photo_like(height, width, 4)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"crf": "18", "preset": "veryfast"}
        for index in range(frames):
            pixels = _pan(photo, width, height, index) if pan else np.roll(photo, 4 * index, axis=1)
            container.mux(stream.encode(av.VideoFrame.from_ndarray(pixels, format="rgb24")))
        container.mux(stream.encode())


def make_gif(path: Path, width: int, height: int, frames: int) -> None:
    from PIL import Image

    photo = photo_like(height + 2 * frames, width + 3 * frames, 5)
    images = [Image.fromarray(_pan(photo, width, height, index)).quantize(64) for index in range(frames)]
    images[0].save(path, save_all=True, append_images=images[1:], duration=40, loop=0)


def rows_of(inputs: dict[str, Path], out: Path, ffmpeg: str | None, convert: str | None) -> dict[str, list]:
    """row -> [(label, argv)], the first entry the ratio's baseline."""

    def image_peers(name: str) -> list:
        source, target = inputs[name], out / f"peer-{name}"
        peers = [("libvips script (pyvips shrink)", [PYTHON, "-c", VIPS_SCRIPT, source, target])]
        if ffmpeg:
            peers.append(("ffmpeg -vf scale=iw/2:ih/2", [ffmpeg, "-v", "error", "-y", "-i", source, "-vf",
                                                         "scale=iw/2:ih/2", target]))  # fmt: skip
        if convert:
            peers.append(("ImageMagick convert -resize 50%", [convert, source, "-resize", "50%", target]))
        peers.append(("cv2 script (INTER_AREA)", [PYTHON, "-c", CV2_SCRIPT, source, target]))
        return peers

    def ours(name: str, *options: str, note: str = "") -> tuple[str, list]:
        label = " ".join(["softpool downsample", *options]) + (f", {note}" if note else "")
        return label, [*SOFTPOOL, "downsample", inputs[name], out / f"ours-{name}", "--overwrite", *options]

    rows = {}
    if "4k.jpg" in inputs:
        rows["downsample-4k"] = [*image_peers("4k.jpg")[:1], ours("4k.jpg"), *image_peers("4k.jpg")[1:]]
    if "24mp.jpg" in inputs:
        rows["downsample-24mp"] = [*image_peers("24mp.jpg")[:1], ours("24mp.jpg"), *image_peers("24mp.jpg")[1:]]
        rows["methods-24mp"] = [ours("24mp.jpg"), ours("24mp.jpg", "--method", "max"), ours("24mp.jpg", "--method", "avg")]
    if "4k-16bit.png" in inputs:
        rows["methods-4k-png"] = [
            ours("4k-8bit.png", note="8-bit PNG"), ours("4k-16bit.png", note="16-bit PNG"),
            ours("4k-16bit.png", "--method", "max", note="16-bit PNG"),
            ours("4k-16bit.png", "--method", "avg", note="16-bit PNG"),
        ]
    if "1080p.mp4" in inputs and ffmpeg:
        source = inputs["1080p.mp4"]
        rows["video-1080p"] = [
            ("ffmpeg -vf scale=iw/2:ih/2,fps=15 (x264 crf 20 medium)",
             [ffmpeg, "-v", "error", "-y", "-i", source, "-vf", "scale=iw/2:ih/2,fps=15", *X264, out / "peer.mp4"]),
            ("softpool video --factor 2", [*SOFTPOOL, "video", source, out / "ours.mp4", "--factor", "2", "--overwrite"]),
        ]  # fmt: skip
    if "720p-10s.mp4" in inputs:
        rows["video-memory"] = [
            (f"softpool video, 720p {seconds} s", [*SOFTPOOL, "video", inputs[f"720p-{seconds}s.mp4"],
                                                  out / f"ours-{seconds}.mp4", "--overwrite"])
            for seconds in (10, 60)
        ]  # fmt: skip
    if "480p.gif" in inputs and ffmpeg:
        source = inputs["480p.gif"]
        rows["video-gif"] = [
            ("ffmpeg -vf scale=iw/2:ih/2 (GIF)", [ffmpeg, "-v", "error", "-y", "-i", source, "-vf", "scale=iw/2:ih/2",
                                                   out / "peer.gif"]),
            ("softpool video --time-factor 1", [*SOFTPOOL, "video", source, out / "ours.gif", "--time-factor", "1",
                                               "--overwrite"]),
        ]  # fmt: skip
    rows = {name: [(label, [str(part) for part in argv]) for label, argv in entries] for name, entries in rows.items()}
    return rows


def timed(argv: list[str], env: dict) -> tuple[float, float]:
    """(wall seconds, peak RSS MiB) of one whole process."""
    started = time.perf_counter()
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    _, status, usage = os.wait4(process.pid, 0)
    elapsed = time.perf_counter() - started
    stderr = process.stderr.read().decode(errors="replace")
    process.stderr.close()
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(argv)} failed:\n{stderr}")
    return elapsed, usage.ru_maxrss / 1024


def gallery_row(repeats: int, env: dict, scratch: Path) -> list[tuple[str, list[float], list[float]]]:
    times, peaks = [], []
    for index in range(repeats):
        out = scratch / f"gallery-{index}"
        wall, peak = timed([*SOFTPOOL, "gallery", str(ROOT / "samples"), "--out", str(out), "--quiet"], env)
        times.append(wall)
        peaks.append(peak)
        shutil.rmtree(out)
    return [("softpool gallery samples (fresh output)", times, peaks)]


ALL_ROWS = ["downsample-4k", "downsample-24mp", "methods-24mp", "methods-4k-png", "video-1080p", "video-gif",
            "video-memory", "gallery"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--rows", default=",".join(ALL_ROWS), help="comma-separated: " + ", ".join(ALL_ROWS))
    arguments = parser.parse_args(argv)
    wanted = set(arguments.rows.split(","))
    ffmpeg, ffmpeg_version = ffmpeg_binary()
    convert, convert_version = convert_binary()
    env = dict(os.environ)
    env.pop("TRITON_INTERPRET", None)
    # As installed: bytecode cached (the untimed first run writes it), not compiled per run.
    env.pop("PYTHONDONTWRITEBYTECODE", None)

    results: dict[str, list[tuple[str, list[float], list[float]]]] = {}
    with tempfile.TemporaryDirectory(prefix="softpool-bench-commands-") as scratch:
        folder = Path(scratch)
        # Made in a process of its own: a child's peak RSS starts at its parent's (fork), so this
        # one stays small.
        import multiprocessing

        with multiprocessing.get_context("spawn").Pool(1) as pool:
            inputs = pool.apply(make_inputs, (folder, wanted))
        rows = rows_of(inputs, folder, ffmpeg, convert)
        rows = {name: entries for name, entries in rows.items() if name in wanted}
        for entries in rows.values():  # one untimed run each: caches (compiled kernels, page cache) warm
            for _, command in entries:
                timed(command, env)
        samples = {name: {label: ([], []) for label, _ in entries} for name, entries in rows.items()}
        for _ in range(arguments.repeats):
            for name, entries in rows.items():
                for label, command in entries:
                    wall, peak = timed(command, env)
                    samples[name][label][0].append(wall)
                    samples[name][label][1].append(peak)
        for name in rows:
            results[name] = [(label, walls, peaks) for label, (walls, peaks) in samples[name].items()]
        if "gallery" in wanted:
            results["gallery"] = gallery_row(arguments.repeats, env, folder)

    print(f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs; "
          f"Python {platform.python_version()}; {time.strftime('%Y-%m-%d')}; median of {arguments.repeats} runs")  # fmt: skip
    print(f"ffmpeg: {ffmpeg_version}; ImageMagick: {convert_version}")
    for name, entries in results.items():
        print()
        print(f"### {name}")
        print()
        print("| command | wall s | peak MiB | ratio |")
        print("|---|---|---|---|")
        baseline = statistics.median(entries[0][1])
        for label, walls, peaks in entries:
            wall = statistics.median(walls)
            print(f"| {label} | {wall:.3f} | {statistics.median(peaks):.0f} | {wall / baseline:.2f}x |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
