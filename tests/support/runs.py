"""Running the tuner as a user does, with its arguments, output and exit status.

In this process (`tuner`, `search`): `tuner.cli.main` with its output captured, as fast as a
function call. As a process of its own (`search_command`): only where the test sends it a signal
or kills it."""
from __future__ import annotations

import contextlib
import io
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import optuna

from support.paths import MODELS

# short measurements, no final re-measurement (tests that need one turn it on): these check the
# path, not the numbers
FAST = ("--min-samples", "100", "--warmup-s", "0.3", "--window-s", "0.3", "--max-measure-s", "2", "--no-progress",
        "--remeasure", "0")
TINY = ("--model-repository", str(MODELS), "--model", "tiny")


@dataclass(frozen=True)
class Run:
    """What a run of the tuner left for a person to read: its exit status and its two streams."""
    returncode: int
    stdout: str
    stderr: str


@contextlib.contextmanager
def _inside(folder: Path) -> Iterator[None]:
    before = os.getcwd()
    os.chdir(folder)
    try:
        yield
    finally:
        os.chdir(before)


def tuner(workdir: Path, *args: str) -> Run:
    """`python -m tuner ARGS` run in `workdir`, in this process."""
    from tuner.cli import main

    out, err = io.StringIO(), io.StringIO()
    with _inside(workdir), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(list(args))
        except SystemExit as e:  # argparse's refusals
            code = e.code if isinstance(e.code, int) else 1
    return Run(code, out.getvalue(), err.getvalue())


def _search_args(workdir: Path, args: tuple[str, ...], target: tuple[str, ...]) -> list[str]:
    return ["search", *target, "--storage", f"sqlite:///{workdir / 'study.db'}", "--run-dir", str(workdir / "runs"),
            "--out", str(workdir / "out"), *FAST, *args]


def search(workdir: Path, *args: str, target: tuple[str, ...] = TINY) -> Run:
    """A short search of `target` (default: the tiny test model; () for the demo, as the quick start
    runs it), in this process."""
    return tuner(workdir, *_search_args(workdir, args, target))


def search_command(workdir: Path, *args: str, target: tuple[str, ...] = TINY) -> list[str]:
    """The command line of `search`, for a process of its own."""
    return [sys.executable, "-m", "tuner", *_search_args(workdir, args, target)]


def load_study(workdir: Path, name: str = "tiny") -> optuna.Study:
    return optuna.load_study(study_name=name, storage=f"sqlite:///{workdir / 'study.db'}")
