"""The engine-only ceiling: the served model run directly by its own framework, at the config's
largest batch, inputs already resident on the GPU, no server and no copies. What a config serves
as a fraction of it says how much is left to find in the server and the data path, and Triton's
queue / input / infer / output times say where the rest goes.

Measured where the framework can run the model file as Triton does: TorchScript (the PyTorch
backend) on KIND_GPU instances, with torch's CUDA build installed.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path

from tritonclient.grpc.model_config_pb2 import DataType, ModelConfig, ModelInstanceGroup

from tuner.config.parameters import backend_of

_TORCH_DTYPES = {DataType.TYPE_FP32: "float32", DataType.TYPE_FP16: "float16", DataType.TYPE_BF16: "bfloat16",
                 DataType.TYPE_INT64: "int64", DataType.TYPE_INT32: "int32", DataType.TYPE_UINT8: "uint8"}


@dataclass(frozen=True)
class Ceiling:
    rate: float  # inferences per second
    batch: int
    engine: str

    def to_json(self) -> dict:
        return asdict(self)


def _version(config: ModelConfig, folder: Path) -> int | None:
    chosen = list(config.version_policy.specific.versions)
    found = sorted(int(p.name) for p in folder.iterdir() if p.is_dir() and p.name.isdigit())
    return chosen[0] if chosen else (found[-1] if found else None)


def measurable(config: ModelConfig) -> bool:
    return backend_of(config) == "pytorch" and any(
        g.kind == ModelInstanceGroup.KIND_GPU for g in config.instance_group) and len(config.input) == 1 \
        and config.input[0].data_type in _TORCH_DTYPES and -1 not in config.input[0].dims


def measure(folder: Path, config: ModelConfig, seconds: float = 3.0) -> Ceiling | None:
    """The best of batch 1 and the config's max batch; None where it cannot be measured here."""
    if not measurable(config):
        return None
    try:
        import torch
    except ImportError:
        return None
    version = _version(config, folder)
    if not torch.cuda.is_available() or version is None:
        return None
    path = folder / str(version) / (config.default_model_filename or "model.pt")
    module = torch.jit.load(str(path), map_location="cuda:0").eval()
    spec = config.input[0]
    best: Ceiling | None = None
    for batch in sorted({1, max(1, config.max_batch_size)}):
        shape = (batch, *spec.dims) if config.max_batch_size else tuple(spec.dims)
        x = torch.rand(shape, device="cuda:0").to(getattr(torch, _TORCH_DTYPES[spec.data_type]))
        with torch.inference_mode():
            for _ in range(5):  # warm-up: cuDNN's choices and the profiling executor's first runs
                module(x)
            torch.cuda.synchronize()
            runs, start = 0, time.perf_counter()
            while time.perf_counter() - start < seconds:
                for _ in range(10):
                    module(x)
                torch.cuda.synchronize()
                runs += 10
            rate = runs * batch / (time.perf_counter() - start)
        if best is None or rate > best.rate:
            best = Ceiling(rate, batch, f"torch {torch.__version__} TorchScript version {version}, "
                                        f"{torch.cuda.get_device_name(0)}")
    return best
