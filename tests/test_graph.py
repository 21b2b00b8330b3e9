"""ONNX graph rewrites (mobilenet.deploy.graph): each must compute what the graph computed before."""

from __future__ import annotations

import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

import mobilenet
from mobilenet.deploy import export_onnx
from mobilenet.deploy.graph import lower_hard_activations, rewrite_global_average_pools

SHAPE = [1, 4, 8, 8]  # 256 values: every input code once


def run(model, x: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {"x": x})[0]


def island(op: str, dtype, x_range: tuple[float, float], y_range: tuple[float, float], **attributes):
    """x -> Q -> DQ -> op -> Q -> DQ -> y, quantized as ONNX Runtime's quantizer writes it (asymmetric, per tensor)."""
    info = np.iinfo(dtype)

    def params(low: float, high: float) -> tuple[float, int]:
        scale = (high - low) / (info.max - info.min)
        return scale, round(info.min - low / scale)

    (sx, zx), (sy, zy) = params(*x_range), params(*y_range)
    initializers = [
        numpy_helper.from_array(np.array(sx, np.float32), "sx"),
        numpy_helper.from_array(np.array(zx, dtype), "zx"),
        numpy_helper.from_array(np.array(sy, np.float32), "sy"),
        numpy_helper.from_array(np.array(zy, dtype), "zy"),
    ]
    nodes = [
        helper.make_node("QuantizeLinear", ["x", "sx", "zx"], ["xq"]),
        helper.make_node("DequantizeLinear", ["xq", "sx", "zx"], ["xd"]),
        helper.make_node(op, ["xd"], ["a"], **attributes),
        helper.make_node("QuantizeLinear", ["a", "sy", "zy"], ["aq"]),
        helper.make_node("DequantizeLinear", ["aq", "sy", "zy"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes,
        "island",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, SHAPE)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, SHAPE)],
        initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    codes = np.arange(info.min, info.max + 1, dtype=np.float32).reshape(SHAPE)
    return model, (codes - zx) * sx, sy


@pytest.mark.parametrize("dtype", [np.uint8, np.int8])
def test_hard_sigmoid_lowers_to_one_qlinearadd_that_rounds_like_the_island(dtype):
    model, x, sy = island("HardSigmoid", dtype, (-5.3, 4.1), (0.0, 1.0), alpha=1 / 6, beta=0.5)
    expected = run(model, x)
    assert lower_hard_activations(model) == 1
    ops = [node.op_type for node in model.graph.node]
    assert "HardSigmoid" not in ops
    assert ops.count("QLinearAdd") == 1
    codes = np.abs(run(model, x) - expected) / sy
    assert codes.max() <= 1.0 + 1e-3  # a tie may round the other way (ranges whose scales are commensurate make many)
    assert (codes < 1e-3).mean() > 0.97  # otherwise the same codes


@pytest.mark.parametrize("dtype", [np.uint8, np.int8])
def test_hard_swish_lowers_to_qlinearadd_and_qlinearmul_within_one_code(dtype):
    model, x, sy = island("HardSwish", dtype, (-6.0, 9.0), (-0.375, 9.0))
    expected = run(model, x)
    assert lower_hard_activations(model) == 1
    ops = [node.op_type for node in model.graph.node]
    assert "HardSwish" not in ops
    assert (ops.count("QLinearAdd"), ops.count("QLinearMul")) == (1, 1)
    assert sum(1 for op in ops if op == "DequantizeLinear") == 1  # only the output's: the island's is gone
    assert np.abs(run(model, x) - expected).max() <= sy * (1 + 1e-3)
    # and the island itself was right: h-swish of the input codes, to half a step
    reference = x * np.clip(x + 3, 0, 6) / 6
    assert np.abs(expected - reference).max() <= sy * 0.5 + 1e-6


def test_an_activation_read_in_float_elsewhere_is_left_alone():
    model, _, _ = island("HardSwish", np.uint8, (-6.0, 9.0), (-0.375, 9.0))
    model.graph.output.append(helper.make_tensor_value_info("a", TensorProto.FLOAT, SHAPE))  # read unquantized
    assert lower_hard_activations(model) == 0
    assert "HardSwish" in [node.op_type for node in model.graph.node]


