"""The fault model: whose fault a failure is, and what the study does about it.

The config's fault: Triton refuses it or the model's initialize fails (`LOAD`), its requests fail
or time out (`REQUESTS`, also when they broke midway on two attempts in a row), it loads as an
in-place update but not from its own file (`COLD_LOAD`), the server dies under it on two attempts
in a row (`CRASH`), or its requests (or its load) get no answer at all on two fresh servers in a
row (`STALLED`: a model whose execute blocks, say). The trial fails with the reason, counts toward
--trials, and is told to the sampler as a bad region, so TPE samples away from it.

The environment's fault: the server died or stopped under a config once (killed, OOM killer, a
SIGTERM from a container runtime or an operator), the server or the model stopped answering once
(`HUNG`: stopped, deadlocked, swapped out; the server is killed and started afresh), Ctrl-C, a
worker that stopped beating, a bug in the tuner; requests that served and then began to fail (a
backend stub killed). Such a failure never uses up the budget: the server is restarted (or the
model loaded afresh) and the same config measured again within the same trial; a trial cut off
(Ctrl-C, a dead worker) is queued again. When the server cannot be brought back, the study stops
with `EnvironmentBroken` (exit code 3) rather than failing every remaining trial.
"""
from __future__ import annotations

from enum import Enum

from tuner.errors import Exit, TunerError


class Side(Enum):
    CONFIG = "config"  # the trial fails, counts, and teaches the sampler
    ENVIRONMENT = "environment"  # the trial does not count: measured again


class Failure(str, Enum):
    LOAD = "load"  # Triton refused the config, or the model failed to initialize
    REQUESTS = "requests"  # requests failed or timed out
    COLD_LOAD = "cold_load"  # loaded as an in-place update, but fails from its own config.pbtxt
    CRASH = "crash"  # the server died under this config on two attempts in a row
    STALLED = "stalled"  # no answer at all, on two fresh servers in a row
    SERVER_DOWN = "server_down"  # the server died or stopped under a config once
    BROKE_MIDWAY = "broke_midway"  # requests served, then failed (a backend stub killed, say) once
    HUNG = "hung"  # the server or the model stopped answering once: killed and restarted
    INTERRUPTED = "interrupted"  # Ctrl-C (or SIGTERM) of the tuner
    STALE = "stale"  # its worker stopped beating (killed, host lost): Optuna failed it
    TUNER_ERROR = "tuner_error"  # an exception inside the tuner

    @property
    def side(self) -> Side:
        return Side.CONFIG if self in _CONFIG_FAULTS else Side.ENVIRONMENT


_CONFIG_FAULTS = frozenset({Failure.LOAD, Failure.REQUESTS, Failure.COLD_LOAD, Failure.CRASH, Failure.STALLED})

OUTAGE_S = 60.0  # how long a storage or a remote server out of reach is waited for before the study stops
ATTEMPTS = 2  # the same fault of the server under a config this often in a row: the config is the cause
# what a fault of the server under a config becomes when it keeps happening: the config's failure
_REPEATED = {Failure.SERVER_DOWN: Failure.CRASH, Failure.BROKE_MIDWAY: Failure.REQUESTS, Failure.HUNG: Failure.STALLED}


def measured_again(failure: Failure | None) -> bool:
    """A fault of the server under a config, after which the config is measured again."""
    return failure in _REPEATED


def blamed(faults: list[Failure]) -> Failure | None:
    """The config's failure that the server's faults under it so far amount to, or None while it is
    measured again. The same fault ATTEMPTS times in a row is the config's; faults of different
    kinds (a server stopped from outside, then a probe missed on the busy restart) get one attempt
    more, and then the last is."""
    last = faults[-1]
    if faults[-ATTEMPTS:] == [last] * ATTEMPTS or len(faults) > ATTEMPTS:
        return _REPEATED[last]
    return None


class EnvironmentBroken(TunerError):
    """The server cannot be brought back (or reached): the study stops, its trials kept."""

    exit_code = Exit.ENVIRONMENT
