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
from tritonclient.grpc.model_config_pb2 import ModelConfig

from tuner.config import knobs as catalog
from tuner.config.parameters import backend_of
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


def apply_knobs(base: ModelConfig, knobs: dict) -> ModelConfig:
    """A new config: `base` with the trial's knob values set in their config fields (tuner.config.knobs)."""
    return catalog.apply(base, knobs)


def render_pbtxt(config: ModelConfig) -> str:
    return text_format.MessageToString(config)


def to_json(config: ModelConfig) -> str:
    """The config as `load_model(config=...)` takes it (Triton parses it with protobuf's JSON)."""
    return json_format.MessageToJson(config, preserving_proto_field_name=True, indent=None)


def _as_scheduled(config: ModelConfig) -> ModelConfig:
    """The config with its dynamic batcher as Triton's core runs it (r24.10): an empty
    preferred_batch_size is read as [max_batch_size] (model_config_utils.cc fills it in), and at
    max_batch_size 1 every request is a full batch, so the batcher never waits and its queue delay
    and preferred sizes cannot act (dynamic_batch_scheduler.cc, GetDynamicBatch)."""
    largest, written = config.max_batch_size, config.dynamic_batching.preferred_batch_size
    if not config.HasField("dynamic_batching") or largest <= 0 or (largest > 1 and written):
        return config  # Triton runs it as written
    scheduled = ModelConfig()
    scheduled.CopyFrom(config)
    batcher = scheduled.dynamic_batching
    if largest == 1:
        batcher.max_queue_delay_microseconds = 0
        batcher.preferred_batch_size[:] = [1]
    else:
        batcher.preferred_batch_size[:] = [largest]
    return scheduled


def fingerprint(config: ModelConfig) -> str:
    """Equal for configs that Triton would run the same, whatever order fields were set in and
    whichever of the batcher's defaults are written out."""
    canonical = json.dumps(json.loads(to_json(_as_scheduled(config))), sort_keys=True)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]
