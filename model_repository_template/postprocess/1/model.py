"""The demo pipeline's postprocessing: the detector's 8400 candidates ([84, 8400]: 4 box values
cx, cy, w, h, then 80 class logits) to at most 100 detections [x1, y1, x2, y2, score, class] in
the 640x640 frame, zero rows after the last: sigmoid scores, a 0.25 threshold, the 1000 best, then
greedy non-maximum suppression per class at IoU 0.45. Numpy per frame: real CPU work."""
import numpy as np
import triton_python_backend_utils as pb_utils

MAX_DETECTIONS, MAX_CANDIDATES = 100, 1000
SCORE, IOU = 0.25, 0.45


def detect(raw: np.ndarray) -> np.ndarray:
    boxes, logits = raw[:4].T, raw[4:].T
    scores = 1.0 / (1.0 + np.exp(-logits.max(axis=1)))
    classes = logits.argmax(axis=1)
    keep = np.flatnonzero(scores > SCORE)
    keep = keep[np.argsort(-scores[keep])][:MAX_CANDIDATES]
    cx, cy, w, h = (np.abs(boxes[keep, i]) for i in range(4))
    xyxy = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1)
    area = (xyxy[:, 2] - xyxy[:, 0]) * (xyxy[:, 3] - xyxy[:, 1])
    chosen, alive = [], np.ones(len(keep), dtype=bool)
    for i in range(len(keep)):  # best first: each kept box removes the same class's overlaps
        if not alive[i]:
            continue
        chosen.append(i)
        if len(chosen) == MAX_DETECTIONS:
            break
        rest = np.flatnonzero(alive[i + 1:]) + i + 1
        lt, rb = np.maximum(xyxy[i, :2], xyxy[rest, :2]), np.minimum(xyxy[i, 2:], xyxy[rest, 2:])
        inter = np.prod(np.clip(rb - lt, 0, None), axis=1)
        iou = inter / (area[i] + area[rest] - inter + 1e-9)
        alive[rest[(iou > IOU) & (classes[keep[rest]] == classes[keep[i]])]] = False
    out = np.zeros((MAX_DETECTIONS, 6), dtype=np.float32)
    rows = keep[chosen]
    out[:len(chosen)] = np.column_stack([xyxy[chosen], scores[rows], classes[rows]])
    return out


class TritonPythonModel:
    def execute(self, requests):
        responses = []
        for request in requests:
            raw = pb_utils.get_input_tensor_by_name(request, "output0").as_numpy()
            detections = np.stack([detect(r) for r in raw])
            responses.append(pb_utils.InferenceResponse([pb_utils.Tensor("detections", detections)]))
        return responses
