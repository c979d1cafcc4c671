"""Choosing from the Pareto front."""
import optuna
import pytest

from tuner.study.selection import choose, pareto_front

pytestmark = pytest.mark.unit


def _trial(number, thr, p95, **attrs):
    t = optuna.trial.create_trial(values=[thr, p95], user_attrs=attrs)
    t.number = number
    return t


TRIALS = [_trial(0, 100, 50, role="baseline"), _trial(1, 180, 45), _trial(2, 190, 90), _trial(3, 120, 40),
          _trial(4, 140, 70), _trial(5, 180, 45, duplicate_of=1)]


def test_front_holds_only_undominated_measured_trials():
    assert [t.number for t in pareto_front(TRIALS)] == [2, 1, 3]


@pytest.mark.parametrize("policy, expected", [("max-throughput", 2), ("min-p95", 3), ("knee", 1)])
def test_policies(policy, expected):
    assert choose(TRIALS, policy).number == expected


def test_knee_weighs_relative_differences():
    # 0.1 ms of P95 must not outweigh 2.5% of throughput
    close = [_trial(0, 157.9, 66.74), _trial(1, 154.0, 66.66), _trial(2, 138.5, 65.5)]
    assert choose(close).number == 0


def test_slo_picks_highest_throughput_within_it():
    assert choose(TRIALS, slo_p95_ms=65).number == 1
    assert choose(TRIALS, slo_p95_ms=95).number == 2
    assert choose(TRIALS, slo_p95_ms=30) is None
