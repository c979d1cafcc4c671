"""The test tiers as the README tells them: the default command runs the unit and integration
tiers, the full command every tier, and CI runs the full one."""
import subprocess
import sys

import pytest
from support import ROOT

pytestmark = pytest.mark.unit

FULL = ("-m", "unit or integration or system")


def _collected(*args: str) -> set[str]:
    done = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-n", "0", "-p", "no:cacheprovider",
                           *args],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    return {line for line in done.stdout.splitlines() if "::" in line}


def test_the_default_run_leaves_out_only_the_system_tier():
    default, system, everything = _collected(), _collected("-m", "system"), _collected(*FULL)
    assert default and system and not default & system
    assert default | system == everything


def test_the_readme_shows_both_commands_and_ci_runs_the_full_one():
    readme, ci = (ROOT / "README.md").read_text(), (ROOT / ".ci" / "run").read_text()
    full = f'python -m pytest -q -m "{FULL[1]}"'
    assert 'pip install -e ".[test]" && python -m pytest -q\n' in readme
    assert full in readme and full in ci
