"""config.pbtxt parsing, knob application and rendering (pure functions, no server)."""
import json

import pytest
from support.configs import ENSEMBLE, ONNX_TRT, PYTHON, TRT_PLAN, knob_problems

from tuner.config.knobs import preferred_sizes
from tuner.config.modelconfig import apply_knobs, fingerprint, parse_config, read_config, render_pbtxt, to_json
from tuner.config.pipeline import ensemble_steps
from tuner.errors import ConfigError

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("text", [ONNX_TRT, PYTHON, TRT_PLAN], ids=["onnxruntime+trt", "python", "tensorrt_plan"])
def test_round_trip_is_lossless(text):
    config = parse_config(text)
    again = parse_config(render_pbtxt(config))
    assert again == config
    assert fingerprint(again) == fingerprint(config)
    assert json.loads(to_json(config))["name"] == config.name


def test_an_ensemble_parses_and_names_its_steps():
    assert ensemble_steps(parse_config(ENSEMBLE, "repo/pipeline/config.pbtxt")) == ["pre"]


def test_invalid_pbtxt_names_file_and_line(tmp_path):
    path = tmp_path / "config.pbtxt"
    path.write_text('name: "x"\nbackend: "python"\nmax_batch_size: eight\n')
    with pytest.raises(ConfigError, match=rf"{path}:3:\d+"):
        read_config(path)


def test_unknown_field_is_refused(tmp_path):
    with pytest.raises(ConfigError, match=r":2:\d+.*instance_groups"):
        parse_config('name: "x"\ninstance_groups [ { count: 1 } ]\nbackend: "python"\n', "c.pbtxt")


def test_missing_backend_is_refused():
    with pytest.raises(ConfigError, match="neither 'backend' nor 'platform'"):
        parse_config('name: "x"\nmax_batch_size: 1\n')


def test_knobs_land_in_their_fields_for_onnxruntime():
    config = apply_knobs(parse_config(ONNX_TRT), {
        "max_batch_size": 8, "instance_count": 3, "dynamic_batching": True, "max_queue_delay_us": 500,
        "preferred_batch_sizes": "half_max", "precision": "FP32", "workspace_gib": 4, "engine_cache": True})
    assert config.max_batch_size == 8
    assert config.instance_group[0].count == 3 and list(config.instance_group[0].gpus) == [0]
    assert list(config.dynamic_batching.preferred_batch_size) == [4, 8]
    assert config.dynamic_batching.max_queue_delay_microseconds == 500
    (trt,) = config.optimization.execution_accelerators.gpu_execution_accelerator
    assert dict(trt.parameters) == {"precision_mode": "FP32", "max_workspace_size_bytes": str(4 * 2**30),
                                    "trt_engine_cache_enable": "true"}


def test_python_backend_takes_accelerator_keys_as_parameters():
    config = apply_knobs(parse_config(PYTHON), {"precision": "FP16", "parameters": {"delay_ms": 5}})
    assert config.parameters["precision_mode"].string_value == "FP16"
    assert config.parameters["delay_ms"].string_value == "5"
    assert not config.HasField("optimization")


def test_dynamic_batching_off_clears_the_batcher():
    config = apply_knobs(parse_config(ONNX_TRT), {"dynamic_batching": False})
    assert not config.HasField("dynamic_batching")


def test_smaller_max_batch_size_drops_preferred_sizes_above_it():
    config = apply_knobs(parse_config(ONNX_TRT), {"max_batch_size": 4, "max_queue_delay_us": 100})
    assert list(config.dynamic_batching.preferred_batch_size) == [4]


@pytest.mark.parametrize("policy", ["none", "max", "half_max", "pow2", "4,8", "16,32"])
@pytest.mark.parametrize("mbs", [1, 2, 3, 8, 12, 64])
def test_preferred_sizes_never_exceed_max_batch_size(policy, mbs):
    sizes = preferred_sizes(policy, mbs)
    assert all(1 <= s <= mbs for s in sizes)
    assert sizes == sorted(set(sizes))
    if policy != "none":
        assert sizes


