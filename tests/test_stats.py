"""The intervals every trial reports, checked for coverage on synthetic data whose truth is known."""
import math

import numpy as np
import pytest

from benchmarks.common import correlated_latencies, event_times
from tuner.measure import stats
from tuner.measure.stats import autocorrelation_time, mean_ci, quantile_ci, rate_ci, relative_half_width, t975

pytestmark = pytest.mark.unit

TRUE_P95 = math.exp(0.5 * 1.6448536)  # of exp(0.5 * N(0, 1)), a lognormal latency


@pytest.mark.parametrize("phi", [0.0, 0.5])
def test_the_p95_interval_covers_the_true_p95_about_95_percent_of_the_time(phi):
    rng = np.random.default_rng(7)
    intervals = [quantile_ci(correlated_latencies(rng, 2000, phi)) for _ in range(200)]
    covered = sum(lo <= TRUE_P95 <= hi for lo, hi in intervals)
    assert 0.91 <= covered / 200 <= 0.99, covered


def test_correlated_samples_widen_the_interval():
    rng = np.random.default_rng(3)
    iid, correlated = correlated_latencies(rng, 4000, 0.0), correlated_latencies(rng, 4000, 0.8)
    assert autocorrelation_time((iid <= np.quantile(iid, 0.95)).astype(float)) < 1.3
    width = [hi - lo for lo, hi in (quantile_ci(iid), quantile_ci(correlated))]
    assert width[1] > 1.5 * width[0]


def test_the_throughput_interval_is_a_t_interval_and_covers_95_percent():
    assert t975(2) == pytest.approx(4.303) and t975(1000) == pytest.approx(1.96, abs=0.01)
    rng = np.random.default_rng(11)
    covered = sum(lo <= 100 <= hi for lo, hi in (mean_ci(list(rng.normal(100, 5, 3))) for _ in range(2000)))
    assert 0.93 <= covered / 2000 <= 0.97, covered
    assert all(math.isnan(v) for v in mean_ci([100.0]))


def test_a_regular_stream_gets_an_interval_as_wide_as_whole_counts_allow():
    # 126 completions 2.4 ms apart: every slice holds the same count, yet the span's ends may cut
    # off part of a gap, so the rate is known to whole events, not exactly
    times = 0.0012 + 0.0024 * np.arange(126)
    low, high = rate_ci(times, 0, 0.3024)
    assert low < 126 / 0.3024 < high and low < 125 / 0.3024 and 127 / 0.3024 < high
    assert relative_half_width((low, high), 126 / 0.3024) < 0.05
    assert mean_ci([3.0, 3.0, 3.0], step=1.0)[0] < 3 < mean_ci([3.0, 3.0, 3.0], step=1.0)[1]


@pytest.mark.parametrize("seconds", [1, 5])
def test_the_batch_means_rate_interval_covers_the_true_rate_about_95_percent_of_the_time(seconds):
    rng = np.random.default_rng(5)
    intervals = [rate_ci(event_times(rng, 150, seconds), 0, seconds) for _ in range(400)]
    covered = sum(lo <= 150 <= hi for lo, hi in intervals)
    assert 0.92 <= covered / 400 <= 0.98, covered
    assert relative_half_width(intervals[0], 150) < (0.25 if seconds == 1 else 0.1)
    assert relative_half_width((math.nan, math.nan), 150) == math.inf


def test_a_ratio_of_runs_side_by_side_is_as_precise_as_the_runs_unless_the_ratios_scatter_more():
    steady = stats.ratio_ci([110.0, 99.0, 121.0], [(108.9, 111.1), (98.0, 100.0), (119.8, 122.2)],
                            [100.0, 90.0, 110.0], [(99.0, 101.0), (89.1, 90.9), (108.9, 111.1)])
    each = 1.1 * math.hypot(0.01, 0.01)  # every round's ratio is 1.1, each known to this
    assert steady == pytest.approx((1.1 - each / math.sqrt(3), 1.1 + each / math.sqrt(3)), rel=1e-4)
    scattered = stats.ratio_ci([100.0, 120.0], [(99.0, 101.0), (118.8, 121.2)], [100.0, 100.0], [(99.0, 101.0)] * 2)
    assert scattered[0] < 1 < scattered[1]  # two rounds that disagree tell nothing: t with one degree of freedom
    assert stats.ratio_ci([1.0], [(math.nan, math.nan)], [1.0], [(0.5, 1.5)]) == (-math.inf, math.inf)
