"""The engine-only ceiling: the served model run by its own framework (tuner.measure.engines), no
server, no copies, inputs in place. What a config serves as a fraction of it says how much is left
to find in the server and the data path.

It is measured twice. At the study's load: the largest batch that load can form with the config
(in a closed loop, no more than the clients; without a dynamic batcher, one request), with as many
instances at once as it keeps busy, and in an open loop no more than the rate offered. And at the
config's own max batch, every instance busy. Where the second is well above the first, or where
in a closed loop no request waits for an instance (each then idles while its clients' answers
travel and they send again), the load, not the config, holds the served rate down: a config is
judged against what its load allows.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path

from tritonclient.grpc.model_config_pb2 import ModelConfig

from tuner.measure import engines
from tuner.measure.load import LoadSpec

LOAD_BOUND = 1.05  # a ceiling at the max batch this much above the one at the load: the load is the limit


@dataclass(frozen=True)
class Ceiling:
    engine: str  # what ran the model
    where: str  # how it ran
    load: str  # the study's load, in words
    batch: int  # the largest batch that load can form with the config
    parallel: int  # how many instances that load keeps busy at once
    engine_rate: float  # inferences per second the engine did at that batch and parallelism
    max_batch: int
    max_rate: float  # at the config's max batch, every instance busy
    offered: float | None = None  # an open loop's request rate: no config serves more
    # a closed loop in which no request waits for an instance: each idles while its clients'
    # answers travel back and they send again, which only a heavier load would overlap
    lockstep: bool = False

    @property
    def rate(self) -> float:
        """The ceiling at the study's load."""
        return min(self.engine_rate, self.offered) if self.offered else self.engine_rate

    @property
    def larger_batches(self) -> bool:
        """Whether the config's max batch would serve more than the batches the load forms."""
        return self.max_rate > self.rate * LOAD_BOUND

    @property
    def load_bound(self) -> bool:
        """Whether the load, not the config, holds the served rate down."""
        return self.larger_batches or self.lockstep

    def to_json(self) -> dict:
        return {**asdict(self), "rate": self.rate, "larger_batches": self.larger_batches, "load_bound": self.load_bound}


def _own(config: ModelConfig) -> tuple[int, int]:
    """The config's largest batch (one request each, without a dynamic batcher: the load generator
    sends one at a time) and its instance count."""
    largest = max(1, config.max_batch_size) if config.HasField("dynamic_batching") else 1
    return largest, sum(g.count or 1 for g in config.instance_group) or 1


def formable(config: ModelConfig, spec: LoadSpec) -> tuple[int, int]:
    """The largest batch the load can form with the config, and how many instances it keeps busy."""
    largest, instances = _own(config)
    if spec.request_rate:  # arrivals do not wait for answers: a high enough rate fills any batch
        return largest, instances
    batch = min(largest, spec.concurrency)
    return batch, min(instances, math.ceil(spec.concurrency / batch))


def in_lockstep(spec: LoadSpec, batch: int, instances: int) -> bool:
    """A closed loop whose clients all fit in the batches the instances take at once: none waits,
    so nothing covers the trip between an answer and the next request."""
    return not spec.request_rate and spec.concurrency <= batch * instances


def measurable(config: ModelConfig, spec: LoadSpec) -> bool:
    return engines.runnable(config) and not spec.mix


def measure(folder: Path, config: ModelConfig, spec: LoadSpec, seconds: float = 2.0) -> Ceiling | None:
    """The ceiling of the config's model under `folder`, at the load and at its max batch; None
    where it cannot be measured here (framework, device or model shape)."""
    if not measurable(config, spec):
        return None
    engine = engines.engine(folder, config)
    if engine is None:
        return None
    batch, parallel = formable(config, spec)
    largest, instances = _own(config)
    parallel, instances = min(parallel, engine.parallel), min(instances, engine.parallel)
    at_load = engine.rate(batch, parallel, seconds)
    at_max = at_load if (batch, parallel) == (largest, instances) else engine.rate(largest, instances, seconds)
    return Ceiling(engine.name, engine.where, spec.mode, batch, parallel, at_load, largest, at_max,
                   spec.request_rate or None, in_lockstep(spec, batch, instances))
