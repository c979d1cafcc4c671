"""Where a study lives: an Optuna RDB storage with heartbeats, so the trials of a worker that died
are found and run again, and with patience, so a database that restarts or is out of reach for a
while (a PostgreSQL failover, a SQLite file locked, a disk that fills and is freed) costs waiting,
not trials.

Each storage call that cannot reach the database, or whose write the database refuses, is tried
again with backoff for up to `wait_s`; past that the study stops with `StorageLost`, one line
naming the storage. Nothing measured is lost: what was told is in the database, and the trial
running then is found stale by the rerun and measured again. A heartbeat is never waited for (the
next one comes soon), so a worker that waits does not stop beating later than it must.
"""
from __future__ import annotations

import functools
import os
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import optuna
from sqlalchemy.exc import ArgumentError, OperationalError

from tuner.errors import ConfigError
from tuner.faults import OUTAGE_S, EnvironmentBroken

HEARTBEAT_S = 5  # a running trial's worker proves it is alive this often
GRACE_S = 20  # a trial silent this long lost its worker (killed, host gone): it is run again
_BACKOFF_S = (0.5, 8.0)  # the first wait between tries, and the longest


class StorageLost(EnvironmentBroken):
    """The storage refused or could not take calls for longer than the study waits: it stops, and
    the same command resumes it once the storage is back."""


class _Patient(optuna.storages.RDBStorage):
    """RDBStorage whose calls are tried again while the database is out of reach (module docstring)."""

    wait_s = OUTAGE_S


def _patiently(method: Callable) -> Callable:
    @functools.wraps(method)
    def call(self: _Patient, *args, **kwargs):
        deadline, pause = time.monotonic() + self.wait_s, _BACKOFF_S[0]
        while True:
            try:
                return method(self, *args, **kwargs)
            except (optuna.exceptions.StorageInternalError, OperationalError) as e:
                if time.monotonic() + pause > deadline:
                    cause = e.__cause__ or e
                    raise StorageLost(f"the storage {self.url} has not answered for {self.wait_s:g} s "
                                      f"({type(cause).__name__}: {str(cause).splitlines()[0]})") from None
                time.sleep(pause)
                pause = min(2 * pause, _BACKOFF_S[1])
    return call


# every call a study makes, but the heartbeat (not waited for) and what only runs at the start
for _name in ("create_new_study", "delete_study", "set_study_user_attr", "set_study_system_attr",
              "get_study_id_from_name", "get_study_name_from_id", "get_study_directions", "get_study_user_attrs",
              "get_study_system_attrs", "get_all_studies", "create_new_trial", "set_trial_param",
              "get_trial_id_from_study_id_trial_number", "get_trial_number_from_id", "get_trial_param",
              "set_trial_state_values", "set_trial_intermediate_value", "set_trial_user_attr",
              "set_trial_system_attr", "get_trial", "get_all_trials", "get_best_trial", "get_n_trials",
              "get_trial_params", "get_trial_user_attrs", "get_trial_system_attrs", "_get_stale_trial_ids",
              "_get_trials"):
    setattr(_Patient, _name, _patiently(getattr(optuna.storages.RDBStorage, _name)))


def storage_for(url: str, on_stale: Callable, wait_s: float = OUTAGE_S) -> optuna.storages.RDBStorage:
    """The storage at `url`; `on_stale(study, trial)` is called for each trial found stale.
    SQLite serves several local workers (they wait for its lock); PostgreSQL/MySQL serve hosts."""
    if url.startswith("sqlite:///"):  # created only now: refused input leaves nothing on disk
        try:
            Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:  # a path under a regular file, no permission
            raise ConfigError(f"--storage {url}: cannot create its folder: {e}") from None
    storage = _opened(url, heartbeat_interval=HEARTBEAT_S, grace_period=GRACE_S,
                      heartbeat_stale_trial_callback=on_stale)
    storage.wait_s = wait_s
    return storage


def existing(url: str) -> optuna.storages.RDBStorage:
    """A storage a search made, opened to be read (report, export, the dashboard): a SQLite file that
    is not there is refused, not created empty."""
    if url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).is_file():
        raise ConfigError(f"--storage {url}: no such database (run a search first)")
    return _opened(url)


def load_existing(url: str, name: str | None) -> optuna.Study:
    """The study `name` in the storage a search made (the only one there, when not named)."""
    rdb = existing(url)
    names = [s.study_name for s in optuna.get_all_study_summaries(rdb)]
    if not names:
        raise ConfigError(f"--storage {url}: holds no study yet (run a search first)")
    name = name or (names[0] if len(names) == 1 else None)
    if name is None or name not in names:
        raise ConfigError(f"--storage {url}: " + (f"no study '{name}'; it holds {', '.join(names)}" if name
                          else f"{len(names)} studies ({', '.join(names)}); name one with --study-name"))
    return optuna.load_study(study_name=name, storage=rdb)


def _opened(url: str, **heartbeats) -> _Patient:
    """The storage at `url`, or a ConfigError of one line: a bad URL, a driver not installed, a
    database server that is down or refuses the credentials."""
    engine = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {"pool_pre_ping": True}
    try:
        with warnings.catch_warnings():  # heartbeats are "experimental" only in name, since Optuna 2.9
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return _Patient(url, engine_kwargs=engine, **heartbeats)
    except (ImportError, ModuleNotFoundError) as e:
        raise ConfigError(f"--storage {url}: its database driver is not installed ({e}); "
                          "for PostgreSQL: pip install 'triton-tuner[postgres]'") from None
    except ArgumentError as e:  # not a database URL
        raise ConfigError(f"--storage {url}: not a storage URL ({e}); expected sqlite:///FILE or "
                          "postgresql://USER@HOST/DB") from None
    except Exception as e:  # SQLAlchemy's errors: server down, wrong password
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ConfigError(f"--storage {url}: cannot open it: {first}") from None


def check_writable(url: str) -> None:
    """Before any server starts: a SQLite file (or the folder it will be made in) that cannot be
    written would otherwise fail the first trial's bookkeeping, after Triton started."""
    if not url.startswith("sqlite:///"):
        return  # a database server: reached (and its credentials checked) when the study opens
    target = Path(url.removeprefix("sqlite:///"))
    while not target.exists() and target != target.parent:  # the folders are made when the study opens
        target = target.parent
    if not os.access(target, os.W_OK):
        raise ConfigError(f"--storage {url}: {target} is not writable")
