"""Exporting the cheapest of the configs the measurements cannot tell apart (pure functions over a
real in-memory Optuna study)."""
import optuna
import pytest

from tuner.study.cheapest import alike, cheapest, cost_of
from tuner.study.trials import Key

pytestmark = pytest.mark.unit


def _config(instances: int, max_batch: int = 8) -> str:
    return (f'name: "m"\nbackend: "pytorch"\nmax_batch_size: {max_batch}\n'
            f'instance_group [ {{ count: {instances} kind: KIND_GPU }} ]\n')


def _trial(thr, p95, thr_ci, p95_ci, instances, max_batch=8, **attrs):
    return optuna.trial.create_trial(values=[thr, p95], user_attrs={
        Key.CONFIG: _config(instances, max_batch), Key.METRICS: {"throughput_ci": thr_ci, "p95_ci_ms": p95_ci},
        **attrs})


def _trials(*made):
    study = optuna.create_study(directions=["maximize", "minimize"])
    for t in made:
        study.add_trial(t)
    return study.get_trials()


def test_three_instances_that_serve_what_one_serves_give_way_to_one():
    three, one, two = _trials(_trial(1442, 40.0, [1400, 1480], [38, 42], 3),
                              _trial(1420, 41.0, [1380, 1470], [39, 43], 1),
                              _trial(1430, 40.5, [1390, 1475], [38, 43], 2))
    assert alike(three, one) and cost_of(one) < cost_of(two) < cost_of(three)
    assert cheapest(three, [three, one, two]).number == one.number


def test_a_config_the_intervals_tell_apart_is_never_a_stand_in():
    three, slower, worse_tail = _trials(_trial(1442, 40.0, [1400, 1480], [38, 42], 3),
                                        _trial(1200, 40.0, [1150, 1250], [38, 42], 1),  # clearly slower
                                        _trial(1440, 60.0, [1400, 1480], [55, 65], 1))  # clearly longer P95
    assert cheapest(three, [three, slower, worse_tail]).number == three.number


def test_the_baseline_a_limit_breaker_and_the_slo_keep_their_say():
    chosen, base, heavy, over_slo = _trials(
        _trial(1442, 40.0, [1400, 1480], [38, 42], 3),
        _trial(1420, 41.0, [1380, 1470], [39, 43], 1, role="baseline"),  # the user's own: nothing to export
        _trial(1420, 41.0, [1380, 1470], [39, 43], 1, **{Key.OVER_MEMORY: True}),
        _trial(1420, 42.5, [1380, 1470], [39, 43], 1))
    trials = [chosen, base, heavy, over_slo]
    assert cheapest(chosen, trials, slo_p95_ms=42).number == chosen.number
    assert cheapest(chosen, trials).number == over_slo.number


def test_equal_instances_go_to_the_smaller_max_batch():
    big, small = _trials(_trial(1442, 40.0, [1400, 1480], [38, 42], 2, max_batch=16),
                         _trial(1430, 40.5, [1390, 1475], [38, 43], 2, max_batch=8))
    assert cheapest(big, [big, small]).number == small.number
