"""The Optuna study: maximize throughput, minimize P95, one trial per config.

Ask-and-tell rather than `study.optimize`, because a trial here can end four ways: measured,
failed with Triton's reason, answered from an identical earlier config, or cut off (Ctrl-C, or its
worker died and stopped beating): then its knobs are queued again, so a rerun of the same command,
or another worker, measures them and no trial is lost.
"""
from __future__ import annotations

import dataclasses
import math
import threading
import time
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import optuna
from optuna.trial import FrozenTrial, TrialState
from tqdm import tqdm

from tuner.errors import ConfigError, TunerError
from tuner.evaluate import SERVER_DIED, Evaluator, Outcome
from tuner.modelconfig import ModelConfig, apply_knobs, fingerprint, render_pbtxt
from tuner.select import choose, pareto_front
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
    max_memory_mib: float | None = None  # likewise: the server's resident memory
    max_output_error: float | None = None  # likewise: outputs vs the baseline's, relative to their scale


_VIOLATION = "slo_violation_ms"
_MEMORY_VIOLATION = "memory_violation_mib"
_OUTPUT_VIOLATION = "output_violation"


_LIMITS = (_VIOLATION, _MEMORY_VIOLATION, _OUTPUT_VIOLATION)  # how far over each limit (<= 0: within it)


def _constrain(trial: optuna.Trial, attrs: dict) -> None:
    """Each limit's violation as an Optuna constraint of the trial, so TPE learns where the
    infeasible configs are and samples away from them."""
    for key in _LIMITS:
        if key in attrs:
            trial.set_constraint(key, attrs[key])


# Optuna warns that heartbeats are meant for study.optimize; with ask-and-tell we beat ourselves.
warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed to be used with Study.optimize")
warnings.filterwarnings("ignore", message=".*fail_stale_trials is experimental")

HEARTBEAT_S = 5  # a running trial's worker proves it is alive this often
GRACE_S = 20  # a trial silent this long lost its worker (killed, host gone): it is run again


def storage_for(url: str) -> optuna.storages.RDBStorage:
    """An RDB storage with heartbeats, so trials of a worker that died are found and run again.
    SQLite serves several local workers (they wait for its lock); PostgreSQL/MySQL serve hosts."""
    engine = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {"pool_pre_ping": True}
    if url.startswith("sqlite:///"):  # created only now: refused input leaves nothing on disk
        try:
            Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:  # a path under a regular file, no permission
            raise ConfigError(f"--storage {url}: cannot create its folder: {e}") from None
    try:
        with warnings.catch_warnings():  # heartbeats are "experimental" only in name, since Optuna 2.9
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.storages.RDBStorage(url, engine_kwargs=engine, heartbeat_interval=HEARTBEAT_S,
                                              grace_period=GRACE_S, heartbeat_stale_trial_callback=_enqueue_again)
    except (ImportError, ModuleNotFoundError) as e:
        raise ConfigError(f"--storage {url}: its database driver is not installed ({e}); "
                          "for PostgreSQL: pip install 'tuner[postgres]'") from None
    except Exception as e:  # SQLAlchemy's errors: bad URL, server down, wrong password
        raise ConfigError(f"--storage {url}: {e}") from None


def open_study(storage: str, name: str, settings: StudySettings, seed: int | None = None,
               start_with: tuple[dict, ...] = ()) -> optuna.Study:
    """Creates the study, or joins it (a resume, or another worker). Whoever creates it queues the
    baseline (the user's own config) and the known-good configs, so every worker shares one queue."""
    # With an SLO, TPE models the infeasible region from each trial's violation and samples away
    # from it, rather than the SLO merely filtering the results at the end.
    # constant_liar: trials running on other workers count as bad for now, so parallel workers do
    # not all sample the same promising config at once.
    sampler = optuna.samplers.TPESampler(multivariate=True, seed=seed, n_startup_trials=8, constant_liar=True)
    rdb = storage_for(storage)
    wanted = dataclasses.asdict(settings)
    try:
        study = optuna.create_study(storage=rdb, study_name=name, directions=DIRECTIONS, sampler=sampler)
    except optuna.exceptions.DuplicatedStudyError:
        study = optuna.load_study(study_name=name, storage=rdb, sampler=sampler)
        _check_settings(study, wanted, storage)
        return study
    with warnings.catch_warnings():  # experimental only in name; the dashboard reads these
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study.set_metric_names(METRIC_NAMES)
    study.set_user_attr("settings", wanted)
    study.enqueue_trial({}, user_attrs={"role": "baseline"})
    for params in start_with:  # known-good configs next, before the sampler guesses
        study.enqueue_trial(params, user_attrs={"role": "start_with"}, skip_if_exists=True)
    return study


