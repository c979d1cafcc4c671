"""Triton's C++ backends for the embedded server: built from pinned sources into a per-user cache,
and which backends a server started here has.

The nvidia-pytriton wheel ships only the python backend. ONNX Runtime and OpenVINO models need
Triton's own backends, built against the libraries the onnxruntime and openvino wheels ship.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tuner.backends.builder import build, built_folder, cache_root, default_source_dir, toolchain
from tuner.backends.pinned import BRANCH, BuildError
from tuner.backends.recipes import RECIPES

__all__ = ["BRANCH", "RECIPES", "BuildError", "Status", "build", "built", "cache_root", "default_source_dir",
           "missing_backend", "status", "toolchain"]

BUILTIN = ("python", "ensemble")  # what the wheel's server has without building anything (ensembles: Triton's core)


@dataclass(frozen=True)
class Status:
    backend: str
    folder: Path | None  # where it is built for the installed library, or None
    library: str  # "onnxruntime 1.32.0", or why the library is unavailable


def built() -> dict[str, Path]:
    """Each built backend -> its folder (holding `<backend>/libtriton_<backend>.so`)."""
    return {name: folder for name in RECIPES if (folder := built_folder(name)) is not None}


def status() -> list[Status]:
    rows = []
    for name, recipe in RECIPES.items():
        try:
            lib = recipe.library()
            library = f"{lib.package} {lib.version}"
        except BuildError as e:
            library = str(e)
        rows.append(Status(name, built_folder(name), library))
    return rows


def missing_backend(backend: str) -> str | None:
    """Why the embedded server cannot serve a model of `backend`, with what to do (None when it can)."""
    if backend in BUILTIN or (backend in RECIPES and built_folder(backend) is not None):
        return None
    if backend in RECIPES:
        return (f"the embedded server has no '{backend}' backend yet: build it with "
                f"`python -m tuner backends build {backend}` (or use --launcher docker)")
    return (f"the embedded server cannot serve '{backend}' models (it can build: "
            f"{', '.join(RECIPES)}); use --launcher docker or --launcher remote")
