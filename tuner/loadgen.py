"""The built-in load generator over gRPC: closed loop at a fixed concurrency, or open loop at a
fixed request rate with Poisson arrivals.

Why not tritonclient: its per-call request building copies and re-serializes every input (4.9 MB
per request for the demo), which makes the client the bottleneck on a small machine. Here requests
are serialized once and sent as bytes through grpc.aio, and responses are not parsed. The closed
loop gives each worker its own ModelStreamInfer stream with one request in flight: a message on an
open stream costs Python about a third of a unary call (identity model, 2 cores: 8400 vs 5500
infer/s at 0.7 core), and the response on a worker's stream is always its own. The open loop
needs many requests in flight, so it sends unary calls.

Method (in the spirit of perf_analyzer's): a warm-up, then fixed-length windows until there are
at least `min_samples` latencies and the last three windows agree on throughput and P95 within
`stability`, or `max_duration_s` passes. All samples after the warm-up make the result. In open
loop, latency counts from the moment a request was *due*, so a server that falls behind cannot
hide its queue (no coordinated omission). A raced measurement (`Race`) stops instead as soon as
its question is settled: clearly behind, or as precise as asked.
"""
from __future__ import annotations

import asyncio
import bisect
import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import grpc
import numpy as np

from tuner.arrivals import Arrivals, Shape, schedule
from tuner.server.client import TritonControl
from tuner.stats import quantile_ci, rate_ci, relative_half_width

_INFER = "/inference.GRPCInferenceService/ModelInfer"
_STREAM_INFER = "/inference.GRPCInferenceService/ModelStreamInfer"
# A ModelStreamInferResponse that carries an error starts with field 1 (error_message), tag 0x0A;
# a success carries only field 2 (infer_response). Enough to tell them apart without parsing.
_STREAM_ERROR_TAG = b"\x0a"
_CHANNEL_OPTIONS = [("grpc.max_send_message_length", -1), ("grpc.max_receive_message_length", -1)]
_MAX_OPEN_LOOP_IN_FLIGHT = 4096  # beyond this the server is hopelessly behind: count as errors
_MIN_WINDOW_SAMPLES = 50  # as perf_analyzer's count windows
PRECISION = 0.05  # a raced measurement stops once its intervals are within 5 % of its estimates


@dataclass(frozen=True)
class LoadSpec:
    concurrency: int = 8
    request_rate: float | None = None  # requests/s, open loop; None = closed loop at `concurrency`
    arrivals: Arrivals = Arrivals()  # open loop: when requests are due (tuner.arrivals)
    warmup_s: float = 1.0
    window_s: float = 1.0
    min_samples: int = 500
    max_duration_s: float = 20.0
    stability: float = 0.10  # last 3 windows within 10% (throughput and P95)
    request_timeout_s: float = 30.0

    @property
    def mode(self) -> str:
        """The load in words, as measurements and study settings name it."""
        if not self.request_rate:
            return f"concurrency {self.concurrency}"
        shape = "" if self.arrivals.shape is Shape.POISSON else f", {self.arrivals.describe()}"
        return f"request rate {self.request_rate:g}/s{shape}"

    def to_json(self) -> dict:
        return {**dataclasses.asdict(self), "arrivals": self.arrivals.to_json()}

    @staticmethod
    def from_json(found: dict) -> LoadSpec:
        return LoadSpec(**{**found, "arrivals": Arrivals.from_json(found.get("arrivals"))})


@dataclass(frozen=True)
class ServerBreakdown:
    """Per-request averages from Triton's statistics API over the measurement (ms)."""
    queue_ms: float
    compute_input_ms: float
    compute_infer_ms: float
    compute_output_ms: float
    avg_batch_size: float


