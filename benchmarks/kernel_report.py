"""What the Triton kernels compile to, read without a GPU.

Compiles every kernel variant that a case launches for a GPU architecture (sm_90 by default:
Triton ships ptxas and cuobjdump, so no GPU or driver is needed) and prints, per variant: the
tile, warps and programs per SM the launcher picks (132 SMs without a device), registers,
spills (stack and local memory), shared memory, the widths of the global loads and stores in
the SASS, SASS instructions per input element, and the bytes the pass moves per input element.

Counting. "instr/elem" is the number of SASS instructions of the kernel (cuobjdump -sass,
without the NOP padding and the final branch-to-self after EXIT) divided by the input elements
one thread handles: tile outputs x window values / threads for the kernels with one lane per
output, tile inputs / threads for the gather backward. The 2x2 kernels are straight-line code
(no loops), so each thread executes every instruction once: the static count is the dynamic
one. "B/elem" counts every byte a pass reads or writes (x, y, dy, dx and the statistics) per
input element; "training" is the forward as autograd runs it (it saves statistics only where
the backward needs them).

The launches come from the library itself (`softpool.kernels.soft_pool_nd`), so the table
describes what a call would run. The script also reads the kernel module of earlier revisions
(one forward that saves statistics, one gather backward, from before the window backward):
SOFTPOOL_ROOT=<such a checkout> gives the "before" column of benchmarks/RESULTS.md.

Usage:
    TRITON_INTERPRET=0 python benchmarks/kernel_report.py [--markdown] [--arch 90] [--only fp16]
    TRITON_INTERPRET=0 python benchmarks/kernel_report.py --window 3 2 1   # other windows
"""

from __future__ import annotations

import argparse
import math
import os
import re
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("TRITON_INTERPRET", "0")
os.environ.setdefault("TRITON_DEFAULT_FP_FUSION", "1")  # Triton 3.9 warns when unset; 1 is its default

import torch  # noqa: E402

# The checkout whose kernels are compiled: this one, or SOFTPOOL_ROOT.
sys.path.insert(0, os.environ.get("SOFTPOOL_ROOT", str(Path(__file__).resolve().parents[1])))

from softpool._arguments import pool_geometry  # noqa: E402
from softpool.kernels import soft_pool_nd  # noqa: E402

SHAPES = [(64, 64, 112, 112), (32, 256, 56, 56), (1, 3, 2160, 3840)]
DTYPES = {"fp16": torch.float16, "fp32": torch.float32, "bf16": torch.bfloat16}
POINTER_TYPES = {torch.float32: "*fp32", torch.float16: "*fp16", torch.bfloat16: "*bf16", torch.float64: "*fp64"}
DEFAULT_SM_COUNT = 132


@dataclass
class Launch:
    """One kernel launch as the library would make it, with the tensors it touches."""

    name: str
    kernel: object
    grid: tuple[int]
    arguments: tuple
    options: dict
    elements_per_thread: float
    tensors: list[torch.Tensor]


def _bytes(tensors: list[torch.Tensor]) -> int:
    seen, total = set(), 0
    for tensor in tensors:
        if id(tensor) not in seen:
            seen.add(id(tensor))
            total += tensor.numel() * tensor.element_size()
    return total


def _output_centric_elements(options: dict, window: int) -> float:
    return options["BLOCK_3"] * options["BLOCK_4"] * window / (32 * options["num_warps"])


def _gather_elements(options: dict) -> float:
    return options["BLOCK_3"] * options["BLOCK_4"] / (32 * options["num_warps"])


