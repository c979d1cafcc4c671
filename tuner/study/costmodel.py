"""A performance model of one model's configs, fitted from the trials already measured.

Triton's statistics say, for every batch size a config executed, how many executions there were
and how long they took. From those, across trials, an execution of `b` requests on a config of
`n` instances is fitted as

    (fixed + per_request * b) * (1 + sharing * (n - 1))

(`sharing`: how much each further instance slows every execution, as instances share cores or a
GPU); a request's trip outside the server is the latency the load generator saw less the time
Triton accounts for, and the client's own time for each answer its CPU time per request. The
simulation of Triton's batcher (tuner.measure.simulate) then predicts the throughput and P95 of
any instance count, max batch size, queue delay and preferred sizes under the study's load.

Only configs that differ from the measured ones in those knobs are predicted: a backend parameter,
a graph optimisation level or a model version changes the cost itself, so the model is fitted on
the trials that share the other settings (`context`) with the config asked about.
"""
from __future__ import annotations

import copy
import hashlib
import statistics
from dataclasses import dataclass

import numpy as np
from optuna.trial import FrozenTrial

from tuner.config.modelconfig import ModelConfig, parse_config
from tuner.measure.load import LoadSpec
from tuner.measure.queueing import Expected
from tuner.measure.simulate import Batcher, Station, simulate_chain
from tuner.study import trials as tr
from tuner.study.trials import Key

_SHARING = [i / 50 for i in range(0, 101)]  # 0 .. 2: the fit's grid for the slowdown per instance


@dataclass(frozen=True)
class Sample:
    batch: int
    instances: int
    ms: float  # an execution's mean time
    count: int  # executions behind it


@dataclass(frozen=True)
class CostModel:
    fixed_ms: float
    per_request_ms: float
    sharing: float
    trip_ms: float
    gap_ms: float  # the client's time for each answer: the answers to one batch arrive this far apart
    batches: tuple[int, ...]  # the batch sizes executed
    instances: tuple[int, ...]  # the instance counts measured: outside them the model extrapolates
    observed: tuple[tuple[int, float], ...] = ()  # (batch, ms on one instance): measured, not the line
    reach: int = 1  # the largest max batch of a measured config: beyond it the model extrapolates

    def execution_s(self, batch: int, instances: int) -> float:
        """A batch's execution: as measured at that size where it was, else on the fitted line."""
        alone = dict(self.observed).get(batch, self.fixed_ms + self.per_request_ms * batch)
        return alone * (1 + self.sharing * (instances - 1)) / 1e3

    def extrapolates(self, config: ModelConfig) -> bool:
        """Whether the config allows larger batches than any measured config did, or runs an
        instance count outside those measured. The batches a max batch forms are what the load
        makes of it: once measured, a config that allows no more is judged by what formed, not
        by sizes the load never fills."""
        batcher = batcher_of(config)
        return batcher.max_batch > self.reach or not min(self.instances) <= batcher.instances <= max(self.instances)


def batcher_of(config: ModelConfig) -> Batcher:
    """The config's batcher as simulated: without batching, or at a max batch of 1, every request
    executes alone; a preferred size equal to the max batch is what the max batch does anyway, and
    with a preferred size of 1 whatever waits is sent at once, so the queue delay never acts."""
    instances = sum(g.count or 1 for g in config.instance_group) or 1
    if not config.HasField("dynamic_batching") or config.max_batch_size <= 1:
        return Batcher(instances, 1)
    db = config.dynamic_batching
    preferred = tuple(sorted(p for p in db.preferred_batch_size if p < config.max_batch_size))
    delay_s = 0.0 if 1 in preferred else db.max_queue_delay_microseconds / 1e6
    return Batcher(instances, config.max_batch_size, delay_s, preferred)


def signature(config: ModelConfig) -> tuple[str, Batcher]:
    """What the model tells configs apart by: configs alike in it are predicted alike, so measuring
    one of them measures them all (a max batch without batching, a queue delay at max batch 1)."""
    return context(config), batcher_of(config)


def context(config: ModelConfig) -> str:
    """The config's settings other than those the model predicts across."""
    other = copy.deepcopy(config)
    other.ClearField("max_batch_size")
    other.ClearField("dynamic_batching")
    for group in other.instance_group:
        group.ClearField("count")
    return hashlib.sha256(other.SerializeToString(deterministic=True)).hexdigest()[:16]


def config_of(trial: FrozenTrial, member: str | None = None) -> ModelConfig:
    """The trial's config, or that of one `member` of its pipeline."""
    if member is None:
        return parse_config(trial.user_attrs[Key.CONFIG], f"trial {trial.number}")
    return parse_config((trial.user_attrs.get(Key.MEMBERS) or {})[member], f"trial {trial.number}, member {member}")


def _server(trial: FrozenTrial, member: str | None) -> dict:
    """Triton's account of the model's share of the measurement, or of one step's."""
    metrics = trial.user_attrs.get(Key.METRICS) or {}
    return (metrics.get("server") if member is None else (metrics.get("steps") or {}).get(member)) or {}


def _samples(trial: FrozenTrial, batcher: Batcher | None = None, member: str | None = None) -> list[Sample]:
    server = _server(trial, member)
    if not server:
        return []
    instances = (batcher or batcher_of(config_of(trial, member))).instances
    return [Sample(int(b), instances, float(ms), int(count))
            for b, (count, ms) in (server.get("batches") or {}).items()]


