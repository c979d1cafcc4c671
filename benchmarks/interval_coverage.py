"""How often do the reported 95 % intervals hold the truth? Synthetic data with a known answer.

    python benchmarks/interval_coverage.py [--draws 400]

P95: lognormal latencies exp(0.5 z), z an AR(1) with neighbour correlation phi (a closed loop's slow
moments last several requests), n = 2000 per measurement; the true P95 is exp(0.5 * 1.645).
Compared: the tuner's interval (tuner.measure.stats.quantile_ci) and the bootstrap it replaced (400
resamples, which treats the samples as independent). Throughput: the mean of 3 windows drawn
normal(100, 5), the t interval (tuner.measure.stats.mean_ci) against the old "2 standard errors"; and the
batch-means interval a measurement reports now (tuner.measure.stats.rate_ci) on completions at a known rate
(150/s over 1, 3 and 10 s; Poisson, and gamma gaps of shape 8, as regular as a closed loop).
Prints a table and writes benchmarks/results/interval_coverage.json.
"""
from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import correlated_latencies, event_times, table, write_json  # noqa: E402
from tuner.measure.stats import mean_ci, quantile_ci, rate_ci  # noqa: E402

TRUE_P95 = math.exp(0.5 * 1.6448536)


def bootstrap(samples: np.ndarray, rng: np.random.Generator, rounds: int = 400) -> tuple[float, float]:
    picks = rng.integers(0, len(samples), size=(rounds, len(samples)))
    low, high = np.percentile(np.percentile(samples[picks], 95, axis=1), [2.5, 97.5])
    return float(low), float(high)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--draws", type=int, default=400)
    args = ap.parse_args()
    rows, found = [], {}
    for phi in (0.0, 0.5, 0.8):
        rng, resample = np.random.default_rng(1), np.random.default_rng(2)
        hits = {"tuner": 0, "bootstrap (before)": 0}
        for _ in range(args.draws):
            x = correlated_latencies(rng, 2000, phi)
            for name, (lo, hi) in (("tuner", quantile_ci(x)), ("bootstrap (before)", bootstrap(x, resample))):
                hits[name] += lo <= TRUE_P95 <= hi
        for name, n in hits.items():
            rows.append([f"P95, phi {phi}", name, f"{n / args.draws:.3f}"])
            found[f"p95_phi{phi}_{name}"] = n / args.draws
    rng = np.random.default_rng(3)
    windows = [list(rng.normal(100, 5, 3)) for _ in range(args.draws * 5)]
    t = sum(lo <= 100 <= hi for lo, hi in map(mean_ci, windows)) / len(windows)
    two = sum(abs(np.mean(w) - 100) <= 2 * np.std(w, ddof=1) / math.sqrt(3) for w in windows) / len(windows)
    rows += [["throughput, 3 windows", "tuner (t, 4.30 SE)", f"{t:.3f}"],
             ["throughput, 3 windows", "2 SE (before)", f"{two:.3f}"]]
    found.update({"throughput_t": t, "throughput_2se": two})
    for seconds, shape in ((1, 1), (3, 1), (10, 1), (3, 8)):
        draws = [event_times(rng, 150, seconds, shape) for _ in range(args.draws * 2)]
        hit = sum(lo <= 150 <= hi for lo, hi in (rate_ci(d, 0, seconds) for d in draws)) / len(draws)
        rows.append([f"throughput, {seconds} s of {'Poisson' if shape == 1 else 'regular'} completions",
                     "tuner (batch means)", f"{hit:.3f}"])
        found[f"throughput_batch_means_{seconds}s_shape{shape}"] = hit
    print(f"coverage of the 95 % intervals over {args.draws} draws (the goal: 0.95)")
    print(table(["quantity", "interval", "coverage"], rows))
    print(f"wrote {write_json('interval_coverage', {'draws': args.draws, 'coverage': found})}")


if __name__ == "__main__":
    main()
