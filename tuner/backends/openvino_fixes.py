"""The project's fixes to Triton's OpenVINO backend r24.10, applied to its sources before the build.

r24.10 builds OpenVINO itself inside docker and predates OpenVINO 2025's API; its batching path
has four bugs that return wrong outputs or crash the server at concurrency 8 (each has a test in
tests/test_openvino.py). Every fix is named, so a build can leave one out to show its bug.
"""
from __future__ import annotations

from pathlib import Path

from tuner.backends.pinned import differs, edit


def prebuilt_openvino(src: Path) -> None:
    """CMake: link the wheel's pre-built libopenvino.so.<ver> by path instead of the docker build."""
    cmake = src / "CMakeLists.txt"
    edit(cmake, "if(NOT TRITON_BUILD_OPENVINO_VERSION)\n",
         'set(TRITON_OPENVINO_PREBUILT_LIB "" CACHE FILEPATH "pre-built libopenvino.so.*")\n'
         'set(TRITON_OPENVINO_PREBUILT_INCLUDE "" CACHE PATH "its include folder")\n'
         "if(NOT TRITON_BUILD_OPENVINO_VERSION AND NOT TRITON_OPENVINO_PREBUILT_LIB)\n")
    edit(cmake, "if(NOT TRITON_BUILD_CONTAINER AND NOT TRITON_BUILD_CONTAINER_VERSION)\n",
         "if(NOT TRITON_BUILD_CONTAINER AND NOT TRITON_BUILD_CONTAINER_VERSION AND NOT TRITON_OPENVINO_PREBUILT_LIB)\n")
    edit(cmake, '  set(OPENVINO_LIBRARY "openvino.so")\nendif() # WIN32\n',
         '  set(OPENVINO_LIBRARY "openvino.so")\nendif() # WIN32\n'
         "if(TRITON_OPENVINO_PREBUILT_LIB)\n"
         '  set(TRITON_OPENVINO_INCLUDE_PATHS "${TRITON_OPENVINO_PREBUILT_INCLUDE}")\n'
         '  get_filename_component(TRITON_OPENVINO_LIB_PATHS "${TRITON_OPENVINO_PREBUILT_LIB}" DIRECTORY)\n'
         '  set(OPENVINO_LIBRARY "${TRITON_OPENVINO_PREBUILT_LIB}")\n'
         "endif()\n")
    edit(cmake, "add_dependencies(triton-openvino-backend openvino-library)\n",
         "if(NOT TRITON_OPENVINO_PREBUILT_LIB)\n"
         "  add_dependencies(triton-openvino-backend openvino-library)\nendif()\n")


def element_dynamic(src: Path) -> None:
    """OpenVINO 2025 removed ov::element::undefined; ov::element::dynamic takes its place."""
    utils = src / "src" / "openvino_utils.cc"
    edit(utils, "    case ov::element::undefined:\n", "")
    for path in (utils, src / "src" / "openvino.cc"):
        text = path.read_text()
        path.write_text(text.replace("ov::element::undefined", "ov::element::dynamic"))


def precision_hint(src: Path) -> None:
    """An INFERENCE_PRECISION_HINT parameter (F32, BF16, F16): r24.10 can only force bf16, and on a
    CPU with bf16 OpenVINO's default IS bf16, so an FP32 model loses about 1e-2 and cannot be set back."""
    cc = src / "src" / "openvino.cc"
    edit(cc, '      RETURN_IF_ERROR(\n          ParseParameter("PERFORMANCE_HINT", params, &device_config));\n',
         '      RETURN_IF_ERROR(\n          ParseParameter("PERFORMANCE_HINT", params, &device_config));\n'
         '      RETURN_IF_ERROR(\n          ParseParameter("INFERENCE_PRECISION_HINT", params, &device_config));\n')
    edit(cc, '  } else {\n    return TRITONSERVER_ErrorNew(\n        TRITONSERVER_ERROR_INVALID_ARG,\n'
             '        (std::string("the parameter \'") + mkey +\n',
         '  } else if (mkey.compare("INFERENCE_PRECISION_HINT") == 0) {\n'
         '    static const std::map<std::string, ov::element::Type> kinds{\n'
         '        {"f32", ov::element::f32}, {"bf16", ov::element::bf16}, {"f16", ov::element::f16}};\n'
         '    auto kind = kinds.find(*value);  // values arrive lower-cased\n'
         '    if (kind == kinds.end()) {\n'
         '      return TRITONSERVER_ErrorNew(\n'
         '          TRITONSERVER_ERROR_INVALID_ARG,\n'
         '          (std::string("expected the parameter \'") + mkey +\n'
         '           "\' to be F32/BF16/F16, got " + *value).c_str());\n'
         '    }\n'
         '    *ov_property = ov::hint::inference_precision(kind->second);\n'
         '  } else {\n    return TRITONSERVER_ErrorNew(\n        TRITONSERVER_ERROR_INVALID_ARG,\n'
         '        (std::string("the parameter \'") + mkey +\n')