@pytest.mark.parametrize("opset", [13, 18])  # axes an attribute up to 17, an input from 18
def test_reduce_mean_over_height_and_width_becomes_global_average_pool(opset):
    x = np.random.default_rng(0).standard_normal((2, 3, 5, 7)).astype(np.float32)
    spatial = {"axes": [2, 3]} if opset < 18 else {}
    channels = {"axes": [1]} if opset < 18 else {}
    nodes = [
        helper.make_node("ReduceMean", ["x", *([] if opset < 18 else ["hw"])], ["p"], keepdims=1, **spatial),
        helper.make_node("ReduceMean", ["x", *([] if opset < 18 else ["c"])], ["q"], keepdims=1, **channels),
    ]
    initializers = (
        []
        if opset < 18
        else [
            numpy_helper.from_array(np.array([-2, -1], np.int64), "hw"),
            numpy_helper.from_array(np.array([1], np.int64), "c"),
        ]
    )
    graph = helper.make_graph(
        nodes,
        "pools",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, x.shape)],
        [
            helper.make_tensor_value_info("p", TensorProto.FLOAT, None),
            helper.make_tensor_value_info("q", TensorProto.FLOAT, None),
        ],
        initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    expected = session.run(None, {"x": x})
    assert rewrite_global_average_pools(model) == 1
    assert [node.op_type for node in model.graph.node] == ["GlobalAveragePool", "ReduceMean"]
    assert [i.name for i in model.graph.initializer] == ([] if opset < 18 else ["c"])  # the unused axes dropped
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    for got, want in zip(session.run(None, {"x": x}), expected, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)


@pytest.fixture(scope="module")
def v3_onnx(tmp_path_factory):
    torch.manual_seed(0)
    model = mobilenet.create_model("mobilenet_v3_small", alpha=0.5, num_classes=10, in_chans=1, small_input=True)
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.2, 0.2)
            module.running_var.uniform_(0.5, 2.0)
    path = tmp_path_factory.mktemp("v3") / "m.onnx"
    export_onnx(
        model.eval(),
        path,
        28,
        metadata={"labels": json.dumps([str(i) for i in range(10)]), "mean": "[0.286]", "std": "[0.353]"},
    )
    return model, path


def test_v3_exports_its_pools_as_global_average_pool(v3_onnx):
    ops = [node.op_type for node in onnx.load(str(v3_onnx[1])).graph.node]
    squeeze_excite = sum(1 for m in v3_onnx[0].modules() if type(m).__name__ == "SqueezeExcite")
    assert "ReduceMean" not in ops
    assert ops.count("GlobalAveragePool") == squeeze_excite + 1  # and the head's


def test_quantized_v3_has_no_float_activation_islands_unless_portable(v3_onnx, tmp_path):
    from mobilenet.data import load_dataset, normalize
    from mobilenet.deploy.quantize import quantize_onnx
    from mobilenet.deploy.runtime import OnnxModel

    model, path = v3_onnx
    train = load_dataset("fashion-mnist", "train")
    lowered = quantize_onnx(path, tmp_path / "fast.onnx", train, samples=64, float_stem=False)
    portable = quantize_onnx(path, tmp_path / "portable.onnx", train, samples=64, portable=True)
    default = quantize_onnx(path, tmp_path / "default.onnx", train, samples=64)
    fast_ops, portable_ops, default_ops = (
        [node.op_type for node in onnx.load(str(p)).graph.node] for p in (lowered, portable, default)
    )
    hard = sum(1 for m in model.modules() if isinstance(m, torch.nn.Hardswish | torch.nn.Hardsigmoid))
    assert not {"HardSwish", "HardSigmoid"} & set(fast_ops)
    assert fast_ops.count("QLinearAdd") == hard  # one per activation (h-swish adds a QLinearMul)
    assert portable_ops.count("HardSwish") + portable_ops.count("HardSigmoid") == hard
    # with the stem in float (the default), the stem's h-swish reads a float tensor: it stays, fused into the conv
    assert default_ops.count("HardSwish") == 1
    assert default_ops.count("QLinearAdd") == hard - 1
    assert not any(o.domain for o in onnx.load(str(portable)).opset_import)  # standard ONNX only

    x = normalize(train.images[:256], (0.286,), (0.353,))
    with torch.no_grad():
        reference = model(x)

    def sqnr_db(got: torch.Tensor) -> float:
        return float(10 * torch.log10(reference.pow(2).mean() / (got - reference).pow(2).mean()))

    fast, slow = sqnr_db(OnnxModel(lowered)(x)), sqnr_db(OnnxModel(portable)(x))
    assert min(fast, slow) > 15
    assert abs(fast - slow) < 3  # the lowering adds one rounding (h-sigmoid to 1/255), not a different model
