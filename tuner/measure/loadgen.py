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
import dataclasses
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass

import grpc
import numpy as np

from tuner.measure.load import LoadSpec, Race
from tuner.measure.measurement import Measurement, Recording, breakdown, from_recording
from tuner.measure.senders import Recorder, closed_loop, open_loop
from tuner.measure.stopping import Policy, Stop, Windows, summed, worst
from tuner.server.client import TritonControl

_CHANNEL_OPTIONS = [("grpc.max_send_message_length", -1), ("grpc.max_receive_message_length", -1)]
_DRAIN_S = 1.0  # at the end, requests still unanswered after this are cancelled (they are not measured)


@dataclass(frozen=True)
class Stream:
    """One model's requests and its part of the load, driven beside the others' (a mix)."""
    requests: list[bytes]
    spec: LoadSpec


def drive(url: str, requests: list[bytes], spec: LoadSpec, seed: int = 0, race: Race | None = None,
          at_start: Callable[[], None] | None = None) -> Recording:
    """Sends `requests` (in turn, or as recorded arrivals name them) as `spec` says, and records them."""
    return drive_all(url, [Stream(requests, spec)], spec, seed, race, at_start)[0]


def drive_all(url: str, streams: list[Stream], spec: LoadSpec, seed: int = 0,
              race: Race | None = None, at_start: Callable[[], None] | None = None) -> list[Recording]:
    """Drives the streams at once, on one channel, and records each: the measurement goes on until
    every stream meets `spec`'s rule (or the race is settled for them together). `at_start` is
    called when the warm-up ends (in a thread, while the load goes on).

    The event loop runs in a thread of its own, and the recordings are taken as soon as they are
    made: a call still sending to a server that stopped reading outlives gRPC's deadlines and
    holds the loop's teardown until the server is killed, which the measurement must not wait for."""
    result: Future[list[Recording]] = Future()
    threading.Thread(target=asyncio.run, args=(_drive(url, streams, spec, seed, race, at_start, result),),
                     name="loadgen", daemon=True).start()
    return result.result()


async def _drive(url: str, streams: list[Stream], spec: LoadSpec, seed: int, race: Race | None,
                 at_start: Callable[[], None] | None, result: Future[list[Recording]]) -> None:
    recs, stop, measuring, alarm = [Recorder() for _ in streams], asyncio.Event(), asyncio.Event(), asyncio.Event()
    channel = grpc.aio.insecure_channel(url, options=_CHANNEL_OPTIONS)
    try:
        try:  # connected before the first request is due, so that its set-up delays no send
            await asyncio.wait_for(channel.channel_ready(), spec.timeout_s)
        except asyncio.TimeoutError:
            pass  # the requests will find it out, and the stall rule will tell
        sources = [open_loop(channel, s.requests, s.spec, rec, stop, seed + i, measuring, alarm)
                   if s.spec.request_rate else closed_loop(channel, s.requests, s.spec, rec, stop)
                   for i, (s, rec) in enumerate(zip(streams, recs, strict=True))]
        traffic = asyncio.ensure_future(asyncio.gather(*sources))
        try:
            await asyncio.sleep(spec.warmup_s)
            if at_start is not None:
                await asyncio.to_thread(at_start)
            measuring.set()
            start, cpu0 = time.perf_counter(), time.process_time()
            policy = Policy(spec, [s.spec for s in streams], race, recs, [len(r.latency) for r in recs], start)
            windows = Windows(len(streams), spec.window_s)
            ended, judged = await _windows(policy, windows, alarm)
            end, cpu1 = time.perf_counter(), time.process_time()
            last = [len(r.latency) for r in recs]
            if judged is not None:
                end, last = judged  # the result is exactly what the race judged
        finally:
            stop.set()
            await asyncio.wait([traffic], timeout=_DRAIN_S)
            traffic.cancel()  # requests unanswered by now are not measured: a hung server holds them
            traffic.add_done_callback(_consumed)
            await asyncio.wait([traffic], timeout=_DRAIN_S)
        cpu = (cpu1 - cpu0) / (end - start)
        stable, decided = ended is Stop.STABLE, ended is Stop.DECIDED
        result.set_result([Recording(np.array(r.latency[f:n]) * 1e3, np.array(r.done[f:n]), np.array(r.sent[:]),
                                     start, end, len(w), stable, decided, r.errors[:], cpu, r.overloaded,
                                     policy.stalled_s)
                           for r, f, n, w in zip(recs, policy.first, last, windows.each, strict=True)])
    except BaseException as e:  # the caller's, whatever it is; handed over before the teardown below
        result.set_exception(e)
    finally:
        await channel.close()


