"""What each backend reads from a config's `parameters`, read from the backends' r24.10 sources
(onnxruntime_backend/src/onnxruntime.cc, openvino_backend/src/openvino.cc and the project's
fixes), not from their documentation: the type of value each takes, the instance kinds where it
acts, and what else must hold for it to act. A knob that cannot act where it would be sampled is
refused with the reason, because measuring it only measures noise.

Values are checked for their type and for what would crash the server; the backend stays the
authority on ranges (execution_mode 2, a negative thread count): such a value fails its trial with
Triton's own reason, and the sampler learns from it.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from tritonclient.grpc.model_config_pb2 import ModelInstanceGroup

CPU, GPU = "KIND_CPU", "KIND_GPU"
BOTH = frozenset({CPU, GPU})


def _integer(value: str) -> str | None:
    """Triton parses these with std::stoi, which throws out_of_range for a larger number: r24.10
    catches only invalid_argument, so such a value crashes tritonserver instead of failing the load."""
    if not value.lstrip("-").isdigit():
        return "must be an integer"
    return None if -2**31 <= int(value) < 2**31 else "must fit in 32 bits (a larger one crashes tritonserver r24.10)"


def _one_of(*allowed: str, case: bool = True) -> Callable[[str], str | None]:
    def check(value: str) -> str | None:
        v = value if case else value.upper()
        return None if v in allowed else f"must be one of {', '.join(allowed)}"
    return check


def _streams(value: str) -> str | None:
    return None if value.upper() in ("AUTO", "NUMA") or value.isdigit() else "must be AUTO, NUMA or an integer"


def _any(_: str) -> str | None:
    return None


_BOOL = _one_of("TRUE", "FALSE", "ON", "OFF", "1", "0", case=False)  # ParseBoolValue's words
_YES_NO = _one_of("YES", "NO", case=False)


@dataclass(frozen=True)
class Parameter:
    check: Callable[[str], str | None] = _any  # why a value is refused, or None
    kinds: frozenset[str] = BOTH  # instance kinds where it acts
    needs: tuple[str, frozenset[str]] | None = None  # another parameter and its values ("": unset) for this to act
    refused: str = ""  # why it is never searched, when it never is
    # process-wide state the backend sets only when the parameter is given: a load without it keeps
    # the last trial's value, so the baseline must state it too or it measures another trial's setting
    sticky: bool = False


_GPU_BUILD = frozenset({GPU})  # inside `#ifdef TRITON_ENABLE_GPU`, for KIND_GPU instances only

PARAMETERS: dict[str, dict[str, Parameter]] = {
    "onnxruntime": {
        "intra_op_thread_count": Parameter(_integer),
        # "If sequential execution is enabled this value is ignored"
        "inter_op_thread_count": Parameter(_integer, needs=("execution_mode", frozenset({"1"}))),
        "execution_mode": Parameter(_integer),  # 0 sequential, 1 parallel; Triton refuses others with its reason
        "enable_mem_arena": Parameter(_BOOL),
        "enable_mem_pattern": Parameter(_BOOL),
        # a run option, e.g. "cpu:0"; ONNX Runtime fails every request when there is no arena to shrink
        "memory.enable_memory_arena_shrinkage": Parameter(needs=("enable_mem_arena", frozenset({"true", "1", ""}))),
        "cudnn_conv_algo_search": Parameter(_integer, _GPU_BUILD),
        "gpu_mem_limit": Parameter(_integer, _GPU_BUILD),
        "arena_extend_strategy": Parameter(_integer, _GPU_BUILD),
        "do_copy_in_default_stream": Parameter(_BOOL, _GPU_BUILD),
    },
    "openvino": {  # the backend runs on the CPU only
        "PERFORMANCE_HINT": Parameter(_one_of("LATENCY", "THROUGHPUT", "CUMULATIVE_THROUGHPUT", case=False)),
        "NUM_STREAMS": Parameter(_streams),
        "INFERENCE_NUM_THREADS": Parameter(_integer),
        "INFERENCE_PRECISION_HINT": Parameter(_one_of("F32", "BF16", "F16", case=False)),  # the project's fix
        "HINT_BF16": Parameter(_one_of("YES", case=False)),
        "ENABLE_BATCH_PADDING": Parameter(_YES_NO),
        "SKIP_OV_DYNAMIC_BATCHSIZE": Parameter(_YES_NO),
        "RESHAPE_IO_LAYERS": Parameter(_YES_NO),
        "COMPILATION_NUM_THREADS": Parameter(refused="OpenVINO 2025+ refuses it on the CPU (Unsupported property "
                                             "COMPILATION_NUM_THREADS by CPU plugin), so every trial would fail"),
        "CPU_EXTENSION_PATH": Parameter(refused="a path to a custom-layer library, not a tuning choice"),
    },
    # pytorch_backend/src/libtorch.cc, ModelState::ParseParameters and ModelInstanceState::Execute
    "pytorch": {
        "INFERENCE_MODE": Parameter(_BOOL),  # torch::InferenceMode around each execute (default true)
        "DISABLE_OPTIMIZED_EXECUTION": Parameter(_BOOL),  # setGraphExecutorOptimize, set at each execute
        "DISABLE_CUDNN": Parameter(_BOOL, _GPU_BUILD),  # setUserEnabledCuDNN: only CUDA convolutions use cuDNN
        "ENABLE_CACHE_CLEANING": Parameter(_BOOL, _GPU_BUILD),  # emptyCache() after each execute on a CUDA device
        "ENABLE_WEIGHT_SHARING": Parameter(_BOOL),  # instances on one device share one module (memory)
        # process-wide settings the backend changes only when the parameter is present
        "INTRA_OP_THREAD_COUNT": Parameter(_integer, frozenset({CPU}), sticky=True),  # at::set_num_threads
        "ENABLE_JIT_EXECUTOR": Parameter(_BOOL, sticky=True),
        "ENABLE_JIT_PROFILING": Parameter(_BOOL, sticky=True),
        "ENABLE_TENSOR_FUSER": Parameter(_BOOL, sticky=True),
        "INTER_OP_THREAD_COUNT": Parameter(refused="at::set_num_interop_threads may be called once per process, so "
                                           "a hot reload cannot change it: set it in config.pbtxt instead"),
    },
    "tensorrt": {"execution_context_allocation_strategy": Parameter()},
}
# where each backend reads its parameters (r24.10): the files the rules above were read from
SOURCES = {"onnxruntime": "onnxruntime_backend/src/onnxruntime.cc",
           "openvino": "openvino_backend/src/openvino.cc, with tuner/backends/openvino_fixes.py",
           "pytorch": "pytorch_backend/src/libtorch.cc",
           "tensorrt": "tensorrt_backend's README (its source is not among the pinned ones)"}
CPU_ONLY = {"openvino": "the OpenVINO backend runs on the CPU only"}

# platform names of the older `platform:` field -> the backend that serves them
_PLATFORM_BACKEND = {"onnxruntime_onnx": "onnxruntime", "tensorrt_plan": "tensorrt",
                     "pytorch_libtorch": "pytorch", "tensorflow_savedmodel": "tensorflow",
                     "tensorflow_graphdef": "tensorflow", "openvino": "openvino"}
# Where precision / workspace / engine cache go, per backend: onnxruntime takes them as the TensorRT
# execution accelerator; python models (like the demo's twin) read the same keys from `parameters`.
ACCELERATOR_HOME = {"onnxruntime": "tensorrt_accelerator", "python": "parameters"}


def backend_of(config) -> str:
    """The backend that serves a ModelConfig (its `backend`, or the one its `platform` names)."""
    return config.backend or _PLATFORM_BACKEND.get(config.platform, config.platform)

# optimization { graph { level } } as the ONNX Runtime backend maps it (onnxruntime.cc)
GRAPH_LEVELS = {"all": 0, "extended": 1, "basic": -1, "disabled": 2}


@dataclass(frozen=True)
class Condition:
    """A knob that acts only when another sampled knob has one of `values`."""
    gate: str  # the other knob's name as the sampler knows it ("instance_kind", "param.execution_mode")
    values: frozenset = field(default_factory=frozenset)


def parameter_problems(backend: str, values: dict[str, tuple[str, ...]], kinds: set[str],
                       base: dict[str, str]) -> tuple[list[str], dict[str, Condition]]:
    """Checks searched backend parameters (name -> the values the space gives it) against what the
    backend reads. Returns why each cannot act, and the conditions under which the others act
    when that depends on another sampled knob."""
    catalog = PARAMETERS.get(backend)
    if catalog is None:  # a python model reads whatever its model.py reads
        return [], {}
    problems, conditions = [], {}
    for name, options in values.items():
        spec = catalog.get(name)
        if spec is None:
            problems.append(f"parameters.{name}: not read by the {backend} backend; it reads "
                            f"{', '.join(n for n, p in catalog.items() if not p.refused)}")
            continue
        if spec.refused:
            problems.append(f"parameters.{name}: {spec.refused}")
            continue
        bad = [f"{v!r} {why}" for v in options if (why := spec.check(v))]
        if bad:
            problems.append(f"parameters.{name}: {'; '.join(bad)}")
        if not kinds & spec.kinds:
            problems.append(f"parameters.{name}: acts only on {', '.join(sorted(spec.kinds))} instances, and this "
                            f"space runs {', '.join(sorted(kinds))}")
        elif kinds - spec.kinds:
            conditions[name] = Condition("instance_kind", spec.kinds)
        if spec.sticky and name not in base:
            problems.append(f"parameters.{name}: process-wide in the {backend} backend, which changes it only when the "
                            f"parameter is given, so a config without it inherits the previous trial's value: set "
                            f"it in the model's config.pbtxt (the baseline's value) to search it")
        if spec.needs:
            other, wanted = spec.needs
            given = values.get(other, (base.get(other, ""),))
            acting = [v for v in given if v in wanted]
            if not acting:
                problems.append(f"parameters.{name}: acts only when {other} is "
                                f"{'/'.join(sorted(w or 'unset' for w in wanted))}, and it is {'/'.join(given)!r}")
            elif len(acting) < len(given):
                conditions[name] = Condition(f"param.{other}", wanted)
    return problems, conditions


def instance_kinds(config, offered: tuple[str, ...] | None) -> set[str]:
    """The instance kinds trials can run: those the space offers for instance_kind, else the
    config's (KIND_AUTO or none given: Triton picks GPU where there is one, so both)."""
    found = set(offered) if offered is not None else \
        {ModelInstanceGroup.Kind.Name(g.kind) for g in config.instance_group} or {"KIND_AUTO"}
    return (found - {"KIND_AUTO"}) | (set(BOTH) if "KIND_AUTO" in found else set())
