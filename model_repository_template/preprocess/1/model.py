"""The demo pipeline's preprocessing: an HD frame (uint8 [720, 1280, 3], HWC) letterboxed to the
detector's input (float32 [3, 640, 640], CHW, in [0, 1]): resized by nearest neighbour to keep its
aspect ratio (1280x720 -> 640x360), centred on grey (114) padding, the way YOLO pipelines do it.
One numpy pass per frame: real CPU work, as a preprocessing step has in production."""
import numpy as np
import triton_python_backend_utils as pb_utils

SIZE = 640
PAD = 114


def letterbox(frame: np.ndarray) -> np.ndarray:
    h, w = frame.shape[:2]
    scale = min(SIZE / h, SIZE / w)
    nh, nw = round(h * scale), round(w * scale)
    rows = np.minimum((np.arange(nh) / scale).astype(np.int64), h - 1)
    cols = np.minimum((np.arange(nw) / scale).astype(np.int64), w - 1)
    out = np.full((SIZE, SIZE, 3), PAD, dtype=np.uint8)
    top, left = (SIZE - nh) // 2, (SIZE - nw) // 2
    out[top:top + nh, left:left + nw] = frame[rows][:, cols]
    return out.transpose(2, 0, 1).astype(np.float32) / 255.0


class TritonPythonModel:
    def execute(self, requests):
        responses = []
        for request in requests:
            frames = pb_utils.get_input_tensor_by_name(request, "image").as_numpy()
            images = np.stack([letterbox(f) for f in frames])
            responses.append(pb_utils.InferenceResponse([pb_utils.Tensor("images", images)]))
        return responses
