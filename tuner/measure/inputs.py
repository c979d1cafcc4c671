"""Request tensors for the load generator: synthetic from the model's metadata, or real data from
a JSON file in perf_analyzer's --input-data format; serialized once into gRPC requests, with the
tensors inline, in system shared memory, or in GPU memory (CUDA shared memory)."""
from __future__ import annotations

import base64
import enum
import json
from dataclasses import dataclass
from multiprocessing import shared_memory
from pathlib import Path

import numpy as np
from tritonclient.grpc import service_pb2
from tritonclient.utils import serialize_byte_tensor, triton_to_np_dtype

from tuner.errors import ConfigError
from tuner.server.base import SHM_PREFIX


class Memory(enum.Enum):
    """Where request tensors travel. System shared memory spares the wire; CUDA shared memory also
    spares the server's copies to and from the GPU, so a trial measures the server and the GPU."""
    NONE = "none"
    SYSTEM = "system"
    CUDA = "cuda"

    @classmethod
    def of(cls, value: str | bool | None) -> Memory:
        """From a stored setting; studies made before CUDA shared memory stored a bool."""
        if isinstance(value, bool) or value is None:
            return cls.SYSTEM if value else cls.NONE
        return cls(value)


@dataclass(frozen=True)
class Inputs:
    """What requests carry: synthetic data unless `data_file` (perf_analyzer's --input-data JSON).
    `shapes` fix dynamic dimensions, the batch dimension not included (as in config.pbtxt)."""
    shapes: dict[str, list[int]] | None = None
    data_file: Path | None = None
    shared_memory: Memory = Memory.NONE

    def to_json(self) -> dict:
        return {"shapes": self.shapes or {}, "input_data": str(self.data_file.resolve()) if self.data_file else None,
                "shared_memory": self.shared_memory.value}

    @classmethod
    def from_json(cls, found: dict | None) -> Inputs:
        found = found or {}
        data = found.get("input_data")
        return cls(found.get("shapes") or None, Path(data) if data else None, Memory.of(found.get("shared_memory")))


def check_shapes(config, shapes: dict[str, list[int]] | None, source: str) -> None:
    """Before any server starts: every dynamic dimension the config declares has a --shape, and each
    --shape names an input and fits its dims. A config without inputs (the backend fills them in)
    is checked when the server reports them."""
    shapes, declared = shapes or {}, {i.name: list(i.dims) for i in config.input}
    for name, dims in shapes.items():
        if declared and name not in declared:
            raise ConfigError(f"--shape {name}: {source} has no input '{name}' (it has {', '.join(declared)})")
        want = declared.get(name)
        fits = want is None or (len(dims) == len(want) and all(w in (-1, d) for w, d in zip(want, dims, strict=True)))
        if not fits:
            raise ConfigError(f"--shape {name}:{','.join(map(str, dims))} does not fit {source}'s dims {want} "
                              "(give the dims without the batch dimension)")
    for name, dims in declared.items():
        if -1 in dims and name not in shapes:
            raise ConfigError(f"{source}: input '{name}' has dynamic dims {dims}: {_shape_hint(name, dims)}")


def _shape_hint(name: str, dims: list[int]) -> str:
    example = ",".join("D" if d < 0 else str(d) for d in dims)
    return f"give them with --shape {name}:{example} (the batch dimension not included)"


@dataclass(frozen=True)
class TensorSpec:
    name: str
    datatype: str  # Triton's name: FP32, INT64, BYTES, BF16, ...
    shape: tuple[int, ...]  # as sent, batch dimension included


def tensor_specs(tensors: list[dict], batch_size: int = 1, shapes: dict[str, list[int]] | None = None,
                 batching: bool = True, strict: bool = True) -> list[TensorSpec]:
    """Concrete shapes from metadata: a leading -1 is the batch dimension when the model batches;
    any other -1 is dynamic and `shapes` must fix it (like perf_analyzer's --shape). With
    `strict=False`, tensors whose shape stays unknown are left out instead of refused."""
    shapes = shapes or {}
    specs = []
    for t in tensors:
        dims = [int(d) for d in t["shape"]]
        given = shapes.get(t["name"])
        if batching and dims and dims[0] == -1:
            dims = [batch_size] + (list(given) if given else dims[1:])
        elif given:
            dims = list(given)
        if any(d < 0 for d in dims):
            if not strict:
                continue
            own = [int(d) for d in t["shape"]][1 if batching else 0:]  # as config.pbtxt writes them
            raise ConfigError(f"input '{t['name']}' has dynamic dims {own}: {_shape_hint(t['name'], own)}")
        specs.append(TensorSpec(t["name"], t["datatype"], tuple(dims)))
    return specs


