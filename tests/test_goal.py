"""What a study raises and lowers, and how it says so (pure functions)."""
import dataclasses

import pytest

from tuner.config.modelconfig import parse_config
from tuner.errors import ConfigError
from tuner.measure.capacity import Capacity, Step
from tuner.measure.evaluate import Outcome
from tuner.measure.measurement import Measurement
from tuner.study.goal import Cost, Goal, Objective, check_goal
from tuner.study.settings import Limits, StudySettings

pytestmark = pytest.mark.unit

CONFIG = parse_config('name: "m"\nbackend: "python"\ninstance_group [ { count: 3 } ]\n', "config")
M = Measurement(150.0, 5.0, 8.0, 9.5, 12.0, (9.0, 10.0), (145.0, 155.0), 1000, 0, 2.0, 2, True, 0.1, goodput=140.0)


def test_each_goal_takes_its_values_from_the_outcome():
    at_capacity = Outcome(M, capacity=Capacity(420.0, (Step(420.0, M, True),)), memory_mib=812.0)
    assert Goal().values(at_capacity, CONFIG) == [150.0, 9.5]
    assert Goal(Objective.GOODPUT, Cost.MEMORY).values(at_capacity, CONFIG) == [140.0, 812.0]
    assert Goal(Objective.CAPACITY, Cost.INSTANCES).values(at_capacity, CONFIG) == [420.0, 3.0]
    assert Goal(Objective.CAPACITY).metric_names == ["capacity_req_per_s", "p95_latency_ms"]


def test_each_goal_says_its_values_in_words():
    assert Goal().text([150.0, 9.54], None) == "150.0 infer/s, 9.5 ms p95"
    assert Goal(Objective.CAPACITY, Cost.INSTANCES).text([420.0, 2.0], 50.0) == \
        "holds 420.0 req/s at P95 <= 50 ms, 2 instances"
    assert Goal(Objective.GOODPUT, Cost.MEMORY).text([42.0, 812.4], 50.0) == \
        "goodput 42.0 req/s (P95 <= 50 ms), 812 MiB"


def test_only_throughput_is_filtered_by_the_slo_when_choosing():
    assert Goal().chooses_within(50.0) == 50.0 and Goal(Objective.CAPACITY).chooses_within(50.0) is None


def test_a_study_from_before_goals_is_throughput_against_p95():
    made_before_goals = StudySettings("m", "concurrency 8", "x", {})
    assert made_before_goals.goal == Goal()
    assert dataclasses.replace(made_before_goals, objective="capacity", cost="memory").goal == Goal(
        Objective.CAPACITY, Cost.MEMORY)


def test_a_memory_cost_needs_a_server_of_the_tuners_own():
    with pytest.raises(ConfigError, match="--cost memory needs a server of the tuner's own"):
        check_goal(Goal(Objective.CAPACITY, Cost.MEMORY), 50.0, None, remote=True)
    check_goal(Goal(Objective.CAPACITY, Cost.MEMORY), 50.0, None, remote=False)  # accepted


def test_limits_say_what_a_choice_keeps_to():
    assert Limits().text() == "the limits"
    assert Limits(max_memory_mib=300.0).text() == "memory <= 300.0 MiB"
    assert Limits(slo_p95_ms=50.0, model_slos={"a": 80.0}).text() == "P95 <= 50.0 ms and a's P95 <= 80 ms"