def test_knobs_that_do_not_apply_are_explained():
    assert knob_problems(parse_config(ONNX_TRT), {"precision": ["FP16", "FP32"], "instance_count": [1, 2]}) == []
    (why,) = knob_problems(parse_config(TRT_PLAN), {"precision": ["FP16"], "workspace_gib": [1]})
    assert "precision" in why and "engine is built" in why
    unbatched = parse_config(PYTHON.replace("max_batch_size: 8", "max_batch_size: 0"))
    (why,) = knob_problems(unbatched, {"max_batch_size": [1, 2], "preferred_batch_sizes": ["max"]})
    assert "max_batch_size 0" in why
    (why,) = knob_problems(parse_config(ONNX_TRT), {"preferred_batch_sizes": ["none", "max", "half_max"]})
    assert why.startswith("preferred_batch_sizes: none and max are one config")


def test_demo_config_is_valid():
    from tuner.config.shipped import DEMO_REPOSITORY
    config = read_config(DEMO_REPOSITORY / "detector" / "config.pbtxt")
    assert config.name == "detector" and list(config.input[0].dims) == [3, 640, 640]
    assert list(config.output[0].dims) == [84, 8400]


def test_graph_optimization_all_is_onnxruntimes_default_and_no_change():
    base = parse_config(ONNX_TRT)
    assert fingerprint(apply_knobs(base, {"graph_optimization": "all"})) == fingerprint(base)
    assert apply_knobs(base, {"graph_optimization": "basic"}).optimization.graph.level == -1
    assert apply_knobs(base, {"graph_optimization": "disabled"}).optimization.graph.level == 2
    # a config that had a level goes back to the default, and keeps its accelerators
    tuned = apply_knobs(apply_knobs(base, {"graph_optimization": "extended"}), {"graph_optimization": "all"})
    assert not tuned.optimization.HasField("graph")
    assert tuned.optimization.execution_accelerators.gpu_execution_accelerator


def test_batcher_settings_triton_reads_alike_are_one_config():
    """Triton's core reads an empty preferred_batch_size as [max_batch_size]; at max batch 1 every
    request is a full batch, so the queue delay and preferred sizes cannot act."""
    base = parse_config(ONNX_TRT)
    batched = {"max_batch_size": 8, "dynamic_batching": True, "max_queue_delay_us": 500}
    assert fingerprint(apply_knobs(base, {**batched, "preferred_batch_sizes": "none"})) == \
        fingerprint(apply_knobs(base, {**batched, "preferred_batch_sizes": "max"}))
    assert fingerprint(apply_knobs(base, {**batched, "preferred_batch_sizes": "none"})) != \
        fingerprint(apply_knobs(base, {**batched, "preferred_batch_sizes": "half_max"}))
    assert fingerprint(apply_knobs(base, batched)) != \
        fingerprint(apply_knobs(base, {**batched, "max_queue_delay_us": 100}))
    single = {**batched, "max_batch_size": 1}
    assert fingerprint(apply_knobs(base, single)) == fingerprint(apply_knobs(
        base, {**single, "max_queue_delay_us": 20000, "preferred_batch_sizes": "half_max"}))
    unbatched = apply_knobs(base, {**single, "dynamic_batching": False})
    assert fingerprint(apply_knobs(base, single)) != fingerprint(unbatched)


def test_pinned_memory_is_written_where_the_backend_reads_it_and_acts_only_on_gpu_copies():
    """backend/src/backend_model.cc reads optimization.input_pinned_memory.enable (r24.10's onnxruntime
    and pytorch backends use it for outputs too); Triton's core turns it on when absent, so on is
    written as no setting (one config with the default)."""
    base = parse_config(ONNX_TRT)
    off = apply_knobs(base, {"pinned_memory": False}).optimization
    # present and not enabled: proto3 writes the message with no field (`input_pinned_memory { }`)
    assert off.HasField("input_pinned_memory") and not off.input_pinned_memory.enable
    assert not off.HasField("output_pinned_memory")  # read by neither backend's output responder
    assert fingerprint(apply_knobs(base, {"pinned_memory": True})) == fingerprint(base)
    assert knob_problems(base, {"pinned_memory": [True, False]}) == []  # KIND_GPU, onnxruntime: it acts
    on_cpu = parse_config(ONNX_TRT.replace("kind: KIND_GPU gpus: [ 0 ]", "kind: KIND_CPU"))
    assert knob_problems(on_cpu, {"pinned_memory": [True, False]}) == [
        "pinned_memory: pinned buffers serve copies between host and GPU memory: KIND_GPU instances only"]
    (why,) = knob_problems(base, {"pinned_memory": [False]}, embedded=True)
    assert "CPU build" in why
    (why,) = knob_problems(parse_config(PYTHON), {"pinned_memory": [False]})
    assert "onnxruntime and pytorch backends' sources only, not the python backend's" in why
