"""The demo detector: deterministic ONNX, served by the embedded Triton with the right shapes."""
import hashlib
import shutil
import sys

import numpy as np
import tritonclient.grpc as grpcclient

from tuner.cli import DEMO_REPOSITORY
from tuner.server import EmbeddedServer

sys.path.insert(0, str(DEMO_REPOSITORY / "detector" / "1"))
import build_onnx  # noqa: E402


def test_onnx_is_deterministic():
    digest = lambda: hashlib.sha256(build_onnx.build().SerializeToString()).hexdigest()  # noqa: E731
    assert digest() == digest()


def test_detector_serves_yolo_shaped_output(tmp_path):
    shutil.copytree(DEMO_REPOSITORY, tmp_path / "repo")
    with EmbeddedServer(tmp_path / "repo", tmp_path / "run") as server:
        server.control.load("detector")
        client = grpcclient.InferenceServerClient(server.url)
        x = np.random.default_rng(0).random((2, 3, 640, 640), dtype=np.float32)
        tensor = grpcclient.InferInput("images", x.shape, "FP32")
        tensor.set_data_from_numpy(x)
        y = client.infer("detector", [tensor]).as_numpy("output0")
        client.close()
    assert y.shape == (2, 84, 8400) and np.isfinite(y).all()
    # the same network run directly gives the same numbers: nothing was mangled on the way
    import onnxruntime as ort
    direct = ort.InferenceSession(build_onnx.build().SerializeToString()).run(None, {"images": x})[0]
    np.testing.assert_allclose(y, direct, rtol=1e-4, atol=1e-4)