def reset_padding(src: Path) -> None:
    """Bug 1: batch_pad_size_ is never reset, so a full batch after a padded one fails ("expected
    batch size of at least 8 in model output, got 1"). Reset it for every execution."""
    edit(src / "src" / "openvino.cc", "  size_t total_batch_size = 0;\n",
         "  size_t total_batch_size = 0;\n  batch_pad_size_ = 0;\n")


def own_padded_tensor(src: Path) -> None:
    """Bug 2: the padded path writes into infer_request_.get_tensor(), which after an unpadded
    execution wraps the previous request's input buffer, already released: all-zero outputs or a
    SIGSEGV. The padded input gets a max_batch_size tensor of its own."""
    edit(src / "src" / "openvino.cc",
         "      ov::Tensor input_tensor =\n          infer_request_.get_tensor(std::string(input_name));\n",
         "      std::vector<size_t> padded_shape(batchn_shape.begin(), batchn_shape.end());\n"
         "      padded_shape[0] = max_batch_size;\n"
         "      ov::Tensor input_tensor(ConvertToOpenVINOElement(input_datatype), padded_shape);\n"
         "      RETURN_IF_OPENVINO_ERROR(\n"
         "          infer_request_.set_tensor(std::string(input_name), input_tensor),\n"
         '          "setting padded tensor");\n')


def check_batch_once(src: Path) -> None:
    """Bug 3: the batch-size check (and the padding amount) runs on every partial sum inside the
    per-request loop, so every multi-request dynamic batch fails without padding, and with padding
    a batch that adds up to max_batch_size keeps the previous partial sum's pad. Check once, after."""
    cc = src / "src" / "openvino.cc"
    text = cc.read_text()
    start = "      if (!all_response_failed) {\n        if (total_batch_size != (size_t)max_batch_size) {"
    end = "    } else {\n      total_batch_size += 1;\n    }\n  }\n"
    i = text.find(start)
    j = text.find(end, i)
    if i < 0 or j < 0:
        raise differs(cc)
    block = text[i:j]
    cc.write_text(text[:i] + end + "  if (max_batch_size > 0) {  // once, after all requests\n" + block + "  }\n"
                  + text[j + len(end):])


def own_gather_tensor(src: Path) -> None:
    """Bug 4 (reachable once bug 3 is fixed): several requests without padding are gathered into a
    buffer owned by the input collector, destroyed before inference, so set_tensor() wraps freed
    memory (SIGSEGV). Gather them into an ov::Tensor the infer request owns."""
    edit(src / "src" / "openvino.cc", "    } else {\n      char* input_buffer;\n",
         "    } else if (request_count > 1) {\n"
         "      ov::Tensor input_tensor(\n"
         "          ConvertToOpenVINOElement(input_datatype),\n"
         "          std::vector<size_t>(batchn_shape.begin(), batchn_shape.end()));\n"
         "      collector.ProcessTensor(\n"
         "          input_name, (char*)input_tensor.data(), input_tensor.get_byte_size(),\n"
         "          TRITONSERVER_MEMORY_CPU, 0);\n"
         "      RETURN_IF_OPENVINO_ERROR(\n"
         "          infer_request_.set_tensor(std::string(input_name), input_tensor),\n"
         '          "setting gathered tensor");\n'
         "    } else {\n      char* input_buffer;\n")


# in order: the build needs the first two; the rest are the project's fixes
FIXES = {f.__name__: f for f in (prebuilt_openvino, element_dynamic, precision_hint, reset_padding,
                                 own_padded_tensor, check_batch_once, own_gather_tensor)}
BATCHING_FIXES = ("reset_padding", "own_padded_tensor", "check_batch_once", "own_gather_tensor")


def apply(src: Path, leave_out: frozenset[str] = frozenset()) -> None:
    for name, fix in FIXES.items():
        if name not in leave_out:
            fix(src)
