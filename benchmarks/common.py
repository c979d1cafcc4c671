"""Helpers the benchmark scripts share: a results folder, a table printer, the median."""
from __future__ import annotations

import json
import math
import platform
import statistics
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def table(headers: list[str], rows: list[list]) -> str:
    text = [[str(h) for h in headers]] + [[f"{c:.3g}" if isinstance(c, float) else str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in text) for i in range(len(headers))]
    lines = ["  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) for r in text]
    return "\n".join([lines[0], "  ".join("-" * w for w in widths), *lines[1:]])


def scratch_repository(run_dir: Path, source: Path) -> Path:
    """A fresh repository under `run_dir` holding a copy of the model folder `source` (a benchmark
    never writes to the shipped one)."""
    import shutil

    shutil.rmtree(run_dir, ignore_errors=True)
    work = run_dir / "repository"
    shutil.copytree(source, work / source.name)
    return work


def median(values: list[float]) -> float:
    values = [v for v in values if v == v]  # drop NaN (failed runs)
    return statistics.median(values) if values else float("nan")


def write_json(name: str, payload: dict, out: Path | None = None) -> Path:
    path = out or RESULTS / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"benchmark": name, "date": time.strftime("%Y-%m-%d %H:%M"), "host": platform.node(),
               "cpus": __import__("os").cpu_count(), **payload}
    path.write_text(json.dumps(payload, indent=2, default=str) + "\n")
    return path


def correlated_latencies(rng, n: int, phi: float):
    """Lognormal latencies exp(0.5 z), z an AR(1) with neighbour correlation `phi` (a closed loop's
    slow moments last several requests), each marginally exp(0.5 * N(0, 1)): the true P95 is
    exp(0.5 * 1.645). For the interval coverage benchmark and its test."""
    import numpy as np

    noise = rng.standard_normal(n)
    z = np.empty(n)
    z[0] = noise[0]
    for i in range(1, n):
        z[i] = phi * z[i - 1] + math.sqrt(1 - phi * phi) * noise[i]
    return np.exp(0.5 * z)


def event_times(rng, rate: float, seconds: float, regularity: int = 1):
    """Completion times over [0, seconds] of a stream with a known mean `rate`: gaps gamma-distributed
    with shape `regularity` (1: Poisson; larger: as regular as a closed loop's completions). For the
    throughput interval's benchmark and test."""
    import numpy as np

    gaps = rng.gamma(regularity, 1.0 / (rate * regularity), int(rate * seconds * 1.5) + 50)
    times = np.cumsum(gaps) - rng.uniform(0, gaps[0])  # start anywhere in a gap: a stationary stream
    return times[(times >= 0) & (times <= seconds)]
