"""Rewrites of exported ONNX graphs into forms ONNX Runtime has fast kernels for. Each computes the same function.

Two places lose int8 speed in a QDQ graph (measured with `benchmarks/profile_ort.py`): an operator with no int8
kernel runs as a float island (DequantizeLinear -> op -> QuantizeLinear, three passes over the tensor instead of
none), and ONNX Runtime has no int8 kernel for ReduceMean, HardSwish or HardSigmoid — the global pool of every
squeeze-and-excite block and of the head, and every MobileNetV3 activation.

- `rewrite_global_average_pools`: ReduceMean over H and W (keepdims) is GlobalAveragePool, which has one
  (QLinearGlobalAveragePool). torch.export writes adaptive_avg_pool2d(x, 1) and x.mean((2, 3)) as ReduceMean.
- `lower_hard_activations`: in a quantized graph, h-sigmoid(x) = clip(x + 3, 0, 6) / 6 is one QLinearAdd whose
  output quantization does the clip (saturation) and the division (its scale); h-swish(x) = x * h-sigmoid(x) is that
  QLinearAdd and a QLinearMul. Both are ONNX Runtime contrib operators (domain com.microsoft).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import onnx

CONTRIB = "com.microsoft"


def rewrite_global_average_pools(model: onnx.ModelProto) -> int:
    """Rewrite, in place, every ReduceMean over axes (2, 3) with keepdims of a 4-D tensor as GlobalAveragePool;
    returns how many were rewritten."""
    import onnx
    from onnx import helper, numpy_helper

    graph = model.graph
    ranks = {v.name: len(v.type.tensor_type.shape.dim) for v in graph.input}
    inferred = onnx.shape_inference.infer_shapes(model)
    ranks.update({v.name: len(v.type.tensor_type.shape.dim) for v in inferred.graph.value_info})
    constants = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    constants.update(
        {
            n.output[0]: numpy_helper.to_array(n.attribute[0].t)
            for n in graph.node
            if n.op_type == "Constant" and n.attribute and n.attribute[0].name == "value"
        }
    )
    rewritten = 0
    for node in graph.node:
        if node.op_type != "ReduceMean" or ranks.get(node.input[0]) != 4:
            continue
        attributes = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        axes = attributes.get("axes")  # an attribute before opset 18, the second input from 18 on
        if axes is None and len(node.input) > 1:
            axes = constants.get(node.input[1])
        if axes is None or sorted(int(a) % 4 for a in np.ravel(axes)) != [2, 3] or attributes.get("keepdims", 1) != 1:
            continue
        node.op_type = "GlobalAveragePool"
        del node.input[1:]
        del node.attribute[:]
        rewritten += 1
    _drop_unused(graph)
    return rewritten


def lower_hard_activations(model: onnx.ModelProto) -> int:
    """Replace, in place, every DequantizeLinear -> HardSwish|HardSigmoid -> QuantizeLinear island of a QDQ graph by
    int8 ONNX Runtime operators; returns how many were replaced.

    h-sigmoid becomes QLinearAdd(x, beta/alpha) with output scale s_y/alpha: it rounds exactly like the island.
    h-swish becomes t = QLinearAdd(x, 3) quantized to [0, 6] (the ReLU6 of x + 3 by saturation), then QLinearMul(x, t)
    reading t as t/6 (scale 1/255): one more rounding, of h-sigmoid to 1/255, than the island.
    """
    from onnx import helper, numpy_helper

    graph = model.graph
    producer = {output: node for node in graph.node for output in node.output}
    consumers: dict[str, list] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    for output in graph.output:  # a graph output is read in float: an activation that is one must stay
        consumers.setdefault(output.name, []).append(None)
    initializers = {i.name: i for i in graph.initializer}
    dropped, replacement = set(), {}

    def constant(name: str, value, dtype) -> str:
        graph.initializer.append(numpy_helper.from_array(np.array(value, dtype=dtype), name))
        return name

    for index, node in enumerate(graph.node):
        if node.op_type not in ("HardSwish", "HardSigmoid"):
            continue
        dq, after = producer.get(node.input[0]), consumers.get(node.output[0], [])
        if dq is None or dq.op_type != "DequantizeLinear" or len(after) != 1 or after[0] is None:
            continue
        q = after[0]
        if q.op_type != "QuantizeLinear" or len(dq.input) < 3 or len(q.input) < 3:
            continue
        if q.input[1] not in initializers or q.input[2] not in initializers:
            continue
        if np.prod(initializers[q.input[1]].dims) != 1:
            continue  # per-channel activation scales: not what the quantizer writes, and not handled here
        x, x_scale, x_zero = dq.input[:3]
        y_scale = float(numpy_helper.to_array(initializers[q.input[1]]))
        zero_type = numpy_helper.to_array(initializers[q.input[2]]).dtype
        low, high = int(np.iinfo(zero_type).min), int(np.iinfo(zero_type).max)
        if node.op_type == "HardSigmoid":
            attributes = {a.name: helper.get_attribute_value(a) for a in node.attribute}
            alpha, beta = float(attributes.get("alpha", 0.2)), float(attributes.get("beta", 0.5))
        else:
            alpha, beta = 1 / 6, 0.5
        prefix = f"{node.op_type.lower()}_{index}"
        shift = beta / alpha  # clip(alpha x + beta, 0, 1) = alpha * clip(x + shift, 0, 1 / alpha)
        shift_q = constant(f"{prefix}_shift", high, zero_type)  # `shift` exactly: high * (shift / high)
        shift_scale = constant(f"{prefix}_shift_scale", shift / high, np.float32)
        shift_zero = constant(f"{prefix}_shift_zero_point", 0, zero_type)
        if node.op_type == "HardSigmoid":
            out_scale = constant(f"{prefix}_scale", y_scale / alpha, np.float32)
            inputs = [x, x_scale, x_zero, shift_q, shift_scale, shift_zero, out_scale, q.input[2]]
            nodes = [helper.make_node("QLinearAdd", inputs, [q.output[0]], name=f"{prefix}_add", domain=CONTRIB)]
        else:
            levels = high - low
            t, t_zero = f"{prefix}_relu6", constant(f"{prefix}_relu6_zero_point", low, zero_type)
            t_scale = constant(f"{prefix}_relu6_scale", (1 / alpha) / levels, np.float32)
            gate_scale = constant(f"{prefix}_gate_scale", 1 / levels, np.float32)
            nodes = [
                helper.make_node(
                    "QLinearAdd",
                    [x, x_scale, x_zero, shift_q, shift_scale, shift_zero, t_scale, t_zero],
                    [t],
                    name=f"{prefix}_add",
                    domain=CONTRIB,
                ),
                helper.make_node(
                    "QLinearMul",
                    [x, x_scale, x_zero, t, gate_scale, t_zero, *q.input[1:3]],
                    [q.output[0]],
                    name=f"{prefix}_mul",
                    domain=CONTRIB,
                ),
            ]
        replacement[id(node)] = nodes
        dropped.add(id(q))
        if len(consumers[dq.output[0]]) == 1:
            dropped.add(id(dq))

    if replacement:
        nodes = []
        for node in graph.node:  # each replacement goes where its activation was: its inputs exist there already
            if id(node) in replacement:
                nodes.extend(replacement[id(node)])
            elif id(node) not in dropped:
                nodes.append(node)
        del graph.node[:]
        graph.node.extend(nodes)
        if not any(entry.domain == CONTRIB for entry in model.opset_import):
            model.opset_import.append(helper.make_opsetid(CONTRIB, 1))
        _drop_unused(graph)
    return len(replacement)


def inline_identities(model: onnx.ModelProto) -> int:
    """Replace, in place, every Identity node that copies an initializer by a copy of that initializer under the
    node's output name; returns how many. (PyTorch's TorchScript exporter writes equal parameters, such as the zero
    biases of a freshly folded BN, once and the rest as Identity copies; ONNX Runtime's quantizer only quantizes a
    bias that is an initializer.)"""
    graph = model.graph
    initializers = {i.name: i for i in graph.initializer}
    copies = [n for n in graph.node if n.op_type == "Identity" and n.input[0] in initializers]
    for node in copies:
        copy = type(initializers[node.input[0]])()
        copy.CopyFrom(initializers[node.input[0]])
        copy.name = node.output[0]
        graph.initializer.append(copy)
        graph.node.remove(node)
    _drop_unused(graph)
    return len(copies)


def _drop_unused(graph) -> None:
    """Drop the initializers and Constant nodes nothing reads any more."""
    used = {name for node in graph.node for name in node.input}
    used.update(output.name for output in graph.output)
    dead = [n for n in graph.node if n.op_type == "Constant" and not any(out in used for out in n.output)]
    for node in dead:
        graph.node.remove(node)
    kept = [i for i in graph.initializer if i.name in used]
    if len(kept) < len(graph.initializer):
        del graph.initializer[:]
        graph.initializer.extend(kept)
