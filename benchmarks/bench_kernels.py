"""Benchmark SoftPool against max pooling, average pooling and the naive composition.

For every case (rank, shape, dtype, window, memory format), all measured in the same run:

- ``softpool``: the public ``soft_pool{1,2,3}d`` with ``backend="auto"``, so the Triton kernels
  on CUDA and whatever CPU path the library picks on CPU;
- ``max_pool`` / ``avg_pool``: ``F.max_pool{1,2,3}d`` / ``F.avg_pool{1,2,3}d`` on the same windows;
- ``naive``: avg_pool(x * exp(x)) / avg_pool(exp(x)), the composition SoftPool (beta = 1) is
  often written as (unstable for large x, and 5 passes over memory).

each as the forward alone and as forward + backward. Times are medians: of
`triton.testing.do_bench` on CUDA, of ``--repeats`` wall-clock runs after one warm-up on CPU.
Effective bandwidth counts every byte SoftPool's Triton kernels move in the pass
(`traffic_bytes`): x read and y written in the forward; for forward + backward also the
statistics the training forward saves for overlapping windows, and the backward's x, dy, dx and
statistics. The device's copy bandwidth (``copy_`` between two 1 GiB buffers, bytes read +
written) is measured first, and each bandwidth is also given as a percentage of it. Ratios are
SoftPool's time over the other operation's (below 1: SoftPool is faster).

Usage:
    python benchmarks/bench_kernels.py                  # CUDA if present, else CPU; default sizes
    python benchmarks/bench_kernels.py --quick          # small sizes, a few seconds on CPU
    python benchmarks/bench_kernels.py --markdown       # tables to paste into benchmarks/RESULTS.md
    python benchmarks/bench_kernels.py --device cuda --tune   # sweep the Triton kernels' tile sizes
    python benchmarks/bench_kernels.py --gpu-quick      # 4 CUDA cases against max_pool (gpu_check.sh quick)
    TRITON_INTERPRET=0 python benchmarks/bench_kernels.py --gpu-quick --dry-run   # no GPU: compile them for sm_90
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F

sys.path[:0] = [str(Path(__file__).resolve().parents[1]), str(Path(__file__).resolve().parent)]

import softpool  # noqa: E402

SOFT_POOLS = {1: softpool.soft_pool1d, 2: softpool.soft_pool2d, 3: softpool.soft_pool3d}
MAX_POOLS = {1: F.max_pool1d, 2: F.max_pool2d, 3: F.max_pool3d}
AVG_POOLS = {1: F.avg_pool1d, 2: F.avg_pool2d, 3: F.avg_pool3d}
DTYPE_NAMES = {torch.float32: "float32", torch.float16: "float16", torch.bfloat16: "bfloat16", torch.float64: "float64"}
GIB = 1 << 30
# On CPU, stop repeating a measurement after this long (at least one warm-up and one timed run):
# the default clip takes seconds per SoftPool call on a small machine.
CPU_SECONDS_PER_MEASUREMENT = 10.0


@dataclass(frozen=True)
class Case:
    """One benchmarked call: a tensor and the pooling windows."""

    label: str
    shape: tuple[int, ...]
    dtype: torch.dtype
    kernel: int = 2
    stride: int | None = None
    padding: int = 0
    channels_last: bool = False

    @property
    def rank(self) -> int:
        return len(self.shape) - 2

    def make_input(self, device: str) -> torch.Tensor:
        x = torch.randn(self.shape, device=device, dtype=self.dtype)  # (N, C, *spatial)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last if self.rank == 2 else torch.channels_last_3d)
        return x

    def window_name(self) -> str:
        stride = self.kernel if self.stride is None else self.stride
        name = f"k{self.kernel}" + (f"s{stride}" if stride != self.kernel else "")
        return name + (f"p{self.padding}" if self.padding else "")


def cpu_cases(quick: bool) -> list[Case]:
    if quick:
        return [
            Case("1x3x540x960 frame", (1, 3, 540, 960), torch.float32),
            Case("1x3x8x135x240 clip", (1, 3, 8, 135, 240), torch.float32),
            Case("4x16x4096 signal", (4, 16, 4096), torch.float32),
        ]
    return [
        Case("1x3x2160x3840 4K frame", (1, 3, 2160, 3840), torch.float32),
        Case("1x3x32x540x960 clip", (1, 3, 32, 540, 960), torch.float32),
        Case("8x64x32768 signal", (8, 64, 32768), torch.float32),
    ]


def cuda_cases(quick: bool) -> list[Case]:
    scale = 4 if quick else 1
    cases = []
    for dtype in (torch.float32, torch.float16, torch.bfloat16):
        # At least 256 MB in every dtype, far past the L2 cache.
        cases += [
            Case(f"{64 // scale}x256x8192", (64 // scale, 256, 8192), dtype),
            Case(f"{32 // scale}x64x256x256", (32 // scale, 64, 256, 256), dtype),
            Case(f"{4 // min(scale, 4)}x32x32x128x256", (4 // min(scale, 4), 32, 32, 128, 256), dtype),
        ]
    for dtype in (torch.float16, torch.float32):
        # Typical CNN activations (the ResNet stem pools 64x64x112x112 with 3x3 / 2, padding 1) and a video batch.
        cases += [
            Case(f"{64 // scale}x64x112x112", (64 // scale, 64, 112, 112), dtype),
            Case(f"{64 // scale}x64x112x112", (64 // scale, 64, 112, 112), dtype, 3, 2, 1),
            Case(f"{64 // scale}x64x112x112 channels_last", (64 // scale, 64, 112, 112), dtype, channels_last=True),
            Case(f"{32 // scale}x256x56x56", (32 // scale, 256, 56, 56), dtype),
            Case(f"{8 // scale}x64x16x112x112 video", (8 // scale, 64, 16, 112, 112), dtype),
            Case(f"{8 // scale}x64x16x112x112 video channels_last", (8 // scale, 64, 16, 112, 112), dtype, channels_last=True),
        ]
    return cases


def gpu_quick_cases() -> list[Case]:
    """The quick GPU check's cases: float16 and float32, NCHW and channels_last, 2x2 windows on a
    CNN activation of 103 MB in float16 (twice an H100's L2 cache)."""
    return [
        Case(f"64x64x112x112{' channels_last' if channels_last else ''}", (64, 64, 112, 112), dtype,
             channels_last=channels_last)
        for dtype in (torch.float16, torch.float32)
        for channels_last in (False, True)
    ]  # fmt: skip


class Timer:
    """Median milliseconds of a callable: do_bench on CUDA, perf_counter on CPU."""

    def __init__(self, device: str, repeats: int) -> None:
        self.device = device
        self.repeats = repeats

    def __call__(self, fn: Callable[[], object], grad_to_none: list[torch.Tensor] | None = None) -> float:
        if self.device == "cuda":
            import triton.testing

            # ~60 ms of repetitions per measurement: hundreds of runs for these sizes, and the
            # whole CUDA table stays within a few minutes.
            return float(triton.testing.do_bench(fn, warmup=10, rep=60, grad_to_none=grad_to_none, return_mode="median"))
        times = []
        for _ in range(self.repeats + 1):  # the first run warms up caches and the allocator
            for t in grad_to_none or []:
                t.grad = None
            started = time.perf_counter()
            fn()
            times.append((time.perf_counter() - started) * 1e3)
            if len(times) >= 2 and sum(times) > CPU_SECONDS_PER_MEASUREMENT * 1e3:
                break
        return statistics.median(times[1:])


def copy_bandwidth(timer: Timer, device: str) -> float:
    """GB/s of a 1 GiB device-to-device (or RAM-to-RAM) copy, bytes read plus written."""
    source = torch.empty(GIB, dtype=torch.uint8, device=device).fill_(1)
    target = torch.empty_like(source)
    ms = timer(lambda: target.copy_(source))
    del source, target
    return 2 * GIB / (ms * 1e-3) / 1e9


def operations(case: Case) -> dict[str, Callable[[torch.Tensor], torch.Tensor]]:
    rank, kernel, stride, padding = case.rank, case.kernel, case.stride, case.padding
    average = AVG_POOLS[rank]

    def naive(x: torch.Tensor) -> torch.Tensor:
        weights = x.exp()
        return average(x * weights, kernel, stride, padding) / average(weights, kernel, stride, padding)

    return {
        "softpool": lambda x: SOFT_POOLS[rank](x, kernel, stride, padding),
        "max_pool": lambda x: MAX_POOLS[rank](x, kernel, stride, padding),
        "avg_pool": lambda x: average(x, kernel, stride, padding),
        "naive": naive,
    }


def measure(case: Case, timer: Timer, device: str, others: tuple[str, ...]) -> dict[tuple[str, str], float]:
    """Median ms of SoftPool and the ``others``, forward and forward+backward, keyed by (pass, operation)."""
    x = case.make_input(device)
    x_grad = x.detach().clone().requires_grad_(True)
    results = {}
    for name, op in operations(case).items():
        if name != "softpool" and name not in others:
            continue
        with torch.no_grad():
            results[("forward", name)] = timer(lambda: op(x))
        grad_y = torch.randn_like(op(x.detach()))  # same shape and layout as the output

        def forward_backward() -> None:
            op(x_grad).backward(grad_y)

        results[("forward+backward", name)] = timer(forward_backward, grad_to_none=[x_grad])
        del grad_y
    return results


def traffic_bytes(case: Case, phase: str) -> int:
    """Bytes SoftPool's Triton kernels read and write in a pass ("forward" or "forward+backward").

    Forward: x and y. Forward + backward: the forward as autograd runs it, which for
    overlapping windows (kernel > stride) also writes the gather backward's statistics (r in the
    compute dtype, and y in it for half-precision inputs), then the backward: x, dy and dx, and
    those statistics read back. Non-overlapping windows save nothing: their backward recomputes.
    """
    x = torch.empty(case.shape, dtype=case.dtype, device="meta")
    y = MAX_POOLS[case.rank](x, case.kernel, case.stride, case.padding)
    element = x.element_size()
    forward = (x.numel() + y.numel()) * element
    if phase == "forward":
        return forward
    stride = case.kernel if case.stride is None else case.stride
    statistics = 0
    if case.kernel > stride:
        compute = 8 if case.dtype == torch.float64 else 4
        statistics = y.numel() * compute * (1 if element == compute else 2)
    backward = (2 * x.numel() + y.numel()) * element + statistics
    return forward + statistics + backward


def format_table(rows: list[list[str]], markdown: bool) -> str:
    if markdown:
        lines = ["| " + " | ".join(row) + " |" for row in rows]
        lines.insert(1, "|" + "|".join("---" for _ in rows[0]) + "|")
        return "\n".join(lines)
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(row, widths)) for row in rows)


