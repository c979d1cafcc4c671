"""What load a measurement applies (LoadSpec), and the question a raced measurement answers (Race)."""
from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

from tuner.measure.arrivals import Arrivals, Shape

TIMEOUT_S = 30.0  # a request's deadline until one is derived from what was measured (Evaluator)
MIN_WINDOW_SAMPLES = 50  # as perf_analyzer's count windows
PRECISION = 0.05  # a raced measurement stops once its intervals are within 5 % of its estimates

Interval = tuple[float, float]


@dataclass(frozen=True)
class LoadSpec:
    concurrency: int = 8
    request_rate: float | None = None  # requests/s, open loop; None = closed loop at `concurrency`
    arrivals: Arrivals = Arrivals()  # open loop: when requests are due (tuner.measure.arrivals)
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
            min_samples=max(2 * MIN_WINDOW_SAMPLES, round(self.min_samples * share / total)))
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
class Race:
    """A measurement that stops as soon as the question it answers is settled, asked after each
    window once `min_samples` are in and `min_s` has passed. `decided(throughput_ci, p95_ci_ms,
    offered)` says the answer is known (a search's proposal clearly behind the front; a capacity
    step clearly within the SLO or over it), and it stops (`decided`); otherwise it stops once
    both intervals' half-widths are within `precision` of their estimates, or once `ahead` says
    its place is known whatever its exact figures (a proposal that joins the front for certain)
    (`stable`). The full measurement's rule applies too only with `full_rule` (a measurement that
    races nothing need not be longer than an unraced one)."""
    decided: Callable[[Interval, Interval, float | None], bool]  # offered: as Measurement.offered
    precision: float = PRECISION
    min_samples: int = 100
    min_s: float = 0.0
    ahead: Callable[[Interval, Interval], bool] = lambda throughput, p95_ms: False
    full_rule: bool = False
