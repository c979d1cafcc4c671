"""The simulation of Triton's batcher against the closed forms it must reproduce (pure functions)."""
import pytest

from tuner.measure.queueing import batched_closed_loop, closed_loop
from tuner.measure.simulate import Batcher, Station, simulate, simulate_chain

pytestmark = pytest.mark.unit


def test_without_batching_it_is_the_closed_loop_of_fixed_service():
    for clients, instances in ((1, 4), (8, 2), (32, 4)):
        found = simulate(Batcher(instances, 1), lambda b: 0.020, clients=clients, trip_s=0.001)
        expected = closed_loop(clients, instances, 0.020, trip_s=0.001)
        assert found.throughput == pytest.approx(expected.throughput, rel=0.01)
        assert found.p95_ms == pytest.approx(expected.p95_ms, rel=0.01)


def test_a_batcher_that_waits_for_full_batches_moves_the_clients_in_batches():
    found = simulate(Batcher(2, 8, queue_delay_s=0.020), lambda b: 0.010 + 0.002 * b, clients=32)
    assert found.throughput == pytest.approx(batched_closed_loop(32, 2, 8, 0.010, 0.002).throughput, rel=0.01)


def test_answers_that_reach_their_clients_apart_split_the_batches_a_short_delay_forms():
    """8 clients, batches of up to 8, 0.1 ms of queue delay: answered all at once they return as
    one batch; answered 0.3 ms apart, the batcher sends before the rest arrive."""
    cost = lambda b: 0.005 + 0.001 * b  # noqa: E731
    together = simulate(Batcher(1, 8, queue_delay_s=0.0001), cost, clients=8, trip_s=0.0005)
    apart = simulate(Batcher(1, 8, queue_delay_s=0.0001), cost, clients=8, trip_s=0.0005, gap_s=0.0003)
    assert together.throughput == pytest.approx(8 / (0.013 + 0.0005), rel=0.01)
    assert apart.throughput < 0.9 * together.throughput


def test_preferred_sizes_go_at_once():
    """A preferred size of 2 sends pairs without waiting out the 50 ms delay."""
    waits = simulate(Batcher(1, 8, queue_delay_s=0.050), lambda b: 0.001 * b, clients=2)
    goes = simulate(Batcher(1, 8, queue_delay_s=0.050, preferred=(2,)), lambda b: 0.001 * b, clients=2)
    assert goes.throughput > 10 * waits.throughput


def test_a_chain_serves_what_its_slowest_step_serves_and_one_client_waits_for_every_step():
    steps = [Station(Batcher(1, 1), lambda b: 0.010), Station(Batcher(1, 1), lambda b: 0.020)]
    one = simulate_chain(steps, clients=1, trip_s=0.001)
    assert one.throughput == pytest.approx(1 / 0.031, rel=0.01) and one.p95_ms == pytest.approx(31, rel=0.01)
    # eight clients queue at the 20 ms step: it serves 50/s, and a second instance of it doubles that
    assert simulate_chain(steps, clients=8).throughput == pytest.approx(50, rel=0.01)
    wider = [steps[0], Station(Batcher(2, 1), lambda b: 0.020)]
    assert simulate_chain(wider, clients=8).throughput == pytest.approx(100, rel=0.01)
    alone = simulate(Batcher(2, 8, queue_delay_s=0.020), lambda b: 0.010 + 0.002 * b, clients=32)
    assert simulate_chain([Station(Batcher(2, 8, queue_delay_s=0.020), lambda b: 0.010 + 0.002 * b)],
                          clients=32) == alone
