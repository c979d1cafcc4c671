"""Test BLS model: OUTPUT0 = tiny(INPUT0) + 1, one BLS request to tiny per request."""
import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def execute(self, requests):
        responses = []
        for request in requests:
            x = pb_utils.get_input_tensor_by_name(request, "INPUT0")
            called = pb_utils.InferenceRequest(model_name="tiny", requested_output_names=["OUTPUT0"],
                                               inputs=[pb_utils.Tensor("INPUT0", x.as_numpy())]).exec()
            if called.has_error():
                raise pb_utils.TritonModelException(called.error().message())
            y = pb_utils.get_output_tensor_by_name(called, "OUTPUT0").as_numpy() + 1
            responses.append(pb_utils.InferenceResponse([pb_utils.Tensor("OUTPUT0", y.astype(np.float32))]))
        return responses
