"""Build the demo detector as an ONNX graph: deterministic, seeded weights, no download.

A YOLO-style single-stage detector, sized for a CPU demo: a strided conv stem and three
detection heads at strides 8, 16 and 32, so a 640x640 image gives 80*80 + 40*40 + 20*20 = 8400
anchors, each with 4 box values and 80 class scores (output [84, 8400], like YOLOv8's).

    python build_onnx.py [out.onnx]     # writes model.onnx beside this file by default
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

SEED = 0
NUM_OUTPUTS = 84  # 4 box coordinates + 80 classes
# (out_channels, stride) of each 3x3 conv; heads attach after the stride-8, -16 and -32 stages.
BACKBONE = [(8, 2), (16, 2), (16, 2), (32, 2), (32, 2)]
HEAD_AFTER = (2, 3, 4)


def build() -> onnx.ModelProto:
    """The detector graph with weights from a fixed seed: the same bytes on every run."""
    rng = np.random.default_rng(SEED)
    nodes, inits = [], []

    def conv(x: str, cin: int, cout: int, k: int, stride: int, name: str) -> str:
        w = (rng.standard_normal((cout, cin, k, k)) * np.sqrt(2.0 / (cin * k * k))).astype(np.float32)
        b = np.zeros(cout, dtype=np.float32)
        inits.extend([numpy_helper.from_array(w, f"{name}.w"), numpy_helper.from_array(b, f"{name}.b")])
        nodes.append(helper.make_node("Conv", [x, f"{name}.w", f"{name}.b"], [f"{name}.y"],
                                      kernel_shape=[k, k], strides=[stride, stride], pads=[k // 2] * 4))
        return f"{name}.y"

    def silu(x: str, name: str) -> str:
        nodes.append(helper.make_node("Sigmoid", [x], [f"{name}.s"]))
        nodes.append(helper.make_node("Mul", [x, f"{name}.s"], [f"{name}.a"]))
        return f"{name}.a"

    x, cin, heads = "images", 3, []
    for i, (cout, stride) in enumerate(BACKBONE):
        x = silu(conv(x, cin, cout, 3, stride, f"stage{i}"), f"stage{i}")
        cin = cout
        if i in HEAD_AFTER:
            h = conv(x, cin, NUM_OUTPUTS, 1, 1, f"head{i}")
            flat = f"head{i}.flat"
            inits.append(numpy_helper.from_array(np.array([0, NUM_OUTPUTS, -1], dtype=np.int64), f"{flat}.shape"))
            nodes.append(helper.make_node("Reshape", [h, f"{flat}.shape"], [flat]))
            heads.append(flat)
    nodes.append(helper.make_node("Concat", heads, ["output0"], axis=2))

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
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).with_name("model.onnx")
    out.write_bytes(build().SerializeToString())
    print(f"wrote {out}")
