"""The project's habits, checked with the tests: ruff and mypy on tuner/ and benchmarks/
(settings in pyproject.toml: benchmark scripts break silently otherwise, as one did when a field was removed)."""
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("tool", [["ruff", "check", "."], ["mypy"]], ids=["ruff", "mypy"])
def test_tuner_passes(tool):
    if shutil.which(tool[0]) is None and not (Path(sys.executable).parent / tool[0]).exists():
        pytest.skip(f"{tool[0]} is not installed (pip install -e '.[test]')")
    done = subprocess.run([str(Path(sys.executable).parent / tool[0]), *tool[1:]], cwd=ROOT, capture_output=True,
                          text=True)
    assert done.returncode == 0, done.stdout + done.stderr