async def _windows(policy: Policy, windows: Windows, alarm: asyncio.Event
                   ) -> tuple[Stop, tuple[float, list[int]] | None]:
    """Measures window by window until a rule stops it; a race's decision comes with the time and the
    latencies it judged, which are then the result."""
    recs, spec = policy.recs, policy.spec
    while True:
        marks = [len(r.latency) for r in recs]
        await _sleep(min(windows.length, max(spec.max_duration_s - (time.perf_counter() - policy.start), 0.0)),
                     alarm if any(m > f for m, f in zip(marks, policy.first, strict=True)) else None)
        now = time.perf_counter()
        cut = policy.cut_short(now, alarm.is_set())
        if cut is not None:
            return cut, None
        if not windows.add([r.latency[m:] for r, m in zip(recs, marks, strict=True)]):
            continue
        if policy.race is None or policy.race.full_rule:
            if policy.stable(windows):
                return Stop.STABLE, None
        if policy.race is not None and policy.ready_to_judge(now):
            stop, judged = await policy.judged(now)
            if stop is not None:
                return stop, (now, judged)


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


def measure(control: TritonControl, model: str, requests: list[bytes], spec: LoadSpec = LoadSpec(),
            seed: int = 0, race: Race | None = None, slo_p95_ms: float | None = None,
            steps: tuple[str, ...] = ()) -> Measurement:
    """Drives `model` with `requests` and returns what was measured; with `race`, until its
    question is settled rather than by the full rule; with `slo_p95_ms`, the goodput too; with
    `steps` (the models `model` calls), what each of them served (after the warm-up, as the
    latencies are)."""
    models, before = (model, *steps), {}
    rec = drive(control.url, requests, spec, seed, race, at_start=lambda: before.update(_counters(control, models)))
    # a server that hangs would not answer either: its deadline would only add to the wait
    after = _counters(control, models) if rec.stalled_s is None else {}
    by_step = {name: found for name in steps if (found := breakdown(before.get(name, {}), after.get(name, {})))
               is not None}
    return from_recording(rec, spec, breakdown(before.get(model, {}), after.get(model, {})), slo_p95_ms, by_step)


def _counters(control: TritonControl, models: tuple[str, ...]) -> dict[str, dict]:
    return {name: control.statistics(name) for name in models}


def measure_mix(control: TritonControl, requests: dict[str, list[bytes]], spec: LoadSpec, seed: int = 0,
                race: Race | None = None, model_slos: dict[str, float] | None = None) -> Measurement:
    """Drives several models of one server at once, each with its part of `spec`'s mix, and
    returns their joint measurement: the total throughput and the worst P95, with each model's
    own under `models` (its goodput against its SLO in `model_slos`)."""
    parts, model_slos = spec.split(), model_slos or {}
    before: dict[str, dict] = {}
    recs = drive_all(control.url, [Stream(requests[name], part) for name, part in parts.items()], spec, seed, race,
                     at_start=lambda: before.update(_counters(control, tuple(parts))))
    after = _counters(control, tuple(parts))
    each = {name: from_recording(rec, part, breakdown(before.get(name, {}), after[name]), model_slos.get(name))
            for (name, part), rec in zip(parts.items(), recs, strict=True)}
    slowest = max(each.values(), key=lambda m: m.p95_ms if m.samples else float("inf"))
    goodputs = [m.goodput for m in each.values()]
    offered = [m.offered for m in each.values()]
    return dataclasses.replace(
        slowest, throughput=sum(m.throughput for m in each.values()),
        p95_ci_ms=worst([m.p95_ci_ms for m in each.values()]),
        throughput_ci=summed([m.throughput_ci for m in each.values()]),
        samples=sum(m.samples for m in each.values()), errors=sum(m.errors for m in each.values()),
        stable=all(m.stable for m in each.values()),
        first_error=next((m.first_error for m in each.values() if m.first_error), ""), server=None, mode=spec.mode,
        goodput=None if None in goodputs else sum(g for g in goodputs if g is not None),
        offered=None if None in offered else sum(o for o in offered if o is not None), models=each)
