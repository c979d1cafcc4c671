"""The project's habits, checked with the tests: ruff and mypy on tuner/ and benchmarks/ (settings in
pyproject.toml: benchmark scripts break silently otherwise), and Optuna's public interface only."""
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from support import ROOT


@pytest.mark.parametrize("tool", [pytest.param(["ruff", "check", "."], id="ruff", marks=pytest.mark.unit),
                                  pytest.param(["mypy"], id="mypy", marks=pytest.mark.system)])
def test_tuner_passes(tool):
    if shutil.which(tool[0]) is None and not (Path(sys.executable).parent / tool[0]).exists():
        pytest.skip(f"{tool[0]} is not installed (pip install -e '.[test]')")
    done = subprocess.run([str(Path(sys.executable).parent / tool[0]), *tool[1:]], cwd=ROOT, capture_output=True,
                          text=True)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.unit
def test_the_tuner_uses_only_optunas_public_interface():
    source = "\n".join(p.read_text() for p in (ROOT / "tuner").rglob("*.py"))
    assert "._storage" not in source and "._trial_id" not in source
