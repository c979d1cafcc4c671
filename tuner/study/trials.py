"""What a trial is: its role, how it ended, what it records, and which trials count.

Every module asks this one instead of reading attribute strings itself, so there is one rule for
which trials count toward --trials, which can be chosen, and which failed for a reason of their own.

How a trial ends in Optuna's terms:
  COMPLETE  measured
  PRUNED    the config failed (its fault: see tuner.faults); Optuna's samplers learn from PRUNED
            trials and not from FAIL, and a `config_failed` constraint ranks it below every
            feasible config, so TPE samples away from configs that do not work
  FAIL      cut off by the environment (Ctrl-C, a dead worker, the server lost): it does not count,
            and its knobs are queued again; or a proposal of a config already measured
            (`duplicate_of`): answered from that trial, not counted, not told to the sampler
"""
from __future__ import annotations

import math
import statistics
from enum import Enum

import optuna
from optuna.trial import FrozenTrial, TrialState

from tuner.faults import Failure, Side


class Role(str, Enum):
    BASELINE = "baseline"  # the user's own config: every gain is against it
    START_WITH = "start_with"  # a known-good config from the search space, measured early
    SEARCH = "search"  # the sampler's guess


class Key:
    """User attribute names (the dashboard shows them as they are)."""
    ROLE = "role"  # baseline (your own config), start_with (a known-good one) or search (the sampler's)
    KNOBS = "knobs"  # the knob values the trial ran, as the search space names them
    CONFIG = "config_pbtxt"  # the exact config.pbtxt the trial loaded
    MEMBERS = "members_pbtxt"  # the other models' configs (a pipeline's members, or models served beside it)
    FINGERPRINT = "fingerprint"  # a hash of the rendered configs: the same config proposed again is a repeat
    METRICS = "metrics"  # throughput, P50-P99 and their 95% CIs, samples, errors, Triton's queue and compute times
    LOAD_S = "load_s"  # seconds the config took to load
    MEMORY_MIB = "memory_mib"  # the server's resident memory under load
    OUTPUT_ERROR = "output_error"  # largest output difference from your config's, over their largest magnitude
    WORKER = "worker"  # which worker measured it (--workers, or several hosts)
    FAILURE = "failure"  # a tuner.faults.Failure value
    FAIL_REASON = "fail_reason"  # Triton's (or the tuner's) words
    ATTEMPTS = "attempts"  # measurements the trial needed (the server went down under an earlier one)
    DUPLICATE_OF = "duplicate_of"  # answered from this earlier trial's result
    STOPPED_EARLY = "stopped_early"  # raced, and stopped once clearly behind the front ("screened" before)
    OVER_MEMORY = "over_memory"  # measured, over --max-memory-mib: never chosen
    OVER_SLO = "over_slo"  # several models: measured, some model over its own SLO: never chosen
    OUTPUTS_DIFFER = "outputs_differ"  # measured, outputs beyond --max-output-error: never chosen
    REMEASURED = "remeasured"  # on a confirmed view: every measurement of the final re-measurement
    PREDICTED = "predicted"  # a guided trial: the throughput and P95 the performance model predicted for it
    CURVE = "curve"  # a capacity search's steps: [offered req/s, served, P95 ms, failed requests, met the SLO]


# Each limit's violation (<= 0: within it) is an Optuna constraint of the trial as well.
SLO_VIOLATION = "slo_violation_ms"
MEMORY_VIOLATION = "memory_violation_mib"
OUTPUT_VIOLATION = "output_violation"
CONFIG_FAILED = "config_failed"
LIMITS = (SLO_VIOLATION, MEMORY_VIOLATION, OUTPUT_VIOLATION)

# What a repeat of a config copies from the trial that measured it.
RESULT_KEYS = (Key.CONFIG, Key.MEMBERS, Key.FINGERPRINT, Key.METRICS, Key.CURVE, Key.FAILURE, Key.FAIL_REASON,
               Key.MEMORY_MIB, Key.OVER_MEMORY, Key.OVER_SLO, Key.OUTPUT_ERROR, Key.OUTPUTS_DIFFER, *LIMITS)