def launches(x: torch.Tensor, kernel_size: int, stride: int, padding: int) -> list[Launch]:
    """The forward (inference and training) and backward launches of one call on ``x``."""
    geometry = pool_geometry(tuple(x.shape[2:]), kernel_size, stride, padding, False)
    window = kernel_size ** (x.dim() - 2)
    grad_x = torch.empty_like(x)
    result = []
    if hasattr(soft_pool_nd, "_window_backward_launch"):
        from softpool.kernels.launch import non_overlapping

        recompute = non_overlapping(geometry)
        for name, save_stats in (("forward", False), ("forward training", not recompute)):
            if name == "forward training" and not save_stats:
                continue
            y, reference, log_normalizer = soft_pool_nd._allocate_forward(x, geometry, save_stats)
            kernel, grid, arguments, options = soft_pool_nd._forward_launch(x, y, reference, log_normalizer, geometry, 1.0)
            tensors = [x, y] + ([reference, log_normalizer] if save_stats else [])
            result.append(Launch(name, kernel, grid, arguments, options, _output_centric_elements(options, window), tensors))
        grad_y = torch.empty_like(y)
        if recompute:
            kernel, grid, arguments, options = soft_pool_nd._window_backward_launch(x, grad_y, grad_x, geometry, 1.0)
            elements, tensors = _output_centric_elements(options, window), [x, grad_y, grad_x]
        else:
            kernel, grid, arguments, options = soft_pool_nd._gather_backward_launch(
                x, grad_y, grad_x, reference, log_normalizer, geometry, 1.0
            )
            elements, tensors = _gather_elements(options), [x, grad_y, grad_x, reference, log_normalizer]
        result.append(Launch("backward", kernel, grid, arguments, options, elements, tensors))
        return result
    # Earlier revisions: the forward saved statistics whenever autograd ran; a gather backward.
    for name, save_stats in (("forward", False), ("forward training", True)):
        y, reference, log_normalizer = soft_pool_nd._allocate_forward(x, geometry, save_stats)
        grid, arguments, options = soft_pool_nd._forward_launch(x, y, reference, log_normalizer, geometry, 1.0)
        tensors = [x, y] + ([reference, log_normalizer] if save_stats else [])
        elements = _output_centric_elements(options, window)
        result.append(Launch(name, soft_pool_nd._softpool_fwd_kernel, grid, arguments, options, elements, tensors))
    grad_y = torch.empty_like(y)
    grid, arguments, options = soft_pool_nd._backward_launch(x, grad_y, grad_x, reference, log_normalizer, geometry, 1.0)
    tensors = [x, grad_y, grad_x, reference, log_normalizer]
    result.append(Launch("backward", soft_pool_nd._softpool_bwd_kernel, grid, arguments, options, _gather_elements(options), tensors))
    return result


def compile_for(kernel, arguments: tuple, options: dict, arch: int):
    """Compile ``kernel`` as a launch with these arguments would, for sm_``arch``, without a GPU.

    As Triton specialises a launch: integers equal to 1 become constants, and pointers (fresh
    allocations are 16-byte aligned) and integers divisible by 16 are marked so.
    """
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    constexprs = {name: value for name, value in options.items() if name not in ("num_warps", "num_stages")}
    signature, attrs = {}, {}
    for index, (name, value) in enumerate(zip(kernel.arg_names, arguments)):
        if isinstance(value, torch.Tensor):
            signature[name] = POINTER_TYPES[value.dtype]
            attrs[(index,)] = [["tt.divisibility", 16]]
        elif isinstance(value, float):
            signature[name] = "fp64"  # beta, annotated tl.float64 in the kernels
        elif value == 1:
            signature[name], constexprs[name] = "constexpr", 1
        else:
            signature[name] = "i32" if -(2**31) <= value < 2**31 else "i64"
            if value % 16 == 0:
                attrs[(index,)] = [["tt.divisibility", 16]]
    for name in constexprs:
        signature[name] = "constexpr"
    source = ASTSource(kernel, signature, constexprs, attrs)
    compile_options = {"num_warps": options["num_warps"], "num_stages": options["num_stages"]}
    return triton.compile(source, target=GPUTarget("cuda", arch, 32), options=compile_options)


def _tool(name: str) -> str:
    import triton

    bundled = Path(triton.__file__).parent / "backends" / "nvidia" / "bin" / name
    return str(bundled) if bundled.exists() else name


def inspect(compiled) -> dict:
    """Resources and SASS statistics of a compiled kernel."""
    with tempfile.NamedTemporaryFile(suffix=".cubin", delete=False) as binary:
        binary.write(compiled.asm["cubin"])
    try:
        usage = subprocess.run([_tool("cuobjdump"), "--dump-resource-usage", binary.name], capture_output=True, text=True)
        sass = subprocess.run([_tool("cuobjdump"), "-sass", binary.name], capture_output=True, text=True).stdout
    finally:
        os.unlink(binary.name)
    registers, stack, shared, local = re.search(r"REG:(\d+) STACK:(\d+) SHARED:(\d+) LOCAL:(\d+)", usage.stdout).groups()
    instructions = []
    for line in sass.splitlines():
        match = re.match(r"\s+/\*[0-9a-f]{4,}\*/\s+(.*?);", line)
        if match:
            instructions.append(match.group(1).strip())
    # Drop the alignment padding and the branch-to-self that ends the code.
    instructions = [i for i in instructions if not i.startswith("NOP")]
    while instructions and re.fullmatch(r"BRA 0x[0-9a-f]+", instructions[-1]):
        instructions.pop()
    opcodes = [i.split()[1] if i.startswith("@") else i.split()[0] for i in instructions]
    return {
        "registers": int(registers),
        "spills": int(stack) + int(local),
        "shared": int(shared),
        "instructions": len(instructions),
        "loads": _widths(opcodes, "LDG"),
        "stores": _widths(opcodes, "STG"),
    }


