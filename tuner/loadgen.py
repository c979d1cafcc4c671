"""The built-in load generator: closed loop at a fixed concurrency over gRPC.

Why not tritonclient: its per-call request building copies and re-serializes every input (4.9 MB
per request for the demo), which makes the client the bottleneck on a small machine. Here the
request is serialized once and sent as bytes through grpc.aio; responses are not parsed (a failed
request arrives as a gRPC status, not in the body).

Method (in the spirit of perf_analyzer's): a warm-up, then fixed-length windows until there are
at least `min_samples` latencies and the last three windows agree on throughput and P95 within
`stability`, or `max_duration_s` passes. All samples after the warm-up make the result.
"""
from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

import grpc
import numpy as np

from tuner.server.client import TritonControl

_INFER = "/inference.GRPCInferenceService/ModelInfer"
_CHANNEL_OPTIONS = [("grpc.max_send_message_length", -1), ("grpc.max_receive_message_length", -1)]


@dataclass(frozen=True)
class LoadSpec:
    concurrency: int = 8
    warmup_s: float = 1.0
    window_s: float = 1.0
    min_samples: int = 500
    max_duration_s: float = 20.0
    stability: float = 0.10  # last 3 windows within 10% (throughput and P95)
    request_timeout_s: float = 30.0


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
    p95_ci_ms: tuple[float, float]  # 95% bootstrap confidence interval of P95
    samples: int
    errors: int
    duration_s: float
    windows: int
    stable: bool
    client_cpu: float  # client process CPU seconds per wall second during measurement
    first_error: str = ""
    server: ServerBreakdown | None = None
    extra: dict = field(default_factory=dict)


def _p95_ci(latencies: np.ndarray, rng: np.random.Generator, rounds: int = 400) -> tuple[float, float]:
    picks = rng.integers(0, len(latencies), size=(rounds, len(latencies)))
    estimates = np.percentile(latencies[picks], 95, axis=1)
    low, high = np.percentile(estimates, [2.5, 97.5])
    return float(low), float(high)


def _stable(windows: list[tuple[int, float]], stability: float) -> bool:
    if len(windows) < 3:
        return False
    counts = [c for c, _ in windows[-3:]]
    p95s = [p for _, p in windows[-3:]]
    spread = lambda xs: (max(xs) - min(xs)) / max(np.mean(xs), 1e-9)  # noqa: E731
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


async def _closed_loop(url: str, request: bytes, spec: LoadSpec, batch: int) -> dict:
    async with grpc.aio.insecure_channel(url, options=_CHANNEL_OPTIONS) as channel:
        infer = channel.unary_unary(_INFER)  # bytes in, bytes out: nothing serialized per call
        done_at: list[float] = []
        latency: list[float] = []
        errors: list[str] = []
        stop = asyncio.Event()

        async def worker() -> None:
            while not stop.is_set():
                t0 = time.perf_counter()
                try:
                    await infer(request, timeout=spec.request_timeout_s)
                except grpc.aio.AioRpcError as e:
                    errors.append(f"{e.code().name}: {e.details()}")
                    await asyncio.sleep(0.01)  # a failing server must not be hammered in a tight loop
                    continue
                t1 = time.perf_counter()
                done_at.append(t1)
                latency.append(t1 - t0)

        tasks = [asyncio.create_task(worker()) for _ in range(spec.concurrency)]
        try:
            await asyncio.sleep(spec.warmup_s)
            start, cpu0, first = time.perf_counter(), time.process_time(), len(done_at)
            windows: list[tuple[int, float]] = []
            while True:
                mark = len(done_at)
                await asyncio.sleep(spec.window_s)
                window = latency[mark:]
                windows.append((len(window), float(np.percentile(window, 95)) if window else 0.0))
                elapsed = time.perf_counter() - start
                enough = len(done_at) - first >= spec.min_samples
                stable = _stable(windows, spec.stability)
                if (enough and stable) or elapsed >= spec.max_duration_s:
                    break
                if errors and len(done_at) == first and elapsed >= 2 * spec.window_s:
                    break  # nothing succeeds: no point waiting for the time limit
            end, cpu1, last = time.perf_counter(), time.process_time(), len(done_at)
        finally:
            stop.set()
            await asyncio.gather(*tasks, return_exceptions=True)
    return {"latency": np.array(latency[first:last]) * 1e3, "duration": end - start,
            "windows": len(windows), "stable": stable, "errors": errors,
            "cpu": (cpu1 - cpu0) / (end - start), "batch": batch}


def measure(control: TritonControl, model: str, request: bytes, spec: LoadSpec = LoadSpec(),
            batch: int = 1, seed: int = 0) -> Measurement:
    """Drives `model` with `request` at `spec.concurrency` and returns what was measured."""
    before = control.statistics(model)
    raw = asyncio.run(_closed_loop(control.url, request, spec, batch))
    server = _breakdown(before, control.statistics(model))
    lat, errors = raw["latency"], raw["errors"]
    if len(lat) == 0:
        return Measurement(0.0, *(float("nan"),) * 4, (float("nan"),) * 2, 0, len(errors),
                           raw["duration"], raw["windows"], False, raw["cpu"],
                           errors[0] if errors else "no response", server)
    p50, p90, p95, p99 = (float(v) for v in np.percentile(lat, [50, 90, 95, 99]))
    return Measurement(throughput=len(lat) * batch / raw["duration"], p50_ms=p50, p90_ms=p90,
                       p95_ms=p95, p99_ms=p99, p95_ci_ms=_p95_ci(lat, np.random.default_rng(seed)),
                       samples=len(lat), errors=len(errors), duration_s=raw["duration"],
                       windows=raw["windows"], stable=raw["stable"], client_cpu=raw["cpu"],
                       first_error=errors[0] if errors else "", server=server)
