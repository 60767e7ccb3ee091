"""Whole commands of two revisions of softpool, interleaved, on the same inputs and machine.

    python benchmarks/compare_revisions.py bd412e8            # that commit against the installed code
    python benchmarks/compare_revisions.py bd412e8 --repeats 7

The older revision is checked out in a temporary worktree and put first on PYTHONPATH, so
both run in this environment (same libraries, same console script); the installed code is
"after". Inputs are `bench_commands.py`'s. Rounds alternate the two, so a drifting load hits
both alike. Prints a Markdown table of medians (wall s, peak MiB) and their ratio.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from bench_commands import ROOT, SOFTPOOL, make_inputs, timed


def rows(inputs: dict[str, Path], out: Path) -> dict[str, list[str]]:
    return {
        "downsample 4K JPEG": ["downsample", inputs["4k.jpg"], out / "out-4k.jpg", "--overwrite"],
        "downsample 24 MP JPEG": ["downsample", inputs["24mp.jpg"], out / "out-24mp.jpg", "--overwrite"],
        "downsample 16-bit 4K PNG": ["downsample", inputs["4k-16bit.png"], out / "16.png", "--overwrite"],
        "video 1080p 5 s --factor 2": ["video", inputs["1080p.mp4"], out / "v.mp4", "--factor", "2", "--overwrite"],
        "video GIF --time-factor 1": ["video", inputs["480p.gif"], out / "v.gif", "--time-factor", "1", "--overwrite"],
        "gallery samples": ["gallery", ROOT / "samples", "--out", out / "gallery"],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("before", help="the older revision (a commit, tag or branch)")
    parser.add_argument("--repeats", type=int, default=5)
    arguments = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="softpool-revisions-") as scratch:
        folder = Path(scratch)
        worktree = folder / "before"
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(worktree), arguments.before],
                       check=True, capture_output=True)  # fmt: skip
        try:
            wanted = {"downsample-4k", "downsample-24mp", "methods-4k-png", "video-1080p", "video-gif"}
            with multiprocessing.get_context("spawn").Pool(1) as pool:
                inputs = pool.apply(make_inputs, (folder, wanted))
            base = {key: value for key, value in os.environ.items() if key not in ("PYTHONDONTWRITEBYTECODE", "TRITON_INTERPRET")}
            environments = {"before": {**base, "PYTHONPATH": str(worktree)}, "after": base}
            samples: dict = {}
            for round_ in range(arguments.repeats + 1):  # the first round warms caches, untimed
                for name, argv in rows(inputs, folder).items():
                    for label, env in environments.items():
                        shutil.rmtree(folder / "gallery", ignore_errors=True)
                        wall, peak = timed([*SOFTPOOL, *map(str, argv), "--quiet"], env)
                        if round_:
                            samples.setdefault((name, label), []).append((wall, peak))
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(worktree)], capture_output=True)
    print(f"before: {arguments.before}; after: the installed code; median of {arguments.repeats} rounds")
    print()
    print("| command | before s | before MiB | after s | after MiB | after/before |")
    print("|---|---|---|---|---|---|")
    for name in rows({key: Path(key) for key in ("4k.jpg", "24mp.jpg", "4k-16bit.png", "1080p.mp4", "480p.gif")}, folder):
        before = [statistics.median(v) for v in zip(*samples[(name, "before")])]
        after = [statistics.median(v) for v in zip(*samples[(name, "after")])]
        print(f"| {name} | {before[0]:.3f} | {before[1]:.0f} | {after[0]:.3f} | {after[1]:.0f} | {after[0] / before[0]:.2f}x |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
