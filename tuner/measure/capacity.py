"""A config's capacity under an SLO: the highest open-loop request rate at which its P95 (counted
from when each request was due) stays within the SLO, with failed requests under the threshold.

Found in a few measurements, not a sweep. The first rate is what earlier trials suggest (the best
capacity so far: the question that matters is whether this config holds it). Then the search
brackets the capacity, going up while rates pass and down while they fail, and, once it is
bracketed, interpolates where the P95 meets the SLO on the reciprocal of P95, which falls
about linearly to zero as load nears what the server can serve (exactly so for one queue with
exponential service: P95 = ln(20) / (service rate - arrival rate)). Each step is a raced
measurement that stops as soon as its P95 interval lies wholly on one side of the SLO, so rates
far from the capacity cost little, though each runs `min_step_s` (3 s) at least: an overload
builds its queue at the rate it is over, and a shorter span would not show it. It ends when the
bracket is within `tolerance`.

A rate over the capacity shows in P95 only once the queue has grown past the SLO, which a short
measurement may not wait for; it shows at once in what was served: less than what was offered.
So a step also fails when its throughput interval lies wholly below the rate its requests were
sent at in the same span (less a margin of half the tolerance): the rate as drawn, not as asked,
so the arrivals' own randomness does not count against it. That needs steady arrivals: with
bursts, ramps or recorded traffic, a short span may end with a burst's queue still waiting, so
steps are judged on P95 alone.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from tuner.measure.load import Interval
from tuner.measure.measurement import Measurement

_GROW, _SHRINK = 2.0, 0.5  # unbracketed: the most one step goes up, or down
_EDGE = 0.1  # an interpolated rate stays this fraction of the bracket inside it
_FLOOR = 1 / 64  # below this fraction of the first rate, no load meets the SLO: capacity 0
_SERVED = 0.9  # a step that served less than this fraction of the offered rate was overloaded


@dataclass(frozen=True)
class CapacitySpec:
    slo_p95_ms: float
    tolerance: float = 0.05  # the bracket's relative width at which the search ends
    max_steps: int = 8
    max_errors: float = 0.01  # failed requests allowed, as a fraction
    judge_rate: bool = True  # a step also fails when it served clearly less than offered (steady arrivals)
    min_samples: int = 400  # per step before it may stop: enough for the served rate to tell
    # and this long: a rate 10 % over the capacity has then queued 0.3 s of work, which P95 shows
    min_step_s: float = 3.0


@dataclass(frozen=True)
class Step:
    """One measurement at one offered rate."""
    offered: float  # requests/s
    measurement: Measurement
    ok: bool  # P95 within the SLO and failed requests within the threshold


@dataclass(frozen=True)
class Capacity:
    rate: float  # the highest offered rate that met the SLO; 0 when none did
    steps: tuple[Step, ...]  # in the order measured

    @property
    def at(self) -> Measurement:
        """The measurement at capacity (when none met the SLO: at the lowest rate tried)."""
        passed = [s for s in self.steps if s.ok]
        best = max(passed, key=lambda s: s.offered) if passed else min(self.steps, key=lambda s: s.offered)
        return best.measurement

    @property
    def bracketed(self) -> bool:
        """A failing rate above the capacity was measured too: it is not merely the highest rate tried."""
        return any(not s.ok and s.offered > self.rate for s in self.steps) and self.rate > 0


def holds_slo(throughput: Interval, p95_ms: Interval, sent: float | None, spec: CapacitySpec) -> bool | None:
    """Whether a step meets the SLO for certain (True), fails it for certain (False), or cannot
    tell yet (None), from its intervals so far and the rate its requests were sent at."""
    if p95_ms[0] > spec.slo_p95_ms or _falls_behind(throughput[1], sent, spec):
        return False
    return True if p95_ms[1] < spec.slo_p95_ms else None


def meets(m: Measurement, spec: CapacitySpec) -> bool:
    """A finished step's answer: P95 within the SLO, few failed requests, and it kept up."""
    requests = m.samples + m.errors
    return (m.samples > 0 and not m.overloaded and m.p95_ms <= spec.slo_p95_ms
            and m.errors <= spec.max_errors * requests and not _falls_behind(m.throughput_ci[1], m.offered, spec))