def machine_description(device: str) -> str:
    parts = [f"torch {torch.__version__}"]
    try:
        import triton

        parts.append(f"triton {triton.__version__}")
    except ImportError:
        parts.append("no triton")
    if device == "cuda":
        properties = torch.cuda.get_device_properties(0)
        parts.insert(0, f"{properties.name} ({properties.total_memory / GIB:.0f} GiB)")
        try:
            driver = subprocess.run(
                ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                capture_output=True, text=True, check=True,
            ).stdout.strip()  # fmt: skip
            parts.insert(1, f"driver {driver}")
        except (OSError, subprocess.CalledProcessError):
            pass
        parts.append(f"CUDA {torch.version.cuda}")
    else:
        cpu = platform.processor() or platform.machine()
        try:
            with open("/proc/cpuinfo") as info:
                cpu = next(line.split(":", 1)[1].strip() for line in info if line.startswith("model name"))
        except (OSError, StopIteration):
            pass
        parts.insert(0, f"{cpu}, {os.cpu_count()} cores, {torch.get_num_threads()} torch threads")
    return ", ".join(parts) + f"; {datetime.date.today().isoformat()}"


def run_benchmark(cases: list[Case], device: str, timer: Timer, markdown: bool, others: tuple[str, ...]) -> None:
    copy = copy_bandwidth(timer, device)
    print(f"{'## ' if markdown else ''}SoftPool on {device}: {machine_description(device)}\n")
    print(f"Copy bandwidth ({'device to device' if device == 'cuda' else 'RAM to RAM'}, read + write): {copy:.3g} GB/s\n")
    groups: dict[tuple[int, torch.dtype], list[tuple[Case, dict]]] = {}
    for case in cases:
        started = time.perf_counter()
        results = measure(case, timer, device, others)
        print(f"  measured {case.label} {DTYPE_NAMES[case.dtype]} {case.window_name()} "
              f"in {time.perf_counter() - started:.1f} s", file=sys.stderr)  # fmt: skip
        groups.setdefault((case.rank, case.dtype), []).append((case, results))
        if device == "cuda":
            torch.cuda.empty_cache()

    if device == "cuda":
        print_targets(groups, copy, markdown, others)

    header = ["case", "window", "pass", "softpool ms", "GB/s", "% of copy", *(f"{o} ms (ratio)" for o in others)]
    for (rank, dtype), entries in groups.items():
        print(f"{'### ' if markdown else ''}{rank}D, {DTYPE_NAMES[dtype]}\n")
        rows = [header]
        for case, results in entries:
            for phase in ("forward", "forward+backward"):
                ms = results[(phase, "softpool")]
                bandwidth = traffic_bytes(case, phase) / (ms * 1e-3) / 1e9
                row = [case.label, case.window_name(), phase, f"{ms:.3f}", f"{bandwidth:.3g}",
                       f"{100 * bandwidth / copy:.3g}%"]  # fmt: skip
                for other in others:
                    other_ms = results[(phase, other)]
                    row.append(f"{other_ms:.3f} ({ms / other_ms:.2f}x)")
                rows.append(row)
        print(format_table(rows, markdown) + "\n")


