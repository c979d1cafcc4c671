"""Waiting on a state (a trial's row, a process, a log line) with a deadline, never a fixed sleep;
and the read-only looks at a running study that such waits need."""
from __future__ import annotations

import sqlite3
import subprocess
import time
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
