"""Re-measuring the Pareto candidates at the end of a search, so the choice is not a lucky draw.

The best of many noisy trials is biased upwards (the winner's curse): its single measurement was
likely a good moment. The baseline, the configs each selection policy would pick and their nearest
neighbours on the front are measured again, alternately, in one run, and the choice is made on the
median of all their measurements.

The cheapest config the first measurements cannot tell apart from the pick is measured too: the
choice may go to it (tuner.study.cheapest).

The first of these measurements loads each config cold, from its written config.pbtxt after an
unload, as a deployment would: during the search Triton applies a change of instance count alone in
place, and initialises the new instances with the previous config, so a config can measure well
that does not load from its own file. A candidate that fails any of its measurements is rejected,
with the reason, and never exported.
"""
from __future__ import annotations

import copy
import dataclasses
import statistics

import optuna
from optuna.trial import FrozenTrial, TrialState
from tqdm import tqdm

from tuner.config import pipeline
from tuner.config.modelconfig import parse_config
from tuner.measure.evaluate import Evaluator
from tuner.study import trials as tr
from tuner.study.cheapest import cheapest
from tuner.study.goal import Objective
from tuner.study.selection import POLICIES, choose, pareto_front
from tuner.study.settings import settings_of
from tuner.study.trials import Key

# study attr: {after_trials, runs: {trial number: {values: [[objective, cost]..], throughput: [..], p95_ms: [..],
#              throughput_ci: [[lo, hi]..], p95_ci_ms: [[lo, hi]..], failures: [reason..]}}}
_ATTR = Key.REMEASURED


def candidates(trials: list[FrozenTrial], slo_p95_ms: float | None = None, limit: int = 4,
               cheaper: bool = True) -> list[FrozenTrial]:
    """The baseline, then up to `limit` configs: what the SLO and each policy would choose, each
    beside the cheapest config the single measurements cannot tell apart from it (tuner.study.cheapest:
    re-measured, it may be exported instead), then the knee's nearest neighbours on the front by
    throughput."""
    base = [t for t in trials if tr.is_baseline(t) and t.state == TrialState.COMPLETE]
    knee = choose(trials, "knee")
    chosen = [choose(trials, slo_p95_ms=slo_p95_ms) if slo_p95_ms is not None else None, knee,
              *(choose(trials, policy) for policy in POLICIES if policy != "knee")]
    picks: list[FrozenTrial | None] = []
    for t in chosen:
        picks += [t, cheapest(t, trials, slo_p95_ms) if cheaper and t is not None else None]
    if knee is not None:
        knee_thr = float(knee.values[0])

        def distance(t: FrozenTrial) -> float:
            return abs(t.values[0] - knee_thr)

        nearest = sorted(pareto_front(trials), key=distance)
        picks.extend(nearest)
    front = {t.number: t for t in picks if t is not None and not tr.is_baseline(t)}
    return base + list(front.values())[:limit]


def remeasure(study: optuna.Study, evaluator: Evaluator, rounds: int, slo_p95_ms: float | None = None,
              progress: bool = True) -> None:
    """Measures the candidates `rounds` more times (the first time cold), the order reversed every
    other round so slow drift of the machine does not favour one of them; stores every measurement,
    and every failure, on the study."""
    trials = study.get_trials(deepcopy=False)
    goal = settings_of(study).goal
    chosen = candidates(trials, goal.chooses_within(slo_p95_ms), cheaper=goal.is_default)
    runs = {t.number: _first_run(t) for t in chosen}
    with tqdm(total=rounds * len(chosen), disable=not progress, unit="config", desc="re-measuring the front",
              dynamic_ncols=True) as bar:
        for r in range(rounds):
            for trial in (chosen if r % 2 else chosen[::-1]):
                run = runs[trial.number]
                if not run["failures"]:  # a config that failed once is out: no need to measure it more
                    config = parse_config(trial.user_attrs[Key.CONFIG], f"trial {trial.number}")
                    # a capacity search starts where this config's own search ended
                    start = (trial.values[0] or None) if goal.objective is Objective.CAPACITY else None
                    others = pipeline.parse(trial.user_attrs.get(Key.MEMBERS) or {})
                    outcome = evaluator.evaluate(config, cold=r == 0, first_rate=start, others=others)
                    if outcome.measurement is None:
                        cold = " loaded cold from its config.pbtxt" if r == 0 else ""
                        run["failures"].append(f"{outcome.failure and outcome.failure.value}{cold}: {outcome.reason}")
                    else:
                        m = outcome.measurement
                        for key, value in (("values", goal.values(outcome, config, others.values())),
                                           ("throughput", m.throughput), ("p95_ms", m.p95_ms),
                                           ("throughput_ci", m.throughput_ci), ("p95_ci_ms", m.p95_ci_ms)):
                            run[key].append(tr.jsonable(value))
                        if m.models:  # several models on one server: what each got, every time
                            run["models"].append(_per_model({n: dataclasses.asdict(x) for n, x in m.models.items()}))
                bar.update(1)
    study.set_user_attr(_ATTR, {"after_trials": len(trials), "runs": {str(n): v for n, v in runs.items()}})


def _first_run(trial: FrozenTrial) -> dict:
    metrics = trial.user_attrs.get(Key.METRICS) or {}
    return {"values": [list(trial.values)], "throughput": [metrics.get("throughput")],
            "p95_ms": [metrics.get("p95_ms")], "throughput_ci": [metrics.get("throughput_ci")],
            "p95_ci_ms": [metrics.get("p95_ci_ms")], "failures": [],
            "models": [_per_model(metrics["models"])] if metrics.get("models") else []}


def _per_model(models: dict[str, dict]) -> dict[str, list[float]]:
    """Each model's [throughput, P95 ms] from a mix's measurement, as stored."""
    return {name: [round(m["throughput"], 2), round(m["p95_ms"], 3)] for name, m in models.items()}


def rejected(study: optuna.Study) -> dict[int, str]:
    """Candidates that failed the current final re-measurement, with the first reason."""
    if not is_current(study):
        return {}
    return {int(n): run["failures"][0] for n, run in study.user_attrs[_ATTR]["runs"].items() if run.get("failures")}


def is_current(study: optuna.Study) -> bool:
    """Re-measured after the last trial (a study resumed with more trials needs it again)."""
    found = study.user_attrs.get(_ATTR)
    return found is not None and found["after_trials"] == len(study.get_trials(deepcopy=False))


def confirmed(study: optuna.Study) -> list[FrozenTrial]:
    """The trials to choose from: after a re-measurement, the candidates that passed it, with the
    median of their measurements as values; before one (or without), every trial as measured."""
    trials = study.get_trials(deepcopy=False)
    if not is_current(study):  # never re-measured, or trials were added since
        return trials
    found = study.user_attrs[_ATTR]
    model_slos = settings_of(study).limits.model_slos
    result = []
    for t in trials:
        runs = found["runs"].get(str(t.number))
        if runs is not None and t.state == TrialState.COMPLETE and not runs.get("failures"):
            view = copy.deepcopy(t)
            values = runs.get("values") or list(zip(runs["throughput"], runs["p95_ms"], strict=True))  # older studies
            view.values = [statistics.median(v[0] for v in values), statistics.median(v[1] for v in values)]
            view.user_attrs[_ATTR] = runs
            if model_slos:  # a model's median P95 over its own SLO: never chosen
                view.user_attrs[Key.OVER_SLO] = any(p95 > model_slos[name]
                                                    for name, (_, p95) in tr.models_of(view).items()
                                                    if name in model_slos)
            result.append(view)
    return result
