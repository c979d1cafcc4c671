"""The engine-only ceiling: which batches a load can form with a config (pure), and ONNX Runtime
run in process with the session options Triton's backend would set."""
import onnxruntime as ort
import pytest

from tuner.config.modelconfig import apply_knobs, read_config
from tuner.config.shipped import DEMO_REPOSITORY
from tuner.measure import ceiling, engines
from tuner.measure.load import LoadSpec

DETECTOR = read_config(DEMO_REPOSITORY / "detector" / "config.pbtxt")


def _config(**knobs):
    return apply_knobs(DETECTOR, knobs)


@pytest.mark.unit
def test_a_closed_loop_forms_batches_no_larger_than_its_clients():
    batching = _config(instance_count=3, max_batch_size=16, dynamic_batching=True)
    assert ceiling.formable(batching, LoadSpec(concurrency=8)) == (8, 1)  # one batch holds every client
    assert ceiling.formable(batching, LoadSpec(concurrency=40)) == (16, 3)
    alone = _config(instance_count=2, max_batch_size=8, dynamic_batching=False)
    assert ceiling.formable(alone, LoadSpec(concurrency=8)) == (1, 2)  # no batcher: a request per execution


@pytest.mark.unit
def test_an_open_loop_can_fill_any_batch_but_is_served_no_more_than_offered():
    batching = _config(instance_count=2, max_batch_size=4, dynamic_batching=True)
    assert ceiling.formable(batching, LoadSpec(request_rate=50)) == (4, 2)
    found = ceiling.Ceiling("e", "w", "request rate 50/s", 4, 2, engine_rate=300.0, max_batch=4, max_rate=300.0,
                            offered=50.0)
    assert found.rate == 50 and found.load_bound


@pytest.mark.unit
def test_a_closed_loop_whose_clients_all_fit_in_one_round_of_batches_is_in_lockstep():
    assert ceiling.in_lockstep(LoadSpec(concurrency=8), batch=8, instances=1)  # one batch holds every client
    assert not ceiling.in_lockstep(LoadSpec(concurrency=32), batch=16, instances=1)  # a batch waits its turn
    assert not ceiling.in_lockstep(LoadSpec(concurrency=8), batch=1, instances=2)
    assert not ceiling.in_lockstep(LoadSpec(request_rate=100), batch=8, instances=4)  # arrivals do not wait


@pytest.mark.unit
def test_the_session_options_are_the_ones_the_backend_sets():
    config = _config(graph_optimization="basic", parameters={"intra_op_thread_count": "1", "execution_mode": "1",
                                                             "inter_op_thread_count": "2", "enable_mem_arena": "0"})
    options = engines.session_options(config)
    assert options.graph_optimization_level == ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    assert options.execution_mode == ort.ExecutionMode.ORT_PARALLEL
    assert (options.intra_op_num_threads, options.inter_op_num_threads) == (1, 2)
    assert options.enable_cpu_mem_arena is False
    default = engines.session_options(DETECTOR)
    assert default.graph_optimization_level == ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    assert default.intra_op_num_threads == 0  # ONNX Runtime's own choice, as the backend leaves it


@pytest.mark.integration
def test_the_demo_detector_has_a_cpu_ceiling_at_the_load_and_at_its_max_batch():
    config = _config(instance_count=1, max_batch_size=4, dynamic_batching=True,
                     parameters={"intra_op_thread_count": "2"})
    found = ceiling.measure(DEMO_REPOSITORY / "detector", config, LoadSpec(concurrency=2), seconds=1.0)
    assert found is not None and "onnxruntime" in found.engine
    assert (found.batch, found.parallel, found.max_batch) == (2, 1, 4)
    assert found.engine_rate > 0 and found.max_rate > 0
    assert ceiling.measure(DEMO_REPOSITORY / "detector", _config(instance_kind="KIND_GPU"), LoadSpec()) is None
