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
its question is settled: clearly behind, or as precise as asked. Several models of one server
are driven at once, each with its share of the load (`LoadSpec.mix`), and judged together.

Bounded whatever the server does. An open loop keeps at most as many requests in flight as
`_IN_FLIGHT_BYTES` of inputs allow (gRPC holds a copy of each request until it is answered);
past that the server is behind the offered rate, the requests it cannot take count as failed and the
measurement ends with the window (`overloaded`). Every request has a deadline; when no answer at
all comes for that long, the server or the model hangs and the measurement ends (`stalled`). A
measurement ends by `warmup_s + max_duration_s + _DRAIN_S`, plus the statistics calls' deadlines
(`tuner.server.client.CALL_S`) when the server stops answering.
"""
from __future__ import annotations

import asyncio
import bisect
import dataclasses
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
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
_IN_FLIGHT_BYTES = 256 << 20  # inputs an open loop holds in flight at most
_DRAIN_S = 1.0  # at the end, requests still unanswered after this are cancelled (they are not measured)
TIMEOUT_S = 30.0  # a request's deadline until one is derived from what was measured (Evaluator)
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
    request_timeout_s: float | None = None  # None: TIMEOUT_S, or derived from what was measured
    # several models on one server: each one's share of the concurrency (or of the request rate)
    mix: tuple[tuple[str, float], ...] = ()

    @property
    def mode(self) -> str:
        """The load in words, as measurements and study settings name it."""
        parts = [f"{name} {part.request_rate:g}/s" if part.request_rate else f"{name} {part.concurrency}"
                 for name, part in self.split().items()]
        mixed = f" ({', '.join(parts)})" if parts else ""
        if not self.request_rate:
            return f"concurrency {self.concurrency}{mixed}"
        shape = "" if self.arrivals.shape is Shape.POISSON else f", {self.arrivals.describe()}"
        return f"request rate {self.request_rate:g}/s{shape}{mixed}"

    def split(self) -> dict[str, LoadSpec]:
        """Each model's part of a mix: its concurrency (the largest remainders of the shares, at
        least one each) or its request rate, and its share of the samples."""
        total = sum(share for _, share in self.mix)
        exact = {name: self.concurrency * share / total for name, share in self.mix}
        whole = {name: max(1, int(c)) for name, c in exact.items()}
        left = max(0, self.concurrency - sum(whole.values()))
        for name in sorted(exact, key=lambda n: int(exact[n]) - exact[n])[:left]:
            whole[name] += 1
        return {name: dataclasses.replace(
            self, mix=(), concurrency=whole[name],
            request_rate=self.request_rate * share / total if self.request_rate else None,
            min_samples=max(2 * _MIN_WINDOW_SAMPLES, round(self.min_samples * share / total)))
            for name, share in self.mix}

    @property
    def timeout_s(self) -> float:
        return self.request_timeout_s or TIMEOUT_S

    def to_json(self) -> dict:
        return {**dataclasses.asdict(self), "arrivals": self.arrivals.to_json()}

    @staticmethod
    def from_json(found: dict) -> LoadSpec:
        mix = tuple((str(name), float(share)) for name, share in found.get("mix") or ())
        return LoadSpec(**{**found, "arrivals": Arrivals.from_json(found.get("arrivals")), "mix": mix})


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
    # several models on one server: each one's own; this one is their sum (throughput, goodput)
    # and the worst of them (P95, with the percentiles of that model)
    models: dict[str, Measurement] = field(default_factory=dict)
    overloaded: bool = False  # open loop: the backlog passed its bound, and the measurement stopped
    stalled_s: float | None = None  # no answer at all for this long: stopped (the server or model hangs)

    def slo_excess_ms(self, slos: dict[str, float]) -> float:
        """How far the P95 furthest over its model's SLO is over it (<= 0: every model within)."""
        return max(self.models[name].p95_ms - slo for name, slo in slos.items())


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


