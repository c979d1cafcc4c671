"""The command line: `tuner` (and `python -m tuner`). Parsing (parser, options) and printing
(commands) only; the work is in the layers below."""
from __future__ import annotations

import contextlib
import signal
import sys
import threading
from collections.abc import Iterator

import optuna

from tuner.cli.commands import COMMANDS
from tuner.cli.options import options
from tuner.cli.parser import parser
from tuner.errors import Exit, TunerError
from tuner.faults import EnvironmentBroken

__all__ = ["main", "options", "parser"]


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        with _terminate_as_interrupt():
            return COMMANDS[args.command](args)
    except EnvironmentBroken as e:
        print(f"error: {e}\nthe study is saved; rerun the same command to resume it", file=sys.stderr)
        return Exit.ENVIRONMENT
    except TunerError as e:
        print(f"error: {e}", file=sys.stderr)
        return Exit.BAD_INPUT
    except KeyboardInterrupt:
        print("\ninterrupted: the server is stopped and the study saved; rerun the same command to resume",
              file=sys.stderr)
        return Exit.INTERRUPTED


@contextlib.contextmanager
def _terminate_as_interrupt() -> Iterator[None]:
    """SIGTERM (kill, `docker stop`, systemd) stops the tuner as Ctrl-C does: the server stopped,
    the trial in progress queued again at once rather than after its heartbeat goes stale."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    before = signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, before)
