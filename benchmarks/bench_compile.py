"""torch.compile vs eager for a ResNet-18-shaped CNN with SoftPool, and the custom op's eager cost.

The network is ResNet-18's layout (7x7 stem, 3x3 stride-2 pooling, four stages of two basic
blocks, global pooling, linear head), built here so that torchvision is not needed. It runs
once with SoftPool (stem SoftPool2d(3, 2, 1), global AdaptiveSoftPool2d(1)) and once with the
original max / average pooling, eager and compiled (inductor, fullgraph=True), in eval mode
under `torch.inference_mode()`. Times are the best of ``--repeats`` rounds that alternate
between the variants (robust to other processes on a shared machine).

The second table is what the ``softpool::soft_pool`` custom op would add to an eager call:
the public function (which skips the op in eager mode), the op called directly, and the
PyTorch path with no argument checking, forward and forward + backward.

Usage:
    python benchmarks/bench_compile.py [--size 224] [--batch 1] [--width 64] [--repeats 20] [--threads 0]
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import time
from collections.abc import Callable

import torch
from torch import nn

from softpool import AdaptiveSoftPool2d, SoftPool2d, soft_pool2d
from softpool._arguments import pool_geometry
from softpool._ops import soft_pool_op
from softpool.torch_path.unfold import soft_pool_torch


class BasicBlock(nn.Module):
    def __init__(self, channels_in: int, channels_out: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels_in, channels_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels_out)
        self.conv2 = nn.Conv2d(channels_out, channels_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels_out)
        self.shortcut = nn.Identity()
        if stride != 1 or channels_in != channels_out:
            self.shortcut = nn.Sequential(
                nn.Conv2d(channels_in, channels_out, 1, stride, bias=False), nn.BatchNorm2d(channels_out)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(self.bn2(self.conv2(y)) + self.shortcut(x))


def resnet18_like(width: int, soft: bool, classes: int = 1000) -> nn.Module:
    widths = [width, 2 * width, 4 * width, 8 * width]
    layers: list[nn.Module] = [
        nn.Conv2d(3, width, 7, 2, 3, bias=False),
        nn.BatchNorm2d(width),
        nn.ReLU(),
        SoftPool2d(3, 2, 1) if soft else nn.MaxPool2d(3, 2, 1),
    ]
    channels = width
    for stage, out in enumerate(widths):
        for block in range(2):
            layers.append(BasicBlock(channels, out, 2 if stage > 0 and block == 0 else 1))
            channels = out
    layers += [AdaptiveSoftPool2d(1) if soft else nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(channels, classes)]
    return nn.Sequential(*layers).eval()


def best_ms(functions: dict[str, Callable[[], object]], repeats: int, calls: int = 1) -> dict[str, float]:
    """Best time per call of each function, in milliseconds, over ``repeats`` rounds of ``calls`` calls.

    Rounds alternate between the functions, so a burst of load from other processes hits them
    alike; the best round is the least disturbed one.
    """
    for function in functions.values():  # warm-up
        function()
    best = dict.fromkeys(functions, math.inf)
    for _ in range(repeats):
        for name, function in functions.items():
            start = time.perf_counter()
            for _ in range(calls):
                function()
            best[name] = min(best[name], (time.perf_counter() - start) / calls * 1e3)
    return best


def compile_table(size: int, batch: int, width: int, repeats: int) -> None:
    x = torch.randn(batch, 3, size, size)
    print(f"\nResNet-18-shaped CNN, input {tuple(x.shape)}, width {width}, eval, inference_mode")
    print(f"{'pooling':<26}{'eager ms':>10}{'compiled ms':>13}{'speed-up':>10}{'compile s':>11}{'max |diff|':>12}")
    for soft in (True, False):
        torch.manual_seed(0)
        model = resnet18_like(width, soft)
        compiled = torch.compile(model, fullgraph=True)
        with torch.inference_mode():
            start = time.perf_counter()
            compiled_out = compiled(x)
            compile_seconds = time.perf_counter() - start
            times = best_ms({"eager": lambda: model(x), "compiled": lambda: compiled(x)}, repeats)
            eager, fast = times["eager"], times["compiled"]
            difference = (compiled_out - model(x)).abs().max().item()
        name = "SoftPool (stem + global)" if soft else "MaxPool + AdaptiveAvgPool"
        print(f"{name:<26}{eager:>10.2f}{fast:>13.2f}{eager / fast:>9.2f}x{compile_seconds:>11.1f}{difference:>12.2e}")


def overhead_table(repeats: int) -> None:
    print("\nEager cost of the custom op (2x2 windows), microseconds per call (best round)")
    print(f"{'input':<18}{'pass':<14}{'soft_pool2d':>13}{'custom op':>11}{'torch path':>12}")
    for shape in [(1, 4, 8, 8), (8, 64, 56, 56)]:
        x = torch.randn(*shape)
        geometry = pool_geometry(tuple(x.shape[2:]), 2, 2, 0, False)
        window = ([2, 2], [2, 2], [0, 0], list(geometry.output_size))
        calls = {
            "soft_pool2d": lambda t: soft_pool2d(t, 2),
            "custom op": lambda t: soft_pool_op(t, *window, 1.0, "auto"),
            "torch path": lambda t: soft_pool_torch(t, geometry, 1.0),
        }
        calls_per_round = 200 if shape[0] == 1 else 1
        for label, needs_grad in (("forward", False), ("fwd + bwd", True)):
            source = x.clone().requires_grad_(needs_grad)
            if needs_grad:
                runs = {k: (lambda f=f: f(source).sum().backward()) for k, f in calls.items()}
            else:
                runs = {k: (lambda f=f: f(source)) for k, f in calls.items()}
            times = {k: t * 1e3 for k, t in best_ms(runs, repeats, calls_per_round).items()}
            print(
                f"{str(shape):<18}{label:<14}{times['soft_pool2d']:>13.1f}{times['custom op']:>11.1f}"
                f"{times['torch path']:>12.1f}"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=224, help="input height and width")
    parser.add_argument("--batch", type=int, default=1, help="batch size")
    parser.add_argument("--width", type=int, default=64, help="channels of the first stage (ResNet-18: 64)")
    parser.add_argument("--repeats", type=int, default=20, help="timed rounds per measurement")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = parser.parse_args()
    if args.threads > 0:
        # On a shared machine one thread per process avoids waiting on a descheduled worker.
        torch.set_num_threads(args.threads)
    load = ", load average {:.1f}".format(os.getloadavg()[0]) if hasattr(os, "getloadavg") else ""
    print(f"torch {torch.__version__}, {platform.machine()}, {torch.get_num_threads()} threads{load}")
    overhead_table(args.repeats)
    compile_table(args.size, args.batch, args.width, args.repeats)


if __name__ == "__main__":
    main()
