"""Errors the tuner reports to the user as one clear line (the CLI prints them without a traceback),
and the exit codes they end in."""
from enum import IntEnum


class TunerError(Exception):
    """Bad input or an environment problem, found before or between trials."""


class ConfigError(TunerError):
    """An invalid config.pbtxt, search space or option; the message names the file, line or field."""


class ServerError(TunerError):
    """The Triton server could not be started, reached or controlled."""


class Exit(IntEnum):
    """What the tuner's exit status tells a script (the documentation's reference lists them from here)."""
    OK = 0
    NOT_MET = 1
    BAD_INPUT = 2
    ENVIRONMENT = 3
    INTERRUPTED = 130

    @property
    def meaning(self) -> str:
        return _MEANINGS[self]


_MEANINGS = {
    Exit.OK: "done: the study finished and its choice is exported (or the command did what it was asked)",
    Exit.NOT_MET: "no measured config meets the limits (nothing exported), a measurement failed, or `export "
                  "--verify` did not measure what the study did",
    Exit.BAD_INPUT: "an option, file, search space or config was refused, in one line naming it; nothing was started",
    Exit.ENVIRONMENT: "the storage or a remote server was out of reach for longer than --outage-s; the study is "
                      "saved: the same command resumes it",
    Exit.INTERRUPTED: "interrupted (Ctrl-C): the server is stopped and the study saved; the same command resumes it",
}