@dataclass(frozen=True)
class Measurement:
    throughput: float  # inferences per second
    p50_ms: float
    p90_ms: float
    p95_ms: float
    p99_ms: float
    p95_ci_ms: tuple[float, float]  # 95% confidence interval of P95 (tuner.stats.quantile_ci)
    throughput_ci: tuple[float, float]  # 95% interval of the rate (tuner.stats.rate_ci)
    samples: int
    errors: int
    duration_s: float
    windows: int
    stable: bool
    client_cpu: float  # client process CPU seconds per wall second during measurement
    first_error: str = ""
    server: ServerBreakdown | None = None
    mode: str = "concurrency 8"
    screened: bool = False  # a raced measurement that stopped early: its question was decided
    goodput: float | None = None  # requests/s that met the SLO, when one was given
    offered: float | None = None  # open loop: requests/s sent during the measurement (as drawn, not as asked)
    # a pipeline's members, each as Triton counted it over the measurement: which step is the bottleneck
    steps: dict[str, ServerBreakdown] = field(default_factory=dict)


Interval = tuple[float, float]


@dataclass(frozen=True)
class Race:
    """A measurement that stops as soon as the question it answers is settled, asked after each
    window once `min_samples` are in and `min_s` has passed. `decided(throughput_ci, p95_ci_ms,
    offered)` says the answer is known (a search's proposal clearly behind the front; a capacity
    step clearly within the SLO or over it), and it stops (`screened`); otherwise it stops once
    both intervals' half-widths are within `precision` of their estimates (`stable`). The full
    measurement's rule does not apply."""
    decided: Callable[[Interval, Interval, float | None], bool]  # offered: as Measurement.offered
    precision: float = PRECISION
    min_samples: int = 100
    min_s: float = 0.0


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


def _breakdown(before: dict, after: dict) -> ServerBreakdown | None:
    def delta(section: str, key: str) -> float:
        a = int(after.get("inference_stats", {}).get(section, {}).get(key, 0))
        b = int(before.get("inference_stats", {}).get(section, {}).get(key, 0))
        return a - b

    requests = delta("success", "count")
    executions = int(after.get("execution_count", 0)) - int(before.get("execution_count", 0))
    inferences = int(after.get("inference_count", 0)) - int(before.get("inference_count", 0))
    if requests <= 0 or executions <= 0:
        return None
    per_request_ms = lambda section: delta(section, "ns") / requests / 1e6  # noqa: E731
    return ServerBreakdown(per_request_ms("queue"), per_request_ms("compute_input"),
                           per_request_ms("compute_infer"), per_request_ms("compute_output"),
                           inferences / executions)


class _Recorder:
    def __init__(self):
        self.latency: list[float] = []
        self.done: list[float] = []  # when each request completed, for the throughput interval
        self.sent: list[float] = []  # open loop: when each request was sent
        self.errors: list[str] = []

    def record(self, since: float) -> None:
        now = time.perf_counter()
        self.latency.append(now - since)
        self.done.append(now)

    async def send(self, infer, request: bytes, due: float, timeout: float) -> None:
        self.sent.append(time.perf_counter())
        try:
            await infer(request, timeout=timeout)
        except grpc.aio.AioRpcError as e:
            self.errors.append(f"{e.code().name}: {e.details()}")
            return
        self.record(due)


async def _closed_loop(channel, requests: list[bytes], spec: LoadSpec, rec: _Recorder, stop: asyncio.Event) -> None:
    open_stream = channel.stream_stream(_STREAM_INFER)

    async def worker(k: int) -> None:
        call = open_stream()
        while not stop.is_set():
            start = time.perf_counter()
            try:
                await call.write(requests[k % len(requests)])
                response = await asyncio.wait_for(call.read(), spec.request_timeout_s)
            except (grpc.aio.AioRpcError, asyncio.TimeoutError, asyncio.InvalidStateError) as e:
                # InvalidStateError: the server ended the stream (it died) between our read and write
                rec.errors.append(f"{e.code().name}: {e.details()}" if isinstance(e, grpc.aio.AioRpcError)
                                  else "stream closed" if isinstance(e, asyncio.InvalidStateError)
                                  else f"no response within {spec.request_timeout_s:g} s")
                call.cancel()
                await asyncio.sleep(0.01)  # a failing server must not be hammered in a tight loop
                call = open_stream()
                continue
            if response is grpc.aio.EOF or response[:1] == _STREAM_ERROR_TAG:
                rec.errors.append("server: " + _stream_error(response))
                if response is grpc.aio.EOF:  # a closed stream takes no more writes
                    await asyncio.sleep(0.01)
                    call = open_stream()
            else:
                rec.record(start)
            k += spec.concurrency
        call.cancel()

    await asyncio.gather(*(worker(i) for i in range(spec.concurrency)))


