"""Errors the tuner reports to the user as one clear line (the CLI prints them without a traceback)."""


class TunerError(Exception):
    """Bad input or an environment problem, found before or between trials."""


class ConfigError(TunerError):
    """An invalid config.pbtxt, search space or option; the message names the file, line or field."""


class ServerError(TunerError):
    """The Triton server could not be started, reached or controlled."""
