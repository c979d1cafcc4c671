"""Fixtures shared by the test modules, and the tiers every test belongs to (exactly one):

- unit: pure functions, and the CLI called in this process for every refusal and message;
- integration: a real Triton, real backends, a real Optuna storage; servers shared where a test
  does not need its own, the run's lifecycle called in this process;
- system: what needs processes of its own or the machine's services (signals and kills, Docker,
  PostgreSQL, a browser, the wheel installed into a new environment, a compiler).

`python -m pytest` runs unit and integration; `python -m pytest -m "unit or integration or system"`
runs everything (the README names both). Three pytest-xdist workers share the tests: each test
keeps its own folder, ports and run directory, so isolation already holds. A test marked `alone`
compares timings with a closed form: it runs while no other test does (the others wait)."""
import fcntl
import os
import tempfile
from pathlib import Path

import pytest
from support import SPACES, search

TIERS = ("unit", "integration", "system")


def pytest_itemcollected(item):
    """Each test's tier, checked as it is collected (before pytest-xdist reads the groups set here)."""
    tiers = {mark.name for mark in item.iter_markers() if mark.name in TIERS}
    if len(tiers) != 1:
        raise pytest.UsageError(f"{item.nodeid}: marked {sorted(tiers) or 'with no tier'}; mark it with exactly "
                                f"one of {', '.join(TIERS)}")
    # one worker runs the system tier, one test at a time: its faults land in phases by timing; one
    # worker shares the one finished study among the tests that read it
    if "system" in tiers:
        item.add_marker(pytest.mark.xdist_group("system"))
    elif "tiny_study" in item.fixturenames:
        item.add_marker(pytest.mark.xdist_group("tiny_study"))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item):
    """Setup, call and teardown of each test hold a lock shared by pytest-xdist's workers: shared for
    ordinary tests, exclusive for one marked `alone`. A gate in front keeps an `alone` test that
    waits from being starved by the others taking turns on the shared lock."""
    run = os.environ.get("PYTEST_XDIST_TESTRUNUID")
    if run is None:  # one process: nothing runs beside it
        yield
        return
    alone = item.get_closest_marker("alone") is not None
    base = Path(tempfile.gettempdir()) / f"tuner-tests-{run}"
    with open(f"{base}.gate", "a") as gate, open(f"{base}.lock", "a") as lock:
        fcntl.flock(gate, fcntl.LOCK_EX)
        fcntl.flock(lock, fcntl.LOCK_EX if alone else fcntl.LOCK_SH)
        if not alone:
            fcntl.flock(gate, fcntl.LOCK_UN)
        yield  # closing the files releases the locks


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
    done = search(workdir, "--search-space", str(SPACES / "tiny.yaml"), "--trials", "6")
    assert done.returncode == 0, done.stderr
    return workdir