def _stream_error(response) -> str:
    if response is grpc.aio.EOF:
        return "stream closed"
    from tritonclient.grpc import service_pb2

    return service_pb2.ModelStreamInferResponse.FromString(response).error_message


async def _open_loop(channel, requests: list[bytes], spec: LoadSpec, rec: _Recorder, stop: asyncio.Event,
                     seed: int) -> None:
    infer = channel.unary_unary(_INFER)  # bytes in, bytes out: nothing serialized per call
    in_flight: set[asyncio.Task] = set()
    origin = time.perf_counter()
    due_times = schedule(spec.arrivals, spec.request_rate or 1.0, seed)  # only an open-loop spec gets here
    for k, (offset, entry) in enumerate(due_times):
        if stop.is_set():
            break
        due = origin + offset
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        if len(in_flight) >= _MAX_OPEN_LOOP_IN_FLIGHT:
            rec.errors.append(f"client: more than {_MAX_OPEN_LOOP_IN_FLIGHT} requests in flight")
            continue
        request = requests[(k if entry is None else entry) % len(requests)]
        task = asyncio.create_task(rec.send(infer, request, due, spec.request_timeout_s))
        in_flight.add(task)
        task.add_done_callback(in_flight.discard)
    await asyncio.gather(*in_flight, return_exceptions=True)


@dataclass(frozen=True)
class Recording:
    """Every request of a measurement, after the warm-up (times from time.perf_counter, seconds)."""
    latency_ms: np.ndarray
    done: np.ndarray  # when each completed
    sent: np.ndarray  # open loop: when each was sent (warm-up included, failed ones too)
    start: float
    end: float
    windows: int
    stable: bool
    screened: bool
    errors: list[str]
    client_cpu: float

    @property
    def duration(self) -> float:
        return self.end - self.start


def drive(url: str, requests: list[bytes], spec: LoadSpec, seed: int = 0, race: Race | None = None) -> Recording:
    """Sends `requests` (in turn, or as recorded arrivals name them) as `spec` says, and records them."""
    return asyncio.run(_drive(url, requests, spec, seed, race))


async def _drive(url: str, requests: list[bytes], spec: LoadSpec, seed: int, race: Race | None) -> Recording:
    rec, stop = _Recorder(), asyncio.Event()
    async with grpc.aio.insecure_channel(url, options=_CHANNEL_OPTIONS) as channel:
        source = (_open_loop(channel, requests, spec, rec, stop, seed) if spec.request_rate
                  else _closed_loop(channel, requests, spec, rec, stop))
        traffic = asyncio.create_task(source)
        try:
            await asyncio.sleep(spec.warmup_s)
            start, cpu0, first = time.perf_counter(), time.process_time(), len(rec.latency)
            windows: list[tuple[int, float]] = []
            window_s, stable, screened, judged = spec.window_s, False, False, first
            while True:
                mark = len(rec.latency)
                await asyncio.sleep(window_s)
                now = time.perf_counter()
                if now - start >= spec.max_duration_s:
                    break
                if rec.errors and len(rec.latency) == first and now - start >= 2 * spec.window_s:
                    break  # nothing succeeds: no point waiting for the time limit
                window = rec.latency[mark:]
                if len(window) < _MIN_WINDOW_SAMPLES and window_s < 8 * spec.window_s:
                    window_s *= 2  # too few samples to judge a P95 by: longer windows, start over
                    windows.clear()
                    continue
                windows.append((len(window), float(np.percentile(window, 95)) if window else 0.0))
                if race is None:
                    stable = _stable(windows, spec.stability, poisson=spec.request_rate is not None)
                    if stable and len(rec.latency) - first >= spec.min_samples:
                        break
                elif len(rec.latency) - first >= race.min_samples and now - start >= race.min_s:
                    # in a thread: the intervals of a long measurement take milliseconds (numpy releases
                    # the GIL), which would otherwise stall the requests in flight on this event loop
                    judged = len(rec.latency)
                    # sends are appended in time order: those since `start` found by bisection, not a copy
                    sent = (len(rec.sent) - bisect.bisect_left(rec.sent, start)) / (now - start) if rec.sent else None
                    screened, stable = await asyncio.to_thread(_settled, race, rec.latency[first:judged],
                                                               rec.done[first:judged], sent, start, now)
                    if screened or stable:
                        break
            end, cpu1, last = time.perf_counter(), time.process_time(), len(rec.latency)
            if race is not None and (screened or stable):
                end, last = now, judged  # the result is exactly what the race judged
        finally:
            stop.set()
            await traffic
    return Recording(np.array(rec.latency[first:last]) * 1e3, np.array(rec.done[first:last]), np.array(rec.sent),
                     start, end, len(windows), stable, screened, rec.errors, (cpu1 - cpu0) / (end - start))


