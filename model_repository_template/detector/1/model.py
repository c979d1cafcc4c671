"""Triton python-backend model: the demo detector, run by onnxruntime.

Backend settings come from the config's `parameters`, with the keys Triton's own onnxruntime
backend uses, so a tuned config reads the same either way:
  intra_op_thread_count, inter_op_thread_count   ONNX Runtime thread pools
  precision_mode (FP32|FP16), max_workspace_size_bytes, trt_engine_cache_enable
                                                  TensorRT execution provider, used on KIND_GPU
                                                  when onnxruntime has it (else CUDA, else CPU)
Inputs arrive through DLPack. Outputs leave through the numpy constructor under numpy 1.x and
through DLPack under numpy 2.x: the stub's numpy interop is built for 1.x and mis-sizes 2.x arrays,
while its DLPack import rejects numpy 1.x capsules.
"""
import json
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
import triton_python_backend_utils as pb_utils

HERE = Path(__file__).resolve().parent


def _onnx_bytes() -> bytes:
    """model.onnx beside this file, or the same graph built in memory (no file is written)."""
    path = HERE / "model.onnx"
    if path.exists():
        return path.read_bytes()
    sys.path.insert(0, str(HERE))
    import build_onnx

    return build_onnx.build().SerializeToString()


def _providers(params: dict, kind: str, device_id: int, cache_dir: Path) -> list:
    available = ort.get_available_providers()
    if kind != "GPU":
        return ["CPUExecutionProvider"]
    providers = []
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
    return providers + ["CPUExecutionProvider"]


class TritonPythonModel:
    def initialize(self, args):
        config = json.loads(args["model_config"])
        params = {k: v["string_value"] for k, v in config.get("parameters", {}).items()}
        options = ort.SessionOptions()
        options.intra_op_num_threads = int(params.get("intra_op_thread_count", "0"))
        options.inter_op_num_threads = int(params.get("inter_op_thread_count", "0"))
        providers = _providers(params, args.get("model_instance_kind", "CPU"),
                               int(args.get("model_instance_device_id", "0")),
                               Path(args["model_repository"]) / "trt_cache")
        self.session = ort.InferenceSession(_onnx_bytes(), options, providers=providers)
        self.input_name = self.session.get_inputs()[0].name
        # pb_utils.Tensor exists only once the stub runs, not at import time
        self.output_tensor = pb_utils.Tensor if np.__version__.startswith("1.") else pb_utils.Tensor.from_dlpack
        self.config_input = config["input"][0]["name"]
        self.output_name = config["output"][0]["name"]

    def execute(self, requests):
        # One run for everything the scheduler handed over, so dynamic batching pays off.
        xs = [np.from_dlpack(pb_utils.get_input_tensor_by_name(r, self.config_input)) for r in requests]
        y = self.session.run(None, {self.input_name: xs[0] if len(xs) == 1 else np.concatenate(xs)})[0]
        responses, start = [], 0
        for x in xs:
            part = np.ascontiguousarray(y[start:start + len(x)])
            start += len(x)
            responses.append(pb_utils.InferenceResponse([self.output_tensor(self.output_name, part)]))
        return responses
