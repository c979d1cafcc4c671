"""What queueing theory says a server with a known service time must do: figures no instrument can
argue with, for checking the load generator against ground truth (benchmarks/ground_truth.py and
the tests).

- A closed loop of `c` clients on `n` instances with a fixed service time `s`: throughput
  min(c, n) / s; each request waits for the ceil(c / n) - 1 services ahead of it on its instance.
- Poisson arrivals at rate `lam` on `n` instances with exponential service of rate `mu` (M/M/n):
  the time in system is the Erlang C wait plus the service; its percentiles follow in closed form.
- A batch that costs `a + b * size`, with a batcher that waits for batches to fill: `c` clients
  move in batches of min(c, max batch), min(n, c / max batch) of them at once.

Measurements are finite: `simulated_mmn_p95s` says what spread a measurement of a given length
must show around the M/M/n figure.
"""
from __future__ import annotations

import heapq
import math
import random
from dataclasses import dataclass


@dataclass(frozen=True)
class Expected:
    throughput: float  # requests per second
    p95_ms: float
    mean_ms: float


def closed_loop(clients: int, instances: int, service_s: float, trip_s: float = 0.0) -> Expected:
    """`clients` in a closed loop, each sending when answered, on `instances` with a fixed service
    time and no batching; `trip_s` is what a request spends outside the service (the trip to the
    server and back, the backend's own handling), which overlaps with other requests' service
    only where some are waiting. With c > n the instances serve in rounds: a request waits for the
    requests ahead of it on its instance, so every latency is ceil(c / n) services when n divides c."""
    rounds = math.ceil(clients / instances) if clients > instances else 1
    throughput = min(clients / (service_s + trip_s), instances / service_s)
    return Expected(throughput, max(rounds * service_s, service_s + trip_s) * 1e3, clients / throughput * 1e3)


def erlang_c(instances: int, offered: float) -> float:
    """The probability that an arrival waits (M/M/n), `offered` = lam / mu < n."""
    if offered >= instances:
        return 1.0
    term, total = 1.0, 1.0  # offered**k / k!, summed for k < n
    for k in range(1, instances):
        term *= offered / k
        total += term
    last = term * offered / instances / (1 - offered / instances)  # the k = n term with its tail
    return last / (total + last)


def mmn_sojourn_exceeds(t: float, lam: float, mu: float, instances: int) -> float:
    """P(time in system > t) for M/M/n: the Erlang C wait (exponential at rate n*mu - lam when
    there is one) plus an exponential service at rate mu."""
    waits, gap = erlang_c(instances, lam / mu), instances * mu - lam
    if abs(gap - mu) < 1e-12 * mu:  # the two rates meet: the convolution's limit
        return math.exp(-mu * t) * (1 + waits * mu * t)
    return math.exp(-mu * t) + waits * mu / (gap - mu) * (math.exp(-mu * t) - math.exp(-gap * t))


def mmn(lam: float, mu: float, instances: int, quantile: float = 0.95) -> Expected:
    """Poisson arrivals at `lam` on `instances` with exponential service of rate `mu`: the
    throughput (all of it, below capacity), the sojourn time's `quantile` and its mean."""
    if lam >= instances * mu:
        raise ValueError(f"{lam} requests/s is beyond the capacity {instances * mu}")
    low, high = 0.0, 1.0 / mu
    while mmn_sojourn_exceeds(high, lam, mu, instances) > 1 - quantile:
        high *= 2
    for _ in range(100):  # bisection: the tail falls monotonically
        mid = (low + high) / 2
        low, high = (mid, high) if mmn_sojourn_exceeds(mid, lam, mu, instances) > 1 - quantile else (low, mid)
    mean = 1 / mu + erlang_c(instances, lam / mu) / (instances * mu - lam)
    return Expected(lam, high * 1e3, mean * 1e3)


def batched_closed_loop(clients: int, instances: int, max_batch: int, a_s: float, b_s: float,
                        trip_s: float = 0.0) -> Expected:
    """`clients` in a closed loop on `instances` whose batcher waits long enough for returning
    clients to fill a batch (a queue delay beyond their round trip), each batch costing
    a + b * size: the clients move in batches of min(c, max batch), as many at once as there are
    instances for them, so every request waits the same (when the max batch divides c). A batch's
    trip back and forth (`trip_s`) delays its next round unless other batches keep the instances busy."""
    size = min(clients, max_batch)
    batch_s = a_s + b_s * size
    throughput = min(clients / (batch_s + trip_s), min(instances, clients / size) * size / batch_s)
    return Expected(throughput, clients / throughput * 1e3, clients / throughput * 1e3)


def simulated_mmn_p95s(lam: float, mu: float, instances: int, seconds: float, warmup_s: float, runs: int,
                       seed: int = 0) -> list[float]:
    """The P95 (ms) that each of `runs` measurements of `seconds` after `warmup_s` from an empty
    queue would find on an M/M/n server (first come, first served): how far a finite measurement's
    estimate strays from the steady state's, which near saturation it takes long to reach."""
    rng, found = random.Random(seed), []
    for _ in range(runs):
        free, now, times = [0.0] * instances, 0.0, []
        while now < warmup_s + seconds:
            now += rng.expovariate(lam)
            done = max(now, heapq.heappop(free)) + rng.expovariate(mu)
            heapq.heappush(free, done)
            if now >= warmup_s:
                times.append(done - now)
        times.sort()
        found.append(times[min(len(times) - 1, int(0.95 * len(times)))] * 1e3 if times else math.nan)
    return found
