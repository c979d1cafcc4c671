"""What each buildable Triton backend needs: the pinned revisions, the wheel library it links,
its CMake flags, the project's source fixes, and how the result is laid out.

The embedded server is Triton 2.51 (the nvidia-pytriton wheel), so every backend is built from the
r24.10 branch, at the commits below, against a library that a PyPI wheel already ships.
"""
from __future__ import annotations

import functools
import importlib
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tuner.backends import openvino_fixes
from tuner.backends.pinned import REVISIONS, BuildError, Library, edit, run
from tuner.backends.sources import ort_headers


@dataclass(frozen=True)
class Recipe:
    backend: str  # Triton's name: backends/<backend>/libtriton_<backend>.so
    repo: str  # the repository in REVISIONS holding its sources
    target: str  # the CMake target
    library: Callable[[], Library]
    prepare: Callable[[Library, Path, Path | None], list[str]]  # (library, work dir, source dir) -> CMake flags
    patch: Callable[[Path, frozenset[str]], None]  # (backend source folder, fixes to leave out)
    install: Callable[[Library, Path, str], None]  # (library, the installed backend .so, patchelf)

    @property
    def revision(self) -> str:
        return REVISIONS[self.repo]


def _module_dir(package: str, module: str) -> Path:
    try:
        return Path(importlib.import_module(module).__file__ or "").parent
    except ImportError:
        raise BuildError(f"the {module} backend links the library of the '{package}' wheel, which is not "
                         f"installed: pip install {package}") from None


def _one(folder: Path, pattern: str) -> Path:
    found = sorted(p for p in folder.glob(pattern) if not p.is_symlink())
    if not found:
        raise BuildError(f"no {pattern} in {folder}: reinstall the wheel")
    return found[0]


# --- ONNX Runtime ----------------------------------------------------------------------------

@functools.cache  # the installed wheel does not change under a running tuner
def _ort_library() -> Library:
    capi = _module_dir("onnxruntime", "onnxruntime") / "capi"
    return Library("onnxruntime", importlib.import_module("onnxruntime").__version__,
                   _one(capi, "libonnxruntime.so.*"), None)


def _ort_prepare(lib: Library, work: Path, source_dir: Path | None) -> list[str]:
    """The C API headers and the wheel's library, laid out where the backend's CMake looks."""
    ort_headers(lib, source_dir, work)
    (work / "ort" / "lib").mkdir(parents=True)
    _copy_library(lib, work / "ort" / "lib")
    return ["-DTRITON_ENABLE_ONNXRUNTIME_TENSORRT=OFF", "-DTRITON_ENABLE_ONNXRUNTIME_OPENVINO=OFF",
            f"-DTRITON_ONNXRUNTIME_INCLUDE_PATHS={work / 'ort' / 'include'}",
            f"-DTRITON_ONNXRUNTIME_LIB_PATHS={work / 'ort' / 'lib'}"]


def _copy_library(lib: Library, folder: Path) -> None:
    """A copy of the wheel's library that also answers to its soname and plain name
    (libonnxruntime.so.1.32.0 as libonnxruntime.so.1 and libonnxruntime.so)."""
    shutil.copy2(lib.path, folder / lib.path.name)
    base = re.match(r"(lib\w+\.so)\.(\d+)", lib.path.name)
    assert base is not None, lib.path.name  # the libraries recipes name are versioned sonames
    for name in {base.group(1), f"{base.group(1)}.{base.group(2)}"} - {lib.path.name}:
        link = folder / name
        link.unlink(missing_ok=True)
        link.symlink_to(lib.path.name)


def _ort_install(lib: Library, so: Path, patchelf: str) -> None:
    _copy_library(lib, so.parent)  # beside the backend, whose RUNPATH is $ORIGIN


def _no_patch(src: Path, leave_out: frozenset[str]) -> None:
    """Triton's ONNX Runtime backend r24.10 builds and runs as it is."""


# --- OpenVINO ------------------------------------------------------------------------------

@functools.cache
def _ov_library() -> Library:
    root = _module_dir("openvino", "openvino")
    version = importlib.import_module("openvino").__version__.split("-")[0]
    return Library("openvino", version, _one(root / "libs", "libopenvino.so.*"), root / "include")


def _ov_prepare(lib: Library, work: Path, source_dir: Path | None) -> list[str]:
    return [f"-DTRITON_OPENVINO_PREBUILT_LIB={lib.path}", f"-DTRITON_OPENVINO_PREBUILT_INCLUDE={lib.include}"]


