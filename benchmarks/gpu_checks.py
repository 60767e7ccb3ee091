"""Checks of the Triton kernels that need a real GPU, beyond the test suite.

- Relative error ||out - ref|| / ||ref|| against the float64 loop reference (tests/reference.py),
  forward and backward, per rank and dtype, for overlapping windows (the gather backward) and
  2x2 ones (the recomputing backward), with every tensor the kernels allocate filled with
  NaN first so that an unwritten element shows. Targets: float32 1e-6, float16 1e-3,
  bfloat16 1e-2 (float64 1e-12).
- Bit-identical gradients across two runs under ``torch.use_deterministic_algorithms(True)``.
- A float16 tensor of more than 2**31 elements (64-bit offsets): forward and backward, no NaN
  anywhere in the poisoned outputs, and a few windows at the start, the middle and the far end
  compared with the reference.

``--resources`` instead compiles the kernels as the benchmark's CUDA cases launch them, for a
GPU architecture (sm_90 by default), and prints the compiler's resource report: registers,
spills (stack and local memory), shared memory and the global loads' widths. It needs no GPU
(Triton ships ptxas and cuobjdump; `kernel_report.py` does the compiling), so register pressure
can be read anywhere.

Usage (TRITON_INTERPRET must be 0 for CUDA and --resources, 1 for the CPU run through the interpreter):
    TRITON_INTERPRET=0 python benchmarks/gpu_checks.py
    TRITON_INTERPRET=1 python benchmarks/gpu_checks.py --device cpu --small   # the same code paths, tiny
    TRITON_INTERPRET=0 python benchmarks/gpu_checks.py --resources [--arch 90]
Exits with status 1 if any check fails.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests"), str(ROOT / "benchmarks")]

from bench_kernels import Case, cuda_cases  # noqa: E402
from reference import soft_pool_reference, soft_pool_reference_grad  # noqa: E402
from softpool import soft_pool1d, soft_pool2d, soft_pool3d  # noqa: E402
from softpool.kernels import soft_pool_nd  # noqa: E402
from test_triton_kernels import poisoned_allocations  # noqa: E402

FUNCTIONS = {1: soft_pool1d, 2: soft_pool2d, 3: soft_pool3d}
TARGETS = {torch.float64: 1e-12, torch.float32: 1e-6, torch.float16: 1e-3, torch.bfloat16: 1e-2}
DTYPE_NAMES = {torch.float32: "float32", torch.float16: "float16", torch.bfloat16: "bfloat16", torch.float64: "float64"}
# More than 2**31 = 2147483648 elements: 8 x 16400 x 16384 = 2149580800 (4.3 GB in float16).
LARGE_SHAPE = (1, 8, 16400, 16384)


def relative_error(actual: torch.Tensor, expected: torch.Tensor) -> float:
    actual = actual.detach().cpu().double()
    return ((actual - expected).norm() / expected.norm()).item()


def check_relative_errors(device: str, small: bool) -> list[tuple[str, bool, str]]:
    """Forward and backward error per rank and dtype, on overlapping, padded, ceil_mode windows
    (the gather backward) and on 2x2 windows over odd sizes (the recomputing backward)."""
    shapes = {
        1: (2, 3, 37) if small else (8, 32, 1001),
        2: (1, 2, 9, 11) if small else (4, 16, 67, 93),
        3: (1, 2, 5, 7, 6) if small else (2, 8, 9, 33, 35),
    }
    results = []
    for window in ((3, 2, 1, True), (2, 2, 0, False)):
        for rank, shape in shapes.items():
            for dtype, target in TARGETS.items():
                torch.manual_seed(rank)
                x = torch.randn(shape, device=device, dtype=torch.float64).to(dtype).requires_grad_(True)
                grad_y_shape = FUNCTIONS[rank](x.detach(), *window, backend="triton").shape
                grad_y = torch.randn(grad_y_shape, device=device, dtype=torch.float64).to(dtype)
                with poisoned_allocations():
                    y = FUNCTIONS[rank](x, *window, beta=1.0, backend="triton")
                    y.backward(grad_y)
                x64 = x.detach().cpu().double()
                expected = soft_pool_reference(x64, *window, 1.0)
                expected_grad = soft_pool_reference_grad(x64, grad_y.cpu().double(), *window, 1.0)
                forward, backward = relative_error(y, expected), relative_error(x.grad, expected_grad)
                unwritten = int(y.isnan().sum()) + int(x.grad.isnan().sum())
                ok = forward <= target and backward <= target and unwritten == 0
                detail = f"forward {forward:.2e}, backward {backward:.2e} (target {target:.0e}), NaN {unwritten}"
                name = f"relative error {rank}D {DTYPE_NAMES[dtype]} {tuple(shape)} k{window[0]}s{window[1]}p{window[2]}"
                results.append((name, ok, detail))
    return results


def check_determinism(device: str, small: bool) -> list[tuple[str, bool, str]]:
    """Two backward runs with deterministic algorithms on must give bit-identical gradients."""
    cases = [
        ((2, 4, 13, 15) if small else (16, 64, 112, 112), 3, 1, 1, torch.float32, False),  # 9 windows per input
        ((2, 4, 13, 15) if small else (16, 64, 112, 112), 3, 2, 1, torch.float16, True),  # channels_last
        ((1, 2, 5, 7, 9) if small else (4, 32, 16, 56, 56), 3, 1, 1, torch.bfloat16, False),  # 27 windows
    ]
    results = []
    previous = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True)
    try:
        for shape, kernel, stride, padding, dtype, channels_last in cases:
            torch.manual_seed(0)
            x = torch.randn(shape, device=device, dtype=dtype)
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            x.requires_grad_(True)
            function = FUNCTIONS[len(shape) - 2]
            grad_y = torch.randn_like(function(x.detach(), kernel, stride, padding, backend="triton"))
            grads = []
            for _ in range(2):
                x.grad = None
                function(x, kernel, stride, padding, backend="triton").backward(grad_y)
                grads.append(x.grad.clone())
            same = torch.equal(grads[0], grads[1])
            name = f"deterministic {DTYPE_NAMES[dtype]} {tuple(shape)} k{kernel}s{stride}p{padding}"
            results.append((name + (" channels_last" if channels_last else ""), same, "bit-identical" if same else "differ"))
    finally:
        torch.use_deterministic_algorithms(previous)
    return results


def check_large_tensor(device: str, small: bool) -> list[tuple[str, bool, str]]:
    """A float16 tensor past 2**31 elements through forward and backward (2x2 windows, stride 2)."""
    shape = (1, 2, 20, 16) if small else LARGE_SHAPE
    torch.manual_seed(0)
    x = torch.randn(shape, device=device, dtype=torch.float16).requires_grad_(True)
    elements = x.numel()
    started = time.perf_counter()
    with poisoned_allocations():
        y = soft_pool2d(x, 2, backend="triton")
        grad_y = torch.ones_like(y)
        y.backward(grad_y)
    if device == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - started
    unwritten = int(y.isnan().sum()) + int(x.grad.isnan().sum())

    # Windows never straddle these blocks (even offsets, 2x2 windows), so each block's output and
    # gradient depend on the block alone. Channel 7 starts past 2**31 elements in the large shape.
    channels, height, width = shape[1], shape[2], shape[3]
    blocks = [(0, 0, 0), (channels // 2, height // 2 - 2, width // 2 - 8), (channels - 1, height - 4, width - 16)]
    worst_forward = worst_backward = 0.0
    for c, h, w in blocks:
        window = x.detach()[:, c : c + 1, h : h + 4, w : w + 16].cpu().double()  # (1, 1, 4, 16)
        expected = soft_pool_reference(window, 2)
        expected_grad = soft_pool_reference_grad(window, torch.ones_like(expected), 2)
        out = y.detach()[:, c : c + 1, h // 2 : h // 2 + 2, w // 2 : w // 2 + 8]
        grad = x.grad[:, c : c + 1, h : h + 4, w : w + 16]
        worst_forward = max(worst_forward, relative_error(out, expected))
        worst_backward = max(worst_backward, relative_error(grad, expected_grad))
    last_offset = sum((n - 1) * s for n, s in zip(x.shape, x.stride()))
    ok = unwritten == 0 and worst_forward <= 1e-3 and worst_backward <= 1e-3 and (small or last_offset >= 2**31)
    detail = (
        f"{elements} elements (last offset {last_offset}, 2**31 = {2**31}), forward+backward {seconds:.2f} s, "
        f"NaN {unwritten}, spot checks forward {worst_forward:.2e} backward {worst_backward:.2e}"
    )
    return [(f"large float16 tensor {tuple(shape)}", ok, detail)]


def report_resources(arch: int) -> None:
    """Compile every kernel variant the CUDA benchmark launches and print its resource usage."""
    import kernel_report

    cases = cuda_cases(quick=False) + [
        Case("16x64x112x112", (16, 64, 112, 112), torch.float32, 3, 1, 1),  # 9 windows per input
        Case("4x32x16x56x56", (4, 32, 16, 56, 56), torch.float16, 3, 1, 1),  # 27 windows per input
    ]
    seen = set()
    for case in cases:
        x = torch.empty(case.shape, dtype=case.dtype, device="meta")
        if case.channels_last:
            x = x.contiguous(memory_format=torch.channels_last if case.rank == 2 else torch.channels_last_3d)
        for launch in kernel_report.launches(x, case.kernel, case.stride or case.kernel, case.padding):
            tile = f"{launch.options['BLOCK_3']}x{launch.options['BLOCK_4']}"
            key = (launch.name, DTYPE_NAMES[case.dtype], str(sorted((k, str(v)) for k, v in launch.options.items())))
            if key in seen:
                continue
            seen.add(key)
            started = time.perf_counter()
            info = kernel_report.inspect(kernel_report.compile_for(launch.kernel, launch.arguments, launch.options, arch))
            print(
                f"{launch.name:16} {case.label:40} {DTYPE_NAMES[case.dtype]:8} {case.window_name():7} tile {tile:7} "
                f"warps {launch.options['num_warps']}  REG {info['registers']:>4} spills {info['spills']:>4} "
                f"shared {info['shared']:>5}  loads {info['loads']:12} ({time.perf_counter() - started:.1f} s)"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", choices=["cuda", "cpu"], default="cuda")
    parser.add_argument("--small", action="store_true", help="tiny sizes (the CPU interpreter run)")
    parser.add_argument("--resources", action="store_true", help="print the compiler's resource report instead")
    parser.add_argument("--arch", type=int, default=90, help="--resources: compute capability (90: H100/H200)")
    args = parser.parse_args()
    if args.resources:
        if soft_pool_nd.INTERPRETED:
            parser.error("--resources compiles for the GPU: set TRITON_INTERPRET=0")
        report_resources(args.arch)
        return
    if args.device == "cuda" and (soft_pool_nd.INTERPRETED or not torch.cuda.is_available()):
        parser.error("--device cuda needs a CUDA GPU and TRITON_INTERPRET=0")
    if args.device == "cpu" and not soft_pool_nd.INTERPRETED:
        parser.error("--device cpu runs the kernels through the interpreter: set TRITON_INTERPRET=1")

    results = []
    for check in (check_relative_errors, check_determinism, check_large_tensor):
        started = time.perf_counter()
        results += check(args.device, args.small)
        print(f"  {check.__name__} took {time.perf_counter() - started:.1f} s", file=sys.stderr)
    width = max(len(name) for name, _, _ in results)
    for name, ok, detail in results:
        print(f"{'PASS' if ok else 'FAIL'}  {name.ljust(width)}  {detail}")
    failed = sum(not ok for _, ok, _ in results)
    print(f"{len(results)} checks, {failed} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
