"""Pixels in, pixels out: the pooling step of every command, on uint8/uint16 arrays.

The CPU engine runs without PyTorch: importing it costs about 2 s and 250 MB, more than
pooling a photo or a short clip takes. PyTorch (and the library's Triton kernels) serve
``--device cuda``. `pool` is the one place that chooses between them.
"""
