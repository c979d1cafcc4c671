"""Build the demo detector (network.py) as an ONNX graph: deterministic, seeded weights, no download.

    python build_onnx.py [out.onnx] [--width N]     # writes model.onnx beside this file by default
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

sys.path.insert(0, str(Path(__file__).resolve().parent))
from network import NUM_OUTPUTS, layers  # noqa: E402


def build(width: int = 1) -> onnx.ModelProto:
    """The detector graph: the same bytes on every run."""
    nodes, inits = [], []

    def conv(x: str, c) -> str:
        inits.extend([numpy_helper.from_array(c.weight, f"{c.name}.w"), numpy_helper.from_array(c.bias, f"{c.name}.b")])
        k = c.weight.shape[-1]
        nodes.append(helper.make_node("Conv", [x, f"{c.name}.w", f"{c.name}.b"], [f"{c.name}.y"],
                                      kernel_shape=[k, k], strides=[c.stride] * 2, pads=[k // 2] * 4))
        if not c.activation:
            return f"{c.name}.y"
        nodes.append(helper.make_node("Sigmoid", [f"{c.name}.y"], [f"{c.name}.s"]))  # SiLU = x * sigmoid(x)
        nodes.append(helper.make_node("Mul", [f"{c.name}.y", f"{c.name}.s"], [f"{c.name}.a"]))
        return f"{c.name}.a"

    backbone, heads = layers(width)
    x, flat = "images", []
    for i, c in enumerate(backbone):
        x = conv(x, c)
        if i in heads:
            h = conv(x, heads[i])
            shape = f"{heads[i].name}.shape"
            inits.append(numpy_helper.from_array(np.array([0, NUM_OUTPUTS, -1], dtype=np.int64), shape))
            nodes.append(helper.make_node("Reshape", [h, shape], [f"{heads[i].name}.flat"]))
            flat.append(f"{heads[i].name}.flat")
    nodes.append(helper.make_node("Concat", flat, ["output0"], axis=2))
    graph = helper.make_graph(
        nodes, "detector",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, ["batch", 3, 640, 640])],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, ["batch", NUM_OUTPUTS, 8400])],
        initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="tuner-demo")
    model.ir_version = 8  # readable by older onnxruntime builds too
    onnx.checker.check_model(model)
    return model


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if not a.startswith("--width")]
    width = int(next((a.split("=", 1)[1] for a in sys.argv[1:] if a.startswith("--width=")), "1"))
    out = Path(args[0]) if args else Path(__file__).with_name("model.onnx")
    out.write_bytes(build(width).SerializeToString())
    print(f"wrote {out}")