def _ov_install(lib: Library, so: Path, patchelf: str) -> None:
    """OpenVINO finds its device plugins and frontends next to the libopenvino it loaded (the wheel
    has no plugins.xml), so the backend loads the wheel's own libs folder rather than copies (91 MB).
    The cache key holds the wheel's version, so another version is another build."""
    run([patchelf, "--set-rpath", f"$ORIGIN:{lib.path.parent}", str(so)])


def _ov_patch(src: Path, leave_out: frozenset[str]) -> None:
    openvino_fixes.apply(src, leave_out)


# --- PyTorch (libtorch) -----------------------------------------------------------------------

@functools.cache
def _torch_library() -> Library:
    """libtorch from the torch wheel. A CUDA build of torch gives a GPU backend when nvcc is there
    to build Triton's CUDA kernels; otherwise the backend is built for KIND_CPU only."""
    root = _module_dir("torch", "torch")
    torch = importlib.import_module("torch")
    nvcc = shutil.which("nvcc") is not None
    note = "" if torch.version.cuda is None or nvcc else \
        f"a CPU build: torch is built for CUDA {torch.version.cuda} but nvcc is not on the PATH, so KIND_GPU " \
        "instances will not load (put CUDA's bin/ on the PATH and build again)"
    return Library("torch", torch.__version__, root / "lib" / "libtorch.so", root / "include",
                   torch.version.cuda is not None and nvcc, note)


def _torch_prepare(lib: Library, work: Path, source_dir: Path | None) -> list[str]:
    """torch's headers and libraries, and its ABI: the backend must match the C++ ABI and standard
    the wheel was built with, or it links but crashes on std::string arguments."""
    torch = importlib.import_module("torch")
    abi = int(torch._C._GLIBCXX_USE_CXX11_ABI)
    config = lib.path.parent.parent / "share" / "cmake" / "Torch" / "TorchConfig.cmake"
    std = 20 if config.is_file() and "CXX_STANDARD 20" in config.read_text() else 17
    assert lib.include is not None  # the torch wheel carries its headers
    flags = [f"-DTRITON_PYTORCH_INCLUDE_PATHS={lib.include};{lib.include / 'torch' / 'csrc' / 'api' / 'include'}",
             f"-DTRITON_PYTORCH_LIB_PATHS={lib.path.parent}", "-DTRITON_PYTORCH_ENABLE_TORCHVISION=OFF",
             "-DTRITON_PYTORCH_ENABLE_TORCHTRT=OFF", "-DTRITON_ENABLE_NVTX=OFF", f"-DTRITON_MIN_CXX_STANDARD={std}",
             f"-DCMAKE_CXX_FLAGS=-D_GLIBCXX_USE_CXX11_ABI={abi}"]
    if lib.cuda:
        flags.append(f"-DCMAKE_CUDA_COMPILER={shutil.which('nvcc')}")
    return flags


def _torch_patch(src: Path, leave_out: frozenset[str]) -> None:
    """The backend asks CMake for Python's development headers, which only torch's Python bindings
    use (libtorch.cc includes none), and CMake's search for them fails inside virtual environments."""
    edit(src / "CMakeLists.txt", "find_package(Python3 REQUIRED COMPONENTS Development.Module)", "")


def _torch_install(lib: Library, so: Path, patchelf: str) -> None:
    """The backend loads libtorch from the wheel's lib folder (1-3 GB: not copied), and the CUDA
    runtime it links from the nvidia wheel torch uses; torch's own libraries find cuDNN and cuBLAS
    through their RPATHs."""
    cudart = sorted({str(p.parent) for p in (lib.path.parents[2] / "nvidia").glob("*/lib/libcudart.so*")})
    run([patchelf, "--set-rpath", ":".join(["$ORIGIN", str(lib.path.parent), *cudart]), str(so)])


RECIPES = {
    "onnxruntime": Recipe("onnxruntime", "onnxruntime_backend", "triton-onnxruntime-backend", _ort_library,
                          _ort_prepare, _no_patch, _ort_install),
    "openvino": Recipe("openvino", "openvino_backend", "triton-openvino-backend", _ov_library, _ov_prepare,
                       _ov_patch, _ov_install),
    "pytorch": Recipe("pytorch", "pytorch_backend", "triton-pytorch-backend", _torch_library, _torch_prepare,
                      _torch_patch, _torch_install),
}
