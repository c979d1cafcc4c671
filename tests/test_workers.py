"""Parallel workers on one Optuna storage, and trials of a worker that died, against real parts:
a real PostgreSQL server on loopback, real embedded Tritons, a real SQLite file."""
import glob
import os
import shutil
import signal
import sqlite3
import subprocess
import tempfile
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState
from support import SPACES, load_study, search, search_command, wait_for

from tuner.server.embedded import free_port


def _as_postgres_user(command: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root; as root, run its programs as the 'postgres' user."""
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command


@pytest.fixture
def postgres_url():
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not found:
        pytest.skip("no PostgreSQL server here (Debian package 'postgresql'; .ci/run installs it)")
    bin_dir = os.path.dirname(found[-1])
    home = Path(tempfile.mkdtemp(prefix="tuner-pg-"))  # not under pytest's root-only folder
    data, sockets = home / "data", home / "sockets"
    sockets.mkdir()
    if os.geteuid() == 0:
        shutil.chown(home, "postgres")
        shutil.chown(sockets, "postgres")
    port = free_port()
    subprocess.run(_as_postgres_user([f"{bin_dir}/initdb", "-D", str(data), "-U", "postgres", "--auth=trust"]),
                   check=True, capture_output=True)
    subprocess.run(_as_postgres_user([f"{bin_dir}/pg_ctl", "-D", str(data), "-l", str(home / "pg.log"), "-w",
                                      "-o", f"-h 127.0.0.1 -p {port} -k {sockets}", "start"]),
                   check=True, capture_output=True)
    try:
        subprocess.run(_as_postgres_user([f"{bin_dir}/createdb", "-h", "127.0.0.1", "-p", str(port),
                                          "-U", "postgres", "tuner"]), check=True, capture_output=True)
        yield f"postgresql://postgres@127.0.0.1:{port}/tuner"
    finally:
        subprocess.run(_as_postgres_user([f"{bin_dir}/pg_ctl", "-D", str(data), "-m", "fast", "stop"]),
                       capture_output=True)
        shutil.rmtree(home, ignore_errors=True)


@pytest.mark.system
def test_two_workers_complete_one_study_on_postgresql(tmp_path, postgres_url):
    command = search_command(tmp_path, "--search-space", str(SPACES / "tiny.yaml"), "--trials", "10",
                             "--workers", "2")
    command[command.index("--storage") + 1] = postgres_url
    done = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "exported trial #" in done.stdout

    study = optuna.load_study(study_name="tiny", storage=postgres_url)
    trials = study.get_trials()
    assert sum(t.state == TrialState.COMPLETE for t in trials) == 10  # exactly the total, none lost
    assert not study.get_trials(states=(TrialState.RUNNING, TrialState.WAITING))
    assert {t.user_attrs["worker"] for t in trials} == {"worker-0", "worker-1"}  # both measured
    assert [t.user_attrs["role"] for t in trials].count("baseline") == 1
    # each worker ran its own server, on its own share of the cores
    assert (tmp_path / "runs" / "tiny" / "worker-0" / "tritonserver.log").exists()
    assert (tmp_path / "runs" / "tiny" / "worker-1" / "tritonserver.log").exists()


@pytest.mark.system
def test_trial_of_a_killed_tuner_is_measured_again_by_the_rerun(tmp_path):
    """kill -9 of the tuner itself: nothing can clean up. Its trial stops beating, the rerun fails
    it after the grace period and measures the same knobs again; the total comes out exact."""
    space = str(SPACES / "tiny.yaml")
    slow = ["--max-measure-s", "4", "--min-samples", "1000000"]  # every trial measures for 4 s
    proc = subprocess.Popen(search_command(tmp_path, "--search-space", space, "--trials", "4", *slow),
                            cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for(lambda: _running_with_params(tmp_path), "a trial with all its knobs sampled")
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    cut = _running_with_params(tmp_path)
    assert cut, "no trial was running when the tuner was killed"

    done = search(tmp_path, "--search-space", space, "--trials", "4", *slow)
    assert done.returncode == 0, done.stderr
    study = load_study(tmp_path)
    lost = study.get_trials()[cut[0]]
    assert lost.state == TrialState.FAIL and "fail_reason" not in lost.user_attrs
    again = [t for t in study.get_trials() if t.number > lost.number and t.params == lost.params]
    assert again and again[0].state == TrialState.COMPLETE
    assert sum(t.state == TrialState.COMPLETE for t in study.get_trials()) == 4
    assert not study.get_trials(states=(TrialState.RUNNING, TrialState.WAITING))


def _running_with_params(workdir) -> list[int]:
    """Running trials whose knobs are all sampled: the `knobs` attribute is written after the last
    parameter (a trial caught between two parameters would be queued again with only some of them).
    A read-only peek: opening it through Optuna while the tuner creates the schema would race."""
    try:
        with sqlite3.connect(f"file:{workdir / 'study.db'}?mode=ro", uri=True) as db:
            rows = db.execute("SELECT number FROM trials t WHERE state = 'RUNNING' AND EXISTS "
                              "(SELECT 1 FROM trial_user_attributes a WHERE a.trial_id = t.trial_id "
                              "AND a.key = 'knobs')").fetchall()
    except sqlite3.Error:  # not created yet
        return []
    return [number for (number,) in rows]


@pytest.mark.unit
def test_workers_option_is_checked_before_anything_starts(tmp_path):
    done = search(tmp_path, "--workers", "2", "--gpus", "all")
    assert done.returncode == 2 and "name the GPUs" in done.stderr
    done = search(tmp_path, "--workers", "3", "--gpus", "0,1")
    assert done.returncode == 2 and "one GPU per worker" in done.stderr
    assert not (tmp_path / "study.db").exists()
