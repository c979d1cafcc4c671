"""The knobs a search space's `knobs:` may name, one entry each: the values it takes, the config
field it writes and how, when it is sampled, and where it acts. Adding a knob is adding an entry
here: the space's reader, the sampler, the config writer, the checks and the documentation read it.

A knob that cannot act where it would be sampled is refused with the reason (its `acts` rule):
measuring it would only measure noise. The rules were read from the r24.10 sources of Triton's core
and backends; the backends' own `parameters` are cataloged in tuner.config.parameters.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from tritonclient.grpc import model_config_pb2
from tritonclient.grpc.model_config_pb2 import ModelConfig

from tuner.config.parameters import (
    ACCELERATOR_HOME,
    CPU_ONLY,
    GPU,
    GRAPH_LEVELS,
    Condition,
    backend_of,
    instance_kinds,
    parameter_problems,
)

KINDS = ("KIND_AUTO", "KIND_CPU", "KIND_GPU")
POLICIES = ("none", "max", "half_max", "pow2")  # preferred batch sizes, relative to the max batch size
ACCELERATORS = ("tensorrt", "cuda", "openvino", "none")  # onnxruntime's execution providers


@dataclass(frozen=True)
class Subject:
    """What a knob's `acts` rule looks at: the model, where it runs, and the values the space gives."""
    config: ModelConfig
    backend: str
    kinds: set[str]  # the instance kinds trials can run
    embedded: bool  # the embedded server, whose ONNX Runtime backend is a CPU build
    versions: set[int] | None  # the model's version folders (None: a remote server's, not visible)
    values: tuple[str, ...]  # this knob's values in the space


Rule = Callable[[Subject], str | None]


def _always(_: Subject) -> None:
    return None


@dataclass(frozen=True)
class Knob:
    check: Callable[[object], str | None]  # why a value is refused, or None
    writes: str  # the config field, in words (the reference lists it)
    apply: Callable[[ModelConfig, object, dict], None]  # (config, value, all the trial's knobs)
    acts: Rule = _always  # why it cannot act on the subject, or None
    after: str | None = None  # sampled only once this knob is, and when `when` holds for its value
    when: Callable[[object], bool] = lambda _: True

    @property
    def values(self) -> str:
        """What it takes, in the words of its refusal."""
        return (self.check(object()) or "").removeprefix("must be ")


# --- values -------------------------------------------------------------------------------------

def _int_at_least(n: int):
    return lambda v: None if isinstance(v, int) and not isinstance(v, bool) and v >= n else f"must be an integer >= {n}"


def _one_of(*allowed):
    return lambda v: None if v in allowed else f"must be one of {', '.join(map(str, allowed))}"


def _check_preferred(v) -> str | None:
    if v in POLICIES:
        return None
    try:
        sizes = [int(s) for s in str(v).split(",")]
    except ValueError:
        sizes = []
    return None if sizes and all(s >= 1 for s in sizes) else \
        f"must be a policy ({', '.join(POLICIES)}) or a list of batch sizes"


def _positive_number(v) -> str | None:
    return None if isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0 else "must be a number > 0"


# --- where they act ----------------------------------------------------------------------------

def _batches(s: Subject) -> str | None:
    return "the model has max_batch_size 0 (no batch dimension), so it cannot be batched" \
        if s.config.max_batch_size == 0 else None


def _preferred_policies(s: Subject) -> str | None:  # searching both would measure one config twice
    return _batches(s) or ("none and max are one config: Triton fills an empty preferred_batch_size with "
                           "[max_batch_size]; keep one of them" if {"none", "max"} <= set(s.values) else None)


def _one_group(s: Subject) -> str | None:
    return "the config has several instance_group entries; keep one to tune it" \
        if len(s.config.instance_group) > 1 else None


def _kind(s: Subject) -> str | None:
    return _one_group(s) or CPU_ONLY.get(s.backend)


def _version(s: Subject) -> str | None:
    if s.versions is None:
        return None
    absent = sorted({int(v) for v in s.values} - s.versions)
    return (f"no version folder {', '.join(map(str, absent))} in the model's folder (it has "
            f"{', '.join(map(str, sorted(s.versions))) or 'none'})") if absent else None


