"""How requests are sent: a closed loop (each worker one request in flight on its own stream) or an
open loop (each request when it is due, unary, with the backlog bounded), and the record each keeps
of what was sent and answered (Recorder)."""
from __future__ import annotations

import asyncio
import time

import grpc

from tuner.measure.arrivals import schedule
from tuner.measure.load import LoadSpec

_INFER = "/inference.GRPCInferenceService/ModelInfer"
_STREAM_INFER = "/inference.GRPCInferenceService/ModelStreamInfer"
# A ModelStreamInferResponse that carries an error starts with field 1 (error_message), tag 0x0A;
# a success carries only field 2 (infer_response). Enough to tell them apart without parsing.
_STREAM_ERROR_TAG = b"\x0a"
_MAX_OPEN_LOOP_IN_FLIGHT = 4096  # beyond this the server is hopelessly behind: count as errors
_IN_FLIGHT_BYTES = 256 << 20  # inputs an open loop holds in flight at most


def in_flight_limit(request_bytes: int) -> int:
    """How many requests an open loop keeps in flight at most: as many as `_IN_FLIGHT_BYTES` of
    inputs hold (one at the least), and never more than `_MAX_OPEN_LOOP_IN_FLIGHT`."""
    return min(_MAX_OPEN_LOOP_IN_FLIGHT, max(1, _IN_FLIGHT_BYTES // max(request_bytes, 1)))


class Recorder:
    """A stream's requests as they are sent and answered (times from time.perf_counter)."""

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


async def closed_loop(channel, requests: list[bytes], spec: LoadSpec, rec: Recorder, stop: asyncio.Event) -> None:
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


async def open_loop(channel, requests: list[bytes], spec: LoadSpec, rec: Recorder, stop: asyncio.Event,
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
        await asyncio.gather(*in_flight, return_exceptions=True)  # cut short by the driver at the end
    finally:
        for task in in_flight:
            task.cancel()
