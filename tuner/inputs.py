"""Synthetic request tensors built from a model's metadata, serialized once into a gRPC request."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from tritonclient.grpc import service_pb2
from tritonclient.utils import serialize_byte_tensor, triton_to_np_dtype

from tuner.errors import ConfigError


@dataclass(frozen=True)
class TensorSpec:
    name: str
    datatype: str  # Triton's name: FP32, INT64, BYTES, BF16, ...
    shape: tuple[int, ...]  # as sent, batch dimension included


def input_specs(metadata: dict, batch_size: int = 1, shapes: dict[str, list[int]] | None = None,
                batching: bool = True) -> list[TensorSpec]:
    """Concrete shapes for every input: -1 is the batch dimension (first, when the model batches)
    or a dynamic dimension, which `shapes` must fix (like perf_analyzer's --shape)."""
    shapes = shapes or {}
    specs = []
    for inp in metadata["inputs"]:
        dims = [int(d) for d in inp["shape"]]
        if batching and dims and dims[0] == -1:
            dims = [batch_size] + dims[1:]
            given = shapes.get(inp["name"])
            if given:
                dims = [batch_size] + list(given)
        elif inp["name"] in shapes:
            dims = list(shapes[inp["name"]])
        if any(d < 0 for d in dims):
            raise ConfigError(f"input '{inp['name']}' has a dynamic shape {inp['shape']}: "
                              f"give it with --shape {inp['name']}:D1,D2,...")
        specs.append(TensorSpec(inp["name"], inp["datatype"], tuple(dims)))
    return specs


def synthetic(spec: TensorSpec, rng: np.random.Generator) -> bytes:
    """Random content of the right size and type, as Triton's raw little-endian bytes."""
    count = int(np.prod(spec.shape)) if spec.shape else 1
    if spec.datatype == "BYTES":
        items = np.array([rng.bytes(8).hex().encode() for _ in range(count)], dtype=np.object_)
        return serialize_byte_tensor(items.reshape(spec.shape)).item()
    if spec.datatype == "BF16":  # numpy has no bfloat16: random 16-bit patterns of small floats
        return (rng.random(count, dtype=np.float32).view(np.uint32) >> 16).astype("<u2").tobytes()
    if spec.datatype == "BOOL":
        return rng.integers(0, 2, count).astype(np.bool_).tobytes()
    dtype = np.dtype(triton_to_np_dtype(spec.datatype)).newbyteorder("<")
    if dtype.kind == "f":
        return rng.random(count).astype(dtype).tobytes()
    info = np.iinfo(dtype)
    return rng.integers(max(info.min, 0), min(info.max, 100), count, endpoint=True).astype(dtype).tobytes()


def infer_request(model: str, specs: list[TensorSpec], data: dict[str, bytes] | None = None,
                  seed: int = 0) -> bytes:
    """A serialized ModelInferRequest: built once, sent as is by every worker (no per-request work)."""
    rng = np.random.default_rng(seed)
    request = service_pb2.ModelInferRequest(model_name=model)
    for spec in specs:
        tensor = request.inputs.add(name=spec.name, datatype=spec.datatype)
        tensor.shape.extend(spec.shape)
        request.raw_input_contents.append(data[spec.name] if data and spec.name in data else synthetic(spec, rng))
    return request.SerializeToString()
