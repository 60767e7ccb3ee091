"""Which device pools: the CPU engine, or a CUDA GPU through PyTorch."""

from __future__ import annotations

import os
import sys

from softpool_cli.errors import SoftpoolError

DEVICES = ("auto", "cpu", "cuda")


class DeviceUnavailableError(SoftpoolError):
    """``--device cuda`` was asked for where PyTorch sees no CUDA GPU (a one-line CLI error)."""


def resolve_device(device: str) -> str:
    """Map ``"auto"`` to ``"cuda"`` when a CUDA GPU is available, else ``"cpu"``.

    ``"auto"`` settles on the CPU without importing PyTorch when no NVIDIA driver is visible:
    the import costs about 2 s and 250 MB, more than pooling a photo or a short clip.

    Raises:
        DeviceUnavailableError: ``"cuda"`` without a usable GPU.
        ValueError: an unknown device name.
    """
    if device not in DEVICES:
        raise ValueError(f"device must be one of {', '.join(DEVICES)}, got {device!r}")
    if device == "cpu" or (device == "auto" and not _may_have_cuda()):
        return "cpu"
    import torch

    available = torch.cuda.is_available()
    if device == "cuda" and not available:
        raise DeviceUnavailableError("--device cuda: no CUDA GPU is available to PyTorch (use --device cpu or auto)")
    return "cuda" if available else "cpu"


def _may_have_cuda() -> bool:
    """False when no NVIDIA driver is visible (Linux only; elsewhere PyTorch decides)."""
    if not sys.platform.startswith("linux"):
        return True
    # The driver's /proc entry and device nodes; /dev/dxg is CUDA under WSL 2.
    return any(os.path.exists(path) for path in ("/proc/driver/nvidia/version", "/dev/nvidiactl", "/dev/dxg"))