def role(trial: FrozenTrial | optuna.Trial) -> Role | None:
    value = trial.user_attrs.get(Key.ROLE)
    return Role(value) if value else None


def failure(trial: FrozenTrial) -> Failure | None:
    """How the trial failed; None for a measured or running one. A FAIL without a recorded
    failure was failed by Optuna: its worker stopped beating."""
    if trial.state in (TrialState.COMPLETE, TrialState.RUNNING, TrialState.WAITING):
        return None
    if is_repeat(trial):  # shows the earlier trial's result; failed or not, it is not a failure of its own
        return None
    value = trial.user_attrs.get(Key.FAILURE)
    return Failure(value) if value else Failure.STALE


def config_failed(trial: FrozenTrial) -> bool:
    found = failure(trial)
    return found is not None and found.side is Side.CONFIG


def counts(trial: FrozenTrial) -> bool:
    """Counts toward --trials: measured, or failed for a reason of the config's own."""
    return trial.state == TrialState.COMPLETE or config_failed(trial)


def counted(trials: list[FrozenTrial]) -> list[FrozenTrial]:
    return [t for t in trials if counts(t)]


def is_repeat(trial: FrozenTrial) -> bool:
    return Key.DUPLICATE_OF in trial.user_attrs


_STOPPED_EARLY_BEFORE = "screened"  # the attribute's name in studies stored before it was renamed


def stopped_early(trial: FrozenTrial) -> bool:
    """Raced and stopped once clearly behind the front (studies stored before the rename too)."""
    return bool(trial.user_attrs.get(Key.STOPPED_EARLY) or trial.user_attrs.get(_STOPPED_EARLY_BEFORE))


def measured(trial: FrozenTrial) -> bool:
    """Measured here (not a repeat), whatever its limits."""
    return trial.state == TrialState.COMPLETE and trial.values is not None and not is_repeat(trial)


def choosable(trial: FrozenTrial) -> bool:
    """Can be chosen: measured here, within the memory limit and each model's own SLO, computing
    the baseline's outputs."""
    return measured(trial) and not trial.user_attrs.get(Key.OVER_MEMORY) \
        and not trial.user_attrs.get(Key.OUTPUTS_DIFFER) and not trial.user_attrs.get(Key.OVER_SLO)


def models_of(trial: FrozenTrial) -> dict[str, tuple[float, float]]:
    """Several models on one server: each one's (throughput, P95 ms), the medians of the final
    re-measurement on a confirmed view, else as measured."""
    runs = (trial.user_attrs.get(Key.REMEASURED) or {}).get("models")
    if runs:
        return {name: (statistics.median(r[name][0] for r in runs), statistics.median(r[name][1] for r in runs))
                for name in runs[0]}
    models = (trial.user_attrs.get(Key.METRICS) or {}).get("models") or {}
    return {name: (m["throughput"], m["p95_ms"]) for name, m in models.items()}


def is_baseline(trial: FrozenTrial) -> bool:
    return role(trial) is Role.BASELINE


def reason(trial: FrozenTrial) -> str:
    """Why a trial failed, in words."""
    found = failure(trial)
    if found is Failure.STALE:
        return "its worker stopped (killed, or its host lost) before it ended: queued again"
    return str(trial.user_attrs.get(Key.FAIL_REASON) or (found.value if found else ""))


def frozen(trial: optuna.Trial) -> FrozenTrial:
    """The stored state of a live trial (after `tell`, its final state)."""
    return trial.storage.get_trial(trial_id(trial))


def trial_id(trial: optuna.Trial) -> int:
    """The storage's id of a live trial, through the storage's public interface."""
    storage = trial.storage
    study_id = storage.get_study_id_from_name(trial.study.study_name)
    return storage.get_trial_id_from_study_id_trial_number(study_id, trial.number)


def jsonable(value):
    """A measurement as a user attribute: floats rounded, NaN and infinity as null (JSON has neither)."""
    if isinstance(value, float):
        return round(value, 4) if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    return value
