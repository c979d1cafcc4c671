"""The Optuna study: maximize throughput, minimize P95, one trial per config.

Ask-and-tell rather than `study.optimize`, because a trial here can end four ways: measured,
failed with Triton's reason, answered from an identical earlier config, or interrupted (then it
is queued again, so a rerun of the same command picks it up and no trial is lost).
"""
from __future__ import annotations

import dataclasses
import math
import warnings
from dataclasses import dataclass

import optuna
from optuna.trial import FrozenTrial, TrialState
from tqdm import tqdm

from tuner.errors import ConfigError, TunerError
from tuner.evaluate import Evaluator, Outcome
from tuner.modelconfig import ModelConfig, apply_knobs, fingerprint, render_pbtxt
from tuner.select import choose
from tuner.space import SearchSpace

METRIC_NAMES = ["throughput_infer_per_s", "p95_latency_ms"]
DIRECTIONS = ["maximize", "minimize"]
INTERRUPTED = "interrupted"


@dataclass(frozen=True)
class StudySettings:
    """What makes two runs comparable; a resumed study must have been made with the same."""
    model: str
    load: str  # "concurrency 8" or "request rate 100/s"
    base_config: str  # fingerprint of the user's config.pbtxt
    search_space: dict
    slo_p95_ms: float | None = None  # a constraint inside the search, not only a filter afterwards


_VIOLATION = "slo_violation_ms"


def _constraints(trial: FrozenTrial) -> list[float]:
    """Optuna's constraint: P95 minus the SLO (<= 0 is feasible), recorded on each trial."""
    return [trial.user_attrs.get(_VIOLATION, 0.0)]


def open_study(storage: str, name: str, settings: StudySettings, seed: int | None = None) -> optuna.Study:
    # With an SLO, TPE models the infeasible region from each trial's violation and samples away
    # from it, rather than the SLO merely filtering the results at the end.
    sampler = optuna.samplers.TPESampler(multivariate=True, seed=seed, n_startup_trials=8,
                                         constraints_func=_constraints if settings.slo_p95_ms else None)
    study = optuna.create_study(storage=storage, study_name=name, directions=DIRECTIONS,
                                sampler=sampler, load_if_exists=True)
    wanted = dataclasses.asdict(settings)
    found = study.user_attrs.get("settings")
    if found is None:
        with warnings.catch_warnings():  # experimental only in name; the dashboard reads these
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study.set_metric_names(METRIC_NAMES)
        study.set_user_attr("settings", wanted)
    elif found != wanted:
        changed = sorted(k for k in wanted if found.get(k) != wanted[k])
        raise ConfigError(f"study '{name}' in {storage} was made with other settings ({', '.join(changed)}): "
                          "its trials would not compare; pass --study-name for a new study")
    return study


def counted(study: optuna.Study) -> list[FrozenTrial]:
    """Trials that count towards --trials: measured or failed for a reason of their own."""
    return [t for t in study.get_trials(deepcopy=False)
            if t.state == TrialState.COMPLETE
            or (t.state == TrialState.FAIL and t.user_attrs.get("fail_reason") != INTERRUPTED)]


def recover_interrupted(study: optuna.Study) -> int:
    """A trial still RUNNING when we start was cut off by a kill: fail it and queue it again.
    (One worker per study; parallel workers will need heartbeats instead.)"""
    stale = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    for trial in stale:
        _requeue(study, trial.number, trial.params)
    return len(stale)


def _requeue(study: optuna.Study, number: int, params: dict) -> None:
    study._storage.set_trial_user_attr(study._storage.get_trial_id_from_study_id_trial_number(
        study._study_id, number), "fail_reason", INTERRUPTED)
    study.tell(number, state=TrialState.FAIL)
    if params:
        study.enqueue_trial(params, skip_if_exists=False)


def baseline(study: optuna.Study) -> FrozenTrial | None:
    return next((t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
                 if t.user_attrs.get("role") == "baseline"), None)


def _attrs(config: ModelConfig, outcome: Outcome) -> dict:
    attrs = {"config_pbtxt": render_pbtxt(config), "fingerprint": fingerprint(config),
             "load_s": round(outcome.load_s, 3)}
    if outcome.measurement is not None:
        attrs["metrics"] = _jsonable(dataclasses.asdict(outcome.measurement))
    return attrs


def _jsonable(value):
    if isinstance(value, float):
        return round(value, 4) if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


