"""The fault matrix: faults from every side, injected at every phase of a real study (the real
embedded Triton, a python-backend model whose loads take 1.5 s so a phase can be hit, a real SQLite
storage). Each cell asserts trials counted against those asked for, none lost or run twice,
failures on the right side (tuner.faults), no process or shared-memory region left, and the exit code.

Not in the matrix, and why: a backend stub killed while the model *loads* cannot be told apart from
a model whose initialize crashes (Triton reports the same failed load), so that trial fails as the
config's (the conservative side: it is never exported); a read-only storage cannot be simulated for
root (CI's user), and is refused before any server starts when the file is not writable; nor a full
disk without mounting a filesystem (a storage that refuses writes is tested with PostgreSQL stopped,
in test_workers). A storage or remote server out of reach: test_workers and test_remote.
"""
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from optuna.trial import TrialState
from support import MODELS, load_study, log_text, search_command, trial_rows, wait_for, wait_serving

from tuner.faults import Failure
from tuner.study import trials as tr

pytestmark = [pytest.mark.system, pytest.mark.faults]

SPACE = "knobs:\n  instance_count: [1, 2]\nstart_with:\n  - {instance_count: 2}\n"
LOAD_S = 1.5  # each model instance takes this long to initialize: a load is a phase that can be hit
SLOW = ("--trials", "2", "--max-measure-s", "4", "--min-samples", "100000", "--no-racing", "--remeasure", "1")
# SIGSTOP: a server that stops answering without dying (a wedged driver, a deadlock, a host swapping)
SERVER_FAULTS = {"server SIGTERM": signal.SIGTERM, "server SIGINT": signal.SIGINT, "server SIGKILL": signal.SIGKILL,
                 "server SIGSTOP": signal.SIGSTOP}


def _repo(workdir: Path) -> Path:
    repo = workdir / "repo"
    shutil.copytree(MODELS / "tiny", repo / "tiny")
    config = repo / "tiny" / "config.pbtxt"
    config.write_text(config.read_text() + f'parameters [ {{ key: "init_delay_ms" value {{ string_value: '
                                           f'"{LOAD_S * 1000:.0f}" }} }} ]\n')
    (workdir / "space.yaml").write_text(SPACE)
    return repo


def _command(workdir: Path) -> list[str]:
    return search_command(workdir, "--search-space", str(workdir / "space.yaml"), *SLOW,
                          target=("--model-repository", str(workdir / "repo"), "--model", "tiny"))


MEASURING = 300  # requests served since a phase's load: its measurement (4 s, hundreds a second) is under way


def _run_dir(workdir: Path) -> Path:
    return workdir / "runs" / "tiny"


def _running(workdir: Path, number: int) -> None:
    wait_for(lambda: (number, "RUNNING") in trial_rows(workdir), f"trial {number} to start")


def _loads(workdir: Path) -> int:
    return log_text(_run_dir(workdir)).count("successfully loaded 'tiny'")


def _in_load(workdir: Path) -> None:
    """Trial 0, the start_with config (2 instances), loading: inside its second instance's LOAD_S
    initialize, once that instance's stub process runs (while Triton starts a stub it ignores SIGINT)."""
    _running(workdir, 0)
    wait_for(lambda: "ModelInstanceInitialize: tiny_0_1 " in log_text(_run_dir(workdir)), "the second instance")
    server = _server_pid(_run_dir(workdir))
    wait_for(lambda: any(b"tiny_0_1" in _cmdline(stub) for stub in _stub_pids(server)), "its stub process")


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:  # it has just exited
        return b""


def _in_measurement(workdir: Path) -> None:
    """Trial 0's config loaded (after the user's, loaded for its reference outputs) and being measured."""
    _running(workdir, 0)
    wait_for(lambda: _loads(workdir) >= 2, "trial 0's config loaded")
    wait_serving(_run_dir(workdir), "tiny", MEASURING, "trial 0's measurement")


def _in_baseline(workdir: Path) -> None:
    """Trial 1, the user's config, being measured."""
    _running(workdir, 1)
    wait_serving(_run_dir(workdir), "tiny", MEASURING, "the baseline's measurement")


def _in_final_remeasurement(workdir: Path) -> None:
    """Both trials done; a candidate loaded cold from its file and being measured again."""
    wait_for(lambda: sum(state == "COMPLETE" for _, state in trial_rows(workdir)) >= 2, "both trials")
    loads = _loads(workdir)
    wait_for(lambda: _loads(workdir) > loads, "a candidate loaded cold")
    wait_serving(_run_dir(workdir), "tiny", MEASURING, "its measurement")


