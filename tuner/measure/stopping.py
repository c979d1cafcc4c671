"""When a measurement stops: the rules the load generator asks after each window.

First the rules that cut a measurement short whatever it was asked: the server stopped answering
(stalled), the time limit, an open loop overloaded, a model none of whose requests succeed. Then
its question: by the full rule, every stream's last three windows agree and it has its samples
(stable); raced, the race is decided or both intervals are as precise as asked.
"""
from __future__ import annotations

import asyncio
import bisect
from dataclasses import dataclass
from enum import Enum

import numpy as np

from tuner.measure.load import MIN_WINDOW_SAMPLES, Interval, LoadSpec, Race
from tuner.measure.senders import Recorder
from tuner.measure.stats import quantile_ci, rate_ci, relative_half_width


class Stop(Enum):
    STALLED = "stalled"  # requests went out and nothing at all came back for a request's deadline
    TIME = "time"  # max_duration_s
    OVERLOADED = "overloaded"  # an open loop's backlog passed its bound: what it served is what it serves
    FAILING = "failing"  # a model none of whose requests succeed: no point waiting for the time limit
    STABLE = "stable"  # the full rule met, or a race precise enough
    DECIDED = "decided"  # a race whose question is answered


class Windows:
    """Each stream's windows as (requests, P95 ms). A window with too few samples to judge a P95 by
    doubles the window length (up to 8x) and starts the count over."""

    def __init__(self, streams: int, window_s: float):
        self.length, self._longest = window_s, 8 * window_s
        self.each: list[list[tuple[int, float]]] = [[] for _ in range(streams)]

    def add(self, latencies: list[list[float]]) -> bool:
        """Adds each stream's latest window; False when they were too short (counted afresh)."""
        if min(map(len, latencies)) < MIN_WINDOW_SAMPLES and self.length < self._longest:
            self.length *= 2
            for w in self.each:
                w.clear()
            return False
        for w, new in zip(self.each, latencies, strict=True):
            w.append((len(new), float(np.percentile(new, 95)) if new else 0.0))
        return True


@dataclass
class Policy:
    """The stopping rules of one measurement of `streams` (each with its own spec), from `start`
    (after the warm-up), when each stream had `first` latencies."""
    spec: LoadSpec
    streams: list[LoadSpec]
    race: Race | None
    recs: list[Recorder]
    first: list[int]
    start: float
    stalled_s: float | None = None

    def cut_short(self, now: float, alarm: bool) -> Stop | None:
        """A rule that ends the measurement whatever its question."""
        silent = max(r.silent_s(now) for r in self.recs)
        if silent >= self.spec.timeout_s:
            self.stalled_s = silent
            return Stop.STALLED
        if now - self.start >= self.spec.max_duration_s:
            return Stop.TIME
        served = [len(r.latency) > f for r, f in zip(self.recs, self.first, strict=True)]
        if alarm and any(served):
            return Stop.OVERLOADED
        if any(r.errors and not s for r, s in zip(self.recs, served, strict=True)) \
                and now - self.start >= 2 * self.spec.window_s:
            return Stop.FAILING
        return None

    def stable(self, windows: Windows) -> bool:
        """The full rule: every stream's last three windows agree, and it has its samples."""
        poisson = self.spec.request_rate is not None
        return all(_stable(w, self.spec.stability, poisson) and len(r.latency) - f >= s.min_samples
                   for w, r, f, s in zip(windows.each, self.recs, self.first, self.streams, strict=True))

    def ready_to_judge(self, now: float) -> bool:
        """A race judges once each stream has its share of the samples and `min_s` has passed."""
        assert self.race is not None
        total = sum(s.min_samples for s in self.streams)
        return now - self.start >= self.race.min_s and all(
            len(r.latency) - f >= self.race.min_samples * s.min_samples / total
            for r, f, s in zip(self.recs, self.first, self.streams, strict=True))

    async def judged(self, now: float) -> tuple[Stop | None, list[int]]:
        """The race's decision on what each stream has by now (and how many latencies it judged).
        In a thread: the intervals of a long measurement take milliseconds (numpy releases the
        GIL), which would otherwise stall the requests in flight on the event loop."""
        assert self.race is not None
        judged = [len(r.latency) for r in self.recs]
        # sends are appended in time order: those since `start` found by bisection, not a copy
        sent = [(len(r.sent) - bisect.bisect_left(r.sent, self.start)) / (now - self.start) if r.sent else None
                for r in self.recs]
        offered = None if None in sent else sum(s for s in sent if s is not None)
        samples = [(r.latency[f:j], r.done[f:j]) for r, f, j in zip(self.recs, self.first, judged, strict=True)]
        decided, precise = await asyncio.to_thread(settled, self.race, samples, offered, self.start, now)
        return (Stop.DECIDED if decided else Stop.STABLE if precise else None), judged


def _stable(windows: list[tuple[int, float]], stability: float, poisson: bool) -> bool:
    """The last three windows agree within `stability`. With Poisson arrivals a window of n
    requests varies by about 1/sqrt(n) by chance alone, so the tolerance never goes below that."""
    if len(windows) < 3:
        return False
    counts = [float(c) for c, _ in windows[-3:]]
    p95s = [p for _, p in windows[-3:]]
    if poisson:
        stability = max(stability, 2.5 / float(np.sqrt(max(float(np.mean(counts)), 1.0))))

    def spread(xs: list[float]) -> float:
        return (max(xs) - min(xs)) / max(float(np.mean(xs)), 1e-9)

    return bool(spread(counts) <= stability and spread(p95s) <= stability)


def settled(race: Race, streams: list[tuple[list[float], list[float]]], sent: float | None, start: float,
            now: float) -> tuple[bool, bool]:
    """(decided, settled otherwise): the ways a raced measurement's question is settled. Several
    streams are judged together: their summed throughput and their worst P95 (intervals that hold
    the sum and the maximum whenever each stream's hold its own); precise when each stream is."""
    throughputs, p95s, precise = [], [], True
    for latency, done in streams:
        seconds = np.array(latency)
        throughput_ci, p95_ci = rate_ci(np.array(done), start, now), quantile_ci(seconds * 1e3, 0.95)
        throughputs.append(throughput_ci)
        p95s.append(p95_ci)
        precise = precise and (relative_half_width(throughput_ci, len(latency) / (now - start)) <= race.precision
                               and relative_half_width(p95_ci, float(np.percentile(seconds, 95)) * 1e3)
                               <= race.precision)
    throughput, p95 = summed(throughputs), worst(p95s)
    if race.decided(throughput, p95, sent):
        return True, False
    return False, precise or race.ahead(throughput, p95)


def summed(intervals: list[Interval]) -> Interval:
    return sum(lo for lo, _ in intervals), sum(hi for _, hi in intervals)


def worst(intervals: list[Interval]) -> Interval:
    return max(lo for lo, _ in intervals), max(hi for _, hi in intervals)
