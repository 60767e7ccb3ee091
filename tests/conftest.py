"""Test configuration.

The Triton kernels are exercised on CPU tensors through the Triton interpreter,
which must be switched on before any kernel module is imported.
"""

from __future__ import annotations

import os

os.environ.setdefault("TRITON_INTERPRET", "1")
