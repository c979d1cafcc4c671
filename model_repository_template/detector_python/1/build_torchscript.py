"""The demo detector (network.py) as a Triton model for the PyTorch (libtorch) backend, with its
precision as model versions: version 1 runs in FP32, version 2 in FP16. Both take and return FP32
(the cast is inside the module), so clients and the output-agreement check see one interface and
the `model_version` knob searches precision jointly with the config.

    python build_torchscript.py REPOSITORY [--width N] [--device cuda] [--name detector_torch]

Deterministic: seeded weights (network.py), traced, no download. Needs torch.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from network import NUM_OUTPUTS, torch_module  # noqa: E402

VERSIONS = {1: "float32", 2: "float16"}
CONFIG = """# The demo detector on Triton's PyTorch backend: one instance, no dynamic batching, FP32 (version 1).
name: "{name}"
platform: "pytorch_libtorch"
max_batch_size: {max_batch}
version_policy {{ specific {{ versions: [ 1 ] }} }}
input [ {{ name: "INPUT__0" data_type: TYPE_FP32 dims: [ 3, 640, 640 ] }} ]
output [ {{ name: "OUTPUT__0" data_type: TYPE_FP32 dims: [ {outputs}, 8400 ] }} ]
instance_group [ {{ count: 1 kind: {kind} }} ]
"""


def write(repository: Path, width: int = 1, device: str = "cpu", name: str = "detector_torch",
          max_batch: int = 16) -> Path:
    """Writes REPOSITORY/NAME: config.pbtxt and one TorchScript file per precision version."""
    import torch

    class Cast(torch.nn.Module):
        def __init__(self, net, dtype):
            super().__init__()
            self.net, self.dtype = net, dtype

        def forward(self, x):
            return self.net(x.to(self.dtype).contiguous(memory_format=torch.channels_last)).float()

    folder = Path(repository) / name
    example = torch.zeros((1, 3, 640, 640), device=device)
    for version, dtype_name in VERSIONS.items():
        dtype = getattr(torch, dtype_name)
        net = torch_module(width).to(device, dtype).eval().to(memory_format=torch.channels_last)
        with torch.no_grad():
            traced = torch.jit.trace(Cast(net, dtype).eval(), example, check_trace=False)
        (folder / str(version)).mkdir(parents=True, exist_ok=True)
        traced.save(str(folder / str(version) / "model.pt"))
    kind = "KIND_GPU" if device.startswith("cuda") else "KIND_CPU"
    (folder / "config.pbtxt").write_text(CONFIG.format(name=name, max_batch=max_batch, outputs=NUM_OUTPUTS,
                                                       kind=kind))
    return folder


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("repository", type=Path)
    parser.add_argument("--width", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--name", default="detector_torch")
    parser.add_argument("--max-batch", type=int, default=16)
    args = parser.parse_args()
    print(write(args.repository, args.width, args.device, args.name, args.max_batch))
