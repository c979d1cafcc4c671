"""The Optuna study: raise the goal's number (throughput by default), lower its cost (P95 by
default; tuner.study.goal), one trial per config.

Ask-and-tell rather than `study.optimize`, because a trial here can end four ways (tuner.study.trials):
measured, failed for a reason of the config's own (told as PRUNED, so the sampler learns from it),
answered from an identical earlier config, or cut off by the environment (Ctrl-C, its worker died,
the server could not be brought back): then its knobs are queued again, so a rerun of the same
command, or another worker, measures them and no trial is lost.
"""
from __future__ import annotations

import dataclasses
import threading
import time
import warnings
from contextlib import contextmanager

import optuna
from optuna.trial import FrozenTrial, TrialState
from tqdm import tqdm

from tuner.config import pipeline
from tuner.config.modelconfig import ModelConfig, apply_knobs, render_pbtxt
from tuner.config.pipeline import Members
from tuner.config.space import SearchSpace
from tuner.errors import TunerError
from tuner.faults import OUTAGE_S, EnvironmentBroken, Failure
from tuner.measure.evaluate import Evaluator, Outcome
from tuner.measure.load import PRECISION, Interval, Race
from tuner.study import guide
from tuner.study import trials as tr
from tuner.study.goal import Goal, Objective
from tuner.study.selection import choose, pareto_front
from tuner.study.settings import Limits, StudySettings, check_settings, settings_of
from tuner.study.storage import HEARTBEAT_S, StorageLost, storage_for
from tuner.study.trials import CONFIG_FAILED, LIMITS, MEMORY_VIOLATION, OUTPUT_VIOLATION, SLO_VIOLATION, Key, Role

DIRECTIONS = [optuna.study.StudyDirection.MAXIMIZE, optuna.study.StudyDirection.MINIMIZE]


def _constrain(trial: optuna.Trial, attrs: dict) -> None:
    """Each limit's violation as an Optuna constraint of the trial, so TPE learns where the
    infeasible configs are and samples away from them."""
    for key in (*LIMITS, CONFIG_FAILED):
        if key in attrs:
            trial.set_constraint(key, attrs[key])


# Optuna warns that heartbeats are meant for study.optimize; with ask-and-tell we beat ourselves.
warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed to be used with Study.optimize")
warnings.filterwarnings("ignore", message=".*fail_stale_trials is experimental")


def open_study(storage: str, name: str, settings: StudySettings, seed: int | None = None,
               start_with: tuple[dict, ...] = (), wait_s: float = OUTAGE_S) -> optuna.Study:
    """Creates the study, or joins it (a resume, or another worker). Whoever creates it queues the
    search space's known-good configs first, so that a good config is in hand within seconds,
    then the user's own config (the baseline) that every gain is measured against. Both are
    measured before the sampler guesses; whether the model's own config runs at all is checked
    before any trial (`Evaluator.take_reference`), so a broken model spends none."""
    # With an SLO, TPE models the infeasible region from each trial's violation and samples away
    # from it, rather than the SLO merely filtering the results at the end.
    # constant_liar: trials running on other workers count as bad for now, so parallel workers do
    # not all sample the same promising config at once.
    sampler = optuna.samplers.TPESampler(multivariate=True, seed=seed, n_startup_trials=8, constant_liar=True)
    rdb = storage_for(storage, _enqueue_again, wait_s)
    wanted = dataclasses.asdict(settings)
    try:
        study = optuna.create_study(storage=rdb, study_name=name, directions=DIRECTIONS, sampler=sampler)
    except optuna.exceptions.DuplicatedStudyError:
        study = optuna.load_study(study_name=name, storage=rdb, sampler=sampler)
        check_settings(study, wanted, storage)
        return study
    with warnings.catch_warnings():  # experimental only in name; the dashboard reads these
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study.set_metric_names(settings.goal.metric_names)
    study.set_user_attr("settings", wanted)
    for params in start_with:
        study.enqueue_trial(params, user_attrs={Key.ROLE: Role.START_WITH.value})
    study.enqueue_trial({}, user_attrs={Key.ROLE: Role.BASELINE.value})
    return study


def _cut_off(study: optuna.Study, trial: optuna.Trial, failure: Failure, reason: str) -> None:
    """The environment cut the trial off (Ctrl-C, the server lost, a tuner bug): it fails without
    counting, and its knobs are queued again, so a rerun measures them."""
    trial.set_user_attr(Key.FAILURE, failure.value)
    trial.set_user_attr(Key.FAIL_REASON, reason)
    study.tell(trial, state=TrialState.FAIL)
    _enqueue_again(study, tr.frozen(trial))