_EMBEDDED_ORT = "the embedded server's ONNX Runtime backend is a CPU build without execution providers"
_NO_ACCELERATOR_WHY = {
    "tensorrt": "a TensorRT plan's precision and workspace are fixed when the engine is built "
                "(trtexec --fp16 / --memPoolSize); rebuild the plan instead",
    "pytorch": "a TorchScript model's precision is fixed when it is exported; put an FP16 export beside the "
               "FP32 one as another version and search model_version",
}


def _tensorrt(s: Subject) -> str | None:
    if s.backend not in ACCELERATOR_HOME:
        return _NO_ACCELERATOR_WHY.get(s.backend, f"the {s.backend} backend has no TensorRT accelerator settings")
    if s.backend == "onnxruntime" and (GPU not in s.kinds or s.embedded):
        return "TensorRT runs on KIND_GPU instances only" + (f", and {_EMBEDDED_ORT}" if s.embedded else "")
    return None


def _accelerator(s: Subject) -> str | None:
    if s.backend != "onnxruntime":
        return (f"execution providers (optimization.execution_accelerators) are an onnxruntime setting; the "
                f"{s.backend} backend has none")
    if set(s.values) & {"tensorrt", "cuda"} and GPU not in s.kinds:
        return "tensorrt and cuda apply only to KIND_GPU instances; on KIND_CPU Triton accepts them and does nothing"
    if s.embedded and set(s.values) - {"none"}:
        return f"{_EMBEDDED_ORT}; use --launcher docker for {', '.join(sorted(set(s.values) - {'none'}))}"
    return None


def _graph(s: Subject) -> str | None:
    return None if s.backend == "onnxruntime" else \
        f"optimization.graph.level is read by the onnxruntime backend, not {s.backend}"


# backend/src/backend_model.cc reads optimization.input_pinned_memory.enable (Triton's core sets it
# true when absent); the input collector and the output responder of backend/src use pinned buffers
# only for copies between host and GPU memory, so it acts on KIND_GPU instances alone. r24.10's
# onnxruntime.cc (2578) and libtorch.cc (2242) hand EnablePinnedInput to the output responder too,
# so output_pinned_memory does nothing there and is not written. Other backends: sources not read.
_PINNED_BACKENDS = ("onnxruntime", "pytorch")


def _pinned(s: Subject) -> str | None:
    if s.backend not in _PINNED_BACKENDS:
        return f"read here in the onnxruntime and pytorch backends' sources only, not the {s.backend} backend's"
    if GPU not in s.kinds:
        return "pinned buffers serve copies between host and GPU memory: KIND_GPU instances only"
    if s.embedded and s.backend == "onnxruntime":
        return _EMBEDDED_ORT
    return None


# --- how they are written ----------------------------------------------------------------------

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
        return [2 ** k for k in range(1, max_batch_size.bit_length())] or [max_batch_size]
    sizes = sorted({int(s) for s in policy.split(",") if s.strip()})
    return [s for s in sizes if s <= max_batch_size] or [max_batch_size]


def _max_batch(config: ModelConfig, value, _: dict) -> None:
    config.max_batch_size = int(value)
    if config.HasField("dynamic_batching"):  # the base's sizes may exceed the new max: Triton refuses those
        kept = [s for s in config.dynamic_batching.preferred_batch_size if s <= config.max_batch_size]
        config.dynamic_batching.preferred_batch_size[:] = kept


def _group(config: ModelConfig) -> model_config_pb2.ModelInstanceGroup:
    return config.instance_group[0] if config.instance_group else config.instance_group.add()


def _count(config: ModelConfig, value, _: dict) -> None:
    _group(config).count = int(value)


def _instance_kind(config: ModelConfig, value, _: dict) -> None:
    group = _group(config)
    group.kind = model_config_pb2.ModelInstanceGroup.Kind.Value(value)
    if group.kind != model_config_pb2.ModelInstanceGroup.KIND_GPU:
        del group.gpus[:]


