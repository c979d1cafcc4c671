"""The load generator against a real embedded Triton: datatypes, real input data, open loop,
shared memory. Short, bounded measurements on loopback."""
import json
import shutil
from pathlib import Path

import pytest
from support import MODELS

from tuner.config.modelconfig import apply_knobs, read_config
from tuner.errors import ConfigError
from tuner.measure.evaluate import Evaluator
from tuner.measure.inputs import Inputs, Memory, TensorSpec, load_input_data, tensor_specs
from tuner.measure.load import LoadSpec, Race
from tuner.server import EmbeddedServer

QUICK = LoadSpec(concurrency=4, warmup_s=0.3, window_s=0.3, min_samples=100, max_duration_s=3)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("loadgen")
    for model in ("alltypes", "checker", "tiny"):
        shutil.copytree(MODELS / model, root / "repo" / model)
    with EmbeddedServer(root / "repo", root / "run") as s:
        yield s


def _measure(server, model, spec=QUICK, inputs=Inputs(), config=None, race=None):
    with Evaluator(server, model, spec, inputs) as evaluator:
        return evaluator.evaluate(config or read_config(MODELS / model / "config.pbtxt"), race)


@pytest.mark.integration
def test_every_datatype_is_synthesized_in_the_right_shape(server):
    outcome = _measure(server, "alltypes", inputs=Inputs(shapes={"IN_DYNAMIC": [5]}))
    assert (outcome.measurement is not None), outcome.reason
    assert outcome.measurement.errors == 0 and outcome.measurement.samples >= 100


@pytest.mark.integration
def test_dynamic_dimension_without_shape_is_refused(server):
    with pytest.raises(ConfigError, match="IN_DYNAMIC.*--shape IN_DYNAMIC"):
        _measure(server, "alltypes")


@pytest.mark.integration
def test_real_input_data_reaches_the_model(server, tmp_path):
    # synthetic data is refused by this model ...
    refused = _measure(server, "checker", spec=LoadSpec(concurrency=2, warmup_s=0.2, window_s=0.3,
                                                         max_duration_s=1))
    assert refused.measurement is None and "unexpected data" in refused.reason
    # ... perf_analyzer-style JSON, two entries sent in turn, is accepted
    data = tmp_path / "data.json"
    data.write_text(json.dumps({"data": [{"INPUT0": list(range(8))},
                                         {"INPUT0": {"content": [2 * i for i in range(8)], "shape": [8]}}]}))
    outcome = _measure(server, "checker", inputs=Inputs(data_file=data))
    assert (outcome.measurement is not None) and outcome.measurement.errors == 0


@pytest.mark.unit
def test_input_data_errors_name_file_entry_and_input(tmp_path):
    specs = [TensorSpec("INPUT0", "FP32", (1, 8))]
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"data": [{"INPUT0": list(range(8))}, {"INPUT0": [1, 2, 3]}]}))
    with pytest.raises(ConfigError, match=r"bad.json: data\[1\].INPUT0: 3 values, but shape \[1, 8\] needs 8"):
        load_input_data(bad, specs, batching=True)
    bad.write_text(json.dumps({"data": [{"OTHER": [1]}]}))
    with pytest.raises(ConfigError, match=r"data\[0\].INPUT0: missing"):
        load_input_data(bad, specs, batching=True)


@pytest.mark.integration
def test_request_rate_mode_achieves_the_asked_rate(server):
    spec = LoadSpec(request_rate=200, warmup_s=0.5, window_s=1.0, min_samples=1000, max_duration_s=8)
    m = _measure(server, "tiny", spec=spec).measurement
    assert m.errors == 0 and m.mode == "request rate 200/s"
    assert abs(m.throughput / 200 - 1) <= 0.05, m.throughput


@pytest.mark.integration
def test_shared_memory_inputs_and_outputs(server):
    m = _measure(server, "tiny", inputs=Inputs(shared_memory=Memory.SYSTEM)).measurement
    assert m.errors == 0 and m.samples >= 100
    assert not list(Path("/dev/shm").glob("tuner_tiny_*")), "shared-memory regions left behind"
    assert not server.control.client.get_system_shared_memory_status(as_json=True).get("regions")


@pytest.mark.integration
def test_server_breakdown_is_recorded(server):
    m = _measure(server, "tiny").measurement
    s = m.server
    assert s is not None and s.compute_infer_ms >= 1.5  # tiny sleeps 2 ms per execution
    assert s.avg_batch_size == 1.0  # no dynamic batching in tiny's config


# the full rule would measure until the time limit: 100000 samples
UNSETTLED = LoadSpec(concurrency=4, warmup_s=0.3, window_s=0.3, min_samples=100_000, max_duration_s=6)


@pytest.mark.integration
def test_a_raced_measurement_stops_once_clearly_behind(server):
    asked = []

    def behind(throughput, p95_ms, offered):
        asked.append((throughput, p95_ms))
        assert offered is None  # a closed loop sends on replies, not at a rate
        return True

    m = _measure(server, "tiny", spec=UNSETTLED, race=Race(behind)).measurement
    assert m.decided and not m.stable and 100 <= m.samples < 1000 and m.duration_s < 2
    assert asked == [(m.throughput_ci, m.p95_ci_ms)]  # the result is what it was judged by
    low, high = m.throughput_ci
    assert low < m.throughput < high


@pytest.mark.integration
def test_a_raced_measurement_stops_once_as_precise_as_asked(server):
    # a service that is mostly a known delay (20 ms asleep per execution): what other tests running on
    # the same cores add to its latency and rate is small beside it, so the precision asked is reachable
    delayed = apply_knobs(read_config(MODELS / "tiny" / "config.pbtxt"), {"parameters": {"delay_ms": "20"}})
    loose = _measure(server, "tiny", spec=UNSETTLED, race=Race(lambda *_: False, precision=0.2),
                     config=delayed).measurement
    assert loose.stable and not loose.decided and loose.duration_s < UNSETTLED.max_duration_s  # not its time limit
    for value, (low, high) in ((loose.throughput, loose.throughput_ci), (loose.p95_ms, loose.p95_ci_ms)):
        assert (high - low) / 2 <= 0.2 * value
    tight = _measure(server, "tiny", spec=UNSETTLED, race=Race(lambda *_: False, precision=1e-6)).measurement
    assert not tight.stable and tight.duration_s >= 5.5  # never that precise: the time limit ends it


@pytest.mark.integration
def test_a_race_of_nothing_stops_by_the_full_rule_when_it_cannot_be_as_precise_as_asked(server):
    # four instances of a 20 ms service for four clients: about 50 requests a window from the first
    delayed = apply_knobs(read_config(MODELS / "tiny" / "config.pbtxt"),
                          {"instance_count": 4, "parameters": {"delay_ms": "20"}})
    settling = LoadSpec(concurrency=4, warmup_s=0.3, window_s=0.3, min_samples=100, max_duration_s=12, stability=0.3)
    m = _measure(server, "tiny", spec=settling, race=Race(lambda *_: False, precision=1e-6, full_rule=True),
                 config=delayed).measurement
    assert m.stable and not m.decided and m.duration_s < 10 and m.windows >= 3, m


@pytest.mark.unit
def test_specs_of_metadata():
    meta = [{"name": "x", "datatype": "FP32", "shape": ["-1", "3", "-1"]}]
    assert tensor_specs(meta, 2, {"x": [3, 7]}) == [TensorSpec("x", "FP32", (2, 3, 7))]
    assert tensor_specs(meta, 1, None, strict=False) == []