def _enqueue_again(study: optuna.Study, trial: FrozenTrial) -> None:
    """Queues a cut-off trial's knobs again (also Optuna's callback for a trial whose worker died)."""
    role = tr.role(trial)
    if role is Role.BASELINE or trial.params:  # a trial cut off before sampling has nothing to repeat
        study.enqueue_trial(trial.params, user_attrs={Key.ROLE: role.value}
                            if role in (Role.BASELINE, Role.START_WITH) else {})


@contextmanager
def _heartbeat(study: optuna.Study, trial: optuna.Trial):
    """Beats for `trial` from a thread while the block runs (ask-and-tell gets none from Optuna)."""
    storage: optuna.storages.RDBStorage = trial.storage  # type: ignore[assignment]  # storage_for made it
    trial_id, stop = tr.trial_id(trial), threading.Event()

    def beat() -> None:
        while True:
            try:
                storage.record_heartbeat(trial_id)
            except optuna.exceptions.StorageInternalError:
                pass  # the storage is out of reach for now (tuner.study.storage): the next beat may land
            if stop.wait(HEARTBEAT_S):
                return

    thread = threading.Thread(target=beat, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def _attrs(config: ModelConfig, outcome: Outcome, limits: Limits, others: Members) -> dict:
    """What a trial records: the config (and the other models', tuner.run.model), the measurement (with a
    capacity goal: at capacity, and every rate tried) and, for each limit set, how far over it."""
    attrs: dict = {Key.CONFIG: render_pbtxt(config), Key.FINGERPRINT: pipeline.fingerprint(config, others),
                   Key.LOAD_S: round(outcome.load_s, 3)}
    if others:
        attrs[Key.MEMBERS] = pipeline.render(others)
    if outcome.memory_mib is not None:
        attrs[Key.MEMORY_MIB] = round(outcome.memory_mib, 1)
    if outcome.failure is not None:
        attrs.update({Key.FAILURE: outcome.failure.value, Key.FAIL_REASON: outcome.reason, CONFIG_FAILED: 1.0})
    if outcome.measurement is None:
        return attrs
    if outcome.output_error is not None:
        attrs[Key.OUTPUT_ERROR] = float(f"{outcome.output_error:.3g}")
        if limits.max_output_error is not None:
            # relative to the limit, so the sampler sees how far over it a config was
            attrs[OUTPUT_VIOLATION] = outcome.output_error / limits.max_output_error - 1
            if attrs[OUTPUT_VIOLATION] > 0:
                attrs[Key.OUTPUTS_DIFFER] = True  # measured, but never a candidate to choose
    attrs[Key.METRICS] = tr.jsonable(dataclasses.asdict(outcome.measurement))
    if outcome.capacity is not None:
        attrs[Key.CURVE] = tr.jsonable([[s.offered, s.measurement.throughput, s.measurement.p95_ms,
                                         s.measurement.errors, s.ok] for s in outcome.capacity.steps])
    if limits.slo_p95_ms is not None:
        attrs[SLO_VIOLATION] = outcome.measurement.p95_ms - limits.slo_p95_ms
    elif limits.model_slos:  # several models, each with its own SLO
        attrs[SLO_VIOLATION] = outcome.measurement.slo_excess_ms(limits.model_slos)
        if attrs[SLO_VIOLATION] > 0:
            attrs[Key.OVER_SLO] = True  # measured, but never a candidate to choose
    if limits.max_memory_mib is not None:
        attrs[MEMORY_VIOLATION] = (outcome.memory_mib or 0.0) - limits.max_memory_mib
        if attrs[MEMORY_VIOLATION] > 0:
            attrs[Key.OVER_MEMORY] = True  # measured, but never a candidate to choose
    return attrs


def run_trial(study: optuna.Study, evaluator: Evaluator, base: ModelConfig, space: SearchSpace,
              worker: str = "", precision: float | None = PRECISION, explore: bool = False,
              others: Members | None = None) -> FrozenTrial:
    """Asks for the next trial (queued ones first), measures its config, tells the result. No
    exception leaves it RUNNING: whatever cuts it off fails it with the reason and queues it again.
    `explore` proposes this one at random (after a repeat: the guided sampler, told nothing new,
    would propose the same config again). Its config is raced to `precision`, a proposal's against
    the front (None: measured fully)."""
    guided = study.sampler
    if explore:
        study.sampler = optuna.samplers.RandomSampler()
    try:
        trial = study.ask()
        with _heartbeat(study, trial):
            _measure(study, trial, evaluator, base, space, worker, precision, others or {})
    except KeyboardInterrupt:
        _cut_off(study, trial, Failure.INTERRUPTED, "interrupted")
        raise
    except StorageLost:
        raise  # nothing can be written: the rerun finds the trial stale and measures it again
    except EnvironmentBroken as e:
        _cut_off(study, trial, Failure.SERVER_DOWN, str(e))
        raise
    except Exception as e:
        _cut_off(study, trial, Failure.TUNER_ERROR, f"{type(e).__name__}: {e}")
        raise
    finally:
        study.sampler = guided
    done = tr.frozen(trial)
    if tr.is_baseline(done) and tr.config_failed(done):
        _enqueue_again(study, done)  # a rerun, once the model is fixed, starts from the baseline
        raise TunerError(f"the model's own config does not run, so there is nothing to tune from: {tr.reason(done)}")
    return done


def _measure(study: optuna.Study, trial: optuna.Trial, evaluator: Evaluator, base: ModelConfig,
             space: SearchSpace, worker: str, precision: float | None, bases: Members) -> None:
    if worker:
        trial.set_user_attr(Key.WORKER, worker)
    if tr.role(trial) is Role.BASELINE:  # the user's own config: every gain is against it
        config, others = base, bases
    else:
        knobs = space.suggest(trial)
        config, others = apply_knobs(base, knobs), pipeline.apply(bases, knobs)
        trial.set_user_attr(Key.ROLE, (tr.role(trial) or Role.SEARCH).value)
        trial.set_user_attr(Key.KNOBS, knobs)
        earlier = _same_config(study, pipeline.fingerprint(config, others), trial.number)
        if earlier is not None:  # identical config: reuse its result instead of measuring again
            _repeat(study, trial, earlier)
            return
    settings = settings_of(study)
    goal = settings.goal
    race = None if precision is None else _race(study, precision, goal, against_front=tr.role(trial) is Role.SEARCH)
    outcome = evaluator.evaluate(config, race, first_rate=_first_rate(study), others=others)
    trial.set_user_attr(Key.ATTEMPTS, outcome.attempts)
    if outcome.stopped_early:
        trial.set_user_attr(Key.STOPPED_EARLY, True)
    attrs = _attrs(config, outcome, settings.limits, others)
    for key, value in attrs.items():
        trial.set_user_attr(key, value)
    _constrain(trial, attrs)
    if outcome.measurement is not None:
        study.tell(trial, goal.values(outcome, config, others.values()))
    else:
        study.tell(trial, state=TrialState.PRUNED)


def _repeat(study: optuna.Study, trial: optuna.Trial, earlier: FrozenTrial) -> None:
    """Answers a proposal of a config already measured: its result is shown on the trial, which is
    told as FAIL, so it neither counts toward --trials nor tells the sampler the same values again
    (which would pull it back to a known point); the study asks for another config."""
    trial.set_user_attr(Key.DUPLICATE_OF, earlier.number)
    for key in tr.RESULT_KEYS:
        if key in earlier.user_attrs:
            trial.set_user_attr(key, earlier.user_attrs[key])
    study.tell(trial, state=TrialState.FAIL)


def _race(study: optuna.Study, precision: float, goal: Goal = Goal(), against_front: bool = True) -> Race:
    """Racing against the front: a config stops as soon as its intervals lie beyond some front
    point's on both objectives at once (less throughput for certain, more P95 for certain), once
    no front point can match it on both (more throughput or less P95 for certain, against each),
    or once it is as precise as asked; the front itself is made of fully measured or settled trials.
    Other goals have no such intervals to race on: only precision stops them (a capacity search
    races each of its steps on the SLO itself). The configs the front starts from (`against_front`
    False: the baseline, `start_with`) race nothing: they stop once as precise as a front config,
    or once an unraced measurement would (the baseline is measured again beside the candidates at
    the end; a config whose tail keeps its P95 interval wide would otherwise run to the time limit)."""
    if not against_front:
        return Race(lambda *_: False, precision, full_rule=True)
    if not goal.is_default:
        return Race(lambda *_: False, precision)
    front = [_intervals(t) for t in pareto_front(study.get_trials(deepcopy=False))
             if not tr.stopped_early(t)]

    def behind(throughput: Interval, p95_ms: Interval, _: float | None) -> bool:
        return any(thr[0] > throughput[1] and p95[1] < p95_ms[0] for thr, p95 in front)

    def ahead(throughput: Interval, p95_ms: Interval) -> bool:
        """No front config can be as fast and as quick: it joins the front, and the candidates'
        re-measurement at the end settles its figures."""
        return bool(front) and all(throughput[0] > thr[1] or p95_ms[1] < p95[0] for thr, p95 in front)

    return Race(behind, precision, ahead=ahead)


def _first_rate(study: optuna.Study) -> float | None:
    """Where a capacity search starts: the best capacity so far (does this config hold it?)."""
    if settings_of(study).goal.objective is not Objective.CAPACITY:
        return None
    return max((t.values[0] for t in study.get_trials(deepcopy=False) if tr.measured(t) and t.values[0] > 0),
               default=None)


def _intervals(t: FrozenTrial) -> tuple[Interval, Interval]:
    """A measured trial's throughput and P95 intervals (its values where none were stored)."""
    metrics = t.user_attrs.get(Key.METRICS, {})

    def interval(key: str, value: float) -> Interval:
        stored = metrics.get(key)
        return (stored[0], stored[1]) if stored and None not in stored else (value, value)

    return interval("throughput_ci", t.values[0]), interval("p95_ci_ms", t.values[1])


def _same_config(study: optuna.Study, key: str, number: int) -> FrozenTrial | None:
    """An earlier trial of the same config whose result stands for this one: measured, or failed
    for a reason of the config's own (never one the environment cut off)."""
    for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)):
        if t.number != number and t.user_attrs.get(Key.FINGERPRINT) == key and tr.counts(t):
            return t
    return None


