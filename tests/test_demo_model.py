"""The demo detector: a deterministic ONNX file, served by Triton's ONNX Runtime backend (and by its
python-backend twin) with the same numbers as onnxruntime in Python."""
import shutil
import sys

import numpy as np
import onnxruntime as ort
import pytest
import tritonclient.grpc as grpcclient

from tuner.config.shipped import DEMO_REPOSITORY
from tuner.server import EmbeddedServer

sys.path.insert(0, str(DEMO_REPOSITORY / "detector_python" / "1"))
import build_onnx  # noqa: E402

ONNX = DEMO_REPOSITORY / "detector" / "1" / "model.onnx"


@pytest.mark.unit
def test_shipped_onnx_is_what_build_onnx_makes():
    assert ONNX.read_bytes() == build_onnx.build().SerializeToString()


@pytest.mark.integration
@pytest.mark.parametrize("model", ["detector", "detector_python", "detector_openvino"])
def test_demo_models_match_onnxruntime(tmp_path, real_backends, model):
    shutil.copytree(DEMO_REPOSITORY, tmp_path / "repo")
    x = np.random.default_rng(0).random((2, 3, 640, 640), dtype=np.float32)
    with EmbeddedServer(tmp_path / "repo", tmp_path / "run") as server:
        server.control.load(model)
        client = grpcclient.InferenceServerClient(server.url)
        tensor = grpcclient.InferInput("images", x.shape, "FP32")
        tensor.set_data_from_numpy(x)
        y = client.infer(model, [tensor]).as_numpy("output0")
        client.close()
    direct = ort.InferenceSession(str(ONNX)).run(None, {"images": x})[0]
    assert y.shape == (2, 84, 8400)
    if model == "detector":  # the same library, the same graph: the same bits
        assert np.array_equal(y, direct)
    else:  # OpenVINO at F32 reorders sums (1.7e-6 on this model)
        np.testing.assert_allclose(y, direct, rtol=0, atol=1e-4)
