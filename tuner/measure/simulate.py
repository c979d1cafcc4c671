"""A small discrete-event simulation of a Triton model under load: requests queue for the
model's instances, and its dynamic batcher (where there is one) sends a batch when the max batch
or a preferred size is waiting or the oldest request has waited the queue delay. It predicts
the throughput and latency of a config from what one execution of each batch size costs, where
queueing theory has no closed form (batching with a delay, several instances, a closed loop).

The load is a closed loop of `clients` (each sends again once answered) or Poisson arrivals at
`rate`; `trip_s` is a request's time outside the server (there and back), which a closed loop's
client waits through before its next request arrives, and `gap_s` the client's own time for each
answer: the answers to one batch reach their clients one after another, so their next requests
arrive that far apart, and a short queue delay sends them in smaller batches. An ensemble is a
chain of such models (`simulate_chain`), each with its own instances and batcher.
"""
from __future__ import annotations

import heapq
import random
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from tuner.measure.queueing import Expected


@dataclass(frozen=True)
class Batcher:
    instances: int
    max_batch: int  # 1: every request executes alone
    queue_delay_s: float = 0.0  # how long the oldest request may wait for a fuller batch
    preferred: tuple[int, ...] = ()  # sizes sent as soon as they can be formed


def _take(batcher: Batcher, waiting: int, oldest_waited_s: float) -> int:
    """How many requests the batcher sends now to an idle instance (0: it waits for more)."""
    if batcher.max_batch <= 1:
        return 1
    if waiting >= batcher.max_batch:
        return batcher.max_batch
    ready = [p for p in batcher.preferred if p <= waiting]
    if ready:
        return max(ready)
    return waiting if oldest_waited_s >= batcher.queue_delay_s - 1e-12 else 0


@dataclass(frozen=True)
class Station:
    """One model of a chain: its batcher, and what an execution of each batch size costs (s)."""
    batcher: Batcher
    service_s: Callable[[int], float]


def simulate(batcher: Batcher, service_s: Callable[[int], float], clients: int | None = None,
             rate: float | None = None, trip_s: float = 0.0, gap_s: float = 0.0, requests: int = 2000,
             seed: int = 0) -> Expected:
    """Runs `requests` through the model (the first tenth warming it up) and returns the
    throughput (requests/s) and the latency as a client sees it (P95 and mean, ms)."""
    return simulate_chain([Station(batcher, service_s)], clients, rate, trip_s, gap_s, requests, seed)


def simulate_chain(stations: list[Station], clients: int | None = None, rate: float | None = None,
                   trip_s: float = 0.0, gap_s: float = 0.0, requests: int = 2000, seed: int = 0) -> Expected:
    """As `simulate`, through an ensemble's steps one after another: a batch's requests join the
    next step's queue as the batch finishes, and the last step's answers go back to the clients."""
    rng = random.Random(seed)
    # (time, order, kind, station, origins: when each request of a batch arrived at the first step)
    events: list[tuple[float, int, int, int, tuple[float, ...]]] = []
    order = 0
    arrive, done, wake = 0, 1, 2

    def push(at: float, kind: int, station: int = 0, origins: tuple[float, ...] = ()) -> None:
        nonlocal order
        order += 1
        heapq.heappush(events, (at, order, kind, station, origins))

    if rate:
        push(rng.expovariate(rate), arrive)
    else:
        for k in range(clients or 1):
            push(trip_s / 2 + k * 1e-9, arrive)
    queues: list[deque[tuple[float, float]]] = [deque() for _ in stations]  # (arrived at the step, origin)
    idle = [s.batcher.instances for s in stations]
    waking = [-1.0] * len(stations)  # when each step's batcher is already due to look again
    latencies: list[float] = []
    finished, warm, start, end, last = 0, requests // 10, 0.0, 0.0, len(stations) - 1
    while events and finished < requests:
        now, _, kind, station, origins = heapq.heappop(events)
        if kind == arrive:
            queues[0].append((now, now))
            if rate:
                push(now + rng.expovariate(rate), arrive)
        elif kind == done:
            idle[station] += 1
            if station < last:
                queues[station + 1].extend((now, origin) for origin in origins)
            for i, origin in enumerate(origins if station == last else ()):
                finished += 1
                answered = now + i * gap_s
                if finished == warm:
                    start = answered
                elif finished > warm:
                    latencies.append(answered - origin + trip_s)
                    end = answered
                if not rate:  # the client is answered, and its next request arrives a trip later
                    push(answered + trip_s, arrive)
        for k, (step, queue) in enumerate(zip(stations, queues, strict=True)):
            while idle[k] and queue:
                size = _take(step.batcher, len(queue), now - queue[0][0])
                if size == 0:
                    due = queue[0][0] + step.batcher.queue_delay_s
                    if due > waking[k]:  # the queue's head only ever arrives later: one wake per due time
                        waking[k] = due
                        push(due, wake, k)
                    break
                batch = tuple(queue.popleft()[1] for _ in range(size))
                idle[k] -= 1
                push(now + step.service_s(size), done, k, batch)
    if not latencies or end <= start:
        return Expected(0.0, float("inf"), float("inf"))
    latencies.sort()
    p95 = latencies[min(len(latencies) - 1, int(0.95 * len(latencies)))]
    return Expected(len(latencies) / (end - start), p95 * 1e3, sum(latencies) / len(latencies) * 1e3)
