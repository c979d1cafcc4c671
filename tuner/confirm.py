"""Re-measuring the Pareto candidates at the end of a search, so the choice is not a lucky draw.

The best of many noisy trials is biased upwards (the winner's curse): its single measurement was
likely a good moment. The baseline, the configs each selection policy would pick and their nearest
neighbours on the front are measured again, alternately, in one run, and the choice is made on the
median of all their measurements.
"""
from __future__ import annotations

import copy
import statistics

import optuna
from optuna.trial import FrozenTrial, TrialState
from tqdm import tqdm

from tuner.evaluate import Evaluator
from tuner.modelconfig import parse_config
from tuner.select import POLICIES, choose, pareto_front

_ATTR = "remeasured"  # study attr: {after_trials, runs: {trial number: {throughput: [..], p95_ms: [..]}}}


def candidates(trials: list[FrozenTrial], slo_p95_ms: float | None = None, limit: int = 4) -> list[FrozenTrial]:
    """The baseline, then up to `limit` front configs: what each policy (and the SLO) would
    choose, then the knee's nearest neighbours by throughput."""
    base = [t for t in trials if t.user_attrs.get("role") == "baseline" and t.state == TrialState.COMPLETE]
    picks = [choose(trials, policy) for policy in POLICIES] + [choose(trials, slo_p95_ms=slo_p95_ms)
                                                                if slo_p95_ms is not None else None]
    knee = picks[POLICIES.index("knee")]
    if knee is not None:
        picks += sorted(pareto_front(trials), key=lambda t: abs(t.values[0] - knee.values[0]))
    front = {t.number: t for t in picks if t is not None and t.user_attrs.get("role") != "baseline"}
    return base + list(front.values())[:limit]


def remeasure(study: optuna.Study, evaluator: Evaluator, rounds: int, slo_p95_ms: float | None = None,
              progress: bool = True) -> None:
    """Measures the candidates `rounds` more times, the order reversed every other round so slow
    drift of the machine does not favour one of them; stores every measurement on the study."""
    trials = study.get_trials(deepcopy=False)
    chosen = candidates(trials, slo_p95_ms)
    runs = {t.number: {"throughput": [t.values[0]], "p95_ms": [t.values[1]]} for t in chosen}
    with tqdm(total=rounds * len(chosen), disable=not progress, unit="config", desc="re-measuring the front",
              dynamic_ncols=True) as bar:
        for r in range(rounds):
            for trial in (chosen if r % 2 else chosen[::-1]):
                outcome = evaluator.evaluate(parse_config(trial.user_attrs["config_pbtxt"], f"trial {trial.number}"))
                if outcome.ok:
                    runs[trial.number]["throughput"].append(outcome.measurement.throughput)
                    runs[trial.number]["p95_ms"].append(outcome.measurement.p95_ms)
                bar.update(1)
    study.set_user_attr(_ATTR, {"after_trials": len(trials), "runs": {str(n): v for n, v in runs.items()}})


def is_current(study: optuna.Study) -> bool:
    """Re-measured after the last trial (a study resumed with more trials needs it again)."""
    found = study.user_attrs.get(_ATTR)
    return bool(found) and found["after_trials"] == len(study.get_trials(deepcopy=False))


def confirmed(study: optuna.Study) -> list[FrozenTrial]:
    """The trials to choose from: after a re-measurement, the candidates with the median of their
    measurements as values; before one (or without), every trial as it was measured."""
    trials = study.get_trials(deepcopy=False)
    if not is_current(study):  # never re-measured, or trials were added since
        return trials
    found = study.user_attrs[_ATTR]
    result = []
    for t in trials:
        runs = found["runs"].get(str(t.number))
        if runs is not None and t.state == TrialState.COMPLETE:
            view = copy.deepcopy(t)
            view.values = [statistics.median(runs["throughput"]), statistics.median(runs["p95_ms"])]
            view.user_attrs[_ATTR] = runs
            result.append(view)
    return result
