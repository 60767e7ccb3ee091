"""SoftPool on the CPU: compiled Numba kernels (`engine`, `numba_kernels`) and the thread
splitting they share with the command line's 8-bit engine (`threads`, which imports no PyTorch)."""