# The GPU targets: forward at >= 85% of the copy bandwidth, <= 1.1x max pooling's forward time,
# forward+backward <= 1.3x max pooling's, and >= 5x faster than the naive composition's.
TARGETS = {"copy": 0.85, "forward": 1.1, "forward+backward": 1.3, "naive": 5.0}


def print_targets(groups: dict, copy: float, markdown: bool, others: tuple[str, ...]) -> None:
    """One row per case: each target's measured value, marked ok or MISS (the naive one if measured)."""

    def mark(ok: bool, text: str) -> str:
        return f"{text} {'ok' if ok else 'MISS'}"

    rows = [["case", "dtype", "window", "forward % of copy", "fwd+bwd % of copy", "forward / max_pool",
             "fwd+bwd / max_pool", *(["naive fwd+bwd / softpool"] if "naive" in others else [])]]  # fmt: skip
    for (_, dtype), entries in groups.items():
        for case, results in entries:
            forward, both = results[("forward", "softpool")], results[("forward+backward", "softpool")]
            share = traffic_bytes(case, "forward") / (forward * 1e-3) / 1e9 / copy
            both_share = traffic_bytes(case, "forward+backward") / (both * 1e-3) / 1e9 / copy
            forward_ratio = forward / results[("forward", "max_pool")]
            both_ratio = both / results[("forward+backward", "max_pool")]
            row = [
                case.label, DTYPE_NAMES[dtype], case.window_name(),
                mark(share >= TARGETS["copy"], f"{100 * share:.0f}%"),
                f"{100 * both_share:.0f}%",
                mark(forward_ratio <= TARGETS["forward"], f"{forward_ratio:.2f}x"),
                mark(both_ratio <= TARGETS["forward+backward"], f"{both_ratio:.2f}x"),
            ]  # fmt: skip
            if "naive" in others:
                speedup = results[("forward+backward", "naive")] / both
                row.append(mark(speedup >= TARGETS["naive"], f"{speedup:.1f}x"))
            rows.append(row)
    print(f"{'### ' if markdown else ''}Targets\n")
    print(format_table(rows, markdown) + "\n")


