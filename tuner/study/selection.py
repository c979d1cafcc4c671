"""Choosing one config from the throughput / P95 Pareto front.

Policies:
  knee            the front point nearest the ideal corner (highest throughput, lowest P95), each
                  axis in relative terms (% below the best throughput, % above the best P95), so
                  a 0.1 ms difference inside the noise does not outweigh 3% of throughput
  max-throughput  the highest throughput
  min-p95         the lowest P95
  an SLO          the highest throughput whose P95 is within it
"""
from __future__ import annotations

from optuna.trial import FrozenTrial, TrialState

from tuner.study import trials as tr

POLICIES = ("knee", "max-throughput", "min-p95")


def choosable(trials: list[FrozenTrial]) -> list[FrozenTrial]:
    """Trials that can be chosen (tuner.study.trials.choosable)."""
    return [t for t in trials if tr.choosable(t)]


def baseline_of(trials: list[FrozenTrial]) -> FrozenTrial | None:
    """The measured user's own config, which every gain is reported against."""
    return next((t for t in trials if tr.is_baseline(t) and t.state == TrialState.COMPLETE), None)


def pareto_front(trials: list[FrozenTrial]) -> list[FrozenTrial]:
    """Measured trials no other measured trial beats on both objectives, by throughput."""
    points = choosable(trials)

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
    best_thr = max(t.values[0] for t in front)
    best_p95 = min(t.values[1] for t in front)

    def distance(t: FrozenTrial) -> float:  # a best of 0 (no capacity, no cost) leaves that axis out
        return ((1 - t.values[0] / best_thr) ** 2 if best_thr > 0 else 0.0) + \
            ((t.values[1] / best_p95 - 1) ** 2 if best_p95 > 0 else 0.0)

    return min(front, key=distance)
