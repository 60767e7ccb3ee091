"""ONNX export: standard ONNX ops only, and onnxruntime on CPU gives PyTorch's outputs.

Under `torch.onnx.export` SoftPool records its gathered-windows decomposition; the first test
checks that decomposition against the loop reference and needs no ONNX package. The export
tests skip where onnx, onnxruntime or onnxscript (the default exporter's) are missing.
"""

from __future__ import annotations

import io
import warnings

import pytest
import torch
from torch import nn

from reference import TOLERANCES, assert_close, soft_pool_reference
from softpool import AdaptiveSoftPool1d, AdaptiveSoftPool2d, SoftPool1d, SoftPool2d, SoftPool3d
from softpool._arguments import pool_geometry
from softpool.torch_path.gather import regular_windows, soft_pool_gathered


@pytest.fixture
def onnx():
    pytest.importorskip("onnxscript")  # the default (dynamo) exporter translates with it
    pytest.importorskip("onnxruntime")
    return pytest.importorskip("onnx")


@pytest.mark.parametrize(
    "shape,kernel,stride,padding,ceil_mode",
    [
        ((2, 3, 11), 3, 2, 1, True),  # 1D overlap, padding, ceil_mode
        ((2, 3, 7, 9), 2, None, 0, False),  # tiles: reshapes only
        ((2, 3, 7, 9), 3, 3, 0, True),  # kernel = stride, but ceil_mode adds a partial window
        ((2, 3, 7, 9), (2, 3), (1, 2), (1, 0), True),  # non-square, every dimension gathered
        ((1, 2, 5, 6, 7), (1, 3, 2), (1, 2, 2), (0, 1, 1), False),  # 3D mixed
    ],
)
@pytest.mark.parametrize("beta", [0.0, 1.0, 3.0])
def test_export_decomposition_is_exact(shape, kernel, stride, padding, ceil_mode, beta):
    x = torch.randn(*shape, dtype=torch.float64)
    geometry = pool_geometry(tuple(x.shape[2:]), kernel, stride, padding, ceil_mode)
    y = soft_pool_gathered(x, regular_windows(geometry, x.device), beta)
    expected = soft_pool_reference(x, kernel, stride, padding, ceil_mode, beta)
    assert_close(y, expected, *TOLERANCES[torch.float64], what="decomposition")


def cnn_2d() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1),
        SoftPool2d(3, 2, 1, True, beta=2.0),  # overlapping, padded, ceil_mode
        nn.ReLU(),
        SoftPool2d(2, learn_beta=True, num_channels=4),  # a learned, per-channel beta
        AdaptiveSoftPool2d((3, 2)),  # uneven adaptive windows
        AdaptiveSoftPool2d(1),  # global SoftPool
        nn.Flatten(),
        nn.Linear(4, 2),
    ).eval()


def cnn_1d_3d() -> nn.Module:
    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.pool3d = SoftPool3d((1, 2, 2), beta=0.5)
            self.pool1d = SoftPool1d(3, 2, 1)
            self.head = AdaptiveSoftPool1d(3)

        def forward(self, x):  # (N, C, T, H, W)
            y = self.pool3d(x).flatten(2)  # (N, C, T * H' * W')
            return self.head(self.pool1d(y))

    return Net().eval()


def _run_onnxruntime(model_bytes: bytes, x: torch.Tensor):
    import onnxruntime

    session = onnxruntime.InferenceSession(model_bytes, providers=["CPUExecutionProvider"])
    return torch.from_numpy(session.run(None, {session.get_inputs()[0].name: x.numpy()})[0])


def _standard_ops_only(model_proto) -> set[str]:
    domains = {node.domain for node in model_proto.graph.node}
    assert domains <= {"", "ai.onnx"}, f"non-standard ONNX domains: {domains}"
    for function in model_proto.functions:
        assert {node.domain for node in function.node} <= {"", "ai.onnx"}
    return {node.op_type for node in model_proto.graph.node}


@pytest.mark.parametrize(
    "make_model,shape", [(cnn_2d, (2, 3, 13, 11)), (cnn_1d_3d, (2, 3, 2, 6, 7))], ids=["2d", "1d-3d"]
)
def test_dynamo_export_matches_pytorch(onnx, make_model, shape):
    torch.manual_seed(0)
    model = make_model()
    x = torch.randn(*shape)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(model, (x,), dynamo=True, verbose=False)
    op_types = _standard_ops_only(program.model_proto)
    assert {"Exp", "ReduceMax", "ReduceSum", "Div"} <= op_types
    with torch.no_grad():
        expected = model(x)
    assert_close(_run_onnxruntime(program.model_proto.SerializeToString(), x), expected, 1e-5, 1e-5, what="onnxruntime")


def test_dynamo_export_with_a_dynamic_batch(onnx):
    torch.manual_seed(0)
    model = cnn_2d()
    x = torch.randn(2, 3, 13, 11)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(model, (x,), dynamo=True, dynamic_shapes=({0: "batch"},), verbose=False)
    other = torch.randn(5, 3, 13, 11)
    with torch.no_grad():
        expected = model(other)
    assert_close(_run_onnxruntime(program.model_proto.SerializeToString(), other), expected, 1e-5, 1e-5, what="batch 5")


def test_torchscript_export_matches_pytorch(onnx):
    torch.manual_seed(0)
    model = cnn_2d()
    x = torch.randn(2, 3, 13, 11)
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter is deprecated in favour of dynamo=True
        torch.onnx.export(model, (x,), buffer, dynamo=False, opset_version=17)
    _standard_ops_only(onnx.load_from_string(buffer.getvalue()))
    with torch.no_grad():
        expected = model(x)
    assert_close(_run_onnxruntime(buffer.getvalue(), x), expected, 1e-5, 1e-5, what="onnxruntime (TorchScript)")
