"""The cheapest of the configs the measurements cannot tell apart from a choice.

The objectives never charge for resources: three instances that serve what one serves, within
the noise, are as good as one to the front, and the knee may land on either. Before a config is
exported, every measured config whose throughput and P95 intervals both overlap the chosen one's
is a stand-in for it, and the one that costs least (instances, then max batch size, then the
server's memory) goes out instead, said in the summary. Two configs re-measured in the same rounds
are compared round by round instead (tuner.measure.stats.ratio_ci): the machine's drift moves both
alike, so three rounds that each put one 10 % ahead tell them apart, however wide the span of
either one's intervals. Intervals that cannot tell two configs apart do not make them equal: a
config that is erratic from run to run has wide ones. A stand-in's medians must also be within the
measurement's precision of the chosen one's, or better.
"""
from __future__ import annotations

from dataclasses import dataclass

from optuna.trial import FrozenTrial

from tuner.config.modelconfig import parse_config
from tuner.measure.load import PRECISION
from tuner.measure.stats import ratio_ci
from tuner.study import trials as tr
from tuner.study.trials import Key

Span = tuple[float, float] | None


def spans(trial: FrozenTrial) -> tuple[Span, Span]:
    """The span of the 95 % intervals of every single measurement the study took of the config
    (the first, and each of a final re-measurement), throughput then P95; None where unknown."""
    runs, found = _runs(trial), []
    for key in ("throughput_ci", "p95_ci_ms"):
        cis = [ci for ci in runs.get(key) or [] if ci and None not in ci]
        found.append((min(c[0] for c in cis), max(c[1] for c in cis)) if cis else None)
    return found[0], found[1]


_MEASURED = ("throughput", "throughput_ci", "p95_ms", "p95_ci_ms")


def _runs(trial: FrozenTrial) -> dict[str, list]:
    """Every measurement of the config, as the final re-measurement records them: the first alone
    where it was not re-measured."""
    metrics = trial.user_attrs.get(Key.METRICS) or {}
    return trial.user_attrs.get(Key.REMEASURED) or {key: [metrics.get(key)] for key in _MEASURED}


def _side_by_side(a: FrozenTrial, b: FrozenTrial) -> bool | None:
    """Whether runs of the two, measured round by round, tell them apart; None where they were
    not measured in the same rounds (or a run is unknown)."""
    ra, rb = _runs(a), _runs(b)
    if not len(ra.get("throughput") or []) == len(rb.get("throughput") or []) >= 2:
        return None
    if any(v is None for runs in (ra, rb) for key in _MEASURED for v in runs.get(key) or [None]):  # older studies
        return None
    ratios = [ratio_ci(ra[value], ra[ci], rb[value], rb[ci]) for value, ci in (("throughput", "throughput_ci"),
                                                                                ("p95_ms", "p95_ci_ms"))]
    return not all(lo <= 1 <= hi for lo, hi in ratios)


def overlap(a: Span, b: Span) -> bool:
    """Two intervals share a point: the difference is within what the measurements can tell apart."""
    return a is not None and b is not None and a[0] <= b[1] and b[0] <= a[1]


def alike(a: FrozenTrial, b: FrozenTrial) -> bool:
    """Whether the measurements cannot tell the two configs apart: re-measured side by side, the
    ratios of their throughputs and of their P95s both hold 1; otherwise both intervals overlap."""
    apart = _side_by_side(a, b)
    if apart is not None:
        return not apart
    (a_thr, a_p95), (b_thr, b_p95) = spans(a), spans(b)
    return overlap(a_thr, b_thr) and overlap(a_p95, b_p95)


def as_good(a: FrozenTrial, b: FrozenTrial) -> bool:
    """Whether `a`'s values are within the precision of `b`'s, or better, on both objectives (after
    a re-measurement the trials chosen from carry their medians: tuner.study.confirm.confirmed)."""
    (a_thr, a_p95), (b_thr, b_p95) = a.values, b.values
    return a_thr >= (1 - PRECISION) * b_thr and a_p95 <= (1 + PRECISION) * b_p95


@dataclass(frozen=True, order=True)
class Cost:
    instances: int  # every model's instances, a pipeline's members too
    max_batch: int  # the largest max_batch_size among them: memory a batch may take
    memory_mib: float  # the server's resident memory under load, where measured

    def text(self, other: Cost | None = None) -> str:
        """The cost in words; its memory too where that is what sets it apart from `other`'s."""
        memory = other is not None and (self.instances, self.max_batch) == (other.instances, other.max_batch)
        return f"{self.instances} instance(s), max batch {self.max_batch}" + (
            f", {self.memory_mib:.0f} MiB" if memory else "")


def cost_of(trial: FrozenTrial) -> Cost:
    configs = [trial.user_attrs[Key.CONFIG], *(trial.user_attrs.get(Key.MEMBERS) or {}).values()]
    parsed = [parse_config(text) for text in configs]
    instances = sum(sum(g.count or 1 for g in c.instance_group) or 1 for c in parsed)
    return Cost(instances, max(c.max_batch_size for c in parsed), float(trial.user_attrs.get(Key.MEMORY_MIB) or 0))


def stand_ins(chosen: FrozenTrial, trials: list[FrozenTrial], slo_p95_ms: float | None = None) -> list[FrozenTrial]:
    """Other choosable trials alike the chosen one and as good (within the SLO, where there is
    one), cheapest first, the faster first among equals."""
    found = [t for t in trials if t.number != chosen.number and tr.choosable(t) and not tr.is_baseline(t)
             and alike(t, chosen) and as_good(t, chosen) and (slo_p95_ms is None or t.values[1] <= slo_p95_ms)]
    return sorted(found, key=lambda t: (cost_of(t), -t.values[0]))


def cheapest(chosen: FrozenTrial, trials: list[FrozenTrial], slo_p95_ms: float | None = None) -> FrozenTrial:
    """The chosen trial, or a cheaper one the measurements cannot tell apart from it."""
    found = stand_ins(chosen, trials, slo_p95_ms)
    return found[0] if found and cost_of(found[0]) < cost_of(chosen) else chosen
