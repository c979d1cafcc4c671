"""One config, end to end: write it, hot-reload it into the server, measure it.

Every way this can go wrong (Triton refuses the config, the model fails to initialize, requests
fail, the server dies) comes back as an `Outcome` with the reason, never as an exception, so the
study records a failed trial and goes on.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from tuner.inputs import infer_request, input_specs
from tuner.loadgen import LoadSpec, Measurement, measure
from tuner.modelconfig import ModelConfig, render_pbtxt, to_json
from tuner.server.client import LoadError


@dataclass(frozen=True)
class Outcome:
    measurement: Measurement | None
    reason: str = ""  # why it failed; empty when it succeeded
    load_s: float = 0.0

    @property
    def ok(self) -> bool:
        return self.measurement is not None


class Evaluator:
    def __init__(self, server, model: str, spec: LoadSpec, shapes: dict[str, list[int]] | None = None):
        self.server = server
        self.model = model
        self.spec = spec
        self.shapes = shapes
        self._request: bytes | None = None

    @property
    def work_config_path(self) -> Path | None:
        repo = self.server.model_repository
        return Path(repo) / self.model / "config.pbtxt" if repo else None

    def request(self, batching: bool) -> bytes:
        """Built once from the model's metadata: inputs do not change between configs."""
        if self._request is None:
            metadata = self.server.control.model_metadata(self.model)
            self._request = infer_request(self.model, input_specs(metadata, 1, self.shapes, batching))
        return self._request

    def evaluate(self, config: ModelConfig) -> Outcome:
        path = self.work_config_path
        if path is not None:  # the working copy shows the config being measured, and survives restarts
            path.write_text(render_pbtxt(config))
        start = time.perf_counter()
        try:
            self.server.control.load(self.model, to_json(config))
        except LoadError as e:
            return Outcome(None, self._after_failure(f"load failed: {e}"), time.perf_counter() - start)
        load_s = time.perf_counter() - start
        m = measure(self.server.control, self.model, self.request(config.max_batch_size > 0), self.spec)
        if m.samples == 0:
            return Outcome(None, self._after_failure(f"no request succeeded: {m.first_error}"), load_s)
        return Outcome(m, "", load_s)

    def _after_failure(self, reason: str) -> str:
        """A dead server is restarted so the next trial finds one; the reason says it died."""
        if self.server.alive():
            return reason
        self.server.restart()
        return f"tritonserver died ({reason}); restarted it"
