"""Triton's OpenVINO backend r24.10 with the project's fixes, in the embedded server.

Each batching scenario below runs at concurrency 8 and checks every response against the model's
exact answer. Each one fails on a build that leaves out the fix named in its id (four r24.10 bugs,
see tuner/backends/openvino_fixes.py): run it against such a build with
`TUNER_OV_WITHOUT=<fix> python -m pytest tests/test_openvino.py`
(benchmarks/openvino_fixes.py does this for every fix and prints the table).
"""
import os
import shutil
import threading

import numpy as np
import onnx
import pytest
import tritonclient.grpc as grpcclient
from onnx import TensorProto, helper, numpy_helper
from support import load_study, search

from tuner import backends
from tuner.config.modelconfig import read_config
from tuner.config.shipped import DEMO_REPOSITORY
from tuner.server import EmbeddedServer

WIDTH = 4096  # 16 KiB per row: freed buffers get reused by the next messages, as with real inputs
RNG = np.random.default_rng(7)
W = RNG.standard_normal((WIDTH, 64)).astype(np.float32) / 64


def _model(folder, padding: bool, batcher: str) -> None:
    """y = x @ W as ONNX, served by the OpenVINO backend with max_batch_size 4."""
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"])], "mm",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", WIDTH])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 64])],
                              initializer=[numpy_helper.from_array(W, "w")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    (folder / "1").mkdir(parents=True)
    onnx.save(model, str(folder / "1" / "model.onnx"))
    (folder / "config.pbtxt").write_text(f"""
name: "{folder.name}"
backend: "openvino"
default_model_filename: "model.onnx"
max_batch_size: 4
input [ {{ name: "x" data_type: TYPE_FP32 dims: [ {WIDTH} ] }} ]
output [ {{ name: "y" data_type: TYPE_FP32 dims: [ 64 ] }} ]
instance_group [ {{ count: 2 kind: KIND_CPU }} ]
{batcher}
parameters {{ key: "INFERENCE_PRECISION_HINT" value {{ string_value: "F32" }} }}
parameters {{ key: "ENABLE_BATCH_PADDING" value {{ string_value: "{'YES' if padding else 'NO'}" }} }}
""")


# scenario id (the fix it needs) -> padding, batcher, the batch sizes each client cycles through
SCENARIOS = {
    # a full batch right after a padded one: r24.10 keeps the old pad and fails to split the output
    "reset_padding": (True, "", [1, 4]),
    # a padded execution after an unpadded one writes into the previous request's freed buffer
    "own_padded_tensor": (True, "", [4, 1, 3, 4, 2]),
    # dynamic batches of several requests: the pad is computed on a partial sum
    "check_batch_once": (True, "dynamic_batching { max_queue_delay_microseconds: 2000 }", [1]),
    # full dynamic batches (no pad) gather several requests: the gather buffer is freed before inference
    "own_gather_tensor": (True, "dynamic_batching { preferred_batch_size: [ 4 ] max_queue_delay_microseconds: "
                                "100000 }", [1]),
}


@pytest.fixture(scope="module")
def openvino_folder(real_backends):
    """The OpenVINO backend as the project builds it, or without the fix named in $TUNER_OV_WITHOUT."""
    without = os.environ.get("TUNER_OV_WITHOUT")
    if not without:
        return real_backends["openvino"]
    return backends.build("openvino", leave_out=frozenset({without}), say=lambda _: None)


def _hammer(url: str, model: str, sizes: list[int], clients: int = 8, requests: int = 24) -> tuple[int, int, str]:
    """`clients` threads, each sending `requests` requests (batch sizes cycling through `sizes`) with
    random inputs, and checking each answer. Returns (failed requests, wrong answers, first error)."""
    failed, wrong, first = [0], [0], [""]
    lock = threading.Lock()

    def client(seed: int) -> None:
        rng = np.random.default_rng(seed)
        c = grpcclient.InferenceServerClient(url)
        for i in range(requests):
            x = rng.standard_normal((sizes[i % len(sizes)], WIDTH)).astype(np.float32)
            tensor = grpcclient.InferInput("x", list(x.shape), "FP32")
            tensor.set_data_from_numpy(x)
            try:
                y = c.infer(model, [tensor], client_timeout=10).as_numpy("y")
                ok = y.shape == (x.shape[0], 64) and np.allclose(y, x @ W, atol=1e-3)
                with lock:
                    wrong[0] += not ok
            except Exception as e:  # noqa: BLE001 - a failed request is what we count
                with lock:
                    failed[0] += 1
                    first[0] = first[0] or str(e)[:200]
                break  # one is enough: a crashed server would make every later request wait out its timeout
        c.close()

    threads = [threading.Thread(target=client, args=(seed,)) for seed in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return failed[0], wrong[0], first[0]


@pytest.mark.integration
@pytest.mark.parametrize("scenario", SCENARIOS)
def test_batching_at_concurrency_8_returns_exact_answers(tmp_path, openvino_folder, scenario):
    padding, batcher, sizes = SCENARIOS[scenario]
    _model(tmp_path / "repo" / "mm", padding, batcher)
    with EmbeddedServer(tmp_path / "repo", tmp_path / "run", backend_folders={"openvino": openvino_folder}) as server:
        server.control.load("mm")
        failed, wrong, first = _hammer(server.url, "mm", sizes)
        alive = server.alive()
    assert alive, "tritonserver crashed"
    assert (failed, wrong) == (0, 0), f"{failed} failed ({first}), {wrong} wrong answers of 192"


@pytest.mark.integration
def test_openvino_search_on_the_demo_exports_a_config_that_loads_back(workdir, real_backends):
    done = search(workdir, "--trials", "4", "--concurrency", "4", "--seed", "1",
                  target=("--model-repository", str(DEMO_REPOSITORY), "--model", "detector_openvino"))
    assert done.returncode == 0, done.stderr
    assert "exported trial #" in done.stdout
    trials = load_study(workdir, "detector_openvino").get_trials()
    assert all(t.user_attrs.get("output_error", 1) < 1e-3 for t in trials if t.values)
    exported = workdir / "out" / "detector_openvino" / "config.pbtxt"
    repo = workdir / "deploy"
    shutil.copytree(DEMO_REPOSITORY / "detector_openvino", repo / "detector_openvino")
    shutil.copy(exported, repo / "detector_openvino" / "config.pbtxt")
    with EmbeddedServer(repo, workdir / "deploy-run") as server:
        server.control.load("detector_openvino")  # from the exported file, as deployed
        loaded = server.control.model_config_json("detector_openvino")
    config = read_config(exported)
    assert loaded["instance_group"][0]["count"] == config.instance_group[0].count
    assert {k: v["string_value"] for k, v in loaded["parameters"].items()} == \
        {k: v.string_value for k, v in config.parameters.items()}
