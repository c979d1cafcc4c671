"""What a measurement found: its latencies' percentiles with their intervals, its throughput,
its errors and Triton's own account of where the time went (Measurement), made from the record of
every request (Recording)."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from tuner.measure.load import LoadSpec
from tuner.measure.stats import quantile_ci, rate_ci


@dataclass(frozen=True)
class ServerBreakdown:
    """Per-request averages from Triton's statistics API over the measurement (ms)."""
    queue_ms: float
    compute_input_ms: float
    compute_infer_ms: float
    compute_output_ms: float
    avg_batch_size: float
    # each batch size Triton executed: [executions, mean ms an execution took (input, infer, output)]
    batches: dict[int, list[float]] = field(default_factory=dict)


@dataclass(frozen=True)
class Measurement:
    throughput: float  # inferences per second
    p50_ms: float
    p90_ms: float
    p95_ms: float
    p99_ms: float
    p95_ci_ms: tuple[float, float]  # 95% confidence interval of P95 (tuner.measure.stats.quantile_ci)
    throughput_ci: tuple[float, float]  # 95% interval of the rate (tuner.measure.stats.rate_ci)
    samples: int
    errors: int
    duration_s: float
    windows: int
    stable: bool
    client_cpu: float  # client process CPU seconds per wall second during measurement
    first_error: str = ""
    server: ServerBreakdown | None = None
    mode: str = "concurrency 8"
    decided: bool = False  # a raced measurement that stopped once its question was answered
    goodput: float | None = None  # requests/s that met the SLO, when one was given
    offered: float | None = None  # open loop: requests/s sent during the measurement (as drawn, not as asked)
    # a pipeline's members, each as Triton counted it over the measurement: which step is the bottleneck
    steps: dict[str, ServerBreakdown] = field(default_factory=dict)
    # several models on one server: each one's own; this one is their sum (throughput, goodput)
    # and the worst of them (P95, with the percentiles of that model)
    models: dict[str, Measurement] = field(default_factory=dict)
    overloaded: bool = False  # open loop: the backlog passed its bound, and the measurement stopped
    stalled_s: float | None = None  # no answer at all for this long: stopped (the server or model hangs)

    def slo_excess_ms(self, model_slos: dict[str, float]) -> float:
        """How far the P95 furthest over its model's SLO is over it (<= 0: every model within)."""
        return max(self.models[name].p95_ms - slo for name, slo in model_slos.items())


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
    decided: bool
    errors: list[str]
    client_cpu: float
    overloaded: bool = False
    stalled_s: float | None = None

    @property
    def duration(self) -> float:
        return self.end - self.start


def breakdown(before: dict, after: dict) -> ServerBreakdown | None:
    """What the server did between two snapshots of its counters (None without both)."""
    if not before or not after:
        return None

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
                           inferences / executions, _batches(before, after))


def _batches(before: dict, after: dict) -> dict[int, list[float]]:
    """Executions per batch size over the measurement, with their mean time."""
    def totals(stats: dict) -> dict[int, tuple[int, int]]:
        found = {}
        for b in stats.get("batch_stats", []):
            parts = [b.get(k, {}) for k in ("compute_input", "compute_infer", "compute_output")]
            found[int(b["batch_size"])] = (int(parts[1].get("count", 0)), sum(int(x.get("ns", 0)) for x in parts))
        return found

    start, end = totals(before), totals(after)
    result = {}
    for size, (count, ns) in end.items():
        count0, ns0 = start.get(size, (0, 0))
        if count > count0:
            result[size] = [count - count0, round((ns - ns0) / (count - count0) / 1e6, 4)]
    return dict(sorted(result.items()))


def _sent_rate(sent: np.ndarray, start: float, end: float) -> float | None:
    """Requests sent per second within [start, end] (None for a closed loop, which sends on replies)."""
    return float(np.sum((sent >= start) & (sent <= end))) / (end - start) if len(sent) else None


def from_recording(rec: Recording, spec: LoadSpec, server: ServerBreakdown | None, slo_p95_ms: float | None,
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
                       decided=rec.decided,
                       goodput=None if slo_p95_ms is None else int(np.sum(lat <= slo_p95_ms)) / rec.duration,
                       offered=_sent_rate(rec.sent, rec.start, rec.end), steps=steps or {},
                       overloaded=rec.overloaded, stalled_s=rec.stalled_s)
