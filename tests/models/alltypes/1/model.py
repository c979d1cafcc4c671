"""Answers with how many inputs arrived with the configured shape; any other shape is an error."""
import json

import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def initialize(self, args):
        config = json.loads(args["model_config"])
        self.names = [i["name"] for i in config["input"]]

    def execute(self, requests):
        responses = []
        for r in requests:
            shapes = [tuple(pb_utils.get_input_tensor_by_name(r, n).shape()) for n in self.names]
            wrong = [(n, s) for n, s in zip(self.names, shapes, strict=True) if n != "IN_DYNAMIC" and s[1:] != (2, 3)]
            if wrong:
                responses.append(pb_utils.InferenceResponse(error=pb_utils.TritonError(f"wrong shapes {wrong}")))
                continue
            count = np.array([[len(shapes)]] * shapes[0][0], dtype=np.int64)
            responses.append(pb_utils.InferenceResponse([pb_utils.Tensor("COUNT", count)]))
        return responses
