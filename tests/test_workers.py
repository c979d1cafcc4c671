"""Parallel workers on one Optuna storage, and trials of a worker that died, against real parts:
a real PostgreSQL server on loopback, real embedded Tritons, a real SQLite file."""
import glob
import os
import shutil
import signal
import sqlite3
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState
from support import SPACES, load_study, search, search_command, servers_of, wait_for

from tuner.server.embedded import free_port


def _as_postgres_user(command: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root; as root, run its programs as the 'postgres' user."""
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command


@dataclass(frozen=True)
class Postgres:
    """A PostgreSQL server of the test's own, on loopback."""
    url: str
    bin_dir: str
    data: Path
    log: Path
    options: str  # the server's own: loopback, its port, its socket folder

    def ctl(self, action: str) -> None:
        """pg_ctl start, stop or restart (`-m fast`: connections are cut, as a failover cuts them)."""
        mode = [] if action == "start" else ["-m", "fast"]
        subprocess.run(_as_postgres_user([f"{self.bin_dir}/pg_ctl", "-D", str(self.data), "-l", str(self.log),
                                          "-o", self.options, *mode, "-w", action]), check=True, capture_output=True)


@pytest.fixture
def postgres():
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
    server = Postgres(f"postgresql://postgres@127.0.0.1:{port}/tuner", bin_dir, data, home / "pg.log",
                      f"-h 127.0.0.1 -p {port} -k {sockets}")
    server.ctl("start")
    try:
        subprocess.run(_as_postgres_user([f"{bin_dir}/createdb", "-h", "127.0.0.1", "-p", str(port),
                                          "-U", "postgres", "tuner"]), check=True, capture_output=True)
        yield server
    finally:
        subprocess.run(_as_postgres_user([f"{bin_dir}/pg_ctl", "-D", str(data), "-m", "fast", "stop"]),
                       capture_output=True)
        shutil.rmtree(home, ignore_errors=True)


@pytest.mark.system
def test_two_workers_complete_one_study_on_postgresql(tmp_path, postgres):
    command = search_command(tmp_path, "--search-space", str(SPACES / "tiny.yaml"), "--trials", "10",
                             "--workers", "2")
    command[command.index("--storage") + 1] = postgres.url
    done = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "exported trial #" in done.stdout

    study = optuna.load_study(study_name="tiny", storage=postgres.url)
    trials = study.get_trials()
    assert sum(t.state == TrialState.COMPLETE for t in trials) == 10  # exactly the total, none lost
    assert not study.get_trials(states=(TrialState.RUNNING, TrialState.WAITING))
    assert {t.user_attrs["worker"] for t in trials} == {"worker-0", "worker-1"}  # both measured
    assert [t.user_attrs["role"] for t in trials].count("baseline") == 1
    # each worker ran its own server, on its own share of the cores
    assert (tmp_path / "runs" / "tiny" / "worker-0" / "tritonserver.log").exists()
    assert (tmp_path / "runs" / "tiny" / "worker-1" / "tritonserver.log").exists()


def _on_postgres(tmp_path, postgres: Postgres, *extra: str) -> list[str]:
    command = search_command(tmp_path, "--search-space", str(SPACES / "tiny.yaml"), "--trials", "4",
                             "--max-measure-s", "4", "--min-samples", "1000000", *extra)
    command[command.index("--storage") + 1] = postgres.url
    return command


def _running_on(url: str) -> bool:
    try:
        return bool(optuna.load_study(study_name="tiny", storage=url).get_trials(states=(TrialState.RUNNING,)))
    except Exception:  # not created yet, or being created (a race on the schema)
        return False


def _settled(url: str) -> list[optuna.trial.FrozenTrial]:
    """The study's trials, checked to be complete: four counted, none left running or queued."""
    trials = optuna.load_study(study_name="tiny", storage=url).get_trials()
    assert sum(t.state == TrialState.COMPLETE for t in trials) == 4
    assert not [t for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]
    return trials


@pytest.mark.system
def test_a_postgresql_restart_mid_study_costs_waiting_not_trials(tmp_path, postgres):
    proc = subprocess.Popen(_on_postgres(tmp_path, postgres), cwd=tmp_path, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    wait_for(lambda: _running_on(postgres.url), "a running trial")
    postgres.ctl("restart")  # every connection of the tuner's pool is cut
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    trials = _settled(postgres.url)
    assert all(t.state == TrialState.COMPLETE or "duplicate_of" in t.user_attrs for t in trials)  # none failed


@pytest.mark.system
def test_a_storage_gone_for_longer_than_the_outage_bound_stops_the_study_and_the_rerun_finishes_it(tmp_path, postgres):
    proc = subprocess.Popen(_on_postgres(tmp_path, postgres, "--outage-s", "5"), cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for(lambda: _running_on(postgres.url), "a running trial")
    postgres.ctl("stop")
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 3, err
    assert f"error: the storage {postgres.url} has not answered for 5 s" in err
    assert "rerun the same command to resume it" in err and "Traceback" not in err
    assert not servers_of(tmp_path)
    postgres.ctl("start")
    rerun = subprocess.run(_on_postgres(tmp_path, postgres), cwd=tmp_path, capture_output=True, text=True,
                           timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    trials = _settled(postgres.url)
    cut = [t for t in trials if t.state == TrialState.FAIL and "duplicate_of" not in t.user_attrs]
    assert len(cut) == 1 and any(t.params == cut[0].params and t.state == TrialState.COMPLETE for t in trials)


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
    # measured again: by the queued copy, or by a proposal of the same knobs made before the copy
    # was queued (the copy then answers as its repeat)
    again = [t for t in study.get_trials() if t.number > lost.number and t.params == lost.params]
    assert any(t.state == TrialState.COMPLETE for t in again), [(t.number, t.state, t.user_attrs) for t in again]
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