# Before trial 0, the user's config (1 instance) is loaded for its reference outputs. Trial 0 is the
# start_with config (2 instances); trial 1 the baseline; then each is loaded cold and measured again.
PHASES = {"load": _in_load, "measurement": _in_measurement, "baseline": _in_baseline,
          "final re-measurement": _in_final_remeasurement}


def _server_pid(run_dir: Path) -> int:
    return int((run_dir / "tritonserver.pid").read_text().split()[0])


def _stub_pids(server_pid: int) -> list[int]:
    found = subprocess.run(["pgrep", "-P", str(server_pid)], capture_output=True, text=True).stdout.split()
    return [int(pid) for pid in found]


def _inject(fault: str, run_dir: Path) -> None:
    server = _server_pid(run_dir)
    if fault == "stub SIGKILL":  # every instance's stub: the model cannot serve until loaded afresh
        for stub in _stub_pids(server):
            os.kill(stub, signal.SIGKILL)
    else:
        os.kill(server, SERVER_FAULTS[fault])


def _left_behind(workdir: Path, tuner_pid: int) -> list[str]:
    processes = subprocess.run(["pgrep", "-f", str(workdir)], capture_output=True, text=True).stdout.split()
    regions = [p.name for p in Path("/dev/shm").glob(f"tuner_{tuner_pid}_*")]
    return processes + regions


