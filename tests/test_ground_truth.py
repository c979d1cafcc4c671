"""The load generator against queueing theory, on a model whose service is a known sleep: the
closed form, with the service time Triton itself measured, is what a correct instrument must
report (benchmarks/ground_truth.py runs every cell, beside perf_analyzer)."""

import pytest
from support import MODELS, serving

from tuner.config.modelconfig import apply_knobs, read_config
from tuner.measure import queueing
from tuner.measure.evaluate import Evaluator
from tuner.measure.load import LoadSpec


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with serving(MODELS / "tiny", tmp_path_factory.mktemp("ground_truth")) as server:
        yield server


@pytest.mark.integration
def test_a_closed_loop_on_a_fixed_service_serves_what_queueing_theory_says(server):
    """8 clients on 2 instances of a 20 ms service: 2 / s requests/s, every request waiting for the
    3 ahead of it on its instance (4 s in all). s is the execution time Triton measured (the sleep
    and the python backend's own cost); the requests' trip to the server and back is not in it,
    so latency exceeds the closed form by that (1-5 % in benchmarks/ground_truth.py on 2 cores,
    11 % seen on a 2-core CI machine; 20 % allowed here, beside other tests), and never undercuts it."""
    config = apply_knobs(read_config(server.model_repository / "tiny" / "config.pbtxt"),
                         {"instance_count": 2, "dynamic_batching": False, "parameters": {"delay_ms": "20"}})
    spec = LoadSpec(concurrency=8, warmup_s=1.0, window_s=1.0, min_samples=600, max_duration_s=12.0)
    with Evaluator(server, "tiny", spec) as evaluator:
        m = evaluator.evaluate(config).measurement
    assert m is not None and m.server is not None and m.errors == 0
    served_s = (m.server.compute_input_ms + m.server.compute_infer_ms + m.server.compute_output_ms) / 1e3
    expected = queueing.closed_loop(8, 2, served_s)
    assert m.throughput == pytest.approx(expected.throughput, rel=0.02), (m.throughput, expected)
    # the interval covers the closed form, within how far the service time Triton reports can be off
    # the time an instance is held per request (the closed form came out 0.3 % under the interval once)
    low, high = m.throughput_ci
    assert low * 0.99 <= expected.throughput <= high * 1.01, (m.throughput_ci, expected)
    assert expected.p95_ms <= m.p95_ms <= expected.p95_ms * 1.20, (m.p95_ms, expected)