def _widths(opcodes: list[str], prefix: str) -> str:
    """'128x4 16x2': how many global accesses of each width in bits."""
    counts = Counter()
    for opcode in opcodes:
        if opcode.startswith(prefix + "."):
            parts = opcode.split(".")
            width = 32
            for part in parts[1:]:
                if part in ("128", "64"):
                    width = int(part)
                elif part in ("U16", "S16"):
                    width = 16
                elif part in ("U8", "S8"):
                    width = 8
            counts[width] += 1
    return " ".join(f"{width}x{count}" for width, count in sorted(counts.items(), reverse=True)) or "-"


def report(arch: int, markdown: bool, only: str, window: tuple[int, int, int]) -> None:
    kernel_size, stride, padding = window
    window_name = f"{kernel_size}x{kernel_size}/{stride}" + (f" pad {padding}" if padding else "")
    header = ["case", "dtype", "layout", "pass", "tile", "warps", "programs/SM", "REG", "spills", "smem B",
              "loads (bits x n)", "stores (bits x n)", "instr/elem", "B/elem"]  # fmt: skip
    rows = [header]
    cache: dict = {}
    for shape in SHAPES:
        for dtype_name, dtype in DTYPES.items():
            for layout in ("NCHW", "channels_last"):
                label = f"{'x'.join(map(str, shape))} {dtype_name} {layout}"
                if only and only not in label:
                    continue
                x = torch.empty(shape, dtype=dtype, device="meta")
                if layout == "channels_last":
                    x = x.contiguous(memory_format=torch.channels_last)
                for launch in launches(x, kernel_size, stride, padding):
                    key = (launch.kernel.fn.__name__ if hasattr(launch.kernel, "fn") else str(launch.kernel),
                           tuple(a if not isinstance(a, torch.Tensor) else a.dtype for a in launch.arguments),
                           tuple(sorted((k, str(v)) for k, v in launch.options.items())))  # fmt: skip
                    started = time.perf_counter()
                    if key not in cache:
                        cache[key] = inspect(compile_for(launch.kernel, launch.arguments, launch.options, arch))
                    info = cache[key]
                    options = launch.options
                    rows.append([
                        "x".join(map(str, shape)), dtype_name, layout, launch.name,
                        f"{options['BLOCK_3']}x{options['BLOCK_4']}", str(options["num_warps"]),
                        f"{math.prod(launch.grid) / DEFAULT_SM_COUNT:.1f}", str(info["registers"]), str(info["spills"]),
                        str(info["shared"]), info["loads"], info["stores"],
                        f"{info['instructions'] / launch.elements_per_thread:.1f}",
                        f"{_bytes(launch.tensors) / x.numel():.2f}",
                    ])  # fmt: skip
                    print(f"  {label} {launch.name}: {time.perf_counter() - started:.1f} s", file=sys.stderr)
    print(f"{'### ' if markdown else ''}Compiled for sm_{arch}, {window_name} windows: {_versions()}\n")
    print(_format(rows, markdown))


def _versions() -> str:
    import triton

    return f"triton {triton.__version__}, torch {torch.__version__}, {DEFAULT_SM_COUNT} SMs assumed"


def _format(rows: list[list[str]], markdown: bool) -> str:
    if markdown:
        lines = ["| " + " | ".join(row) + " |" for row in rows]
        lines.insert(1, "|" + "|".join("---" for _ in rows[0]) + "|")
        return "\n".join(lines)
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(row, widths)) for row in rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--arch", type=int, default=90, help="compute capability (90: H100/H200)")
    parser.add_argument("--markdown", action="store_true", help="a markdown table, for benchmarks/RESULTS.md")
    parser.add_argument("--only", default="", help="only cases whose label ('64x64x112x112 fp16 NCHW') contains this")
    parser.add_argument("--window", type=int, nargs=3, default=(2, 2, 0), metavar=("KERNEL", "STRIDE", "PADDING"))
    args = parser.parse_args()
    if soft_pool_nd.INTERPRETED:
        parser.error("kernel_report compiles for the GPU: set TRITON_INTERPRET=0")
    report(args.arch, args.markdown, args.only, tuple(args.window))


if __name__ == "__main__":
    main()
