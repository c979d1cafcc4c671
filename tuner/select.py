"""Choosing one config from the throughput / P95 Pareto front.

Policies:
  knee            the front point nearest the ideal corner (highest throughput, lowest P95), with
                  both axes scaled to the front's range: the balanced trade-off
  max-throughput  the highest throughput
  min-p95         the lowest P95
  an SLO          the highest throughput whose P95 is within it
"""
from __future__ import annotations

from optuna.trial import FrozenTrial, TrialState

POLICIES = ("knee", "max-throughput", "min-p95")


def measured(trials: list[FrozenTrial]) -> list[FrozenTrial]:
    return [t for t in trials if t.state == TrialState.COMPLETE and t.values is not None
            and "duplicate_of" not in t.user_attrs]


def pareto_front(trials: list[FrozenTrial]) -> list[FrozenTrial]:
    """Measured trials no other measured trial beats on both objectives, by throughput."""
    points = measured(trials)

    def dominated(t: FrozenTrial) -> bool:
        (thr, p95) = t.values
        return any(o.values[0] >= thr and o.values[1] <= p95 and (o.values[0] > thr or o.values[1] < p95)
                   for o in points)

    return sorted((t for t in points if not dominated(t)), key=lambda t: -t.values[0])


def choose(trials: list[FrozenTrial], policy: str = "knee", slo_p95_ms: float | None = None) -> FrozenTrial | None:
    front = pareto_front(trials)
    if slo_p95_ms is not None:
        front = [t for t in front if t.values[1] <= slo_p95_ms]
        return max(front, key=lambda t: t.values[0], default=None)
    if not front:
        return None
    if policy == "max-throughput":
        return front[0]
    if policy == "min-p95":
        return front[-1]
    if policy != "knee":
        raise ValueError(f"unknown policy {policy!r}; one of {', '.join(POLICIES)}")
    thr = [t.values[0] for t in front]
    p95 = [t.values[1] for t in front]
    span = lambda xs: (max(xs) - min(xs)) or 1.0  # noqa: E731

    def distance(t: FrozenTrial) -> float:
        return ((max(thr) - t.values[0]) / span(thr)) ** 2 + ((t.values[1] - min(p95)) / span(p95)) ** 2

    return min(front, key=distance)
