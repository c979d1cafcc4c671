"""The closed forms the load generator is checked against (pure functions)."""
import math
import statistics

import pytest

from tuner.measure.queueing import (
    batched_closed_loop,
    closed_loop,
    erlang_c,
    mmn,
    mmn_sojourn_exceeds,
    simulated_mmn_p95s,
)

pytestmark = pytest.mark.unit


def test_a_closed_loop_with_fixed_service_serves_in_rounds():
    one = closed_loop(1, 4, 0.02)
    assert one.throughput == pytest.approx(50) and one.p95_ms == pytest.approx(20)  # idle instances do not help
    many = closed_loop(32, 4, 0.02)
    assert many.throughput == pytest.approx(200) and many.p95_ms == pytest.approx(160) == many.mean_ms


def test_mm1_is_the_exponential_sojourn_it_must_be():
    """M/M/1: the time in system is exponential at rate mu - lam."""
    lam, mu = 40.0, 50.0
    assert erlang_c(1, lam / mu) == pytest.approx(lam / mu)
    assert mmn_sojourn_exceeds(0.1, lam, mu, 1) == pytest.approx(math.exp(-(mu - lam) * 0.1))
    assert mmn(lam, mu, 1).p95_ms == pytest.approx(-math.log(0.05) / (mu - lam) * 1e3, rel=1e-6)
    assert mmn(lam, mu, 1).mean_ms == pytest.approx(1e3 / (mu - lam))


def test_erlang_c_matches_a_table_value():
    """n = 2, a = 1 (50 % load): C = 1/3, the textbook value; no wait at all without load."""
    assert erlang_c(2, 1.0) == pytest.approx(1 / 3)
    assert erlang_c(4, 1e-9) == pytest.approx(0, abs=1e-9)
    tail = [mmn_sojourn_exceeds(t, 150.0, 50.0, 4) for t in (0.0, 0.01, 0.05, 0.2)]
    assert tail[0] == pytest.approx(1) and tail == sorted(tail, reverse=True)


def test_batches_fill_and_go_as_many_at_once_as_there_are_instances():
    """Batches cost 10 ms + 2 ms a request; 8 clients fill one batch of 8 (26 ms) whatever the
    instances; 32 clients fill four, served two at a time on two instances."""
    eight = batched_closed_loop(8, 4, 8, 0.010, 0.002)
    assert eight.throughput == pytest.approx(8 / 0.026) and eight.p95_ms == pytest.approx(26)
    two = batched_closed_loop(32, 2, 8, 0.010, 0.002)
    assert two.throughput == pytest.approx(16 / 0.026) and two.p95_ms == pytest.approx(52)


def test_the_trip_outside_the_service_counts_only_where_nothing_waits():
    """1 ms outside the 20 ms service: one client pays it on every request; 32 clients on 4
    instances keep them busy through it."""
    one = closed_loop(1, 4, 0.020, trip_s=0.001)
    assert one.throughput == pytest.approx(1 / 0.021) and one.p95_ms == pytest.approx(21)
    many = closed_loop(32, 4, 0.020, trip_s=0.001)
    assert many.throughput == pytest.approx(200) and many.p95_ms == pytest.approx(160)


def test_a_batch_trip_delays_its_next_round_unless_other_batches_wait():
    alone = batched_closed_loop(8, 4, 8, 0.010, 0.002, trip_s=0.001)  # one batch, back and forth
    assert alone.throughput == pytest.approx(8 / 0.027) and alone.p95_ms == pytest.approx(27)
    queued = batched_closed_loop(32, 1, 8, 0.010, 0.002, trip_s=0.001)  # three batches wait behind it
    assert queued.throughput == pytest.approx(8 / 0.026)


def test_simulated_measurements_find_the_steady_state_when_long_and_less_near_saturation_when_short():
    """M/M/1 at 80 % load, 200-s measurements: their P95s centre on the closed form's. At 95 %,
    30-s measurements from an empty queue find far less: the queue has not grown to its steady
    state (its relaxation time is about 1 / (mu (1 - sqrt(rho))^2), 30 s here)."""
    long = simulated_mmn_p95s(40.0, 50.0, 1, seconds=200, warmup_s=1, runs=20)
    assert statistics.median(long) == pytest.approx(mmn(40.0, 50.0, 1).p95_ms, rel=0.1)
    short = simulated_mmn_p95s(47.5, 50.0, 1, seconds=30, warmup_s=1, runs=20)
    assert statistics.median(short) < 0.8 * mmn(47.5, 50.0, 1).p95_ms