def _falls_behind(served_high: float, sent: float | None, spec: CapacitySpec) -> bool:
    return spec.judge_rate and sent is not None and served_high < sent * (1 - spec.tolerance / 2)


def find_capacity(measure_at: Callable[[float], Measurement], spec: CapacitySpec, first_rate: float) -> Capacity:
    """Measures rates (`measure_at(rate)`) until the capacity is bracketed within the tolerance,
    the step budget is spent, or even a small fraction of `first_rate` fails."""
    steps: list[Step] = []
    rate = first_rate
    for _ in range(spec.max_steps):
        m = measure_at(rate)
        steps.append(Step(rate, m, meets(m, spec)))
        low = max((s.offered for s in steps if s.ok), default=None)
        top = _upper(steps)
        if low is not None and top is not None and top <= low * (1 + spec.tolerance):
            break
        if low is None and rate < first_rate * _FLOOR:
            break
        rate = _next_rate(low, top, steps, spec)
    passed = [s.offered for s in steps if s.ok]
    return Capacity(max(passed, default=0.0), tuple(steps))


def _overloaded(step: Step) -> bool:
    """It failed, serving for certain much less than was offered (or its backlog passed the load
    generator's bound): about the most the config can."""
    m = step.measurement
    behind = m.throughput_ci[1] < _SERVED * (m.offered or step.offered)
    return not step.ok and m.samples > 0 and (m.overloaded or behind)


def _upper(steps: list[Step]) -> float | None:
    """What the capacity is below: the lowest failing rate, or the most an overloaded step served."""
    bounds = [s.offered for s in steps if not s.ok] + [s.measurement.throughput_ci[1] for s in steps if _overloaded(s)]
    return min(bounds, default=None)


def _next_rate(low: float | None, top: float | None, steps: list[Step], spec: CapacitySpec) -> float:
    if top is None:  # every rate passed: extrapolate towards the SLO, at most doubling
        assert low is not None
        return min(max(_crossing(steps, spec.slo_p95_ms), low * 1.2), low * _GROW)
    if low is None:  # every rate failed: towards the SLO, or just below what the server served at most
        last = steps[-1]
        floor = last.offered * (_SHRINK**3 if _overloaded(last) else _SHRINK)  # far over: what it served says more
        return max(min(_crossing(steps, spec.slo_p95_ms), 0.97 * top, last.offered * 0.9), floor)
    high = min((s for s in steps if not s.ok), key=lambda s: s.offered)
    below = max((s for s in steps if s.ok), key=lambda s: s.offered)
    same_side = len(steps) >= 2 and steps[-1].ok == steps[-2].ok  # converging from one side only
    if same_side or _overloaded(high) or top < high.offered or not math.isfinite(high.measurement.p95_ms):
        return math.sqrt(low * top)  # P95 beyond the limit says little about where the SLO is met
    span = top - low
    return min(max(_interpolate(below, high, spec.slo_p95_ms), low + _EDGE * span), top - _EDGE * span)


def _crossing(steps: list[Step], slo_p95_ms: float) -> float:
    """Where 1/P95 reaches 1/SLO, on the line through the two measured rates nearest it (one rate:
    as if P95 were proportional to 1 / (limit - rate) with the limit at twice the rate)."""
    usable = sorted((s for s in steps if s.measurement.samples and s.measurement.p95_ms > 0),
                    key=lambda s: abs(math.log(s.measurement.p95_ms / slo_p95_ms)))[:2]
    if len(usable) == 2 and usable[0].offered != usable[1].offered:
        a, b = sorted(usable, key=lambda s: s.offered)
        return _interpolate(a, b, slo_p95_ms)
    if not usable:
        return steps[-1].offered * _SHRINK
    one = usable[0]
    # P95 = c / (2r - r) at rate r gives c = P95 * r; the SLO is met where 2r - x = c / SLO
    return max(2 * one.offered - one.measurement.p95_ms * one.offered / slo_p95_ms, one.offered * _SHRINK)


def _interpolate(a: Step, b: Step, slo_p95_ms: float) -> float:
    """The rate at which 1/P95 reaches 1/SLO on the line through `a` and `b`."""
    ya, yb = 1 / a.measurement.p95_ms, 1 / b.measurement.p95_ms
    if ya == yb:
        return (a.offered + b.offered) / 2
    return a.offered + (1 / slo_p95_ms - ya) * (b.offered - a.offered) / (yb - ya)