def _check_settings(study: optuna.Study, wanted: dict, storage: str) -> None:
    deadline = time.monotonic() + 10
    while (found := study.user_attrs.get("settings")) is None and time.monotonic() < deadline:
        time.sleep(0.2)  # another worker has just created it and is writing its settings
    if found != wanted:
        changed = sorted(k for k in wanted if (found or {}).get(k) != wanted[k])
        raise ConfigError(f"study '{study.study_name}' in {storage} was made with other settings "
                          f"({', '.join(changed)}): its trials would not compare; pass --study-name for a new study")


def counted(trials: list[FrozenTrial]) -> list[FrozenTrial]:
    """Trials that count towards --trials: measured, or failed for a reason of their own (not cut
    off by Ctrl-C, nor failed by Optuna because their worker died: those have no reason)."""
    return [t for t in trials
            if t.state == TrialState.COMPLETE
            or (t.state == TrialState.FAIL and t.user_attrs.get("fail_reason") not in (None, INTERRUPTED))]


def _interrupt(study: optuna.Study, trial: optuna.Trial) -> None:
    """Ctrl-C inside a trial: mark it and queue its knobs again, so a rerun measures them."""
    trial.set_user_attr("fail_reason", INTERRUPTED)
    study.tell(trial, state=TrialState.FAIL)
    _enqueue_again(study, study._storage.get_trial(trial._trial_id))


def _enqueue_again(study: optuna.Study, trial: FrozenTrial) -> None:
    """Queues a cut-off trial's knobs again (also Optuna's callback for a trial whose worker died)."""
    role = trial.user_attrs.get("role")
    if role == "baseline" or trial.params:  # a trial cut off before sampling has nothing to repeat
        study.enqueue_trial(trial.params, user_attrs={"role": role} if role in ("baseline", "start_with") else {})


