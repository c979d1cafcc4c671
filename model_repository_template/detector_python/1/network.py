"""The demo detector's architecture and weights, shared by the ONNX graph and the torch module.

A YOLO-style single-stage detector: a strided conv backbone (conv 3x3 + SiLU) and three detection
heads at strides 8, 16 and 32, so a 640x640 image gives 80*80 + 40*40 + 20*20 = 8400 anchors, each
with 4 box values and 80 class scores (output [84, 8400], like YOLOv8's). Weights come from a fixed
seed: the same numbers on every run, no download. `width` multiplies the channels: 1 suits a CPU,
larger widths give a GPU real work.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SEED = 0
NUM_OUTPUTS = 84  # 4 box coordinates + 80 classes
BACKBONE = [(8, 2), (16, 2), (16, 2), (32, 2), (32, 2)]  # (out_channels at width 1, stride) per stage
HEAD_AFTER = (2, 3, 4)  # heads after the stride-8, -16 and -32 stages


@dataclass(frozen=True)
class Conv:
    name: str
    weight: np.ndarray  # [out, in, k, k] float32
    bias: np.ndarray
    stride: int
    activation: bool  # SiLU after it (backbone) or not (heads)


def layers(width: int = 1) -> tuple[list[Conv], dict[int, Conv]]:
    """(backbone convs in order, head conv after backbone stage i)."""
    rng = np.random.default_rng(SEED + width - 1)

    def conv(name: str, cin: int, cout: int, k: int, stride: int, activation: bool) -> Conv:
        w = (rng.standard_normal((cout, cin, k, k)) * np.sqrt(2.0 / (cin * k * k))).astype(np.float32)
        return Conv(name, w, np.zeros(cout, dtype=np.float32), stride, activation)

    backbone, heads, cin = [], {}, 3
    for i, (cout, stride) in enumerate(BACKBONE):
        backbone.append(conv(f"stage{i}", cin, cout * width, 3, stride, True))
        cin = cout * width
        if i in HEAD_AFTER:
            heads[i] = conv(f"head{i}", cin, NUM_OUTPUTS, 1, 1, False)
    return backbone, heads


def torch_module(width: int = 1):
    """The same network as a torch module (used on GPUs when onnxruntime has no CUDA provider)."""
    import torch
    import torch.nn.functional as F

    backbone, heads = layers(width)

    class Detector(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.params = torch.nn.ParameterList()
            for c in [*backbone, *heads.values()]:
                self.params.append(torch.nn.Parameter(torch.from_numpy(c.weight), requires_grad=False))
                self.params.append(torch.nn.Parameter(torch.from_numpy(c.bias), requires_grad=False))

        def forward(self, x):
            outs, p = [], iter(self.params)
            weights = {c.name: (next(p), next(p)) for c in [*backbone, *heads.values()]}
            for i, c in enumerate(backbone):
                w, b = weights[c.name]
                x = F.silu(F.conv2d(x, w, b, c.stride, c.weight.shape[-1] // 2))
                if i in heads:
                    hw, hb = weights[heads[i].name]
                    outs.append(F.conv2d(x, hw, hb).flatten(2))
            return torch.cat(outs, 2)

    return Detector()
