"""One config, end to end: write it, hot-reload it into the server, measure it.

Every way this can go wrong (Triton refuses the config, the model fails to initialize, requests
fail, the server dies) comes back as an `Outcome` with the reason, never as an exception, so the
study records a failed trial and goes on.
"""
from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from tritonclient.utils import InferenceServerException

from tuner.inputs import SharedInputs, infer_requests, load_input_data, synthetic_set, tensor_specs
from tuner.loadgen import LoadSpec, Measurement, measure
from tuner.modelconfig import ModelConfig, render_pbtxt, to_json
from tuner.server.client import LoadError


SERVER_DIED = "tritonserver died"  # starts the reason of a trial whose server died under it
_TOLERATED_ERRORS = 0.01  # more failed requests than this and the config is not a candidate


@dataclass(frozen=True)
class Outcome:
    measurement: Measurement | None
    reason: str = ""  # why it failed; empty when it succeeded
    load_s: float = 0.0
    screened: bool = False  # only the short screening measurement was taken
    memory_mib: float | None = None  # the server's memory with this config loaded and under load

    @property
    def ok(self) -> bool:
        return self.measurement is not None


def screening(spec: LoadSpec) -> LoadSpec:
    """A fifth of the samples and a quarter of the time: enough to see a config is clearly worse."""
    return dataclasses.replace(spec, min_samples=max(100, spec.min_samples // 5),
                               max_duration_s=max(2.0, spec.max_duration_s / 4))


@dataclass(frozen=True)
class Inputs:
    """What requests carry: synthetic data unless `data_file` (perf_analyzer's --input-data JSON)."""
    shapes: dict[str, list[int]] | None = None
    data_file: Path | None = None
    shared_memory: bool = False  # inputs and outputs through system shared memory, not the wire


class Evaluator:
    """Loads configs of one model into one server and measures them. Close it (or use `with`)
    to release the shared-memory regions it registered."""

    def __init__(self, server, model: str, spec: LoadSpec, inputs: Inputs = Inputs()):
        self.server = server
        self.model = model
        self.spec = spec
        self.inputs = inputs
        self._requests: list[bytes] | None = None
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

    def evaluate(self, config: ModelConfig, screen: Callable[[Measurement], bool] | None = None) -> Outcome:
        """Loads `config` and measures it. With `screen`, a short measurement comes first, and the
        full one only follows if `screen` says the config might be worth it (multi-fidelity)."""
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
            spec = self.spec
            if screen is not None:
                m = measure(self.server.control, self.model, requests, screening(spec))
                if self._problem(m) is None and not screen(m):
                    return Outcome(m, "", load_s, screened=True, memory_mib=self.server.memory_mib())
                spec = dataclasses.replace(spec, warmup_s=0.0)  # the screening warmed it up
            m = measure(self.server.control, self.model, requests, spec)
        except InferenceServerException as e:  # the server went away between our calls
            return Outcome(None, self._after_failure(f"server error: {e.message() or e}"), load_s)
        problem = self._problem(m)
        if problem:
            return Outcome(None, self._after_failure(problem), load_s)
        return Outcome(m, "", load_s, memory_mib=self.server.memory_mib())

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