MAX_REPEATS = 25  # proposals in a row of configs already measured: the space is measured out


def search(study: optuna.Study, evaluator: Evaluator, base: ModelConfig, space: SearchSpace, trials: int,
           slo_p95_ms: float | None = None, progress: bool = True, worker: str = "",
           precision: float | None = PRECISION, others: Members | None = None, guided: bool = False) -> None:
    """Runs trials until the study holds `trials` counted ones (the known-good configs and the baseline first), or the
    sampler proposes only configs already measured (a space with fewer distinct configs), or,
    `guided`, the performance model finds nothing left worth measuring (tuner.study.guide). Any
    number of workers, on this host or others, may run this on the same study at once."""
    repeats = 0
    with tqdm(total=trials, disable=not progress, unit="trial", dynamic_ncols=True) as bar:
        while True:
            optuna.storages.fail_stale_trials(study)  # a dead worker's trial goes back to the queue
            now = study.get_trials(deepcopy=False)
            done = len(tr.counted(now))
            bar.update(min(done, trials) - bar.n)
            if done >= trials:
                return
            if done + sum(t.state == TrialState.RUNNING for t in now) >= trials:
                time.sleep(HEARTBEAT_S)  # the last trials are running elsewhere: wait for them
                continue
            if guided and not any(t.state == TrialState.WAITING for t in now):
                step = guide.next_step(study, space, base, evaluator.spec, settings_of(study).goal.chooses_within(
                    slo_p95_ms), others)
                if step.done:
                    study.set_user_attr(guide.DONE_ATTR, {"after": done, "of": trials, "why": step.why})
                    bar.write(f"search done after {done} of {trials} trials: {step.why}")
                    return
                if step.proposal is not None:
                    study.enqueue_trial(step.proposal.params,
                                        user_attrs={Key.PREDICTED: guide.predicted_attr(step.proposal)})
                elif step.probe is not None:
                    study.enqueue_trial(step.probe)
            last = run_trial(study, evaluator, base, space, worker, precision, explore=repeats > 0, others=others)
            repeats = repeats + 1 if tr.is_repeat(last) else 0
            if repeats >= MAX_REPEATS:
                bar.write(f"the sampler proposed {repeats} configs in a row that were already measured: the space "
                          f"has no more than about {done} distinct configs, all measured (of --trials {trials})")
                return
            bar.set_postfix_str(best_text(study, slo_p95_ms, last))


def best_text(study: optuna.Study, slo_p95_ms: float | None, last: FrozenTrial | None = None) -> str:
    goal = settings_of(study).goal
    best = choose(study.get_trials(deepcopy=False), slo_p95_ms=goal.chooses_within(slo_p95_ms))
    text = f"best #{best.number}: {goal.text(best.values, slo_p95_ms)}" if best else "no best yet"
    if last is not None and tr.failure(last) is not None:
        text += f" | #{last.number} failed"
    return text

