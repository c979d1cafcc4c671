"""What every backend build shares: the pinned Triton revisions, the error a build ends in, the
wheel library a backend links, and the two build steps (running a tool, editing a source) that
recipes, sources and fixes all use."""
from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

from tuner.errors import TunerError

BRANCH = "r24.10"
# triton-inference-server repositories, branch r24.10, at the commits measured on these machines
REVISIONS = {
    "common": "578491fc3944f77d16a6a38e3d7691c485c47ba0",
    "core": "bfec7c61dc0939433f64f14e89b1973073eac8ba",
    "backend": "ac03a5d97403dec841ad46d0439e93db12c9268f",
    "onnxruntime_backend": "17e5cb23a6fbeb37282eb7079dd0b580cd79530d",
    "openvino_backend": "ddda22f31f35009a6a80d4774980b2aad6e00569",
    "pytorch_backend": "e97a90061f7399b25368e2cb1f6d5c40f8cbae4e",
}


class BuildError(TunerError):
    """A backend could not be built; the message says what is missing or where the log is."""


@dataclass(frozen=True)
class Library:
    """The runtime library a backend links, as the installed wheel ships it."""
    package: str  # the pip package
    version: str
    path: Path  # the shared library itself
    include: Path | None  # its C/C++ headers, where the wheel carries them
    cuda: bool = False  # built for CUDA: the backend is then built with GPU support (KIND_GPU)
    note: str = ""  # what the user should know about the build this library gives


def run(command: list[str], log: Path | None = None) -> str:
    """Runs a build step: into the log, where a failure points; or, without one, returning what it
    printed, with its error in the message."""
    if log is None:
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode:
            raise BuildError(f"{' '.join(command[:2])} failed: {done.stderr.strip()[-500:]}")
        return done.stdout
    with open(log, "a") as out:
        out.write(f"\n$ {' '.join(command)}\n")
        out.flush()
        if subprocess.run(command, stdout=out, stderr=subprocess.STDOUT).returncode:
            raise BuildError(f"{Path(command[0]).name} {command[1]} failed; the build log is {log}")
    return ""


def edit(path: Path, old: str, new: str) -> None:
    """Replaces `old`, which must occur once; sources that differ from the pinned revision stop the build."""
    text = path.read_text()
    if text.count(old) != 1:
        raise differs(path)
    path.write_text(text.replace(old, new))


def differs(path: Path) -> BuildError:
    return BuildError(f"{path}: the source differs from {BRANCH} at the pinned commit (a fix does not apply)")
