"""The ``softpool`` command-line application: images and clips in, pooled media out.

The version is looked up only when asked for, because ``importlib.metadata`` alone
costs tens of milliseconds at start-up.
"""

from __future__ import annotations

_FALLBACK_VERSION = "0.1.0"  # used when running from a source tree that was never installed


def __getattr__(name: str) -> str:
    if name == "__version__":
        from importlib.metadata import PackageNotFoundError, version

        try:
            return version("softpool")
        except PackageNotFoundError:
            return _FALLBACK_VERSION
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