def _start(workdir: Path) -> subprocess.Popen:
    return subprocess.Popen(_command(workdir), cwd=workdir, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


@pytest.mark.parametrize("phase", list(PHASES))
@pytest.mark.parametrize("fault", [*SERVER_FAULTS, "stub SIGKILL"])
def test_a_fault_of_the_server_costs_no_trial(workdir, fault, phase):
    if fault == "stub SIGKILL" and phase == "load":
        pytest.skip("a stub killed during its model's load is that config's failed load (module docstring)")
    _repo(workdir)
    proc = _start(workdir)
    PHASES[phase](workdir)
    _inject(fault, _run_dir(workdir))
    out, err = proc.communicate(timeout=240)
    assert proc.returncode == 0, err
    study = load_study(workdir)
    trials = study.get_trials()
    # the environment's fault: the same trial measured its config again, nothing failed or counted twice
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 2 and len(tr.counted(trials)) == 2, \
        [(t.state, tr.reason(t), t.user_attrs.get("attempts")) for t in trials]
    assert trials[0].params == {"instance_count": 2} and tr.is_baseline(trials[1])
    runs = study.user_attrs["remeasured"]["runs"]
    assert not any(run["failures"] for run in runs.values())
    if phase == "final re-measurement":
        assert all(len(run["throughput"]) == 2 for run in runs.values())  # the cut measurement was taken again
    else:
        assert [t.user_attrs["attempts"] for t in trials].count(2) == 1
    assert not _left_behind(workdir, proc.pid)


def test_a_config_that_hangs_its_model_fails_and_the_study_goes_on(workdir):
    """The start_with config (2 instances) makes the model's execute block for good: its requests
    get no answer, the server is killed and started afresh, it hangs the fresh one too, and it fails
    as the config's fault; the baseline is measured on a third server."""
    config = _repo(workdir) / "tiny" / "config.pbtxt"
    hang = 'parameters [ { key: "hang_with_instances" value { string_value: "2" } } ]\n'
    config.write_text(config.read_text() + hang)
    proc = _start(workdir)
    _, err = proc.communicate(timeout=240)
    assert proc.returncode == 0, err
    trials = load_study(workdir).get_trials()
    assert len(tr.counted(trials)) == 2 and trials[0].params == {"instance_count": 2}
    assert tr.failure(trials[0]) is Failure.STALLED and trials[0].user_attrs["attempts"] == 2
    assert "the model stopped answering" in tr.reason(trials[0])
    assert trials[1].state == TrialState.COMPLETE and tr.is_baseline(trials[1])
    assert not _left_behind(workdir, proc.pid)


@pytest.mark.parametrize("stop, phase", [(signal.SIGINT, "baseline"), (signal.SIGTERM, "measurement"),
                                         (signal.SIGINT, "final re-measurement")], ids=lambda v: getattr(v, "name", v))
def test_ctrl_c_or_sigterm_of_the_tuner_loses_nothing_and_a_rerun_finishes(workdir, stop, phase):
    _repo(workdir)
    proc = _start(workdir)
    PHASES[phase](workdir)
    proc.send_signal(stop)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert not _left_behind(workdir, proc.pid)
    rerun = subprocess.run(_command(workdir), cwd=workdir, capture_output=True, text=True, timeout=240)
    assert rerun.returncode == 0, rerun.stderr
    trials = load_study(workdir).get_trials()
    assert len(tr.counted(trials)) == 2 and not [t for t in trials if t.state in (TrialState.RUNNING,
                                                                                 TrialState.WAITING)]
    cut = [t for t in trials if tr.failure(t) is Failure.INTERRUPTED]
    assert len(cut) == (0 if phase == "final re-measurement" else 1)
    measured = [t for t in trials if t.state == TrialState.COMPLETE]
    assert sorted(tr.role(t).value for t in measured) == ["baseline", "start_with"]  # also the one cut off
    assert len({t.user_attrs["fingerprint"] for t in measured}) == 2  # each config measured once


def test_sigkill_of_the_tuner_leaves_nothing_after_the_rerun(workdir):
    _repo(workdir)
    proc = _start(workdir)
    _in_measurement(workdir)
    proc.kill()
    proc.wait(timeout=10)
    server = _run_dir(workdir)
    # the server got SIGTERM from the kernel (it dies with its parent) and shuts down
    wait_for(lambda: not subprocess.run(["pgrep", "-f", f"tritonserver.*{workdir}"]).returncode == 0,
          "tritonserver to exit", timeout=30)
    rerun = subprocess.run(_command(workdir), cwd=workdir, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    trials = load_study(workdir).get_trials()
    stale = [t for t in trials if tr.failure(t) is Failure.STALE]
    assert len(stale) == 1 and stale[0].params == {"instance_count": 2}  # found, failed, queued again ...
    assert len(tr.counted(trials)) == 2 and trials[-1].params == stale[0].params  # ... and measured
    assert "stopped (killed, or its host lost)" in rerun.stdout  # the summary lists it, with why
    assert not _left_behind(workdir, proc.pid) and not (server / "tritonserver.pid").exists()


def test_a_storage_locked_for_a_while_only_delays_the_study(workdir):
    _repo(workdir)
    proc = _start(workdir)
    _in_measurement(workdir)

    def hold() -> None:
        with sqlite3.connect(workdir / "study.db", timeout=30) as db:
            db.execute("BEGIN EXCLUSIVE")
            time.sleep(5)  # the tuner's heartbeat and tell wait on it (SQLite's busy timeout is 60 s)

    locker = threading.Thread(target=hold)
    locker.start()
    locker.join()
    _, err = proc.communicate(timeout=240)
    assert proc.returncode == 0, err
    assert len(tr.counted(load_study(workdir).get_trials())) == 2
    assert not _left_behind(workdir, proc.pid)


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    """One finished study of the slow model, for export --verify."""
    workdir = tmp_path_factory.mktemp("finished")
    _repo(workdir)
    done = subprocess.run(_command(workdir), cwd=workdir, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return workdir


@pytest.mark.parametrize("fault", [*SERVER_FAULTS, "stub SIGKILL"])
def test_a_fault_of_the_server_during_export_verify(finished, tmp_path, fault):
    db = tmp_path / "study.db"
    shutil.copy(finished / "study.db", db)
    with sqlite3.connect(db) as conn:  # wide stored intervals: the verdict is certain, only the fault is tested
        conn.execute("UPDATE study_user_attributes SET value_json = ? WHERE key = 'remeasured'", ("null",))
        for (trial_id,) in conn.execute("SELECT trial_id FROM trials").fetchall():
            conn.execute("UPDATE trial_user_attributes SET value_json = json_set(value_json, "
                         "'$.throughput_ci', json('[0, 1e12]'), '$.p95_ci_ms', json('[0, 1e12]')) "
                         "WHERE trial_id = ? AND key = 'metrics'", (trial_id,))
    proc = subprocess.Popen([sys.executable, "-m", "tuner", "export", "--storage", f"sqlite:///{db}", "--out",
                             str(tmp_path / "o"),
                             "--verify", "--run-dir", str(tmp_path / "vr")], cwd=tmp_path, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    run_dir = tmp_path / "vr" / "verify"
    wait_for(lambda: "successfully loaded 'tiny'" in log_text(run_dir), "the verify server to load the export")
    wait_serving(run_dir, "tiny", MEASURING, "the export's measurement")
    _inject(fault, run_dir)
    out, err = proc.communicate(timeout=240)
    assert proc.returncode == 0, out + err
    assert "re-measured" in out and "verdict      within" in out
    assert not _left_behind(tmp_path, proc.pid)

