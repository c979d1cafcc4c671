"""Every knob renders a config Triton accepts: loaded into the embedded Triton for the python
backend (the one it ships), schema-checked for the backends it does not have."""

import pytest
from google.protobuf import json_format
from support import MODELS, serving
from support.configs import ONNX_TRT, OPENVINO, PYTORCH, TRT_PLAN, knob_problems

from tuner.config.modelconfig import ModelConfig, apply_knobs, parse_config, read_config, render_pbtxt, to_json

KNOBS = [
    {"max_batch_size": 4}, {"instance_count": 2}, {"instance_kind": "KIND_CPU"},
    {"dynamic_batching": True}, {"dynamic_batching": False},
    {"dynamic_batching": True, "max_queue_delay_us": 5000},
    *({"dynamic_batching": True, "preferred_batch_sizes": p} for p in ("none", "max", "half_max", "pow2", "2,4")),
    {"precision": "FP16"}, {"workspace_gib": 2}, {"engine_cache": True},
    {"parameters": {"delay_ms": "0"}},
]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with serving(MODELS / "tiny", tmp_path_factory.mktemp("knobs")) as server:
        yield server


@pytest.mark.integration
@pytest.mark.parametrize("knobs", KNOBS, ids=lambda k: ",".join(f"{a}={b}" for a, b in k.items()))
def test_each_knob_loads_into_triton(server, knobs):
    config = apply_knobs(read_config(MODELS / "tiny" / "config.pbtxt"), knobs)
    server.control.load("tiny", to_json(config))  # raises with Triton's reason if refused
    loaded = json_format.ParseDict(server.control.model_config_json("tiny"), ModelConfig(),
                                   ignore_unknown_fields=True)
    assert loaded.max_batch_size == config.max_batch_size
    assert loaded.instance_group[0].count == config.instance_group[0].count
    assert loaded.HasField("dynamic_batching") == config.HasField("dynamic_batching")
    if config.HasField("dynamic_batching"):  # Triton fills an empty preferred list with [max_batch_size]
        wanted = list(config.dynamic_batching.preferred_batch_size) or [config.max_batch_size]
        assert list(loaded.dynamic_batching.preferred_batch_size) == wanted
    for key, value in config.parameters.items():
        assert loaded.parameters[key].string_value == value.string_value


def _schema_checked(config: ModelConfig) -> ModelConfig:
    """What Triton would be sent, parsed back strictly: pbtxt and the JSON load override."""
    again = parse_config(render_pbtxt(config), "rendered")
    strict = json_format.Parse(to_json(config), ModelConfig())  # unknown fields raise
    assert again == config == strict
    return again


@pytest.mark.unit
@pytest.mark.parametrize("accelerator, gpu, cpu", [("tensorrt", ["tensorrt"], []), ("cuda", ["cuda"], []),
                                                    ("openvino", [], ["openvino"]), ("none", [], [])])
def test_onnxruntime_accelerator_knob(accelerator, gpu, cpu):
    config = _schema_checked(apply_knobs(parse_config(ONNX_TRT), {"accelerator": accelerator, "precision": "FP16"}))
    accelerators = config.optimization.execution_accelerators
    assert [a.name for a in accelerators.gpu_execution_accelerator] == gpu
    assert [a.name for a in accelerators.cpu_execution_accelerator] == cpu
    if accelerator == "tensorrt":
        assert accelerators.gpu_execution_accelerator[0].parameters["precision_mode"] == "FP16"


@pytest.mark.unit
@pytest.mark.parametrize("text, parameters", [
    (ONNX_TRT, {"intra_op_thread_count": "2", "execution_mode": "1"}),
    (OPENVINO, {"NUM_STREAMS": "2", "PERFORMANCE_HINT": "THROUGHPUT", "INFERENCE_NUM_THREADS": "4",
                "ENABLE_BATCH_PADDING": "YES"}),
    (PYTORCH, {"INFERENCE_MODE": "true", "DISABLE_OPTIMIZED_EXECUTION": "false"}),
    (TRT_PLAN, {"execution_context_allocation_strategy": "ON_PROFILE_CHANGE"}),
])
def test_backend_parameters_render_and_are_known_to_the_backend(text, parameters):
    base = parse_config(text)
    config = _schema_checked(apply_knobs(base, {"max_batch_size": 4, "instance_count": 2, "dynamic_batching": True,
                                                "max_queue_delay_us": 100, "preferred_batch_sizes": "pow2",
                                                "parameters": parameters}))
    assert {k: v.string_value for k, v in config.parameters.items()} == parameters
    assert knob_problems(base, {"max_batch_size": [4], "parameters": parameters}) == []


@pytest.mark.unit
def test_knobs_a_backend_does_not_read_are_refused_with_the_reason():
    ov = parse_config(OPENVINO)
    problems = knob_problems(ov, {"instance_kind": ["KIND_CPU"], "accelerator": ["none"], "precision": ["FP16"],
                                  "parameters": {"intra_op_thread_count": "1"}})
    text = "\n".join(problems)
    assert "CPU only" in text and "onnxruntime setting" in text and "no TensorRT accelerator" in text
    assert "intra_op_thread_count: not read by the openvino backend; it reads" in text and "NUM_STREAMS" in text
    assert knob_problems(parse_config(TRT_PLAN), {"parameters": {"NUM_STREAMS": "1"}})  # plan takes no OpenVINO keys
