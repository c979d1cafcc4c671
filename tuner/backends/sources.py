"""Where a backend's sources come from: a local folder of checkouts or tarballs (offline machines,
CI), or GitHub at the pinned commits."""
from __future__ import annotations

import shutil
import tarfile
import tempfile
import urllib.request
from pathlib import Path

from tuner.backends.pinned import BRANCH, REVISIONS, BuildError, Library

_ARCHIVE = "https://github.com/triton-inference-server/{repo}/archive/{commit}.tar.gz"
# RapidJSON, header-only (MIT), which Triton's common JSON code includes: pinned like the backends
RAPIDJSON = "24b5e7a8b27f42fa16b96fc70aade9106cf7102f"
_RAPIDJSON_ARCHIVE = "https://github.com/Tencent/rapidjson/archive/{commit}.tar.gz"
_ORT_HEADER = ("https://raw.githubusercontent.com/microsoft/onnxruntime/v{version}/include/onnxruntime/core/"
               "session/{name}")
ORT_HEADERS = ("onnxruntime_c_api.h", "onnxruntime_ep_c_api.h", "onnxruntime_error_code.h")


def unpack(archive: Path, dest: Path, name: str) -> Path:
    """Unpacks a tarball whose single top folder may be named anything (`repo/`, `repo-<commit>/`)
    into dest/name."""
    with tempfile.TemporaryDirectory(dir=dest) as tmp:
        with tarfile.open(archive) as tar:
            tar.extractall(tmp, filter="data")
        (top,) = Path(tmp).iterdir()
        target = dest / name
        shutil.rmtree(target, ignore_errors=True)
        top.rename(target)
    return target


def source(repo: str, source_dir: Path | None, dest: Path) -> Path:
    """A pinned repository's sources: a checkout folder or tarball in `source_dir`, else GitHub."""
    if source_dir is not None:
        if (source_dir / repo).is_dir():
            shutil.copytree(source_dir / repo, dest / repo, ignore=shutil.ignore_patterns(".git"))
            return dest / repo
        for name in (f"{repo}-{BRANCH}.tar.gz", f"{repo}-{REVISIONS[repo]}.tar.gz", f"{repo}.tar.gz"):
            if (source_dir / name).is_file():
                return unpack(source_dir / name, dest, repo)
        raise BuildError(f"--source-dir {source_dir}: no {repo}/ folder nor {repo}-{BRANCH}.tar.gz")
    archive = dest / f"{repo}.tar.gz"
    download(_ARCHIVE.format(repo=repo, commit=REVISIONS[repo]), archive)
    return unpack(archive, dest, repo)


def rapidjson(source_dir: Path | None, dest: Path) -> Path:
    """The folder holding rapidjson/document.h at the pinned commit: from source_dir's
    rapidjson-<commit>.tar.gz (or a rapidjson/ checkout), else GitHub."""
    if source_dir is not None:
        if (source_dir / "rapidjson" / "include").is_dir():
            return source_dir / "rapidjson" / "include"
        found = [p for n in (RAPIDJSON[:7], RAPIDJSON) if (p := source_dir / f"rapidjson-{n}.tar.gz").is_file()]
        if not found:
            raise BuildError(f"--source-dir {source_dir}: no rapidjson-{RAPIDJSON[:7]}.tar.gz (RapidJSON at "
                             f"github.com/Tencent/rapidjson commit {RAPIDJSON})")
        archive = found[0]
    else:
        archive = dest / "rapidjson.tar.gz"
        download(_RAPIDJSON_ARCHIVE.format(commit=RAPIDJSON), archive)
    return unpack(archive, dest, "rapidjson") / "include"


def download(url: str, path: Path) -> None:
    try:
        with urllib.request.urlopen(url, timeout=60) as response, open(path, "wb") as out:
            shutil.copyfileobj(response, out)
    except OSError as e:
        raise BuildError(f"cannot fetch {url} ({e}); pass --source-dir with the sources "
                         "(see the README, Backends)") from None


def ort_headers(lib: Library, source_dir: Path | None, dest: Path) -> Path:
    """ONNX Runtime's C API headers: those in source_dir (onnxruntime-headers-<ver>.tar.gz, which must
    not be newer than the library: the C API only grows), else the library's own version's."""
    include = dest / "ort" / "include"
    include.mkdir(parents=True)
    if source_dir is not None:
        found = sorted(source_dir.glob("onnxruntime-headers-*.tar.gz"))
        if not found:
            raise BuildError(f"--source-dir {source_dir}: no onnxruntime-headers-<version>.tar.gz")
        version = found[-1].name.removeprefix("onnxruntime-headers-").removesuffix(".tar.gz")
        if _version(version) > _version(lib.version):
            raise BuildError(f"{found[-1].name} is newer than the installed onnxruntime {lib.version}: "
                             f"pip install 'onnxruntime>={version}'")
        for header in unpack(found[-1], dest, "headers").glob("*.h"):
            shutil.copy2(header, include)
    else:
        for name in ORT_HEADERS:
            try:
                download(_ORT_HEADER.format(version=lib.version, name=name), include / name)
            except BuildError:
                if name == ORT_HEADERS[0]:
                    raise  # the others only exist in newer versions
    return include


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(x) for x in text.split(".")[:3] if x.isdigit())