def _trip_ms(trial: FrozenTrial) -> float | None:
    """The latency less what Triton accounts for: in a pipeline, every step's, one after another."""
    metrics = trial.user_attrs.get(Key.METRICS) or {}
    parts = list((metrics.get("steps") or {}).values()) or [metrics.get("server")]
    if not all(parts):
        return None
    inside = sum(s["queue_ms"] + s["compute_input_ms"] + s["compute_infer_ms"] + s["compute_output_ms"] for s in parts)
    return max(0.0, metrics["p50_ms"] - inside)


def _gap_ms(trial: FrozenTrial) -> float | None:
    metrics = trial.user_attrs.get(Key.METRICS) or {}
    if not metrics.get("throughput") or metrics.get("client_cpu") is None:
        return None
    return metrics["client_cpu"] / metrics["throughput"] * 1e3


def _line(samples: list[Sample], sharing: float) -> tuple[float, float, float]:
    """fixed, per_request and the mean relative squared error, by least squares weighted by the
    executions behind each sample, at `sharing`."""
    w = np.array([s.count for s in samples], float)
    x = np.array([s.batch for s in samples], float)
    slowdown = 1 + sharing * (np.array([s.instances for s in samples], float) - 1)
    ms = np.array([s.ms for s in samples], float)
    y = ms / slowdown
    mx, my = np.average(x, weights=w), np.average(y, weights=w)
    sxx = float(np.sum(w * (x - mx) ** 2))
    slope = max(0.0, float(np.sum(w * (x - mx) * (y - my))) / sxx) if sxx > 0 else my / mx / 2
    fixed = max(0.0, float(my - slope * mx))
    error = float(np.average(((fixed + slope * x) * slowdown / ms - 1) ** 2, weights=w))
    return fixed, slope, error


def usable(trials: list[FrozenTrial], members: tuple[str, ...] = ()) -> list[FrozenTrial]:
    """Measured trials with Triton's per-batch statistics (all but repeats and failures): the
    model's own, or every one of the pipeline `members`'."""
    return [t for t in trials if tr.measured(t) and all(_server(t, m).get("batches") for m in members or (None,))]


def fit(trials: list[FrozenTrial], member: str | None = None) -> CostModel | None:
    """The model fitted on `trials` (one context), or one pipeline `member`'s; None without any
    per-batch statistics. With a single batch size measured the cost is split evenly between fixed
    and per request, and with a single instance count instances do not slow each other: a guess,
    which `extrapolates` flags."""
    measured = usable(trials, (member,) if member else ())
    batchers = [batcher_of(config_of(t, member)) for t in measured]  # each trial's config parsed once here
    samples = [s for t, b in zip(measured, batchers, strict=True) for s in _samples(t, b, member)]
    if not samples:
        return None
    counts = {s.instances for s in samples}
    grid = _SHARING if len(counts) > 1 else [0.0]
    sharing = min(grid, key=lambda g: _line(samples, g)[2])
    fixed, per_request, _ = _line(samples, sharing)
    trips = [trip for t in measured if (trip := _trip_ms(t)) is not None]
    gaps = [gap for t in measured if (gap := _gap_ms(t)) is not None]
    alone: dict[int, list[Sample]] = {}
    for s in samples:
        alone.setdefault(s.batch, []).append(s)
    observed = tuple((b, float(np.average([s.ms / (1 + sharing * (s.instances - 1)) for s in found],
                                          weights=[s.count for s in found]))) for b, found in sorted(alone.items()))
    reach = max(b.max_batch for b in batchers)
    return CostModel(fixed, per_request, sharing, statistics.median(trips) if trips else 0.0,
                     statistics.median(gaps) if gaps else 0.0, tuple(sorted(alone)), tuple(sorted(counts)), observed,
                     reach)


def predict(model: CostModel, config: ModelConfig, spec: LoadSpec) -> Expected:
    """The config's throughput and latency under the study's load, simulated."""
    return predict_chain([(model, config)], spec)


def predict_chain(steps: list[tuple[CostModel, ModelConfig]], spec: LoadSpec) -> Expected:
    """A pipeline's throughput and latency under the study's load: its steps' models and configs,
    in the order requests pass them (the trip and the client's time are the pipeline's, which
    every step's model holds alike)."""
    stations = [_station(model, batcher_of(config)) for model, config in steps]
    first = steps[0][0]
    return simulate_chain(stations, clients=None if spec.request_rate else spec.concurrency, rate=spec.request_rate,
                          trip_s=first.trip_ms / 1e3, gap_s=first.gap_ms / 1e3, requests=1500)


def _station(model: CostModel, batcher: Batcher) -> Station:
    """The step as the simulation runs it: each batch size's cost worked out once, not per batch."""
    costs = [model.execution_s(b, batcher.instances) for b in range(batcher.max_batch + 1)]
    return Station(batcher, costs.__getitem__)


def error(model: CostModel, trial: FrozenTrial, spec: LoadSpec) -> float:
    """The model's relative throughput error on a measured trial."""
    return predict(model, config_of(trial), spec).throughput / trial.values[0] - 1
