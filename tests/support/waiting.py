"""Waiting on a state (a trial's row, a process, a log line, requests served) with a deadline, never a
fixed sleep; and the read-only looks at a running study and its server that such waits need."""
from __future__ import annotations

import re
import sqlite3
import subprocess
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

POLL_S = 0.05


def wait_for(condition: Callable[[], object], what: str, timeout: float = 120) -> None:
    """Returns once `condition()` is true; fails the test, naming `what`, after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out after {timeout:g} s waiting for {what}"
        time.sleep(POLL_S)


def trial_rows(workdir: Path) -> list[tuple[int, str]]:
    """(number, state) of each trial in `workdir/study.db`, read-only: opening it through Optuna
    while the tuner creates its schema would race the tuner."""
    try:
        with sqlite3.connect(f"file:{workdir / 'study.db'}?mode=ro", uri=True, timeout=1) as db:
            return db.execute("SELECT number, state FROM trials ORDER BY number").fetchall()
    except sqlite3.Error:  # not created yet
        return []


def finished_rows(workdir: Path) -> int:
    """Trials that count so far: measured, or failed by their config (a repeat is a FAIL row)."""
    return sum(state in ("COMPLETE", "PRUNED") for _, state in trial_rows(workdir))


def servers_of(path: Path) -> list[str]:
    """pids of the tritonserver processes whose command line names `path` (a test's folder)."""
    found = subprocess.run(["pgrep", "-f", f"tritonserver.*{path}"], capture_output=True, text=True)
    return found.stdout.split()


def log_text(run_dir: Path) -> str:
    """The server log of the run directory `run_dir` (every start of its server, appended)."""
    log = run_dir / "tritonserver.log"
    return log.read_text(errors="replace") if log.exists() else ""


def served(run_dir: Path, model: str) -> int:
    """Requests for `model` that the server now running in `run_dir` has answered since it started,
    from its metrics endpoint (0 while it does not answer)."""
    ports = re.findall(r"Started Metrics Service at [\d.]+:(\d+)", log_text(run_dir))
    if not ports:
        return 0
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{ports[-1]}/metrics", timeout=2) as answer:
            body = answer.read().decode()
    except OSError:
        return 0
    return sum(int(float(n)) for n in re.findall(rf'^nv_inference_request_success{{model="{model}",[^}}]*}} (\S+)$',
                                                  body, re.MULTILINE))


def wait_serving(run_dir: Path, model: str, requests: int, what: str, timeout: float = 120) -> None:
    """Returns once the server of `run_dir` has answered `requests` more requests for `model` than it
    had when called: a measurement is under way."""
    start = served(run_dir, model)
    wait_for(lambda: served(run_dir, model) >= start + requests, what, timeout)
