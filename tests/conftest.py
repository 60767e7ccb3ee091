"""Test configuration.

The Triton kernels are exercised on CPU tensors through the Triton interpreter,
which must be switched on before any kernel module is imported.
"""

from __future__ import annotations

import os

os.environ.setdefault("TRITON_INTERPRET", "1")

# Compiled pixel kernels: one folder for every test process of a run (the CLI tests start
# many), beside the checkout rather than in the user's cache.
os.environ.setdefault(
    "SOFTPOOL_CACHE_DIR", os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), ".test-cache")
)
