"""config.pbtxt in and out: parse into Triton's own `ModelConfig` protobuf, apply a trial's knobs,
render pbtxt and the JSON override that `load_model` takes.

Configs are never built from string templates: every one written went through the protobuf
schema, so a misspelt field cannot reach the server.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

from google.protobuf import json_format, text_format
from tritonclient.grpc import model_config_pb2
from tritonclient.grpc.model_config_pb2 import ModelConfig

from tuner.config.knobs import ACCELERATOR_HOME, GRAPH_LEVELS, backend_of
from tuner.errors import ConfigError


def parse_config(text: str, source: str = "config.pbtxt") -> ModelConfig:
    """Parses pbtxt text; errors name the source and Triton's line:column."""
    config = ModelConfig()
    try:
        text_format.Parse(text, config)
    except text_format.ParseError as e:
        raise ConfigError(f"{source}:{e}") from None
    check_tunable(config, source)
    return config


def read_config(path: Path) -> ModelConfig:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such config.pbtxt")
    return parse_config(path.read_text(), str(path))


def check_tunable(config: ModelConfig, source: str) -> None:
    if not config.name:
        raise ConfigError(f"{source}: field 'name' is missing")
    backend = backend_of(config)
    if not backend:
        raise ConfigError(f"{source}: neither 'backend' nor 'platform' is set")
    if config.HasField("sequence_batching"):
        raise ConfigError(f"{source}: '{config.name}' uses sequence batching; stateful models are not "
                          "supported yet (the load generator sends independent requests)")


def preferred_sizes(policy: str, max_batch_size: int) -> list[int]:
    """Preferred batch sizes from a policy relative to max_batch_size, so they can never exceed
    it and the sampler sees the same fixed choices in every trial.
      none: [] (the batcher forms the largest batch it can)   max: [mbs]
      half_max: [mbs/2, mbs]   pow2: 2, 4, 8, ... up to mbs   "4,8": those sizes that fit."""
    if policy == "none":
        return []
    if policy == "max":
        return [max_batch_size]
    if policy == "half_max":
        return sorted({max(1, max_batch_size // 2), max_batch_size})
    if policy == "pow2":
        sizes, s = [], 2
        while s <= max_batch_size:
            sizes.append(s)
            s *= 2
        return sizes or [max_batch_size]
    sizes = sorted({int(s) for s in policy.split(",") if s.strip()})
    return [s for s in sizes if s <= max_batch_size] or [max_batch_size]


def apply_knobs(base: ModelConfig, knobs: dict) -> ModelConfig:
    """A new config: `base` with the trial's knob values set in their config fields."""
    config = ModelConfig()
    config.CopyFrom(base)
    if "max_batch_size" in knobs:
        config.max_batch_size = int(knobs["max_batch_size"])
    if "instance_count" in knobs or "instance_kind" in knobs:
        group = config.instance_group[0] if config.instance_group else config.instance_group.add()
        if "instance_count" in knobs:
            group.count = int(knobs["instance_count"])
        if "instance_kind" in knobs:
            group.kind = model_config_pb2.ModelInstanceGroup.Kind.Value(knobs["instance_kind"])
            if group.kind != model_config_pb2.ModelInstanceGroup.KIND_GPU:
                del group.gpus[:]
    if "model_version" in knobs:  # one version served, so unversioned requests reach it
        config.version_policy.specific.versions[:] = [int(knobs["model_version"])]
    _apply_batcher(config, knobs)
    _apply_accelerator(config, knobs)
    if "graph_optimization" in knobs:
        _apply_graph_level(config, GRAPH_LEVELS[knobs["graph_optimization"]])
    for key, value in knobs.get("parameters", {}).items():
        config.parameters[key].string_value = str(value)
    return config


def _apply_batcher(config: ModelConfig, knobs: dict) -> None:
    enabled = knobs.get("dynamic_batching", None)
    if enabled is False:
        config.ClearField("dynamic_batching")
        return
    if not (enabled or "max_queue_delay_us" in knobs or "preferred_batch_sizes" in knobs):
        return
    batcher = config.dynamic_batching
    batcher.SetInParent()  # `dynamic_batching { }` alone turns the batcher on
    if "max_queue_delay_us" in knobs:
        batcher.max_queue_delay_microseconds = int(knobs["max_queue_delay_us"])
    if "preferred_batch_sizes" in knobs:
        del batcher.preferred_batch_size[:]
        batcher.preferred_batch_size.extend(preferred_sizes(str(knobs["preferred_batch_sizes"]),
                                                            config.max_batch_size))
    # a config read from elsewhere may carry sizes that the new max_batch_size no longer allows
    kept = [s for s in batcher.preferred_batch_size if s <= config.max_batch_size]
    del batcher.preferred_batch_size[:]
    batcher.preferred_batch_size.extend(kept)


def _accelerator_settings(knobs: dict) -> dict[str, str]:
    settings = {}
    if "precision" in knobs:
        settings["precision_mode"] = str(knobs["precision"])
    if "workspace_gib" in knobs:
        settings["max_workspace_size_bytes"] = str(int(float(knobs["workspace_gib"]) * 2**30))
    if "engine_cache" in knobs:
        settings["trt_engine_cache_enable"] = "true" if knobs["engine_cache"] else "false"
    return settings


def _apply_accelerator(config: ModelConfig, knobs: dict) -> None:
    settings, kind = _accelerator_settings(knobs), knobs.get("accelerator")
    if ACCELERATOR_HOME.get(backend_of(config)) == "parameters":
        for key, value in settings.items():
            config.parameters[key].string_value = value
        return
    accelerators = config.optimization.execution_accelerators
    if kind is not None:  # the knob picks the provider: start from none
        del accelerators.gpu_execution_accelerator[:]
        del accelerators.cpu_execution_accelerator[:]
    if kind == "cuda":
        accelerators.gpu_execution_accelerator.add(name="cuda")
    elif kind == "openvino":
        accelerators.cpu_execution_accelerator.add(name="openvino")
    elif kind == "tensorrt" or (kind is None and settings):
        gpu = accelerators.gpu_execution_accelerator
        trt = next((a for a in gpu if a.name == "tensorrt"), None) or gpu.add(name="tensorrt")
        for key, value in settings.items():
            trt.parameters[key] = value
    if not (accelerators.gpu_execution_accelerator or accelerators.cpu_execution_accelerator):
        config.optimization.ClearField("execution_accelerators")
    if not config.optimization.ListFields():
        config.ClearField("optimization")


def _apply_graph_level(config: ModelConfig, level: int) -> None:
    """Level 0 (all optimisations) is ONNX Runtime's default: written as no `graph` at all, so the
    default and an explicit `graph { }` are one config, measured once."""
    if level:
        config.optimization.graph.level = level
        return
    config.optimization.ClearField("graph")
    if not config.optimization.ListFields():
        config.ClearField("optimization")


def render_pbtxt(config: ModelConfig) -> str:
    return text_format.MessageToString(config)


def to_json(config: ModelConfig) -> str:
    """The config as `load_model(config=...)` takes it (Triton parses it with protobuf's JSON)."""
    return json_format.MessageToJson(config, preserving_proto_field_name=True, indent=None)


def fingerprint(config: ModelConfig) -> str:
    """Equal for configs that Triton would treat the same, whatever order fields were set in."""
    canonical = json.dumps(json.loads(to_json(config)), sort_keys=True)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]
