"""A served model run by its own framework, without Triton: TorchScript on the GPU (the PyTorch
backend's KIND_GPU instances) and ONNX Runtime in this process on the CPU (the ONNX Runtime
backend's KIND_CPU instances, with the session options that backend would set from the config).
Each gives `rate(batch, parallel, seconds)`: inferences per second at that batch size with
`parallel` copies running at once, inputs already where the framework reads them."""
from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tritonclient.grpc.model_config_pb2 import DataType, ModelConfig, ModelInstanceGroup

from tuner.config.parameters import backend_of

_DTYPES = {DataType.TYPE_FP32: "float32", DataType.TYPE_FP16: "float16", DataType.TYPE_BF16: "bfloat16",
           DataType.TYPE_INT64: "int64", DataType.TYPE_INT32: "int32", DataType.TYPE_UINT8: "uint8"}
_WARMUP = 3  # runs before timing: allocations, cuDNN's choices, the profiling executor's first runs


@dataclass(frozen=True)
class Engine:
    name: str  # what runs the model, with its version and device
    where: str  # how it runs, for the report: "inputs already on the GPU", "...same cores"
    rate: Callable[[int, int, float], float]  # (batch, parallel, seconds) -> inferences per second
    parallel: int  # the most copies it runs at once


def _kinds(config: ModelConfig) -> set[int]:
    return {g.kind for g in config.instance_group}


def _fixed_inputs(config: ModelConfig) -> bool:
    return bool(config.input) and all(i.data_type in _DTYPES and -1 not in i.dims for i in config.input)


def runnable(config: ModelConfig) -> bool:
    """Whether an engine here runs this config's model as its backend does."""
    backend, kinds = backend_of(config), _kinds(config)
    if backend == "pytorch":
        return ModelInstanceGroup.KIND_GPU in kinds and len(config.input) == 1 and _fixed_inputs(config)
    return backend == "onnxruntime" and kinds == {ModelInstanceGroup.KIND_CPU} and _fixed_inputs(config)


def engine(folder: Path, config: ModelConfig) -> Engine | None:
    """The engine for the config's model files under `folder` (its chosen or newest version);
    None where the framework or the device is not here."""
    version = _version(config, folder)
    if version is None or not runnable(config):
        return None
    if backend_of(config) == "pytorch":
        return _torchscript(folder / str(version) / (config.default_model_filename or "model.pt"), config)
    return _onnxruntime(folder / str(version) / (config.default_model_filename or "model.onnx"), config)


def _version(config: ModelConfig, folder: Path) -> int | None:
    chosen = list(config.version_policy.specific.versions)
    found = sorted(int(p.name) for p in folder.iterdir() if p.is_dir() and p.name.isdigit())
    return chosen[0] if chosen else (found[-1] if found else None)


def _shape(config: ModelConfig, dims, batch: int) -> tuple[int, ...]:
    return (batch, *dims) if config.max_batch_size else tuple(dims)


def _torchscript(path: Path, config: ModelConfig) -> Engine | None:
    try:
        import torch
    except ImportError:
        return None
    if not torch.cuda.is_available():
        return None
    module = torch.jit.load(str(path), map_location="cuda:0").eval()
    spec = config.input[0]

    def rate(batch: int, parallel: int, seconds: float) -> float:
        x = torch.rand(_shape(config, spec.dims, batch), device="cuda:0").to(getattr(torch, _DTYPES[spec.data_type]))
        with torch.inference_mode():
            for _ in range(_WARMUP):
                module(x)
            torch.cuda.synchronize()
            runs, start = 0, time.perf_counter()
            while time.perf_counter() - start < seconds:
                for _ in range(10):
                    module(x)
                torch.cuda.synchronize()
                runs += 10
            return runs * batch / (time.perf_counter() - start)

    return Engine(f"torch {torch.__version__} TorchScript, {torch.cuda.get_device_name(0)}",
                  "one stream, inputs already on the GPU", rate, 1)


# optimization { graph { level } } as onnxruntime_backend/src/onnxruntime.cc maps it
_GRAPH_LEVEL = {-1: "ORT_ENABLE_BASIC", 1: "ORT_ENABLE_EXTENDED", 2: "ORT_DISABLE_ALL"}


def session_options(config: ModelConfig):
    """The SessionOptions Triton's ONNX Runtime backend builds from the config (ModelState's
    constructor in onnxruntime.cc): graph level, execution mode, thread counts where positive,
    memory arena and pattern where given."""
    import onnxruntime as ort
    options = ort.SessionOptions()
    params = {k: v.string_value for k, v in config.parameters.items()}
    level = _GRAPH_LEVEL.get(config.optimization.graph.level, "ORT_ENABLE_ALL")
    options.graph_optimization_level = getattr(ort.GraphOptimizationLevel, level)
    options.execution_mode = (ort.ExecutionMode.ORT_PARALLEL if params.get("execution_mode") == "1"
                              else ort.ExecutionMode.ORT_SEQUENTIAL)
    for key, attr in (("intra_op_thread_count", "intra_op_num_threads"),
                      ("inter_op_thread_count", "inter_op_num_threads")):
        if int(params.get(key) or 0) > 0:
            setattr(options, attr, int(params[key]))
    for key, attr in (("enable_mem_arena", "enable_cpu_mem_arena"), ("enable_mem_pattern", "enable_mem_pattern")):
        if key in params:
            setattr(options, attr, params[key].strip().lower() in ("true", "1", "yes", "on"))
    return options


def _onnxruntime(path: Path, config: ModelConfig) -> Engine | None:
    try:
        import onnxruntime as ort
    except ImportError:
        return None
    options = session_options(config)
    count = sum(g.count or 1 for g in config.instance_group)
    # one session per instance, as the backend makes them
    sessions = [ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"]) for _ in range(count)]
    rng = np.random.default_rng(0)

    def rate(batch: int, parallel: int, seconds: float) -> float:
        feeds = {i.name: rng.random(_shape(config, i.dims, batch)).astype(_DTYPES[i.data_type])
                 for i in config.input}
        workers = min(parallel, count)
        window: list[float] = []  # when every copy is warm: the timing starts for all at once
        runs, ready = [0] * workers, threading.Barrier(workers, action=lambda: window.append(time.perf_counter()))

        def loop(k: int) -> None:  # ONNX Runtime lets go of the GIL while it runs
            for _ in range(_WARMUP):
                sessions[k].run(None, feeds)
            ready.wait()
            while time.perf_counter() < window[0] + seconds:
                sessions[k].run(None, feeds)
                runs[k] += 1

        threads = [threading.Thread(target=loop, args=(k,)) for k in range(workers)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return sum(runs) * batch / (time.perf_counter() - window[0])

    return Engine(f"onnxruntime {ort.__version__} (the library Triton's backend links), CPUExecutionProvider",
                  f"in this process on the server's cores, the config's session options, {count} session(s)",
                  rate, count)
