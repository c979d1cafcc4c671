"""One config, end to end: write it, hot-reload it into the server, measure it.

Every way this can go wrong (Triton refuses the config, the model fails to initialize, requests
fail, the server dies) comes back as an `Outcome` with the reason, never as an exception, so the
study records a failed trial and goes on.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import grpc
from tritonclient.utils import InferenceServerException

from tuner.agreement import Outputs, infer_outputs, relative_error
from tuner.inputs import SharedInputs, infer_requests, load_input_data, synthetic_set, tensor_specs
from tuner.loadgen import LoadSpec, Measurement, Screen, measure
from tuner.modelconfig import ModelConfig, fingerprint, render_pbtxt, to_json
from tuner.server.client import LoadError


SERVER_DIED = "tritonserver died"  # starts the reason of a trial whose server died under it
_TOLERATED_ERRORS = 0.01  # more failed requests than this and the config is not a candidate


@dataclass(frozen=True)
class Outcome:
    measurement: Measurement | None
    reason: str = ""  # why it failed; empty when it succeeded
    load_s: float = 0.0
    memory_mib: float | None = None  # the server's memory with this config loaded and under load
    output_error: float | None = None  # outputs on fixed inputs vs the base config's (relative)

    @property
    def ok(self) -> bool:
        return self.measurement is not None

    @property
    def screened(self) -> bool:
        """Only the screening stage was measured: the config was clearly behind the front."""
        return self.measurement is not None and self.measurement.screened


def screening(spec: LoadSpec, worth: Callable[[float, float], bool]) -> Screen:
    """The screening point: a fifth of the samples (at least 100), enough to see a config is clearly
    worse; the samples stay part of the measurement if it goes on."""
    return Screen(max(100, spec.min_samples // 5), worth)


@dataclass(frozen=True)
class Inputs:
    """What requests carry: synthetic data unless `data_file` (perf_analyzer's --input-data JSON)."""
    shapes: dict[str, list[int]] | None = None
    data_file: Path | None = None
    shared_memory: bool = False  # inputs and outputs through system shared memory, not the wire


class Evaluator:
    """Loads configs of one model into one server and measures them. Close it (or use `with`)
    to release the shared-memory regions it registered."""

    def __init__(self, server, model: str, spec: LoadSpec, inputs: Inputs = Inputs(),
                 reference: ModelConfig | None = None):
        self.server = server
        self.model = model
        self.spec = spec
        self.inputs = inputs
        self.reference = reference  # the config whose outputs every other config's are compared with
        self._requests: list[bytes] | None = None
        self._sets: list[dict] = []
        self._reference_outputs: Outputs | None = None
        self._shm: SharedInputs | None = None

    @property
    def work_config_path(self) -> Path | None:
        repo = self.server.model_repository
        return Path(repo) / self.model / "config.pbtxt" if repo else None

    def requests(self, batching: bool) -> list[bytes]:
        """Built once from the model's metadata: inputs do not change between configs."""
        if self._requests is None:
            metadata = self.server.control.model_metadata(self.model)
            specs = tensor_specs(metadata["inputs"], 1, self.inputs.shapes, batching)
            sets = (load_input_data(self.inputs.data_file, specs, batching) if self.inputs.data_file
                    else [synthetic_set(specs)])
            self._sets = sets
            if self.inputs.shared_memory:
                outputs = tensor_specs(metadata["outputs"], 1, self.inputs.shapes, batching, strict=False)
                self._shm = SharedInputs(self.server.control, sets, outputs, f"{self.model}_{id(self):x}")
            self._requests = infer_requests(self.model, sets, self._shm)
        return self._requests

    def close(self) -> None:
        if self._shm is not None:
            self._shm.close()
        self._shm = self._requests = None

    def __enter__(self) -> "Evaluator":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def evaluate(self, config: ModelConfig, screen: Callable[[float, float], bool] | None = None) -> Outcome:
        """Loads `config` and measures it. With `screen(throughput, p95_ms)`, the measurement stops
        at its screening point unless the config might be worth it (multi-fidelity)."""
        path = self.work_config_path
        if path is not None:  # the working copy shows the config being measured, and survives restarts
            path.write_text(render_pbtxt(config))
        start = time.perf_counter()
        try:
            self.server.control.load(self.model, to_json(config))
        except LoadError as e:
            return Outcome(None, self._after_failure(f"load failed: {e}"), time.perf_counter() - start)
        load_s = time.perf_counter() - start
        requests = self.requests(config.max_batch_size > 0)
        try:
            error = self._output_error(config)
            m = measure(self.server.control, self.model, requests, self.spec,
                        screen=screening(self.spec, screen) if screen is not None else None)
        except InferenceServerException as e:  # the server went away between our calls
            return Outcome(None, self._after_failure(f"server error: {e.message() or e}"), load_s)
        except grpc.RpcError as e:  # the fixed-input inference failed: so would the measurement
            return Outcome(None, self._after_failure(f"inference failed: {e.details()}"), load_s)
        problem = self._problem(m)
        if problem:
            return Outcome(None, self._after_failure(problem), load_s)
        return Outcome(m, "", load_s, memory_mib=self.server.memory_mib(), output_error=error)

    def _output_error(self, config: ModelConfig) -> float | None:
        """The loaded config's outputs on the fixed inputs against the reference config's. The
        reference's are taken once, in this server, by loading it briefly before the first trial."""
        if self.reference is None:
            return None
        outputs = infer_outputs(self.server.url, self.model, self._sets)
        if self._reference_outputs is None:
            if fingerprint(config) != fingerprint(self.reference):
                self.server.control.load(self.model, to_json(self.reference))
                self._reference_outputs = infer_outputs(self.server.url, self.model, self._sets)
                self.server.control.load(self.model, to_json(config))
            else:
                self._reference_outputs = outputs
        return relative_error(self._reference_outputs, outputs)

    def _problem(self, m: Measurement) -> str | None:
        """Why a measurement cannot stand for the config (None when it can)."""
        if m.samples == 0:
            return f"no request succeeded: {m.first_error}"
        if m.errors > _TOLERATED_ERRORS * (m.samples + m.errors) or not self.server.alive():
            return f"{m.errors} of {m.samples + m.errors} requests failed: {m.first_error}"
        return None

    def _after_failure(self, reason: str) -> str:
        """A dead server is restarted so the next trial finds one; the reason says it died."""
        if self.server.alive():
            return reason
        self.close()  # a new server knows nothing of our shared-memory registrations
        self.server.restart()
        return f"{SERVER_DIED} ({reason}); restarted it"
