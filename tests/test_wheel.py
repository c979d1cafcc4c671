"""The wheel, installed (not editable) into a fresh virtual environment, runs a search from another
directory: the search spaces and the demo repository, at the repository's top, travel in it as
package data; its `tuner` command answers --version."""
import site
import subprocess
import sys
from pathlib import Path

import pytest
from support import FAST, ROOT

pytestmark = pytest.mark.system


def test_the_installed_wheel_finds_its_data_and_runs_a_search(tmp_path, real_backends):
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path / "dist"),
                            str(ROOT)], capture_output=True, text=True)
    assert built.returncode == 0, built.stderr
    (wheel,) = (tmp_path / "dist").glob("triton_tuner-*.whl")  # the distribution's name
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    installed = subprocess.run([str(python), "-m", "pip", "install", "-q", "--no-deps", str(wheel)],
                               capture_output=True, text=True)
    assert installed.returncode == 0, installed.stderr
    # the dependencies from this environment (a path entry: its .pth files, and so the editable
    # install of the source tree, are not read), the tuner from the wheel alone
    purelib = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             capture_output=True, text=True, check=True).stdout.strip()
    Path(purelib, "deps.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    where = subprocess.run([str(python), "-c", "import tuner; print(tuner.__file__)"], cwd=elsewhere,
                           capture_output=True, text=True, check=True).stdout
    assert where.startswith(purelib), where
    version = subprocess.run([str(venv / "bin" / "tuner"), "--version"], capture_output=True, text=True)
    assert version.returncode == 0 and version.stdout.startswith("tuner "), version
    # the console script, as the quick start runs it: the default storage, whose folder does not exist yet
    done = subprocess.run([str(venv / "bin" / "tuner"), "search", "--trials", "2", *FAST], cwd=elsewhere,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert (elsewhere / "tuner_runs" / "tuner.db").is_file()
    assert (elsewhere / "tuner_out" / "detector" / "config.pbtxt").is_file()  # the demo, with its default space