@contextmanager
def _heartbeat(study: optuna.Study, trial: optuna.Trial):
    """Beats for `trial` from a thread while the block runs (ask-and-tell gets none from Optuna)."""
    storage, stop = study._storage, threading.Event()

    def beat() -> None:
        while True:
            storage.record_heartbeat(trial._trial_id)
            if stop.wait(HEARTBEAT_S):
                return

    thread = threading.Thread(target=beat, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def _attrs(config: ModelConfig, outcome: Outcome, settings: dict) -> dict:
    """What a trial records: the config, the measurement and, for each limit set, how far over it."""
    attrs = {"config_pbtxt": render_pbtxt(config), "fingerprint": fingerprint(config),
             "load_s": round(outcome.load_s, 3)}
    if outcome.memory_mib is not None:
        attrs["memory_mib"] = round(outcome.memory_mib, 1)
    if outcome.measurement is None:
        return attrs
    if outcome.output_error is not None:
        attrs["output_error"] = float(f"{outcome.output_error:.3g}")
        if settings.get("max_output_error") is not None:
            # relative to the limit, so the sampler sees how far over it a config was
            attrs[_OUTPUT_VIOLATION] = outcome.output_error / settings["max_output_error"] - 1
            if attrs[_OUTPUT_VIOLATION] > 0:
                attrs["outputs_differ"] = True  # measured, but never a candidate to choose
    attrs["metrics"] = _jsonable(dataclasses.asdict(outcome.measurement))
    if settings.get("slo_p95_ms") is not None:
        attrs[_VIOLATION] = outcome.measurement.p95_ms - settings["slo_p95_ms"]
    if settings.get("max_memory_mib") is not None:
        attrs[_MEMORY_VIOLATION] = (outcome.memory_mib or 0.0) - settings["max_memory_mib"]
        if attrs[_MEMORY_VIOLATION] > 0:
            attrs["over_memory"] = True  # measured, but never a candidate to choose
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


def run_trial(study: optuna.Study, evaluator: Evaluator, base: ModelConfig, space: SearchSpace,
              worker: str = "", screening: bool = True) -> FrozenTrial:
    """Asks for the next trial (queued ones first), measures its config, tells the result."""
    trial = study.ask()
    try:
        with _heartbeat(study, trial):
            _measure(study, trial, evaluator, base, space, worker, screening)
    except KeyboardInterrupt:
        _interrupt(study, trial)
        raise
    done = study._storage.get_trial(trial._trial_id)
    if done.user_attrs.get("role") == "baseline" and done.state == TrialState.FAIL:
        _enqueue_again(study, done)  # a rerun, once the model is fixed, starts from the baseline
        raise TunerError("the model's own config does not run, so there is nothing to tune from: "
                         f"{done.user_attrs['fail_reason']}")
    return done


def _measure(study: optuna.Study, trial: optuna.Trial, evaluator: Evaluator, base: ModelConfig,
             space: SearchSpace, worker: str, screening: bool) -> None:
    if worker:
        trial.set_user_attr("worker", worker)
    if trial.user_attrs.get("role") == "baseline":  # the user's own config: every gain is against it
        config = base
    else:
        knobs = space.suggest(trial)
        config = apply_knobs(base, knobs)
        trial.set_user_attr("role", trial.user_attrs.get("role", "search"))
        trial.set_user_attr("knobs", knobs)
        earlier = _same_config(study, fingerprint(config), trial.number)
        if earlier is not None:  # identical config: reuse its result instead of measuring again
            trial.set_user_attr("duplicate_of", earlier.number)
            for key in ("config_pbtxt", "fingerprint", "metrics", "fail_reason", "memory_mib", "over_memory",
                        "output_error", "outputs_differ", *_LIMITS):
                if key in earlier.user_attrs:
                    trial.set_user_attr(key, earlier.user_attrs[key])
            _constrain(trial, earlier.user_attrs)
            if earlier.state == TrialState.COMPLETE:
                study.tell(trial, earlier.values)
            else:
                study.tell(trial, state=TrialState.FAIL)
            return
    # the baseline and the known-good configs are measured fully: screening is for the sampler's guesses
    screen = _worth_measuring(study) if screening and trial.user_attrs["role"] == "search" else None
    outcome = evaluator.evaluate(config, screen)
    if outcome.screened:
        trial.set_user_attr("screened", True)
    attrs = _attrs(config, outcome, study.user_attrs["settings"])
    for key, value in attrs.items():
        trial.set_user_attr(key, value)
    _constrain(trial, attrs)
    if outcome.ok:
        study.tell(trial, _values(outcome))
    else:
        trial.set_user_attr("fail_reason", outcome.reason)
        study.tell(trial, state=TrialState.FAIL)


SCREEN_MARGIN = 1.15  # a screened config this far behind a front point on both objectives is not measured fully


def _worth_measuring(study: optuna.Study):
    """The screening rule: measure fully unless a front point beats the short measurement by the
    margin on both objectives at once (15% more throughput and 15% less P95), far beyond the noise
    of a short measurement; the front itself always gets full measurements."""
    front = [t.values for t in pareto_front(study.get_trials(deepcopy=False)) if not t.user_attrs.get("screened")]

    def worth(throughput: float, p95_ms: float) -> bool:
        return not any(thr >= throughput * SCREEN_MARGIN and p95 * SCREEN_MARGIN <= p95_ms for thr, p95 in front)

    return worth


def _same_config(study: optuna.Study, key: str, number: int) -> FrozenTrial | None:
    """An earlier trial of the same config whose result stands for this one. Not one cut off, and
    not one whose server died: a crash may have come from outside (OOM killer, a kill), so the
    config is measured again, and fails again if it was the cause."""
    for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.FAIL)):
        reason = t.user_attrs.get("fail_reason", "")
        if t.number != number and t.user_attrs.get("fingerprint") == key \
                and reason != INTERRUPTED and not reason.startswith(SERVER_DIED):
            return t
    return None


def search(study: optuna.Study, evaluator: Evaluator, base: ModelConfig, space: SearchSpace, trials: int,
           slo_p95_ms: float | None = None, progress: bool = True, worker: str = "", screening: bool = True) -> None:
    """Runs trials until the study holds `trials` counted ones (the baseline is the first). Any
    number of workers, on this host or others, may run this on the same study at once."""
    with tqdm(total=trials, disable=not progress, unit="trial", dynamic_ncols=True) as bar:
        while True:
            optuna.storages.fail_stale_trials(study)  # a dead worker's trial goes back to the queue
            now = study.get_trials(deepcopy=False)
            done = len(counted(now))
            bar.update(min(done, trials) - bar.n)
            if done >= trials:
                return
            if done + sum(t.state == TrialState.RUNNING for t in now) >= trials:
                time.sleep(HEARTBEAT_S)  # the last trials are running elsewhere: wait for them
                continue
            last = run_trial(study, evaluator, base, space, worker, screening)
            bar.set_postfix_str(best_text(study, slo_p95_ms, last))


def best_text(study: optuna.Study, slo_p95_ms: float | None, last: FrozenTrial | None = None) -> str:
    best = choose(study.get_trials(deepcopy=False), slo_p95_ms=slo_p95_ms)
    text = f"best #{best.number}: {best.values[0]:.1f}/s p95 {best.values[1]:.1f} ms" if best else "no best yet"
    if last is not None and last.state == TrialState.FAIL:
        text += f" | #{last.number} failed"
    return text

