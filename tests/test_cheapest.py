"""Exporting the cheapest of the configs the measurements cannot tell apart (pure functions over a
real in-memory Optuna study)."""
import optuna
import pytest

from tuner.study.cheapest import Cost, alike, as_good, cheapest, cost_of
from tuner.study.trials import Key

pytestmark = pytest.mark.unit


def _config(instances: int, max_batch: int = 8) -> str:
    return (f'name: "m"\nbackend: "pytorch"\nmax_batch_size: {max_batch}\n'
            f'instance_group [ {{ count: {instances} kind: KIND_GPU }} ]\n')


def _trial(thr, p95, thr_ci, p95_ci, instances, max_batch=8, **attrs):
    return optuna.trial.create_trial(values=[thr, p95], user_attrs={
        Key.CONFIG: _config(instances, max_batch),
        Key.METRICS: {"throughput": thr, "p95_ms": p95, "throughput_ci": thr_ci, "p95_ci_ms": p95_ci},
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
        _trial(1420, 41.5, [1380, 1470], [39, 43], 1))
    trials = [chosen, base, heavy, over_slo]
    assert cheapest(chosen, trials, slo_p95_ms=41.2).number == chosen.number
    assert cheapest(chosen, trials).number == over_slo.number


def test_equal_instances_go_to_the_smaller_max_batch():
    big, small = _trials(_trial(1442, 40.0, [1400, 1480], [38, 42], 2, max_batch=16),
                         _trial(1430, 40.5, [1390, 1475], [38, 43], 2, max_batch=8))
    assert cheapest(big, [big, small]).number == small.number


def _runs(*runs):
    """A final re-measurement's record: each run's (throughput, its interval, P95, its interval)."""
    return {Key.REMEASURED: {"throughput": [r[0] for r in runs], "throughput_ci": [r[1] for r in runs],
                             "p95_ms": [r[2] for r in runs], "p95_ci_ms": [r[3] for r in runs]}}


def test_rounds_that_each_put_one_config_ahead_tell_them_apart_however_wide_their_spans():
    # the demo's knee and a cheaper config, each measured three times: the spans of their
    # intervals overlap (149.8-182.8 against 133.4-152.7), every round has the knee 13-20 % ahead
    knee, cheaper = _trials(
        _trial(164.5, 62.3, [161.7, 182.8], [59.9, 67.0], 2, max_batch=1, **_runs(
            (172.2, [161.7, 182.8], 62.3, [59.9, 67.0]), (163.7, [155.0, 172.4], 62.1, [58.6, 80.6]),
            (164.5, [149.8, 179.2], 70.2, [63.5, 84.2]))),
        _trial(142.8, 69.1, [137.4, 148.3], [59.6, 62.3], 1, max_batch=1, **_runs(
            (142.8, [137.4, 148.3], 60.1, [59.6, 62.3]), (141.5, [134.3, 148.7], 69.1, [67.5, 71.3]),
            (143.1, [133.4, 152.7], 72.1, [68.3, 90.3]))))
    assert not alike(knee, cheaper)
    assert cheapest(knee, [knee, cheaper]).number == knee.number


def test_drift_that_moves_both_alike_cancels_and_ratios_that_scatter_across_one_do_not_tell_apart():
    # the machine slowed in the second round: both configs lost 10 %, the first stayed 8 % ahead
    ahead, behind = _trials(
        _trial(150, 50.0, [145, 155], [48, 52], 2, **_runs(
            (152, [145, 159], 50.0, [48, 52]), (137, [131, 143], 50.5, [48, 53]), (150, [144, 156], 50.2, [48, 52]))),
        _trial(140, 50.3, [135, 145], [48, 52], 1, **_runs(
            (141, [135, 147], 50.3, [48, 52]), (126, [121, 131], 50.6, [48, 53]), (139, [134, 144], 50.0, [48, 52]))))
    assert not alike(ahead, behind) and cheapest(ahead, [ahead, behind]).number == ahead.number
    # ahead in one round, behind in the next: nothing to tell them apart by
    one, other = _trials(
        _trial(150, 50.0, [145, 155], [48, 52], 2, **_runs(
            (152, [145, 159], 50.0, [48, 52]), (137, [131, 143], 50.5, [48, 53]), (150, [144, 156], 50.2, [48, 52]))),
        _trial(145, 50.3, [135, 145], [48, 52], 1, **_runs(
            (141, [135, 147], 50.3, [48, 52]), (145, [139, 151], 50.6, [48, 53]), (145, [140, 150], 50.0, [48, 52]))))
    assert alike(one, other) and cheapest(one, [one, other]).number == other.number


def test_an_erratic_config_the_rounds_cannot_tell_apart_is_no_stand_in_when_its_medians_are_worse():
    # the demo on 2 cores: one instance of two threads (125 infer/s by its median, 91-141 across its
    # runs) against three of one thread (152-156 in every run)
    three, erratic = _trials(  # values as the choice sees them: the medians of the runs
        _trial(155.5, 70.7, [149.2, 163.0], [67.9, 74.5], 3, max_batch=1, **_runs(
            (156.1, [149.2, 163.0], 70.7, [67.9, 74.5]), (152.4, [148.5, 156.4], 72.8, [71.5, 75.5]),
            (155.5, [149.3, 161.8], 69.9, [68.4, 72.9]))),
        _trial(125.4, 79.1, [128.7, 153.1], [63.8, 85.0], 1, max_batch=4, **_runs(
            (140.9, [128.7, 153.1], 66.0, [63.8, 85.0]), (125.4, [119.3, 131.4], 79.1, [75.9, 87.1]),
            (90.6, [80.4, 100.8], 117.1, [111.8, 125.1]))))
    assert alike(erratic, three) and not as_good(erratic, three)
    assert cheapest(three, [three, erratic]).number == three.number


def test_the_cost_in_words_names_the_memory_where_that_is_what_differs():
    assert Cost(6, 8, 812.0).text(Cost(6, 8, 901.0)) == "6 instance(s), max batch 8, 812 MiB"
    assert Cost(1, 8, 812.0).text(Cost(3, 8, 812.0)) == "1 instance(s), max batch 8"
