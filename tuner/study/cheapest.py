"""The cheapest of the configs the measurements cannot tell apart from a choice.

The objectives never charge for resources: three instances that serve what one serves, within
the noise, are as good as one to the front, and the knee may land on either. Before a config is
exported, every measured config whose throughput and P95 intervals both overlap the chosen one's
is a stand-in for it, and the one that costs least (instances, then max batch size, then the
server's memory) goes out instead, said in the summary. A config measured several times (the
final re-measurement) is judged by its runs combined, not by the span of their intervals: three
runs that each put one config 15 % ahead of another tell the two apart, however wide each run's
own interval.
"""
from __future__ import annotations

from dataclasses import dataclass

from optuna.trial import FrozenTrial

from tuner.config.modelconfig import parse_config
from tuner.measure.stats import combined_ci
from tuner.study import trials as tr
from tuner.study.trials import Key

Span = tuple[float, float] | None


def spans(trial: FrozenTrial) -> tuple[Span, Span]:
    """The span of the 95 % intervals of every single measurement the study took of the config
    (the first, and each of a final re-measurement), throughput then P95; None where unknown."""
    runs = trial.user_attrs.get(Key.REMEASURED) or {}
    metrics = trial.user_attrs.get(Key.METRICS) or {}
    found = []
    for key in ("throughput_ci", "p95_ci_ms"):
        cis = [ci for ci in runs.get(key, [metrics.get(key)]) if ci and None not in ci]
        found.append((min(c[0] for c in cis), max(c[1] for c in cis)) if cis else None)
    return found[0], found[1]


def combined(trial: FrozenTrial) -> tuple[Span, Span]:
    """The 95 % intervals of what the config serves, every single measurement of it combined
    (tuner.measure.stats.combined_ci), throughput then P95; None where unknown."""
    metrics = trial.user_attrs.get(Key.METRICS) or {}
    runs = trial.user_attrs.get(Key.REMEASURED) or {
        "throughput": [metrics.get("throughput")], "throughput_ci": [metrics.get("throughput_ci")],
        "p95_ms": [metrics.get("p95_ms")], "p95_ci_ms": [metrics.get("p95_ci_ms")]}
    found: list[Span] = []
    for value, key in (("throughput", "throughput_ci"), ("p95_ms", "p95_ci_ms")):
        known = [(v, ci) for v, ci in zip(runs.get(value, []), runs.get(key, []), strict=False)
                 if v is not None and ci and None not in ci]
        found.append(combined_ci([v for v, _ in known], [(ci[0], ci[1]) for _, ci in known]) if known else None)
    return found[0], found[1]


def overlap(a: Span, b: Span) -> bool:
    """Two intervals share a point: the difference is within what the measurements can tell apart."""
    return a is not None and b is not None and a[0] <= b[1] and b[0] <= a[1]


def alike(a: FrozenTrial, b: FrozenTrial) -> bool:
    """Whether the measurements cannot tell the two configs apart: both intervals overlap."""
    (a_thr, a_p95), (b_thr, b_p95) = combined(a), combined(b)
    return overlap(a_thr, b_thr) and overlap(a_p95, b_p95)


@dataclass(frozen=True, order=True)
class Cost:
    instances: int  # every model's instances, a pipeline's members too
    max_batch: int  # the largest max_batch_size among them: memory a batch may take
    memory_mib: float  # the server's resident memory under load, where measured

    def text(self) -> str:
        return f"{self.instances} instance(s), max batch {self.max_batch}"


def cost_of(trial: FrozenTrial) -> Cost:
    configs = [trial.user_attrs[Key.CONFIG], *(trial.user_attrs.get(Key.MEMBERS) or {}).values()]
    parsed = [parse_config(text) for text in configs]
    instances = sum(sum(g.count or 1 for g in c.instance_group) or 1 for c in parsed)
    return Cost(instances, max(c.max_batch_size for c in parsed), float(trial.user_attrs.get(Key.MEMORY_MIB) or 0))


def stand_ins(chosen: FrozenTrial, trials: list[FrozenTrial], slo_p95_ms: float | None = None) -> list[FrozenTrial]:
    """Other choosable trials alike the chosen one (within the SLO, where there is one), cheapest
    first, the faster first among equals."""
    found = [t for t in trials if t.number != chosen.number and tr.choosable(t) and not tr.is_baseline(t)
             and alike(t, chosen) and (slo_p95_ms is None or t.values[1] <= slo_p95_ms)]
    return sorted(found, key=lambda t: (cost_of(t), -t.values[0]))


def cheapest(chosen: FrozenTrial, trials: list[FrozenTrial], slo_p95_ms: float | None = None) -> FrozenTrial:
    """The chosen trial, or a cheaper one the measurements cannot tell apart from it."""
    found = stand_ins(chosen, trials, slo_p95_ms)
    return found[0] if found and cost_of(found[0]) < cost_of(chosen) else chosen