def _version_policy(config: ModelConfig, value, _: dict) -> None:
    config.version_policy.specific.versions[:] = [int(value)]  # one version served: unversioned requests reach it


def _batcher(config: ModelConfig, value, _: dict) -> None:
    if value:
        config.dynamic_batching.SetInParent()  # `dynamic_batching { }` alone turns the batcher on
    else:
        config.ClearField("dynamic_batching")


def _queue_delay(config: ModelConfig, value, _: dict) -> None:
    config.dynamic_batching.SetInParent()
    config.dynamic_batching.max_queue_delay_microseconds = int(value)


def _preferred(config: ModelConfig, value, _: dict) -> None:
    config.dynamic_batching.SetInParent()
    config.dynamic_batching.preferred_batch_size[:] = preferred_sizes(str(value), config.max_batch_size)


def _providers(config: ModelConfig, value, knobs: dict) -> None:
    accelerators = config.optimization.execution_accelerators
    del accelerators.gpu_execution_accelerator[:]
    del accelerators.cpu_execution_accelerator[:]
    if value == "cuda":
        accelerators.gpu_execution_accelerator.add(name="cuda")
    elif value == "openvino":
        accelerators.cpu_execution_accelerator.add(name="openvino")
    elif value == "tensorrt":
        accelerators.gpu_execution_accelerator.add(name="tensorrt")


def _tensorrt_setting(key: str, text: Callable[[object], str]):
    """Writes one TensorRT setting where the backend reads it: a python model's `parameters`, or
    onnxruntime's TensorRT execution accelerator (added when the space does not pick providers)."""
    def apply(config: ModelConfig, value, _: dict) -> None:
        if ACCELERATOR_HOME.get(backend_of(config)) == "parameters":
            config.parameters[key].string_value = text(value)
            return
        gpu = config.optimization.execution_accelerators.gpu_execution_accelerator
        trt = next((a for a in gpu if a.name == "tensorrt"), None) or gpu.add(name="tensorrt")
        trt.parameters[key] = text(value)
    return apply


def _graph_level(config: ModelConfig, value, _: dict) -> None:
    """Level 0 (all optimisations) is ONNX Runtime's default: written as no `graph` at all, so the
    default and an explicit `graph { }` are one config, measured once."""
    if GRAPH_LEVELS[value]:
        config.optimization.graph.level = GRAPH_LEVELS[value]
    else:
        config.optimization.ClearField("graph")


def _pinned_memory(config: ModelConfig, value, _: dict) -> None:
    """On is Triton's default: written as no setting, so the default and an explicit `enable: true`
    are one config, measured once."""
    if value:
        config.optimization.ClearField("input_pinned_memory")
    else:
        config.optimization.input_pinned_memory.enable = False


_BATCHER_ON = ("dynamic_batching", lambda on: on is not False)
_TENSORRT_CHOSEN = ("accelerator", lambda provider: provider in (None, "tensorrt"))

