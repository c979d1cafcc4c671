"""What the study optimises: a number to raise and a cost to lower.

    throughput  inferences/s at the load given (concurrency 8 by default), against P95: the
                question "which config is fastest at this traffic"
    goodput     requests/s that met the SLO, at the load given, against a cost
    capacity    the highest request rate the config holds with P95 within the SLO (tuner.measure.capacity),
                against a cost: the question "how much traffic can it take, and which config takes most"

The cost is P95 (at capacity, for capacity), the instances the config runs, or the server's
memory. With goodput and capacity the SLO is inside the objective, so it is no longer a filter
when choosing.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING

from tuner.config.modelconfig import ModelConfig
from tuner.errors import ConfigError

if TYPE_CHECKING:
    from tuner.measure.evaluate import Outcome


class Objective(str, Enum):
    THROUGHPUT = "throughput"
    GOODPUT = "goodput"
    CAPACITY = "capacity"


class Cost(str, Enum):
    P95 = "p95"
    INSTANCES = "instances"
    MEMORY = "memory"


_NAMES = {Objective.THROUGHPUT: "throughput_infer_per_s", Objective.GOODPUT: "goodput_req_per_s",
          Objective.CAPACITY: "capacity_req_per_s", Cost.P95: "p95_latency_ms", Cost.INSTANCES: "instances",
          Cost.MEMORY: "memory_mib"}


@dataclass(frozen=True)
class Goal:
    objective: Objective = Objective.THROUGHPUT
    cost: Cost = Cost.P95

    @property
    def metric_names(self) -> list[str]:
        return [_NAMES[self.objective], _NAMES[self.cost]]

    @property
    def is_default(self) -> bool:
        """Throughput against P95: racing against the front and the SLO filter apply."""
        return self.objective is Objective.THROUGHPUT

    def values(self, outcome: Outcome, config: ModelConfig, members: Iterable[ModelConfig] = ()) -> list[float]:
        """A measured config's two values, in the study's order (a pipeline's instances count all
        its models')."""
        m = outcome.measurement
        assert m is not None  # only measured outcomes have values
        first = {Objective.THROUGHPUT: m.throughput, Objective.GOODPUT: m.goodput,
                 Objective.CAPACITY: outcome.capacity.rate if outcome.capacity else None}[self.objective]
        second = {Cost.P95: m.p95_ms, Cost.INSTANCES: float(sum(map(instances, (config, *members)))),
                  Cost.MEMORY: outcome.memory_mib}[self.cost]
        if first is None or second is None:  # check_goal refuses the options that would lead here
            raise ValueError(f"{self.metric_names} were not measured")
        return [float(first), float(second)]

    def chooses_within(self, slo_p95_ms: float | None) -> float | None:
        """The SLO that filters the choice: only for throughput, whose values do not contain it."""
        return slo_p95_ms if self.is_default else None

    def text(self, values: list[float], slo_p95_ms: float | None) -> str:
        """A trial's values in words: "holds 420 req/s at P95 <= 50 ms, 2 instances"."""
        if self.objective is Objective.THROUGHPUT:
            first = f"{values[0]:.1f} infer/s"
        elif self.objective is Objective.GOODPUT:
            first = f"goodput {values[0]:.1f} req/s (P95 <= {slo_p95_ms:g} ms)"
        else:
            first = f"holds {values[0]:.1f} req/s at P95 <= {slo_p95_ms:g} ms"
        units = {Cost.P95: "ms p95", Cost.INSTANCES: "instances", Cost.MEMORY: "MiB"}
        return f"{first}, {values[1]:.{1 if self.cost is Cost.P95 else 0}f} {units[self.cost]}"


def check_goal(goal: Goal, slo_p95_ms: float | None, request_rate: float | None, remote: bool) -> None:
    """Refused before any server starts: a goal its options cannot measure."""
    name = goal.objective.value
    if goal.objective is not Objective.THROUGHPUT and slo_p95_ms is None:
        raise ConfigError(f"--objective {name} needs --slo-p95-ms: it counts requests against the SLO")
    if goal.objective is Objective.THROUGHPUT and goal.cost is not Cost.P95:
        raise ConfigError(f"--cost {goal.cost.value} needs --objective capacity or goodput: throughput is "
                          "weighed against P95")
    if goal.objective is Objective.CAPACITY and request_rate:
        raise ConfigError("--objective capacity finds the request rate itself: drop --request-rate")
    if goal.cost is Cost.MEMORY and remote:
        raise ConfigError("--cost memory needs a server of the tuner's own (embedded or docker): a remote "
                          "server's memory is not the tuned model's alone")


def instances(config: ModelConfig) -> int:
    """Instances the config runs (a group without a count has one; an ensemble runs none of its own)."""
    if config.HasField("ensemble_scheduling"):
        return 0
    return sum(group.count or 1 for group in config.instance_group) or 1
