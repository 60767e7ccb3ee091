"""Targets of the CPU engines, each as a ratio to a baseline measured in the same run.

    python benchmarks/bench_cpu.py [--repeats 15]

1. 8-bit media path: a 4K RGB uint8 image (2160 x 3840 x 3) pooled by 2, uint8 in and out,
   against ``cv2.resize(INTER_AREA)`` on the same image (target <= 5x), and the PyTorch
   composition that `softpool_cli.pixels.pool` uses without the engine.
2. 3D media path: 2 x 2 x 2 pooling of 1080p uint8 RGB frames, in input frames per second
   (target >= 150).
3. Library float path: ``soft_pool2d``'s CPU kernels on a 1 x 3 x 2160 x 3840 float32 tensor,
   kernel 2: forward against ``F.avg_pool2d`` (target <= 2x), forward + backward against
   ``F.max_pool2d`` forward + backward (target <= 2x); also a channels_last input (copied
   to contiguous first) against ``F.avg_pool2d`` on that input.
4. Cold start: the first call in a fresh process with an empty Numba cache (compilation), and
   with the cache filled (what every later run pays).

Baseline and candidate alternate within each repeat and the medians are compared, so load
from other processes affects both alike.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def medians(functions: dict[str, Callable[[], object]], repeats: int) -> dict[str, float]:
    """Median seconds of each function, calling them in turn within every repeat (after a warm-up)."""
    for function in functions.values():
        function()
    times: dict[str, list[float]] = {name: [] for name in functions}
    for _ in range(repeats):
        for name, function in functions.items():
            start = time.perf_counter()
            function()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}


def report(label: str, value: float, baseline: float, target: float) -> None:
    ratio = value / baseline
    verdict = "meets" if ratio <= target else "MISSES"
    print(f"  {label}: {value * 1e3:.2f} ms vs {baseline * 1e3:.2f} ms -> {ratio:.2f}x ({verdict} <= {target:g}x)")


def bench_media_2d(repeats: int) -> None:
    import cv2

    from softpool_cli.pixels.uint8_engine import soft_pool_uint8
    from softpool_cli.pixels.pool import IMAGENET_STD, _pool_with_torch

    image = np.random.default_rng(0).integers(0, 256, (2160, 3840, 3), dtype=np.uint8)
    times = medians(
        {
            "area": lambda: cv2.resize(image, None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA),
            "engine": lambda: soft_pool_uint8(image, (2, 2), std=IMAGENET_STD),
        },
        repeats,
    )
    torch_time = medians(
        {"torch": lambda: _pool_with_torch(image, (2, 2), (2, 2), "soft", 1.0, False, "cpu")}, max(3, repeats // 5)
    )["torch"]
    print("1. 8-bit 4K RGB, factor 2 (uint8 -> uint8)")
    report("engine vs cv2.resize INTER_AREA", times["engine"], times["area"], 5)
    print(f"  PyTorch composition (pooling step without the engine): {torch_time * 1e3:.1f} ms, "
          f"{torch_time / times['engine']:.0f}x the engine")


def bench_media_3d(repeats: int) -> None:
    from softpool_cli.pixels.uint8_engine import soft_pool_uint8
    from softpool_cli.pixels.pool import IMAGENET_STD

    frames = np.random.default_rng(1).integers(0, 256, (16, 1080, 1920, 3), dtype=np.uint8)
    seconds = medians({"3d": lambda: soft_pool_uint8(frames, (2, 2, 2), std=IMAGENET_STD)}, repeats)["3d"]
    rate = len(frames) / seconds
    verdict = "meets" if rate >= 150 else "MISSES"
    print("2. 3D 2x2x2 on 1080p RGB uint8 frames (chunks of 16)")
    print(f"  {seconds * 1e3:.1f} ms per chunk -> {rate:.0f} input frames/s ({verdict} >= 150)")


def bench_float(repeats: int) -> None:
    import torch
    import torch.nn.functional as F

    from softpool._arguments import pool_geometry
    from softpool.cpu.engine import soft_pool_cpu, soft_pool_cpu_forward

    torch.manual_seed(0)
    x = torch.randn(1, 3, 2160, 3840)
    geometry = pool_geometry((2160, 3840), 2, None, 0, False)
    leaf = x.clone().requires_grad_()
    channels_last = x.contiguous(memory_format=torch.channels_last)

    def both(pool: Callable[[torch.Tensor], torch.Tensor]) -> Callable[[], None]:
        def run() -> None:
            y = pool(leaf)
            y.backward(torch.ones_like(y))
            leaf.grad = None

        return run

    times = medians(
        {
            "avg": lambda: F.avg_pool2d(x, 2),
            "avg_channels_last": lambda: F.avg_pool2d(channels_last, 2),
            "forward": lambda: soft_pool_cpu_forward(x, geometry, 1.0),
            "forward_channels_last": lambda: soft_pool_cpu_forward(channels_last, geometry, 1.0),
            "max_both": both(lambda t: F.max_pool2d(t, 2)),
            "both": both(lambda t: soft_pool_cpu(t, geometry, 1.0)),
        },
        repeats,
    )
    print(f"3. float32 1x3x2160x3840, kernel 2 ({torch.get_num_threads()} threads)")
    report("forward vs F.avg_pool2d", times["forward"], times["avg"], 2)
    report("forward + backward vs F.max_pool2d forward + backward", times["both"], times["max_both"], 2)
    # channels_last input is copied to contiguous first (the output is contiguous).
    report(
        "forward vs F.avg_pool2d, both on a channels_last input",
        times["forward_channels_last"],
        times["avg_channels_last"],
        2,
    )


COLD_SCRIPT = """
import time
start = time.perf_counter()
import numpy, torch
from softpool_cli.pixels.uint8_engine import soft_pool_uint8
from softpool._arguments import pool_geometry
from softpool.cpu.engine import soft_pool_cpu
imported = time.perf_counter()
soft_pool_uint8(numpy.zeros((64, 64, 3), numpy.uint8), (2, 2), std=(0.229, 0.224, 0.225))
media = time.perf_counter()
x = torch.randn(1, 3, 64, 64, requires_grad=True)
soft_pool_cpu(x, pool_geometry((64, 64), 2, None, 0, False), 1.0).sum().backward()
done = time.perf_counter()
print(f"{imported - start:.2f} {media - imported:.2f} {done - media:.2f}")
"""


def bench_cold_start() -> None:
    print("4. first call in a new process (imports, then 8-bit kernel, then float forward + backward)")
    with tempfile.TemporaryDirectory() as cache:
        environment = dict(os.environ, NUMBA_CACHE_DIR=cache)
        for label in ("empty Numba cache (compiles)", "filled Numba cache"):
            command = [sys.executable, "-c", COLD_SCRIPT]
            result = subprocess.run(command, cwd=ROOT, env=environment, capture_output=True, text=True, check=True)
            imports, media, floats = (float(v) for v in result.stdout.split())
            print(f"  {label}: imports {imports:.2f} s, 8-bit {media:.2f} s, float {floats:.2f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15, help="timed calls per function")
    args = parser.parse_args()
    print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}; medians of {args.repeats} calls")
    bench_media_2d(args.repeats)
    bench_media_3d(max(3, args.repeats // 3))
    bench_float(max(3, args.repeats // 3))
    bench_cold_start()


if __name__ == "__main__":
    main()
