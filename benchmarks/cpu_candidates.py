"""The candidates measured before choosing the CPU engines (numbers in benchmarks/RESULTS.md).

    python benchmarks/cpu_candidates.py [--repeats 7] [--compile]

8-bit media path, a 4K RGB uint8 image pooled by 2 with ImageNet normalisation and beta = 1,
uint8 in and out; every candidate is checked against a float64 computation first:

- ``torch pooling step``: what `softpool_cli.pixels.pool` does without the engine (float32 NCHW,
  normalise, the library's PyTorch path with window views, map back).
- ``torch box filter``: the weights as one exp per pixel (no window maximum is needed for
  8-bit input), then two ``avg_pool2d`` and a division.
- ``torch.compile box filter`` (with ``--compile``): the same, compiled by Inductor.
- ``OpenCV box filter``: weights from ``cv2.LUT`` (256 per channel), a product, two
  ``INTER_AREA`` resizes and a division.
- ``Numba table``: one pass, weights read from the per-channel 256-entry table (scalar loads).
- ``Numba series (chosen)``: `softpool_cli.pixels.uint8_engine`, weights from a short series that the
  compiler vectorises.

Library float path, 1 x 3 x 2160 x 3840 float32, kernel 2: the PyTorch path, optionally
``torch.compile`` of it, and the Numba kernels of `softpool.cpu.engine`.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_cpu import medians  # noqa: E402

MEAN = np.array([0.485, 0.456, 0.406])
STD = np.array([0.229, 0.224, 0.225])
RATES = 1.0 / (255.0 * STD)  # beta * d(x_norm)/dp per channel, beta = 1


def exact(image: np.ndarray) -> np.ndarray:
    """Unrounded float64 SoftPool by 2 of an (H, W, 3) image, mapped back to pixel units."""
    height, width = image.shape[0] // 2, image.shape[1] // 2
    x = (image[: 2 * height, : 2 * width] / 255.0 - MEAN) / STD
    tiles = x.reshape(height, 2, width, 2, 3).transpose(0, 2, 4, 1, 3).reshape(height, width, 3, 4)
    weights = np.exp(tiles - tiles.max(axis=-1, keepdims=True))
    return ((weights * tiles).sum(-1) / weights.sum(-1) * STD + MEAN) * 255


def torch_box_filter(image: np.ndarray):
    import torch
    import torch.nn.functional as F

    rates = torch.tensor(RATES, dtype=torch.float32).view(1, 3, 1, 1)

    def pool(pixels: torch.Tensor) -> torch.Tensor:
        x = pixels.permute(2, 0, 1).unsqueeze(0).float()  # (1, 3, H, W)
        weights = torch.exp(rates * (x - 255))  # in (0, 1]: the pixel's weight relative to white
        pooled = F.avg_pool2d(weights * x, 2) / F.avg_pool2d(weights, 2)
        return pooled.round().clamp(0, 255).to(torch.uint8).squeeze(0).permute(1, 2, 0)

    source = torch.from_numpy(image)
    return pool, source


def opencv_box_filter(image: np.ndarray) -> np.ndarray:
    import cv2

    levels = np.arange(256.0)
    table = np.exp(np.outer(levels - 255, RATES)).astype(np.float32).reshape(1, 256, 3)  # (1, 256, C)
    weights = cv2.LUT(image, table)  # (H, W, 3) float32
    weighted = weights * image
    numerator = cv2.resize(weighted, None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA)
    denominator = cv2.resize(weights, None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA)
    return np.clip(np.rint(numerator / denominator), 0, 255).astype(np.uint8)


def numba_table():
    import numba

    @numba.njit(nogil=True, error_model="numpy")
    def rows(image, table, weighted_table, out, first_row, end_row):
        unsigned = np.uintp
        for oy in range(first_row, end_row):
            top, bottom, line = image[2 * oy], image[2 * oy + 1], out[oy]
            for ox in range(out.shape[1]):
                for c in range(3):
                    a, b = top[2 * ox, c], top[2 * ox + 1, c]
                    d, e = bottom[2 * ox, c], bottom[2 * ox + 1, c]
                    row_w, row_p = table[c], weighted_table[c]
                    total = row_w[unsigned(a)] + row_w[unsigned(b)] + row_w[unsigned(d)] + row_w[unsigned(e)]
                    weighted = row_p[unsigned(a)] + row_p[unsigned(b)] + row_p[unsigned(d)] + row_p[unsigned(e)]
                    line[ox, c] = np.uint8(np.rint(weighted / total))

    levels = np.arange(256.0)
    table = np.exp(np.outer(RATES, levels - 255)).astype(np.float32)  # (3, 256)
    weighted_table = (table * levels).astype(np.float32)

    def pool(image: np.ndarray) -> np.ndarray:
        out = np.empty((image.shape[0] // 2, image.shape[1] // 2, 3), np.uint8)
        half = out.shape[0] // 2
        worker = threading.Thread(target=rows, args=(image, table, weighted_table, out, half, out.shape[0]))
        worker.start()
        rows(image, table, weighted_table, out, 0, half)
        worker.join()
        return out

    return pool


def media_candidates(repeats: int, compile_torch: bool) -> None:
    import cv2
    import torch

    from softpool_cli.pixels.uint8_engine import soft_pool_uint8
    from softpool_cli.pixels.pool import _pool_with_torch

    image = np.random.default_rng(0).integers(0, 256, (2160, 3840, 3), dtype=np.uint8)
    expected = exact(image)
    box, source = torch_box_filter(image)
    area = cv2.INTER_AREA
    candidates = {
        "cv2.resize INTER_AREA (baseline)": lambda: cv2.resize(image, None, fx=0.5, fy=0.5, interpolation=area),
        "torch pooling step": lambda: _pool_with_torch(image, (2, 2), (2, 2), "soft", 1.0, False, "cpu"),
        "torch box filter": lambda: box(source).numpy(),
        "OpenCV box filter": lambda: opencv_box_filter(image),
        "Numba table": (lambda pool: lambda: pool(image))(numba_table()),
        "Numba series (chosen)": lambda: soft_pool_uint8(image, (2, 2), std=tuple(STD)),
    }
    if compile_torch:
        compiled = torch.compile(box)
        start = time.perf_counter()
        compiled(source)
        print(f"torch.compile: first call {time.perf_counter() - start:.1f} s")
        candidates["torch.compile box filter"] = lambda: compiled(source).numpy()
    print("8-bit 4K RGB, factor 2:")
    for name, run in candidates.items():
        if "baseline" not in name:
            error = np.abs(np.asarray(run()).astype(np.float64) - expected).max()
            print(f"  {name}: max |result - float64| = {error:.3f} levels")
    times = medians(candidates, repeats)
    baseline = times["cv2.resize INTER_AREA (baseline)"]
    for name, seconds in times.items():
        print(f"  {name}: {seconds * 1e3:.1f} ms ({seconds / baseline:.1f}x INTER_AREA)")


def float_candidates(repeats: int, compile_torch: bool) -> None:
    import torch
    import torch.nn.functional as F

    from softpool._arguments import pool_geometry
    from softpool.cpu.engine import soft_pool_cpu_forward
    from softpool.torch_path.unfold import soft_pool_torch

    x = torch.randn(1, 3, 2160, 3840)
    geometry = pool_geometry((2160, 3840), 2, None, 0, False)
    candidates = {
        "F.avg_pool2d (baseline)": lambda: F.avg_pool2d(x, 2),
        "PyTorch path": lambda: soft_pool_torch(x, geometry, 1.0),
        "Numba kernels (chosen)": lambda: soft_pool_cpu_forward(x, geometry, 1.0),
    }
    if compile_torch:
        compiled = torch.compile(lambda t: soft_pool_torch(t, geometry, 1.0))
        start = time.perf_counter()
        compiled(x)
        print(f"torch.compile: first call {time.perf_counter() - start:.1f} s")
        candidates["torch.compile of the PyTorch path"] = lambda: compiled(x)
    times = medians(candidates, repeats)
    baseline = times["F.avg_pool2d (baseline)"]
    print("float32 1x3x2160x3840, kernel 2, forward:")
    for name, seconds in times.items():
        print(f"  {name}: {seconds * 1e3:.1f} ms ({seconds / baseline:.2f}x avg_pool2d)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7, help="timed calls per candidate")
    parser.add_argument("--compile", action="store_true", help="also measure torch.compile (slow to compile)")
    args = parser.parse_args()
    media_candidates(args.repeats, args.compile)
    float_candidates(args.repeats, args.compile)


if __name__ == "__main__":
    main()
