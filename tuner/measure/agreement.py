"""Output agreement: does a config compute the same answers as the user's own?

Some knobs change the numbers a model returns (ONNX Runtime's graph optimisation level, OpenVINO's
inference precision, a precision variant). Each trial sends the same fixed inputs as the baseline
and compares outputs; the error is relative to the scale of the baseline's outputs, so one default
limit means the same for a detector's logits and an embedding.
"""
from __future__ import annotations

import grpc
import numpy as np
from tritonclient.grpc import service_pb2
from tritonclient.utils import deserialize_bytes_tensor, triton_to_np_dtype

from tuner.measure.inputs import TensorSpec, infer_requests
from tuner.server.client import bounded

DEFAULT_MAX_ERROR = 1e-3  # FP32 reorderings stay near 1e-6; bf16 inference of the demo is 6.7e-3

Outputs = list[dict[str, np.ndarray]]


def infer_outputs(url: str, model: str, tensor_sets: list[dict[str, tuple[TensorSpec, bytes]]],
                  timeout_s: float = 60.0) -> Outputs:
    """Every output of one inference per input set, over plain gRPC (no shared memory); `Stalled`
    when an answer does not come within `timeout_s`."""
    def infer_all() -> Outputs:
        with grpc.insecure_channel(url, options=[("grpc.max_send_message_length", -1),
                                                 ("grpc.max_receive_message_length", -1)]) as channel:
            infer = channel.unary_unary("/inference.GRPCInferenceService/ModelInfer",
                                        response_deserializer=service_pb2.ModelInferResponse.FromString)
            return [_arrays(infer(request, timeout=timeout_s)) for request in infer_requests(model, tensor_sets)]

    return bounded(infer_all, timeout_s * len(tensor_sets) + 1, f"an inference of '{model}'")


def _arrays(response) -> dict[str, np.ndarray]:
    arrays = {}
    for output, raw in zip(response.outputs, response.raw_output_contents, strict=True):
        if output.datatype == "BYTES":
            array = deserialize_bytes_tensor(raw)
        else:
            array = np.frombuffer(raw, dtype=triton_to_np_dtype(output.datatype))
        arrays[output.name] = array.reshape(list(output.shape))
    return arrays


def relative_error(reference: Outputs, got: Outputs) -> float:
    """The largest absolute difference over all outputs, divided by the largest magnitude of the
    reference outputs; 1.0 where shapes, names or non-numeric values differ."""
    worst = 0.0
    for ref, out in zip(reference, got, strict=False):
        if ref.keys() != out.keys():
            return 1.0
        for name, a in ref.items():
            b = out[name]
            if a.shape != b.shape:
                return 1.0
            if a.dtype.kind not in "fiub":
                worst = max(worst, 0.0 if np.array_equal(a, b) else 1.0)
                continue
            a64, b64 = a.astype(np.float64), b.astype(np.float64)
            scale = float(np.abs(a64).max()) if a64.size else 0.0
            diff = float(np.abs(a64 - b64).max()) if a64.size else 0.0
            worst = max(worst, diff / scale if scale > 0 else (0.0 if diff == 0 else 1.0))
    return worst
