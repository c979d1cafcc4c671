"""The study's own bookkeeping (tuner.study.study) on a real SQLite storage, with stand-ins for the server
whose answers are pure functions of the config: a bug inside a trial, failed configs the sampler
must learn from, and a study stored by an older version resuming."""
import dataclasses

import pytest
from optuna.trial import TrialState
from support import MODELS

from tuner.config.modelconfig import read_config
from tuner.config.space import parse_space
from tuner.errors import ConfigError
from tuner.faults import Failure
from tuner.measure.evaluate import Outcome
from tuner.measure.measurement import Measurement
from tuner.study import trials as tr
from tuner.study.settings import StudySettings
from tuner.study.study import open_study, run_trial

pytestmark = pytest.mark.unit


def test_no_exception_leaves_a_trial_running(tmp_path):
    """A bug inside a trial (here: an evaluator that raises) fails it with the reason and queues its
    knobs again; it does not count."""
    class Broken:
        def evaluate(self, config, race=None, cold=False, first_rate=None, others=None):
            raise RuntimeError("a bug")

    space = parse_space("knobs:\n  instance_count: [1, 2]\n")
    study = open_study(f"sqlite:///{tmp_path / 's.db'}", "s", StudySettings("tiny", "concurrency 8", "x", {}))
    base = read_config(MODELS / "tiny" / "config.pbtxt")
    with pytest.raises(RuntimeError, match="a bug"):
        run_trial(study, Broken(), base, space)
    (cut, *again) = study.get_trials()
    assert cut.state == TrialState.FAIL and tr.failure(cut) is Failure.TUNER_ERROR and "a bug" in tr.reason(cut)
    assert not tr.counts(cut)
    assert [t.state for t in again] == [TrialState.WAITING] and tr.is_baseline(again[0])


def test_failed_configs_teach_the_sampler_to_avoid_them(tmp_path):
    """The study's own bookkeeping (run_trial) with a stand-in for the server whose answer is a pure
    function of the config: 5 or more instances fail to load, and more instances measure better, so
    a sampler that learns nothing from failures keeps walking into them (Optuna's samplers ignore
    FAIL)."""
    class ByInstances:
        def evaluate(self, config, race=None, cold=False, first_rate=None, others=None):
            count, mbs = config.instance_group[0].count, config.max_batch_size
            if count >= 5:
                return Outcome(None, Failure.LOAD, "load failed: not enough memory for that many instances")
            m = Measurement(10.0 * count + mbs, 1, 1, 5.0 + mbs, 1, (1, 1), (1, 1), 100, 0, 1, 3, True, 0.1)
            return Outcome(m)

    space = parse_space("knobs:\n  instance_count: {low: 1, high: 10}\n  max_batch_size: [1, 2, 4, 8]\n")
    study = open_study(f"sqlite:///{tmp_path / 's.db'}", "s", StudySettings("tiny", "concurrency 8", "x", {}), seed=0)
    base = read_config(MODELS / "tiny" / "config.pbtxt")
    for _ in range(40):
        run_trial(study, ByInstances(), base, space)
    guesses = [t for t in study.get_trials() if t.number > 8]  # after the baseline and 8 random proposals
    failing = [t for t in guesses if tr.config_failed(t)]
    assert all(t.state == TrialState.PRUNED and tr.failure(t) is Failure.LOAD for t in failing)
    assert len(failing) < 0.5 * len(guesses), f"{len(failing)} of {len(guesses)} proposals failed"


def test_a_study_made_before_cuda_shared_memory_resumes(tmp_path):
    """Those stored shared memory as a bool; the same inputs now read "system"."""
    storage, inputs = f"sqlite:///{tmp_path / 's.db'}", {"shapes": {}, "input_data": None}
    old = dataclasses.asdict(StudySettings("tiny", "concurrency 8", "x", {}, inputs={**inputs, "shared_memory": True}))
    study = open_study(storage, "s", StudySettings("tiny", "concurrency 8", "x", {}))
    study.set_user_attr("settings", old)
    system, none = ({**inputs, "shared_memory": memory} for memory in ("system", "none"))
    open_study(storage, "s", StudySettings("tiny", "concurrency 8", "x", {}, inputs=system))
    with pytest.raises(ConfigError, match="other settings"):
        open_study(storage, "s", StudySettings("tiny", "concurrency 8", "x", {}, inputs=none))