def in_flight_limit(request_bytes: int) -> int:
    """How many requests an open loop keeps in flight at most: as many as `_IN_FLIGHT_BYTES` of
    inputs hold (one at the least), and never more than `_MAX_OPEN_LOOP_IN_FLIGHT`."""
    return min(_MAX_OPEN_LOOP_IN_FLIGHT, max(1, _IN_FLIGHT_BYTES // max(request_bytes, 1)))


class _Recorder:
    def __init__(self):
        self.latency: list[float] = []
        self.done: list[float] = []  # when each request completed, for the throughput interval
        self.sent: list[float] = []  # open loop: when each request was sent
        self.errors: list[str] = []
        self.answered = time.perf_counter()  # when the server last answered, with a result or an error
        self.waiting = 0  # requests sent and not answered yet
        self.overloaded = False

    def record(self, since: float) -> None:
        now = time.perf_counter()
        self.latency.append(now - since)
        self.done.append(now)
        self.answered = now

    def refused(self, error: str) -> None:
        """The server answered with an error."""
        self.errors.append(error)
        self.answered = time.perf_counter()

    def silent_s(self, now: float) -> float:
        """How long requests have waited with no answer at all from the server (0: none waiting)."""
        return now - self.answered if self.waiting else 0.0

    async def send(self, infer, request: bytes, due: float, timeout: float) -> None:
        self.sent.append(time.perf_counter())
        self.waiting += 1
        try:
            await infer(request, timeout=timeout)
        except grpc.aio.AioRpcError as e:
            error = f"{e.code().name}: {e.details()}"
            if e.code() is grpc.StatusCode.DEADLINE_EXCEEDED:
                self.errors.append(error)  # no answer: not a sign of life
            else:
                self.refused(error)
            return
        finally:
            self.waiting -= 1
        self.record(due)


async def _closed_loop(channel, requests: list[bytes], spec: LoadSpec, rec: _Recorder, stop: asyncio.Event) -> None:
    open_stream = channel.stream_stream(_STREAM_INFER)

    async def worker(k: int) -> None:
        call = open_stream()
        while not stop.is_set():
            start = time.perf_counter()
            rec.waiting += 1
            try:
                await call.write(requests[k % len(requests)])
                response = await asyncio.wait_for(call.read(), spec.timeout_s)
            except (grpc.aio.AioRpcError, asyncio.TimeoutError, asyncio.InvalidStateError) as e:
                # InvalidStateError: the server ended the stream (it died) between our read and write
                if isinstance(e, asyncio.TimeoutError):
                    rec.errors.append(f"no response within {spec.timeout_s:g} s")
                else:
                    rec.refused(f"{e.code().name}: {e.details()}" if isinstance(e, grpc.aio.AioRpcError)
                                else "stream closed")
                call.cancel()
                await asyncio.sleep(0.01)  # a failing server must not be hammered in a tight loop
                call = open_stream()
                continue
            finally:
                rec.waiting -= 1
            if response is grpc.aio.EOF or response[:1] == _STREAM_ERROR_TAG:
                rec.refused("server: " + _stream_error(response))
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
                     seed: int, measuring: asyncio.Event, alarm: asyncio.Event) -> None:
    """Sends each request when it is due; past the backlog's bound, a due request is not sent: in
    the warm-up silently, once `measuring`, as a failed request, and the `alarm` is raised."""
    infer = channel.unary_unary(_INFER)  # bytes in, bytes out: nothing serialized per call
    in_flight: set[asyncio.Task] = set()
    limit = in_flight_limit(max(map(len, requests)))
    origin = time.perf_counter()
    due_times = schedule(spec.arrivals, spec.request_rate or 1.0, seed)  # only an open-loop spec gets here
    try:
        for k, (offset, entry) in enumerate(due_times):
            if stop.is_set():
                break
            due = origin + offset
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            if len(in_flight) >= limit:
                if measuring.is_set():
                    rec.sent.append(time.perf_counter())  # offered all the same
                    rec.errors.append(f"client: the server is behind: {limit} requests in flight, the bound")
                    rec.overloaded = True
                    alarm.set()
                continue
            request = requests[(k if entry is None else entry) % len(requests)]
            task = asyncio.create_task(rec.send(infer, request, due, spec.timeout_s))
            in_flight.add(task)
            task.add_done_callback(in_flight.discard)
        await asyncio.gather(*in_flight, return_exceptions=True)  # cut short by the driver after _DRAIN_S
    finally:
        for task in in_flight:
            task.cancel()


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
    overloaded: bool = False
    stalled_s: float | None = None

    @property
    def duration(self) -> float:
        return self.end - self.start


@dataclass(frozen=True)
class Stream:
    """One model's requests and its part of the load, driven beside the others' (a mix)."""
    requests: list[bytes]
    spec: LoadSpec


def drive(url: str, requests: list[bytes], spec: LoadSpec, seed: int = 0, race: Race | None = None) -> Recording:
    """Sends `requests` (in turn, or as recorded arrivals name them) as `spec` says, and records them."""
    return drive_all(url, [Stream(requests, spec)], spec, seed, race)[0]


def drive_all(url: str, streams: list[Stream], spec: LoadSpec, seed: int = 0,
              race: Race | None = None) -> list[Recording]:
    """Drives the streams at once, on one channel, and records each: the measurement goes on until
    every stream meets `spec`'s rule (or the race is settled for them together).

    The event loop runs in a thread of its own, and the recordings are taken as soon as they are
    made: a call still sending to a server that stopped reading outlives gRPC's deadlines and
    holds the loop's teardown until the server is killed, which the measurement must not wait for."""
    result: Future[list[Recording]] = Future()
    threading.Thread(target=asyncio.run, args=(_drive(url, streams, spec, seed, race, result),), name="loadgen",
                     daemon=True).start()
    return result.result()


async def _drive(url: str, streams: list[Stream], spec: LoadSpec, seed: int, race: Race | None,
                 result: Future[list[Recording]]) -> None:
    recs, stop, measuring, alarm = [_Recorder() for _ in streams], asyncio.Event(), asyncio.Event(), asyncio.Event()
    stalled_s = None
    channel = grpc.aio.insecure_channel(url, options=_CHANNEL_OPTIONS)
    try:
        try:  # connected before the first request is due, so that its set-up delays no send
            await asyncio.wait_for(channel.channel_ready(), spec.timeout_s)
        except asyncio.TimeoutError:
            pass  # the requests will find it out, and the stall rule will tell
        sources = [_open_loop(channel, s.requests, s.spec, rec, stop, seed + i, measuring, alarm)
                   if s.spec.request_rate else _closed_loop(channel, s.requests, s.spec, rec, stop)
                   for i, (s, rec) in enumerate(zip(streams, recs, strict=True))]
        traffic = asyncio.ensure_future(asyncio.gather(*sources))
        try:
            await asyncio.sleep(spec.warmup_s)
            measuring.set()
            start, cpu0, first = time.perf_counter(), time.process_time(), [len(r.latency) for r in recs]
            windows: list[list[tuple[int, float]]] = [[] for _ in streams]
            window_s, stable, screened, judged = spec.window_s, False, False, first
            # each stream's share of the samples a race needs before it judges
            shares = [s.spec.min_samples / sum(t.spec.min_samples for t in streams) for s in streams]
            while True:
                marks = [len(r.latency) for r in recs]
                await _sleep(min(window_s, max(spec.max_duration_s - (time.perf_counter() - start), 0.0)),
                             alarm if any(m > f for m, f in zip(marks, first, strict=True)) else None)
                now = time.perf_counter()
                silent = max(r.silent_s(now) for r in recs)
                if silent >= spec.timeout_s:
                    stalled_s = silent  # requests went out and nothing at all came back: it hangs
                    break
                if now - start >= spec.max_duration_s:
                    break
                if alarm.is_set() and any(len(r.latency) > f for r, f in zip(recs, first, strict=True)):
                    break  # overloaded: what it served by now is what it serves
                if any(r.errors and len(r.latency) == f for r, f in zip(recs, first, strict=True)) \
                        and now - start >= 2 * spec.window_s:
                    break  # a model none of whose requests succeed: no point waiting for the time limit
                counts = [len(r.latency) - f for r, f in zip(recs, first, strict=True)]
                window = [r.latency[m:] for r, m in zip(recs, marks, strict=True)]
                if min(map(len, window)) < _MIN_WINDOW_SAMPLES and window_s < 8 * spec.window_s:
                    window_s *= 2  # too few samples to judge a P95 by: longer windows, start over
                    for w in windows:
                        w.clear()
                    continue
                for w, new in zip(windows, window, strict=True):
                    w.append((len(new), float(np.percentile(new, 95)) if new else 0.0))
                if race is None:
                    stable = all(_stable(w, spec.stability, poisson=spec.request_rate is not None)
                                 and n >= s.spec.min_samples for w, n, s in zip(windows, counts, streams, strict=True))
                    if stable:
                        break
                elif all(n >= race.min_samples * share for n, share in zip(counts, shares, strict=True)) \
                        and now - start >= race.min_s:
                    # in a thread: the intervals of a long measurement take milliseconds (numpy releases
                    # the GIL), which would otherwise stall the requests in flight on this event loop
                    judged = [len(r.latency) for r in recs]
                    # sends are appended in time order: those since `start` found by bisection, not a copy
                    sent = [(len(r.sent) - bisect.bisect_left(r.sent, start)) / (now - start) if r.sent else None
                            for r in recs]
                    screened, stable = await asyncio.to_thread(
                        _settled, race, [(r.latency[f:j], r.done[f:j]) for r, f, j in zip(recs, first, judged,
                                                                                            strict=True)],
                        None if None in sent else sum(s for s in sent if s is not None), start, now)
                    if screened or stable:
                        break
            end, cpu1, last = time.perf_counter(), time.process_time(), [len(r.latency) for r in recs]
            if race is not None and (screened or stable):
                end, last = now, judged  # the result is exactly what the race judged
        finally:
            stop.set()
            await asyncio.wait([traffic], timeout=_DRAIN_S)
            traffic.cancel()  # requests unanswered by now are not measured: a hung server holds them
            traffic.add_done_callback(_consumed)
            await asyncio.wait([traffic], timeout=_DRAIN_S)
        cpu = (cpu1 - cpu0) / (end - start)
        result.set_result([Recording(np.array(r.latency[f:n]) * 1e3, np.array(r.done[f:n]), np.array(r.sent[:]),
                                     start, end, len(w), stable, screened, r.errors[:], cpu, r.overloaded, stalled_s)
                           for r, f, n, w in zip(recs, first, last, windows, strict=True)])
    except BaseException as e:  # the caller's, whatever it is; handed over before the teardown below
        result.set_exception(e)
    finally:
        await channel.close()


def _consumed(done: asyncio.Future) -> None:
    """Takes the outcome of traffic cancelled at the end (it may end only at the loop's teardown,
    when a call still sends to a server that stopped reading), so its cancellation is not logged."""
    if not done.cancelled():
        done.exception()


async def _sleep(seconds: float, alarm: asyncio.Event | None) -> None:
    """Sleeps `seconds`, or until `alarm` is raised (when given)."""
    if alarm is None:
        await asyncio.sleep(seconds)
        return
    try:
        await asyncio.wait_for(alarm.wait(), seconds)
    except asyncio.TimeoutError:
        pass


def _settled(race: Race, streams: list[tuple[list[float], list[float]]], sent: float | None, start: float,
             now: float) -> tuple[bool, bool]:
    """(decided, precise enough): the two ways a raced measurement's question is settled. Several
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
    if race.decided(_sum(throughputs), _worst(p95s), sent):
        return True, False
    return False, precise


def _sum(intervals: list[Interval]) -> Interval:
    return sum(lo for lo, _ in intervals), sum(hi for _, hi in intervals)


def _worst(intervals: list[Interval]) -> Interval:
    return max(lo for lo, _ in intervals), max(hi for _, hi in intervals)


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
    # a server that hangs would not answer either: its deadline would only add to the wait
    after = {name: control.statistics(name) for name in (model, *steps)} if rec.stalled_s is None else {}
    by_step = {name: found for name in steps if (found := _breakdown(before[name], after.get(name, {}))) is not None}
    return _measurement(rec, spec, _breakdown(before[model], after.get(model, {})), slo_ms, by_step)


def measure_mix(control: TritonControl, requests: dict[str, list[bytes]], spec: LoadSpec, seed: int = 0,
                race: Race | None = None, slos: dict[str, float] | None = None) -> Measurement:
    """Drives several models of one server at once, each with its part of `spec`'s mix, and
    returns their joint measurement: the total throughput and the worst P95, with each model's
    own under `models` (its goodput against its SLO in `slos`)."""
    parts, slos = spec.split(), slos or {}
    before = {name: control.statistics(name) for name in parts}
    recs = drive_all(control.url, [Stream(requests[name], part) for name, part in parts.items()], spec, seed, race)
    after = {name: control.statistics(name) for name in parts}
    each = {name: _measurement(rec, part, _breakdown(before[name], after[name]), slos.get(name))
            for (name, part), rec in zip(parts.items(), recs, strict=True)}
    worst = max(each.values(), key=lambda m: m.p95_ms if m.samples else float("inf"))
    goodputs = [m.goodput for m in each.values()]
    offered = [m.offered for m in each.values()]
    return dataclasses.replace(
        worst, throughput=sum(m.throughput for m in each.values()),
        p95_ci_ms=_worst([m.p95_ci_ms for m in each.values()]),
        throughput_ci=_sum([m.throughput_ci for m in each.values()]),
        samples=sum(m.samples for m in each.values()), errors=sum(m.errors for m in each.values()),
        stable=all(m.stable for m in each.values()),
        first_error=next((m.first_error for m in each.values() if m.first_error), ""), server=None, mode=spec.mode,
        goodput=None if None in goodputs else sum(g for g in goodputs if g is not None),
        offered=None if None in offered else sum(o for o in offered if o is not None), models=each)


def _measurement(rec: Recording, spec: LoadSpec, server: ServerBreakdown | None, slo_ms: float | None,
                 steps: dict[str, ServerBreakdown] | None = None) -> Measurement:
    lat, errors = rec.latency_ms, rec.errors
    if len(lat) == 0:
        return Measurement(0.0, *(float("nan"),) * 4, (float("nan"),) * 2, (float("nan"),) * 2, 0, len(errors),
                           rec.duration, rec.windows, False, rec.client_cpu,
                           errors[0] if errors else "no response", server, spec.mode, goodput=0.0,
                           overloaded=rec.overloaded, stalled_s=rec.stalled_s)
    p50, p90, p95, p99 = (float(v) for v in np.percentile(lat, [50, 90, 95, 99]))
    return Measurement(throughput=len(lat) / rec.duration, p50_ms=p50, p90_ms=p90,
                       p95_ms=p95, p99_ms=p99, p95_ci_ms=quantile_ci(lat, 0.95),
                       throughput_ci=rate_ci(rec.done, rec.start, rec.end),
                       samples=len(lat), errors=len(errors), duration_s=rec.duration,
                       windows=rec.windows, stable=rec.stable, client_cpu=rec.client_cpu,
                       first_error=errors[0] if errors else "", server=server, mode=spec.mode,
                       screened=rec.screened,
                       goodput=None if slo_ms is None else int(np.sum(lat <= slo_ms)) / rec.duration,
                       offered=_sent_rate(rec.sent, rec.start, rec.end), steps=steps or {},
                       overloaded=rec.overloaded, stalled_s=rec.stalled_s)