def _np_dtype(datatype: str) -> np.dtype:
    if datatype == "BF16":  # numpy has no bfloat16: carried as 16-bit patterns
        return np.dtype("<u2")
    return np.dtype(triton_to_np_dtype(datatype)).newbyteorder("<")


def synthetic(spec: TensorSpec, rng: np.random.Generator) -> bytes:
    """Random content of the right size and type, as Triton's raw little-endian bytes."""
    count = int(np.prod(spec.shape)) if spec.shape else 1
    if spec.datatype == "BYTES":
        items = np.array([rng.bytes(8).hex().encode() for _ in range(count)], dtype=np.object_)
        return serialize_byte_tensor(items.reshape(spec.shape)).item()
    if spec.datatype == "BF16":  # the upper halves of float32s in [0, 1)
        return (rng.random(count, dtype=np.float32).view(np.uint32) >> 16).astype("<u2").tobytes()
    if spec.datatype == "BOOL":
        return rng.integers(0, 2, count).astype(np.bool_).tobytes()
    dtype = _np_dtype(spec.datatype)
    if dtype.kind == "f":
        return rng.random(count).astype(dtype).tobytes()
    info = np.iinfo(dtype)
    return rng.integers(max(info.min, 0), min(info.max, 100), count, endpoint=True).astype(dtype).tobytes()


def _encode(value, spec: TensorSpec, where: str) -> bytes:
    if isinstance(value, dict) and "b64" in value:
        return base64.b64decode(value["b64"])
    content = value["content"] if isinstance(value, dict) else value
    if spec.datatype == "BYTES":
        items = np.array([str(v).encode() if not isinstance(v, bytes) else v for v in np.ravel(content)],
                         dtype=np.object_)
        data = items
    else:
        try:
            data = np.asarray(content).astype(_np_dtype(spec.datatype)).ravel()
        except (TypeError, ValueError) as e:
            raise ConfigError(f"{where}: not {spec.datatype} data: {e}") from None
    count = int(np.prod(spec.shape))
    if data.size != count:
        raise ConfigError(f"{where}: {data.size} values, but shape {list(spec.shape)} needs {count}")
    if spec.datatype == "BYTES":
        return serialize_byte_tensor(data.reshape(spec.shape)).item()
    return data.tobytes()


def input_entries(path: Path | None) -> int:
    """How many request inputs there are to choose from: --input-data's entries, or the one synthetic set."""
    if path is None:
        return 1
    try:
        doc = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise ConfigError(f"{path}: cannot read input data: {e}") from None
    entries = doc.get("data") if isinstance(doc, dict) else None
    return len(entries) if isinstance(entries, list) else 0


def load_input_data(path: Path, specs: list[TensorSpec], batching: bool) -> list[dict[str, tuple[TensorSpec, bytes]]]:
    """Reads perf_analyzer's --input-data JSON: {"data": [{"INPUT0": [..] | {"content": [..],
    "shape": [..]} | {"b64": ".."}}, ...]}. Shapes exclude the batch dimension, as there.
    Returns one tensor set per entry; the load generator sends them in turn."""
    path = Path(path)
    try:
        doc = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise ConfigError(f"{path}: cannot read input data: {e}") from None
    entries = doc.get("data") if isinstance(doc, dict) else None
    if not isinstance(entries, list) or not entries:
        raise ConfigError(f"{path}: expected {{\"data\": [ {{input name: values}}, ... ]}}")
    sets = []
    for i, entry in enumerate(entries):
        entry = entry[0] if isinstance(entry, list) and entry else entry  # per-step lists of sequences
        if not isinstance(entry, dict):
            raise ConfigError(f"{path}: data[{i}] must map input names to values")
        tensors = {}
        for spec in specs:
            where = f"{path}: data[{i}].{spec.name}"
            if spec.name not in entry:
                raise ConfigError(f"{where}: missing (the model's inputs: {', '.join(s.name for s in specs)})")
            value = entry[spec.name]
            if isinstance(value, dict) and "shape" in value:
                shape = tuple(int(d) for d in value["shape"])
                spec = TensorSpec(spec.name, spec.datatype, ((1,) + shape) if batching else shape)
            tensors[spec.name] = (spec, _encode(value, spec, where))
        sets.append(tensors)
    return sets


def synthetic_set(specs: list[TensorSpec], seed: int = 0) -> dict[str, tuple[TensorSpec, bytes]]:
    rng = np.random.default_rng(seed)
    return {s.name: (s, synthetic(s, rng)) for s in specs}