def _values(outcome: Outcome) -> list[float]:
    return [outcome.measurement.throughput, outcome.measurement.p95_ms]


def _slo(study: optuna.Study) -> float | None:
    return (study.user_attrs.get("settings") or {}).get("slo_p95_ms")


def measure_baseline(study: optuna.Study, evaluator: Evaluator, base: ModelConfig,
                     start_with: tuple[dict, ...] = ()) -> FrozenTrial:
    """The user's own config, measured first, as trial 0: every gain is reported against it."""
    found = baseline(study)
    if found is not None:
        return found
    outcome = evaluator.evaluate(base)
    if not outcome.ok:
        raise TunerError(f"the model's own config does not run, so there is nothing to tune from: {outcome.reason}")
    attrs = {"role": "baseline", **_attrs(base, outcome)}
    system = {}
    if _slo(study) is not None:
        attrs[_VIOLATION] = outcome.measurement.p95_ms - _slo(study)
        system["constraints"] = [attrs[_VIOLATION]]  # what the samplers read for added trials
    study.add_trial(optuna.trial.create_trial(values=_values(outcome), params={}, distributions={},
                                              user_attrs=attrs, system_attrs=system))
    for params in start_with:  # known-good configs next, before the sampler guesses
        study.enqueue_trial(params, skip_if_exists=True)
    return baseline(study)


def run_trial(study: optuna.Study, evaluator: Evaluator, base: ModelConfig, space: SearchSpace) -> FrozenTrial:
    trial = study.ask()
    try:
        knobs = space.suggest(trial)
        config = apply_knobs(base, knobs)
        trial.set_user_attr("role", "search")
        trial.set_user_attr("knobs", knobs)
        earlier = _same_config(study, fingerprint(config), trial.number)
        if earlier is not None:  # identical config: reuse its result instead of measuring again
            trial.set_user_attr("duplicate_of", earlier.number)
            for key in ("config_pbtxt", "fingerprint", "metrics", "fail_reason", _VIOLATION):
                if key in earlier.user_attrs:
                    trial.set_user_attr(key, earlier.user_attrs[key])
            if earlier.state == TrialState.COMPLETE:
                study.tell(trial, earlier.values)
            else:
                study.tell(trial, state=TrialState.FAIL)
        else:
            outcome = evaluator.evaluate(config)
            for key, value in _attrs(config, outcome).items():
                trial.set_user_attr(key, value)
            if outcome.ok and _slo(study) is not None:
                trial.set_user_attr(_VIOLATION, outcome.measurement.p95_ms - _slo(study))
            if outcome.ok:
                study.tell(trial, _values(outcome))
            else:
                trial.set_user_attr("fail_reason", outcome.reason)
                study.tell(trial, state=TrialState.FAIL)
    except KeyboardInterrupt:
        _requeue(study, trial.number, trial.params)
        raise
    return study.trials[trial.number]


def _same_config(study: optuna.Study, key: str, number: int) -> FrozenTrial | None:
    for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.FAIL)):
        if t.number != number and t.user_attrs.get("fingerprint") == key \
                and t.user_attrs.get("fail_reason") != INTERRUPTED:
            return t
    return None


def search(study: optuna.Study, evaluator: Evaluator, base: ModelConfig, space: SearchSpace, trials: int,
           slo_p95_ms: float | None = None, progress: bool = True) -> None:
    """Runs until the study holds `trials` counted trials (the baseline is the first)."""
    recover_interrupted(study)
    with tqdm(total=trials, initial=min(len(counted(study)), trials), disable=not progress,
              unit="trial", dynamic_ncols=True) as bar:
        if baseline(study) is None:
            measure_baseline(study, evaluator, base, space.start_with)
            bar.update(1)
        while len(counted(study)) < trials:
            trial = run_trial(study, evaluator, base, space)
            bar.update(1)
            bar.set_postfix_str(_best_text(study, slo_p95_ms, trial))


def _best_text(study: optuna.Study, slo_p95_ms: float | None, last: FrozenTrial) -> str:
    best = choose(study.get_trials(deepcopy=False), slo_p95_ms=slo_p95_ms)
    text = f"best #{best.number}: {best.values[0]:.1f}/s p95 {best.values[1]:.1f} ms" if best else "no best yet"
    if last.state == TrialState.FAIL:
        text += f" | #{last.number} failed"
    return text