def _settled(race: Race, latency: list[float], done: list[float], sent: float | None, start: float,
             now: float) -> tuple[bool, bool]:
    """(decided, precise enough): the two ways a raced measurement's question is settled."""
    seconds = np.array(latency)
    throughput_ci, p95_ci = rate_ci(np.array(done), start, now), quantile_ci(seconds * 1e3, 0.95)
    if race.decided(throughput_ci, p95_ci, sent):
        return True, False
    precise = (relative_half_width(throughput_ci, len(latency) / (now - start)) <= race.precision
               and relative_half_width(p95_ci, float(np.percentile(seconds, 95)) * 1e3) <= race.precision)
    return False, precise


def _sent_rate(sent: np.ndarray, start: float, end: float) -> float | None:
    """Requests sent per second within [start, end] (None for a closed loop, which sends on replies)."""
    return float(np.sum((sent >= start) & (sent <= end))) / (end - start) if len(sent) else None


def measure(control: TritonControl, model: str, requests: list[bytes], spec: LoadSpec = LoadSpec(),
            seed: int = 0, race: Race | None = None, slo_ms: float | None = None,
            steps: tuple[str, ...] = ()) -> Measurement:
    """Drives `model` with `requests` and returns what was measured; with `race`, until its
    question is settled rather than by the full rule; with `slo_ms`, the goodput too; with
    `steps` (the models `model` calls), what each of them served."""
    before = {name: control.statistics(name) for name in (model, *steps)}
    rec = drive(control.url, requests, spec, seed, race)
    after = {name: control.statistics(name) for name in (model, *steps)}
    server = _breakdown(before[model], after[model])
    by_step = {name: found for name in steps if (found := _breakdown(before[name], after[name])) is not None}
    lat, errors = rec.latency_ms, rec.errors
    if len(lat) == 0:
        return Measurement(0.0, *(float("nan"),) * 4, (float("nan"),) * 2, (float("nan"),) * 2, 0, len(errors),
                           rec.duration, rec.windows, False, rec.client_cpu,
                           errors[0] if errors else "no response", server, spec.mode, goodput=0.0)
    p50, p90, p95, p99 = (float(v) for v in np.percentile(lat, [50, 90, 95, 99]))
    return Measurement(throughput=len(lat) / rec.duration, p50_ms=p50, p90_ms=p90,
                       p95_ms=p95, p99_ms=p99, p95_ci_ms=quantile_ci(lat, 0.95),
                       throughput_ci=rate_ci(rec.done, rec.start, rec.end),
                       samples=len(lat), errors=len(errors), duration_s=rec.duration,
                       windows=rec.windows, stable=rec.stable, client_cpu=rec.client_cpu,
                       first_error=errors[0] if errors else "", server=server, mode=spec.mode,
                       screened=rec.screened,
                       goodput=None if slo_ms is None else int(np.sum(lat <= slo_ms)) / rec.duration,
                       offered=_sent_rate(rec.sent, rec.start, rec.end), steps=by_step)
