"""SoftPool in plain PyTorch ops, for wherever the compiled kernels do not serve a call.

- `unfold`: windows as strided views of the input (``Tensor.unfold``), forward and the exact
  backward in closed form. The PyTorch path of `softpool._routing`.
- `gather`: windows listed by index along each dimension. Adaptive SoftPool's uneven windows,
  and what ONNX export records (only standard ops).
"""