def run_tuning(quick: bool, markdown: bool) -> None:
    """Time the Triton kernels under several tile sizes and warp counts; print the table and the best.

    Forward rows vary ELEMENTS_PER_THREAD (the forward's and the non-overlapping backward's),
    forward+backward rows BACKWARD_LOADS_PER_THREAD (the gather's, the forward at its default);
    both with CUDA_WARPS 4 and 8.
    """
    from softpool.kernels import config as soft_pool_nd

    scale = 4 if quick else 1
    cases = [
        Case("64x64x112x112", (64 // scale, 64, 112, 112), torch.float16),
        Case("64x64x112x112 channels_last", (64 // scale, 64, 112, 112), torch.float16, channels_last=True),
        Case("64x64x112x112", (64 // scale, 64, 112, 112), torch.float16, 3, 2, 1),
        Case("8x64x16x112x112 video", (8 // scale, 64, 16, 112, 112), torch.float16),
    ]
    names = [f"{case.label} {DTYPE_NAMES[case.dtype]} {case.window_name()}" for case in cases]
    timer = Timer("cuda", 0)
    knobs = ("ELEMENTS_PER_THREAD", "BACKWARD_LOADS_PER_THREAD", "CUDA_WARPS")
    defaults = {name: getattr(soft_pool_nd, name) for name in knobs}
    rows = [["pass", "loads per thread", "max warps", *names]]
    best: dict[tuple[str, str], tuple[float, int, int]] = {}
    try:
        for phase, knob in (("forward", knobs[0]), ("forward+backward", knobs[1])):
            for loads in (16, 32, 64, 128) if phase == "forward" else (4, 8, 16, 32):
                for warps in (4, 8):
                    for name, value in defaults.items():
                        setattr(soft_pool_nd, name, value)
                    setattr(soft_pool_nd, knob, loads)
                    soft_pool_nd.CUDA_WARPS = warps
                    row = [phase, str(loads), str(warps)]
                    for case, name in zip(cases, names):
                        x = case.make_input("cuda")
                        op = operations(case)["softpool"]
                        if phase == "forward":
                            with torch.no_grad():
                                ms = timer(lambda: op(x))
                        else:
                            x.requires_grad_(True)
                            grad_y = torch.randn_like(op(x.detach()))
                            ms = timer(lambda: op(x).backward(grad_y), grad_to_none=[x])
                        row.append(f"{ms:.3f}")
                        if (phase, name) not in best or ms < best[(phase, name)][0]:
                            best[(phase, name)] = (ms, loads, warps)
                        del x
                    rows.append(row)
                    print(f"  tuned {phase} loads={loads} warps={warps}: {' '.join(row[3:])} ms", file=sys.stderr)
    finally:
        for name, value in defaults.items():
            setattr(soft_pool_nd, name, value)
    print(f"{'## ' if markdown else ''}Tile sweep (median ms): {machine_description('cuda')}\n")
    print(f"Defaults: {defaults}\n")
    print(format_table(rows, markdown) + "\n")
    for (phase, name), (ms, loads, warps) in best.items():
        print(f"best {phase:17} {name}: {ms:.3f} ms at loads per thread {loads}, max warps {warps}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto", help="default: cuda if available")
    parser.add_argument("--quick", action="store_true", help="small sizes")
    parser.add_argument("--markdown", action="store_true", help="markdown tables with the machine, for RESULTS.md")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per measurement on CPU (median)")
    parser.add_argument("--only", default="", help="run only cases whose label contains this text")
    parser.add_argument("--tune", action="store_true", help="CUDA: sweep the Triton kernels' tile sizes instead")
    parser.add_argument("--gpu-quick", action="store_true", help="CUDA: the 4 cases of gpu_check.sh quick, against max_pool")
    parser.add_argument("--dry-run", action="store_true", help="no GPU: compile the cases' kernels for sm_90 and list bytes")
    args = parser.parse_args()

    if args.dry_run:
        dry_run(gpu_quick_cases() if args.gpu_quick else cuda_cases(args.quick), args.markdown)
        return
    device = args.device if args.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA device is available")
    if args.tune:
        if device != "cuda":
            parser.error("--tune needs a CUDA device")
        run_tuning(args.quick, args.markdown)
        return
    others = ("max_pool", "avg_pool", "naive")
    if args.gpu_quick:
        if device != "cuda":
            parser.error("--gpu-quick needs a CUDA device (or --dry-run)")
        cases, others = gpu_quick_cases(), ("max_pool",)
    else:
        cases = cuda_cases(args.quick) if device == "cuda" else cpu_cases(args.quick)
    cases = [case for case in cases if args.only in case.label]
    run_benchmark(cases, device, Timer(device, args.repeats), args.markdown, others)


def dry_run(cases: list[Case], markdown: bool) -> None:
    """What the benchmark would run on a GPU, without one: every Triton kernel its cases launch,
    compiled for sm_90 (registers and spills from the compiler), and the bytes each pass moves."""
    import kernel_report

    if kernel_report.soft_pool_nd.INTERPRETED:
        raise SystemExit("--dry-run compiles for the GPU: set TRITON_INTERPRET=0")
    rows = [["case", "dtype", "window", "pass", "MB moved", "kernels (registers, spills)"]]
    for case in cases:
        x = torch.empty(case.shape, dtype=case.dtype, device="meta")
        if case.channels_last:
            x = x.contiguous(memory_format=torch.channels_last if case.rank == 2 else torch.channels_last_3d)
        compiled = []
        for launch in kernel_report.launches(x, case.kernel, case.stride or case.kernel, case.padding):
            info = kernel_report.inspect(kernel_report.compile_for(launch.kernel, launch.arguments, launch.options, 90))
            compiled.append((launch.name, f"{launch.name}: {info['registers']}, {info['spills']}"))
        for phase in ("forward", "forward+backward"):
            kernels = [text for name, text in compiled if phase == "forward+backward" or name == "forward"]
            rows.append([case.label, DTYPE_NAMES[case.dtype], case.window_name(), phase,
                         f"{traffic_bytes(case, phase) / 1e6:.1f}", "; ".join(kernels)])  # fmt: skip
        print(f"  compiled {case.label} {DTYPE_NAMES[case.dtype]}", file=sys.stderr)
    print(f"{'## ' if markdown else ''}Dry run (no GPU): kernels compiled for sm_90\n")
    print(format_table(rows, markdown) + "\n")


if __name__ == "__main__":
    main()
