import os
import subprocess
import sys
from pathlib import Path

import optuna
import pytest

TESTS = Path(__file__).resolve().parent
MODELS = TESTS / "models"
SPACES = TESTS / "spaces"
# short measurements, no final re-measurement (one test turns it on): these tests check the path, not the numbers
FAST = ["--min-samples", "100", "--warmup-s", "0.3", "--window-s", "0.3", "--max-measure-s", "2", "--no-progress",
        "--remeasure", "0"]


TINY = ("--model-repository", str(MODELS), "--model", "tiny")


def search_command(workdir: Path, *args: str, target: tuple[str, ...] = TINY) -> list[str]:
    """A short search of `target` (default: the tiny test model; () for the demo, as the quick start runs)."""
    return [sys.executable, "-m", "tuner", "search", *target,
            "--storage", f"sqlite:///{workdir / 'study.db'}", "--run-dir", str(workdir / "runs"),
            "--out", str(workdir / "out"), *FAST, *args]


def run_search(workdir: Path, *args: str, timeout: float = 300, target: tuple[str, ...] = TINY) \
        -> subprocess.CompletedProcess:
    return subprocess.run(search_command(workdir, *args, target=target), cwd=workdir, capture_output=True,
                          text=True, timeout=timeout, env={**os.environ, "PYTHONUNBUFFERED": "1"})


def load_study(workdir: Path, name: str = "tiny") -> optuna.Study:
    return optuna.load_study(study_name=name, storage=f"sqlite:///{workdir / 'study.db'}")


@pytest.fixture
def workdir(tmp_path):
    return tmp_path


@pytest.fixture(scope="session")
def real_backends() -> dict:
    """Triton's ONNX Runtime, OpenVINO and PyTorch backends, built into the cache (a no-op when built), from
    $TUNER_BACKEND_SOURCES (CI) or the pinned commits on GitHub. Tests skip, saying why, only where
    the toolchain is missing."""
    from tuner import backends

    try:
        backends.toolchain()
    except backends.BuildError as e:
        pytest.skip(str(e))
    return {name: backends.build(name, say=lambda _: None) for name in ("onnxruntime", "openvino", "pytorch")}


@pytest.fixture(scope="session")
def tiny_study(tmp_path_factory) -> Path:
    """One real short search, shared by the tests that only read its results."""
    workdir = tmp_path_factory.mktemp("tiny_study")
    done = run_search(workdir, "--search-space", str(SPACES / "tiny.yaml"), "--trials", "6")
    assert done.returncode == 0, done.stderr
    return workdir


def servers_of(path) -> list[str]:
    """pids of the tritonserver processes whose command line names `path` (a test's folder)."""
    found = subprocess.run(["pgrep", "-f", f"tritonserver.*{path}"], capture_output=True, text=True)
    return found.stdout.split()


def tuner(workdir: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tuner", *args], cwd=workdir, capture_output=True, text=True,
                          timeout=timeout)
