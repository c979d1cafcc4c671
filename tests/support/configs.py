"""Sample configs of each kind of model (written as a user would), and the knob check the
config tests share."""
import json

from tuner.config.space import parse_space

ONNX_TRT = """
name: "yolo"
platform: "onnxruntime_onnx"
max_batch_size: 16
input [ { name: "images" data_type: TYPE_FP32 dims: [ 3, 640, 640 ] } ]
output [ { name: "output0" data_type: TYPE_FP32 dims: [ 84, 8400 ] } ]
instance_group [ { count: 2 kind: KIND_GPU gpus: [ 0 ] } ]
dynamic_batching { preferred_batch_size: [ 4, 8 ] max_queue_delay_microseconds: 100 }
optimization { execution_accelerators { gpu_execution_accelerator : [ {
  name : "tensorrt"
  parameters { key: "precision_mode" value: "FP16" }
  parameters { key: "max_workspace_size_bytes" value: "1073741824" }
} ] } }
"""
PYTHON = """
name: "tiny"
backend: "python"
max_batch_size: 8
input [ { name: "INPUT0" data_type: TYPE_FP32 dims: [ 16 ] } ]
output [ { name: "OUTPUT0" data_type: TYPE_FP32 dims: [ 16 ] } ]
parameters { key: "delay_ms" value { string_value: "2" } }
"""
TRT_PLAN = """
name: "engine"
platform: "tensorrt_plan"
max_batch_size: 32
input [ { name: "x" data_type: TYPE_FP16 dims: [ 3, 224, 224 ] } ]
output [ { name: "y" data_type: TYPE_FP16 dims: [ 1000 ] } ]
instance_group [ { count: 1 kind: KIND_GPU } ]
"""
ENSEMBLE = """
name: "pipeline"
platform: "ensemble"
max_batch_size: 8
input [ { name: "raw" data_type: TYPE_UINT8 dims: [ -1 ] } ]
output [ { name: "boxes" data_type: TYPE_FP32 dims: [ 84, 8400 ] } ]
ensemble_scheduling { step [ { model_name: "pre" model_version: -1 input_map { key: "in" value: "raw" }
  output_map { key: "out" value: "images" } } ] }
"""
OPENVINO = """
name: "ov"
backend: "openvino"
max_batch_size: 8
input [ { name: "x" data_type: TYPE_FP32 dims: [ 3, 224, 224 ] } ]
output [ { name: "y" data_type: TYPE_FP32 dims: [ 1000 ] } ]
"""
PYTORCH = OPENVINO.replace('"ov"', '"pt"').replace('"openvino"', '"pytorch"')


def knob_problems(config, knobs: dict, embedded: bool = False) -> list[str]:
    """Why each knob of a space made of `knobs` cannot act on `config`."""
    return parse_space(json.dumps({"knobs": knobs})).problems(config, embedded)[0]