class _SystemRegions:
    """POSIX shared memory segments, registered by name."""

    def __init__(self, control):
        self.control, self.regions = control, []

    def create(self, name: str, data: bytes | int) -> None:
        """A region holding `data`, or `data` bytes of scratch."""
        size = data if isinstance(data, int) else len(data)
        region = shared_memory.SharedMemory(name=name, create=True, size=max(size, 1))
        self.regions.append(region)
        if not isinstance(data, int):
            region.buf[:size] = data  # type: ignore[index]  # buf is set while open
        self.control.client.register_system_shared_memory(name, f"/{name}", region.size)

    def close(self) -> None:
        for region in self.regions:
            try:
                self.control.client.unregister_system_shared_memory(region.name)
            except Exception:  # the server may be gone; the local region is removed all the same
                pass
            region.close()
            region.unlink()
        self.regions = []


class _CudaRegions:
    """GPU buffers on one device, registered by their CUDA IPC handles: Triton reads inputs from
    and writes outputs to GPU memory, with no copy through the host on either side. `device` is
    the server's first GPU as this process numbers it; the server numbers it 0."""

    def __init__(self, control, device: int):
        from tuner.measure.cuda import Runtime

        self.control, self.device, self.runtime = control, device, Runtime()
        self.regions: list[tuple[str, int]] = []

    def create(self, name: str, data: bytes | int) -> None:
        size = data if isinstance(data, int) else len(data)
        pointer, handle = self.runtime.allocate(max(size, 1), self.device)
        self.regions.append((name, pointer))
        if not isinstance(data, int):
            self.runtime.upload(pointer, data)
        self.control.client.register_cuda_shared_memory(name, base64.b64encode(handle), 0, max(size, 1))

    def close(self) -> None:
        for name, pointer in self.regions:
            try:
                self.control.client.unregister_cuda_shared_memory(name)
            except Exception:  # the server may be gone; the buffer is freed all the same
                pass
            self.runtime.free(pointer)
        self.regions = []


class SharedInputs:
    """Shared memory holding every request's inputs (and one scratch region the outputs are written
    to), registered with Triton so requests carry only a reference, not the bytes."""

    def __init__(self, control, tensor_sets: list[dict], outputs: list[TensorSpec], tag: str,
                 memory: Memory = Memory.SYSTEM, device: int = 0):
        self.memory = _CudaRegions(control, device) if memory is Memory.CUDA else _SystemRegions(control)
        self.input_place: list[dict[str, tuple[str, int, int]]] = []
        name, blob, offset = f"{SHM_PREFIX}{tag}_inputs", bytearray(), 0
        for tensors in tensor_sets:
            places = {}
            for tensor, (_, data) in tensors.items():
                blob += data
                places[tensor] = (name, offset, len(data))
                offset += len(data)
            self.input_place.append(places)
        self.memory.create(name, bytes(blob))
        self.output_place: dict[str, tuple[str, int, int]] = {}
        sizes = {o.name: int(np.prod(o.shape)) * _np_dtype(o.datatype).itemsize
                 for o in outputs if o.datatype != "BYTES"}
        if sizes:
            name, offset = f"{SHM_PREFIX}{tag}_outputs", 0
            self.memory.create(name, sum(sizes.values()))
            for tensor, size in sizes.items():  # concurrent requests overwrite each other: unread scratch
                self.output_place[tensor] = (name, offset, size)
                offset += size

    def close(self) -> None:
        self.memory.close()


def _place(tensor, place: tuple[str, int, int]) -> None:
    name, offset, size = place
    tensor.parameters["shared_memory_region"].string_param = name
    tensor.parameters["shared_memory_byte_size"].int64_param = size
    if offset:
        tensor.parameters["shared_memory_offset"].int64_param = offset


def infer_requests(model: str, tensor_sets: list[dict], shm: SharedInputs | None = None) -> list[bytes]:
    """Serialized ModelInferRequests, one per tensor set: built once, sent as they are."""
    requests = []
    for i, tensors in enumerate(tensor_sets):
        request = service_pb2.ModelInferRequest(model_name=model)
        for name, (spec, data) in tensors.items():
            tensor = request.inputs.add(name=name, datatype=spec.datatype)
            tensor.shape.extend(spec.shape)
            if shm is None:
                request.raw_input_contents.append(data)
            else:
                _place(tensor, shm.input_place[i][name])
        for name, place in (shm.output_place.items() if shm else ()):
            _place(request.outputs.add(name=name), place)
        requests.append(request.SerializeToString())
    return requests
