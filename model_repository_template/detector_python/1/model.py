"""Triton python-backend model: the demo detector (network.py).

Runtimes: onnxruntime by default; on KIND_GPU, onnxruntime's TensorRT or CUDA provider when this
onnxruntime build has one, else torch on the GPU. `runtime` forces one (onnxruntime|torch).

Backend settings come from the config's `parameters`, with the keys Triton's own onnxruntime
backend uses, so a tuned config reads the same either way:
  intra_op_thread_count, inter_op_thread_count   ONNX Runtime thread pools
  precision_mode (FP32|FP16|BF16)                 TensorRT provider precision, or torch dtype
  max_workspace_size_bytes, trt_engine_cache_enable   TensorRT provider only
  width                                           channel multiplier of the network (default 1)
Inputs arrive through DLPack. Outputs leave through the numpy constructor under numpy 1.x and
through DLPack otherwise: the stub's numpy interop is built for 1.x and mis-sizes 2.x arrays,
while its DLPack import rejects numpy 1.x capsules. Under numpy 2 the outputs go through torch's
DLPack capsules where torch is installed: the stub consumes a numpy 2 capsule correctly but then
logs `PyCapsule_GetPointer called with incorrect name` for every response (tens of thousands of
log lines a study). The log's first line says which numpy and which path this model runs with.
"""
import json
import sys
from pathlib import Path

import numpy as np
import triton_python_backend_utils as pb_utils

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))


def _onnx_bytes(width: int) -> bytes:
    """model.onnx beside this file (width 1), or the graph built in memory (no file is written)."""
    path = HERE / "model.onnx"
    if width == 1 and path.exists():
        return path.read_bytes()
    import build_onnx

    return build_onnx.build(width).SerializeToString()


def _ort_providers(ort, params: dict, device_id: int, cache_dir: Path) -> list:
    available, providers = ort.get_available_providers(), []
    if "TensorrtExecutionProvider" in available:
        trt = {"device_id": device_id,
               "trt_fp16_enable": params.get("precision_mode", "FP32").upper() == "FP16",
               "trt_engine_cache_enable": params.get("trt_engine_cache_enable", "false").lower() == "true",
               "trt_engine_cache_path": str(cache_dir)}
        if "max_workspace_size_bytes" in params:
            trt["trt_max_workspace_size"] = int(params["max_workspace_size_bytes"])
        providers.append(("TensorrtExecutionProvider", trt))
    if "CUDAExecutionProvider" in available:
        providers.append(("CUDAExecutionProvider", {"device_id": device_id}))
    return providers


class TritonPythonModel:
    def initialize(self, args):
        config = json.loads(args["model_config"])
        params = {k: v["string_value"] for k, v in config.get("parameters", {}).items()}
        self.input_name = config["input"][0]["name"]
        self.output_name = config["output"][0]["name"]
        self.to_tensor = self._output_path()
        width = int(params.get("width", "1"))
        gpu = args.get("model_instance_kind") == "GPU"
        device_id = int(args.get("model_instance_device_id", "0"))
        runtime = params.get("runtime", "auto")
        import onnxruntime as ort

        cache = Path(args["model_repository"]) / "trt_cache"
        gpu_providers = _ort_providers(ort, params, device_id, cache) if gpu else []
        if runtime == "torch" or (runtime == "auto" and gpu and not gpu_providers):
            self._init_torch(width, gpu, device_id, params.get("precision_mode", "FP32").upper(),
                             max(1, int(config.get("max_batch_size", 1))))
        else:
            options = ort.SessionOptions()
            options.intra_op_num_threads = int(params.get("intra_op_thread_count", "0"))
            options.inter_op_num_threads = int(params.get("inter_op_thread_count", "0"))
            self.session = ort.InferenceSession(_onnx_bytes(width), options,
                                                providers=gpu_providers + ["CPUExecutionProvider"])
            self.run = self._run_onnxruntime

    def _output_path(self):
        """How outputs reach the stub under this numpy (see the module docstring)."""
        name, path = self.output_name, "numpy"
        if np.__version__.startswith("1."):
            def make(y):
                return pb_utils.Tensor(name, np.ascontiguousarray(y))
        else:
            try:
                import torch
                from torch.utils.dlpack import to_dlpack
                path = "torch DLPack"

                def make(y):
                    return pb_utils.Tensor.from_dlpack(name, to_dlpack(torch.as_tensor(y).contiguous()))
            except ImportError:
                path = "numpy DLPack (the stub logs a PyCapsule error per response; install torch to avoid it)"

                def make(y):
                    return pb_utils.Tensor.from_dlpack(name, np.ascontiguousarray(y))
        pb_utils.Logger.log_info(f"demo detector: numpy {np.__version__}, outputs through {path}")
        return make

    def _init_torch(self, width: int, gpu: bool, device_id: int, precision: str, max_batch: int):
        import torch
        from network import torch_module

        self.torch = torch
        # one CPU thread per instance: several instances' default pools would oversubscribe the host
        torch.set_num_threads(1)
        self.device = torch.device(f"cuda:{device_id}" if gpu else "cpu")
        self.dtype = {"FP16": torch.float16, "BF16": torch.bfloat16}.get(precision, torch.float32)
        self.net = torch_module(width).to(self.device, self.dtype).eval().to(memory_format=torch.channels_last)
        # cuDNN's benchmark mode would re-tune at every new batch size dynamic batching forms
        # (hundreds of ms each, seen as P99 spikes); its heuristics need no tuning per shape.
        torch.backends.cudnn.benchmark = False
        with torch.inference_mode():  # CUDA and cuDNN set up now, not during the first requests
            for n in sorted({1, max_batch}):
                self._run_torch([np.zeros((n, 3, 640, 640), dtype=np.float32)])
        self.run = self._run_torch

    def _run_onnxruntime(self, xs):
        x = xs[0] if len(xs) == 1 else np.concatenate(xs)
        return self.session.run(None, {self.session.get_inputs()[0].name: x})[0]

    def _run_torch(self, xs):
        torch = self.torch
        with torch.inference_mode():
            x = torch.from_numpy(xs[0] if len(xs) == 1 else np.concatenate(xs))
            x = x.to(self.device).to(self.dtype).contiguous(memory_format=torch.channels_last)
            return self.net(x).float().cpu()

    def execute(self, requests):
        # One run for everything the scheduler handed over, so dynamic batching pays off.
        xs = [np.from_dlpack(pb_utils.get_input_tensor_by_name(r, self.input_name)) for r in requests]
        y = self.run(xs)  # a numpy array (onnxruntime) or a CPU torch tensor
        responses, start = [], 0
        for x in xs:
            responses.append(pb_utils.InferenceResponse([self.to_tensor(y[start:start + len(x)])]))
            start += len(x)
        return responses
