"""Test model: OUTPUT0 = gain * INPUT0, with a short sleep per execution so batching matters.

Parameters: fail_on_load "yes" raises in initialize (a config that cannot load); delay_ms sets
the per-execution sleep (default 2), delay_per_request_ms adds that much per request of the batch
(a cost a + b * size), and delay_spread "exponential" draws each execution's sleep from an
exponential distribution of that mean (service for M/M/n); useful_batch (default: none) makes a
larger batch pay delay_ms once per that many requests, as a model with no gain past a batch size
would; sharing slows every execution by that fraction for each further instance of the config,
as instances sharing cores or a GPU would; gain (default 2) changes the outputs, as a precision or
graph-optimisation knob could; max_instances refuses, in initialize, a config with more instances
(as a model holding a per-instance resource would); init_delay_ms makes each load that slow;
hang_with_instances makes execute block for good in a config with that many instances (as a
deadlocked backend would)."""
import json
import time

import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def initialize(self, args):
        config = json.loads(args["model_config"])
        params = {k: v["string_value"] for k, v in config.get("parameters", {}).items()}
        if params.get("fail_on_load") == "yes":
            raise RuntimeError("tiny: fail_on_load is set")
        instances = sum(int(g.get("count", 1)) for g in config.get("instance_group", []))
        if "max_instances" in params and instances > int(params["max_instances"]):
            raise RuntimeError(f"tiny: {instances} instances configured, at most {params['max_instances']}")
        time.sleep(float(params.get("init_delay_ms", "0")) / 1000)
        self.delay_s = float(params.get("delay_ms", "2")) / 1000
        self.per_request_s = float(params.get("delay_per_request_ms", "0")) / 1000
        self.exponential = params.get("delay_spread") == "exponential"
        self.useful_batch = int(params.get("useful_batch", "0"))
        self.slowdown = 1 + float(params.get("sharing", "0")) * (instances - 1)
        self.rng = np.random.default_rng()
        self.gain = float(params.get("gain", "2"))
        self.hangs = params.get("hang_with_instances") == str(instances)

    def execute(self, requests):
        while self.hangs:
            time.sleep(1)
        rounds = -(-len(requests) // self.useful_batch) if self.useful_batch else 1
        mean = (self.delay_s * rounds + self.per_request_s * len(requests)) * self.slowdown
        time.sleep(self.rng.exponential(mean) if self.exponential else mean)
        return [pb_utils.InferenceResponse([pb_utils.Tensor(
            "OUTPUT0", (pb_utils.get_input_tensor_by_name(r, "INPUT0").as_numpy() * self.gain).astype(np.float32))])
            for r in requests]