KNOBS = {
    "max_batch_size": Knob(_int_at_least(1), "max_batch_size", _max_batch, _batches),
    "instance_count": Knob(_int_at_least(1), "instance_group[0].count", _count, _one_group),
    "instance_kind": Knob(_one_of(*KINDS), "instance_group[0].kind", _instance_kind, _kind),
    "model_version": Knob(_int_at_least(1), "version_policy { specific { versions: [N] } }: which version folder "
                          "Triton serves (build-time choices such as an FP16 export beside the FP32 one)",
                          _version_policy, _version),
    "dynamic_batching": Knob(_one_of(True, False), "dynamic_batching { } on or off", _batcher, _batches),
    "max_queue_delay_us": Knob(_int_at_least(0), "dynamic_batching.max_queue_delay_microseconds (sampled only with "
                               "dynamic batching on; use log: true)", _queue_delay, _batches, *_BATCHER_ON),
    "preferred_batch_sizes": Knob(_check_preferred, "dynamic_batching.preferred_batch_size, relative to the trial's "
                                  "max batch size: max = [mbs], half_max = [mbs/2, mbs], pow2 = 2, 4 .. mbs",
                                  _preferred, _preferred_policies, *_BATCHER_ON),
    "accelerator": Knob(_one_of(*ACCELERATORS), "onnxruntime's optimization.execution_accelerators (tensorrt, cuda: "
                        "gpu_execution_accelerator; openvino: cpu_execution_accelerator)", _providers, _accelerator),
    "precision": Knob(_one_of("FP32", "FP16"), "TensorRT precision_mode (onnxruntime's TensorRT accelerator, or a "
                      "python model's parameters)", _tensorrt_setting("precision_mode", str), _tensorrt,
                      *_TENSORRT_CHOSEN),
    "workspace_gib": Knob(_positive_number, "TensorRT max_workspace_size_bytes, in GiB",
                          _tensorrt_setting("max_workspace_size_bytes", lambda v: str(int(float(str(v)) * 2**30))),
                          _tensorrt, *_TENSORRT_CHOSEN),
    "engine_cache": Knob(_one_of(True, False), "TensorRT trt_engine_cache_enable",
                         _tensorrt_setting("trt_engine_cache_enable", lambda v: "true" if v else "false"),
                         _tensorrt, *_TENSORRT_CHOSEN),
    "graph_optimization": Knob(_one_of(*GRAPH_LEVELS), "onnxruntime's optimization { graph { level } }: all 0 (ORT's "
                               "default), extended 1, basic -1, disabled 2", _graph_level, _graph),
    "pinned_memory": Knob(_one_of(True, False), "optimization { input_pinned_memory { enable } }: host-GPU copies "
                          "of inputs and outputs through pinned buffers (Triton's default: on)",
                          _pinned_memory, _pinned),
}
GATES = frozenset(k.after for k in KNOBS.values() if k.after) | {"instance_kind"}  # sampled first


def apply(base: ModelConfig, knobs: dict) -> ModelConfig:
    """A new config: `base` with the trial's knob values written (in the catalog's order: the max
    batch size before the sizes relative to it), and its backend parameters."""
    config = ModelConfig()
    config.CopyFrom(base)
    for name, knob in KNOBS.items():
        if name in knobs and (knob.after is None or knob.when(knobs.get(knob.after))):
            knob.apply(config, knobs[name], knobs)
    for key, value in knobs.get("parameters", {}).items():
        config.parameters[key].string_value = str(value)
    accelerators = config.optimization.execution_accelerators
    if not (accelerators.gpu_execution_accelerator or accelerators.cpu_execution_accelerator):
        config.optimization.ClearField("execution_accelerators")
    if not config.optimization.ListFields():
        config.ClearField("optimization")
    return config


def problems(config: ModelConfig, knobs: dict[str, tuple[str, ...]], parameters: dict[str, tuple[str, ...]],
             embedded: bool = False, versions: set[int] | None = None) -> tuple[list[str], dict[str, Condition]]:
    """Why knobs (name -> the values the space gives) cannot act on this model, knobs with the
    same reason named together, and the conditions under which backend parameters act when that
    depends on another sampled knob."""
    backend = backend_of(config)
    kinds = instance_kinds(config, knobs.get("instance_kind"))
    reasons: dict[str, list[str]] = {}
    for name, values in knobs.items():
        why = KNOBS[name].acts(Subject(config, backend, kinds, embedded, versions, values))
        if why:
            reasons.setdefault(why, []).append(name)
    found = [f"{', '.join(sorted(names))}: {why}" for why, names in reasons.items()]
    base = {k: v.string_value for k, v in config.parameters.items()}
    more, conditions = parameter_problems(backend, parameters, kinds, base)
    padding = parameters.get("ENABLE_BATCH_PADDING", (base.get("ENABLE_BATCH_PADDING", "NO"),))
    batching = set(knobs) & {n for n, k in KNOBS.items() if k.acts in (_batches, _preferred_policies)}
    if backend == "openvino" and batching and any(v.upper() != "YES" for v in padding):
        more.append("batching knobs: the OpenVINO backend r24.10 reshapes a batching model to a fixed batch of "
                    "max_batch_size, so any smaller batch fails unless ENABLE_BATCH_PADDING is YES")
    return found + more, conditions
