"""Overload and hangs, against a real embedded Triton serving the tiny python model: an open loop
far over what a config serves is judged overloaded at once, with what it holds in flight bounded;
a model whose execute blocks, and a server stopped with SIGSTOP, are found by their deadlines, the
server is killed and started afresh, and the config is measured again (or fails, when it hangs
again on the fresh server)."""
import os
import shutil
import signal
import threading

import pytest
from support import MODELS, wait_serving

from tuner.config.modelconfig import read_config, to_json
from tuner.faults import Failure, blamed
from tuner.measure.capacity import CapacitySpec, find_capacity
from tuner.measure.evaluate import Evaluator
from tuner.measure.load import LoadSpec
from tuner.measure.loadgen import measure
from tuner.measure.measurement import Measurement
from tuner.measure.senders import in_flight_limit
from tuner.server import EmbeddedServer
from tuner.server.base import pid_alive


@pytest.fixture
def repo(tmp_path):
    shutil.copytree(MODELS / "tiny", tmp_path / "repo" / "tiny")
    return tmp_path / "repo"


def _config(repo, instances: int = 1, **parameters: str):
    config = read_config(repo / "tiny" / "config.pbtxt")
    config.instance_group[0].count = instances
    for key, value in parameters.items():
        config.parameters[key].string_value = value
    return config


@pytest.mark.unit
def test_what_an_open_loop_holds_in_flight_is_bounded_by_its_inputs_size():
    assert in_flight_limit(64) == 4096  # small requests: the count's own bound
    assert in_flight_limit(4_900_000) == 54  # the demo's 4.9 MB requests: 256 MiB of them
    assert in_flight_limit(1 << 30) == 1  # one at the least


@pytest.mark.unit
def test_a_capacity_step_stopped_as_overloaded_bounds_the_capacity_by_what_it_served():
    """A server that serves 100/s: every step over it is cut short as overloaded, having served
    about 100/s; the search brackets the capacity below that, not at the rates it offered."""
    def at(rate: float) -> Measurement:
        served = min(rate, 100.0)
        return Measurement(served, 10, 20, 30, 40, (28, 32), (served * 0.95, served * 1.05), 500, 0, 3.0, 3, False,
                           0.1, offered=rate, overloaded=rate > 100)

    found = find_capacity(at, CapacitySpec(slo_p95_ms=50), first_rate=300)
    assert found.bracketed and 90 <= found.rate <= 100, found
    assert not found.steps[0].ok and found.steps[1].offered <= 105  # straight below what the first served


@pytest.mark.integration
def test_an_open_loop_far_over_capacity_stops_at_once_as_overloaded(repo, tmp_path):
    config = _config(repo, delay_ms="100")  # one instance, batches of 8 every 100 ms: 80 requests/s at most
    spec = LoadSpec(request_rate=3000, warmup_s=0.5, max_duration_s=30)
    with EmbeddedServer(repo, tmp_path / "run") as server, Evaluator(server, "tiny", spec) as evaluator:
        server.control.load("tiny", to_json(config))
        m = measure(server.control, "tiny", evaluator.requests(True), spec)
        outcome = evaluator.evaluate(config)
    assert m.overloaded and m.duration_s < spec.max_duration_s / 3, m  # judged, not run to its limit
    assert m.throughput < 80 * 1.2 and m.offered > 1000 and m.errors > 0
    assert outcome.failure is Failure.REQUESTS and outcome.reason.startswith("overloaded: it served")


@pytest.mark.integration
def test_a_config_whose_model_hangs_fails_once_it_hangs_a_fresh_server_too(repo, tmp_path):
    spec = LoadSpec(warmup_s=0.2, window_s=0.5, max_duration_s=3, min_samples=50, request_timeout_s=2)
    with EmbeddedServer(repo, tmp_path / "run") as server, Evaluator(server, "tiny", spec) as evaluator:
        first = server.process.pid
        hangs = evaluator.evaluate(_config(repo, instances=2, hang_with_instances="2"))
        assert hangs.failure is Failure.STALLED and hangs.attempts == 2, hangs
        assert hangs.reason.startswith("the model stopped answering")  # the server itself still answered
        assert not pid_alive(first) and server.healthy()
        fine = evaluator.evaluate(_config(repo, instances=1, hang_with_instances="2"))
    assert fine.failure is None and fine.measurement.samples >= 50


@pytest.mark.unit
def test_the_same_fault_on_attempts_in_a_row_is_the_configs_and_mixed_faults_get_one_attempt_more():
    assert blamed([Failure.SERVER_DOWN]) is None
    assert blamed([Failure.SERVER_DOWN, Failure.SERVER_DOWN]) is Failure.CRASH
    assert blamed([Failure.HUNG, Failure.HUNG]) is Failure.STALLED
    # stopped from outside, then the fresh server missed a probe: not yet the config's
    assert blamed([Failure.SERVER_DOWN, Failure.HUNG]) is None
    assert blamed([Failure.SERVER_DOWN, Failure.HUNG, Failure.HUNG]) is Failure.STALLED
    assert blamed([Failure.SERVER_DOWN, Failure.HUNG, Failure.BROKE_MIDWAY]) is Failure.REQUESTS


@pytest.mark.integration
def test_a_server_that_stops_answering_is_killed_and_the_config_measured_again(repo, tmp_path):
    spec = LoadSpec(warmup_s=0.2, window_s=0.5, max_duration_s=6, min_samples=10**6, request_timeout_s=2)
    run = tmp_path / "run"
    with EmbeddedServer(repo, run) as server, Evaluator(server, "tiny", spec) as evaluator:
        stopped = server.process.pid

        def stop_mid_measurement() -> None:
            wait_serving(run, "tiny", 100, "the measurement")
            os.kill(stopped, signal.SIGSTOP)  # as a wedged driver or a swapped-out host leaves it

        fault = threading.Thread(target=stop_mid_measurement)
        fault.start()
        outcome = evaluator.evaluate(_config(repo))
        fault.join()
    assert outcome.failure is None and outcome.attempts == 2, outcome
    assert outcome.measurement.samples > 0 and not pid_alive(stopped)
