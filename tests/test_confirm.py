"""Re-measuring the front: which trials are candidates, choosing on their medians, and a candidate
loaded cold (from its own config.pbtxt, as a deployment loads it) before it is exported."""
import dataclasses
import shutil
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState
from support import MODELS, load_study, search

from tuner.config.modelconfig import read_config
from tuner.server import EmbeddedServer
from tuner.study.confirm import _ATTR, candidates, confirmed
from tuner.study.selection import choose
from tuner.study.settings import StudySettings


def _study_with(points):
    """A real (in-memory) Optuna study holding `points`: (throughput, p95, user_attrs), with the
    settings a search stores (no limits)."""
    study = optuna.create_study(directions=["maximize", "minimize"])
    study.set_user_attr("settings", dataclasses.asdict(StudySettings("m", "concurrency 8", "x", {})))
    for thr, p95, attrs in points:
        study.add_trial(optuna.trial.create_trial(values=[thr, p95], user_attrs=attrs))
    return study


POINTS = [(100, 50, {"role": "baseline"}), (180, 45, {}), (190, 90, {}), (120, 40, {}), (140, 70, {}),
          (185, 60, {}), (175, 42, {})]


@pytest.mark.unit
def test_candidates_are_the_baseline_and_what_each_policy_would_pick():
    trials = _study_with(POINTS).get_trials()
    picked = [t.number for t in candidates(trials, limit=4)]
    assert picked[0] == 0  # the baseline, always
    knee, fastest, lowest = choose(trials).number, choose(trials, "max-throughput").number, \
        choose(trials, "min-p95").number
    assert {knee, fastest, lowest} <= set(picked) and len(picked) == 5
    assert 4 not in picked  # dominated: never a candidate


@pytest.mark.unit
def test_choice_after_remeasuring_uses_the_medians():
    study = _study_with(POINTS)
    assert choose(confirmed(study), "max-throughput").number == 2  # before: the single measurements
    # trial 2's 190/s was a lucky draw; re-measured it is slower than trial 5
    study.set_user_attr(_ATTR, {"after_trials": 7, "runs": {
        "0": {"throughput": [100, 98, 101], "p95_ms": [50, 51, 50]},
        "2": {"throughput": [190, 150, 152], "p95_ms": [90, 91, 92]},
        "5": {"throughput": [185, 184, 186], "p95_ms": [60, 61, 59]}}})
    final = confirmed(study)
    assert sorted(t.number for t in final) == [0, 2, 5]
    assert final[1].values == [152, 91] and final[1].user_attrs[_ATTR]["throughput"] == [190, 150, 152]
    assert choose(final, "max-throughput").number == 5
    assert study.trials[2].values == [190, 90]  # the stored trial is untouched


@pytest.mark.unit
def test_racing_stops_a_config_only_once_its_place_against_the_front_is_certain():
    from tuner.study.study import _race

    # the front: (180, 45) with its intervals stored, (120, 40) with none (its values stand for them)
    study = _study_with([(180, 45, {"metrics": {"throughput_ci": [170, 190], "p95_ci_ms": [43, 47]}}),
                         (120, 40, {}), (100, 60, {})])
    race = _race(study, 0.05)
    decided = race.decided

    def behind(throughput, p95_ms):
        return decided(throughput, p95_ms, None)

    assert behind((130, 165), (50, 60))  # below 170/s for certain and above 47 ms for certain
    assert not behind((130, 172), (50, 60))  # might be as fast as (180, 45)
    assert not behind((130, 165), (46, 60))  # might be as quick as (180, 45)
    assert behind((100, 119), (41, 60))  # beyond (120, 40)
    assert not behind((195, 210), (100, 120))  # faster than anything: maybe a new front point
    assert not behind((10, 20), (30, 35))  # quicker than anything
    # no front point can match these on both: they join the front, however imprecise yet
    assert race.ahead((195, 210), (100, 120)) and race.ahead((10, 20), (30, 35))
    assert not race.ahead((185, 200), (44, 46))  # (180, 45) might match it on both
    assert not race.ahead((110, 125), (38, 42))  # (120, 40) might, though (180, 45) cannot
    # the baseline and start_with, which the front starts from, only ever stop once precise
    assert not _race(study, 0.05, against_front=False).decided((130, 165), (50, 60), None)


def _limited_tiny(workdir: Path) -> Path:
    """tiny that refuses more than two instances in its initialize, slow enough that instances matter."""
    repo = workdir / "repo"
    shutil.copytree(MODELS / "tiny", repo / "tiny")
    config = repo / "tiny" / "config.pbtxt"
    config.write_text(config.read_text() + 'parameters [ { key: "max_instances" value { string_value: "2" } },\n'
                      '  { key: "delay_ms" value { string_value: "20" } } ]\n')
    return repo


@pytest.mark.integration
def test_a_config_triton_updates_in_place_but_that_fails_cold_is_never_exported(workdir):
    repo = _limited_tiny(workdir)
    space = workdir / "space.yaml"
    space.write_text("knobs:\n  instance_count: [1, 2, 3]\nstart_with:\n  - {instance_count: 2}\n"
                     "  - {instance_count: 3}\n")
    done = search(workdir, "--search-space", str(space), "--trials", "3", "--remeasure", "1",
                  target=("--model-repository", str(repo), "--model", "tiny"))
    assert done.returncode == 0, done.stderr
    trials = load_study(workdir).get_trials()
    three = next(t for t in trials if t.params == {"instance_count": 3})
    # Triton applied 2 -> 3 instances in place, initialising the new one with the old config: it measured
    assert three.state == TrialState.COMPLETE
    # loaded cold from its own config.pbtxt it fails: rejected by the final re-measurement, with the reason
    assert f"failed #{three.number} (final re-measurement): cold_load loaded cold" in done.stdout
    assert "at most 2" in done.stdout
    exported = read_config(workdir / "out" / "tiny" / "config.pbtxt")
    assert exported.instance_group[0].count <= 2
    deploy = workdir / "deploy"
    shutil.copytree(repo / "tiny", deploy / "tiny")
    shutil.copy(workdir / "out" / "tiny" / "config.pbtxt", deploy / "tiny" / "config.pbtxt")
    with EmbeddedServer(deploy, workdir / "deploy_run") as server:
        server.control.load("tiny")  # from the exported file, as a deployment loads it
        assert server.control.is_model_ready("tiny")
