"""One config, end to end: write it, hot-reload it into the server, measure it.

Every way this can go wrong (Triton refuses the config, the model fails to initialize, requests
fail, the server dies, stops or hangs) comes back as an `Outcome` with the failure and its reason,
never as an exception, so the study records it and goes on; a server that went down or hangs is
restarted first (tuner.faults says whose fault that was).

Deadlines come from what was measured, unless the user set them: a request's is
`_DEADLINE_P99S` times the first measured config's P99 (`_DEADLINE_FLOOR_S` at the least), a
load's `_LOAD_DEADLINE_X` times the slowest load so far (`_LOAD_DEADLINE_FLOOR_S` at the least).
"""
from __future__ import annotations

import dataclasses
import os
import time
from dataclasses import dataclass
from pathlib import Path

import grpc
from tritonclient.utils import InferenceServerException

from tuner.config.modelconfig import ModelConfig, fingerprint, render_pbtxt, to_json
from tuner.config.pipeline import Members
from tuner.errors import ServerError, TunerError
from tuner.faults import EnvironmentBroken, Failure, blamed, measured_again
from tuner.measure.agreement import Outputs, infer_outputs, relative_error
from tuner.measure.capacity import Capacity, CapacitySpec, find_capacity, holds_slo
from tuner.measure.inputs import (
    Inputs,
    Memory,
    SharedInputs,
    infer_requests,
    load_input_data,
    synthetic_set,
    tensor_specs,
)
from tuner.measure.load import PRECISION, Interval, LoadSpec, Race
from tuner.measure.loadgen import measure, measure_mix
from tuner.measure.measurement import Measurement
from tuner.server.client import LOAD_S, LoadError, Stalled

_TOLERATED_ERRORS = 0.01  # more failed requests than this and the config is not a candidate
_DEADLINE_P99S, _DEADLINE_FLOOR_S = 20, 10.0
_LOAD_DEADLINE_X, _LOAD_DEADLINE_FLOOR_S = 10, 120.0


@dataclass(frozen=True)
class Outcome:
    measurement: Measurement | None
    failure: Failure | None = None
    reason: str = ""  # why it failed, in Triton's words; empty when it succeeded
    load_s: float = 0.0
    attempts: int = 1  # measurements it took: the server went down under the earlier ones
    memory_mib: float | None = None  # the server's memory with this config loaded and under load
    output_error: float | None = None  # outputs on fixed inputs vs the base config's (relative)
    capacity: Capacity | None = None  # with a capacity goal: every rate measured (`measurement` is at capacity)

    @property
    def stopped_early(self) -> bool:
        """A raced proposal whose race was decided: the config was clearly behind the front (a
        capacity search's steps are decided too, each on its SLO, which says nothing of the front)."""
        return self.measurement is not None and self.measurement.decided and self.capacity is None


@dataclass
class _Feed:
    """What a model served by the measurement is sent: requests built once from its metadata (inputs
    do not change between configs), the tensor sets behind them, and their shared memory."""
    requests: list[bytes]
    sets: list[dict]
    shm: SharedInputs | None


class Evaluator:
    """Loads configs of one model (a pipeline's, or several models' of a shared server: the load
    spec's mix) into one server and measures them: at the load `spec` says, or, with `capacity`,
    its capacity under the SLO. Close it (or use `with`) to release the shared-memory regions it
    registered."""

    def __init__(self, server, model: str, spec: LoadSpec, inputs: Inputs = Inputs(),
                 slo_p95_ms: float | None = None, capacity: CapacitySpec | None = None,
                 model_slos: dict[str, float] | None = None):
        self.server = server
        self.model = model
        self.spec = spec
        self.inputs = inputs
        self.slo_p95_ms = capacity.slo_p95_ms if capacity else slo_p95_ms  # goodput is counted against it
        self.capacity = capacity
        # the models requests go to: the mix's, or the one named (a pipeline's entry)
        self.served = tuple(name for name, _ in spec.mix) or (model,)
        # a mix's SLOs, each model's own (or the one for all): its goodput is counted against it
        self.model_slos = model_slos or ({} if self.slo_p95_ms is None else dict.fromkeys(self.served, self.slo_p95_ms))
        self._feeds: dict[str, _Feed] = {}
        self._references: dict[str, Outputs] = {}  # each served model's outputs under the user's own config
        # a pipeline member -> the fingerprint of the config this server last loaded it with: an
        # unchanged member is not loaded again (Triton would reload it, and the ensemble with it)
        self._loaded: dict[str, str] = {}
        self._slowest_load_s = 0.0
        self._user_deadline, self._deadline_measured = spec.request_timeout_s is not None, False

    @property
    def work_config_path(self) -> Path | None:
        return self._config_path(self.model)

    def _config_path(self, model: str) -> Path | None:
        repo = self.server.model_repository
        return Path(repo) / model / "config.pbtxt" if repo else None

    def _feed(self, model: str, batching: bool) -> _Feed:
        if model not in self._feeds:
            metadata = self.server.control.model_metadata(model)
            specs = tensor_specs(metadata["inputs"], 1, self.inputs.shapes, batching)
            sets = (load_input_data(self.inputs.data_file, specs, batching) if self.inputs.data_file
                    else [synthetic_set(specs)])
            shm = None
            if self.inputs.shared_memory is not Memory.NONE:
                outputs = tensor_specs(metadata["outputs"], 1, self.inputs.shapes, batching, strict=False)
                # CUDA buffers on the server's first GPU (its device 0), numbered as this process sees it
                gpus = self.server.gpus
                device = int(gpus[0]) if isinstance(gpus, tuple) and gpus else 0
                shm = SharedInputs(self.server.control, sets, outputs, f"{os.getpid()}_{model}_{id(self):x}",
                                   self.inputs.shared_memory, device)
            self._feeds[model] = _Feed(infer_requests(model, sets, shm), sets, shm)
        return self._feeds[model]

    def requests(self, batching: bool) -> list[bytes]:
        """The requests of the model named (built once)."""
        return self._feed(self.model, batching).requests

    def _requests(self, configs: dict[str, ModelConfig]) -> dict[str, list[bytes]]:
        return {name: self._feed(name, configs[name].max_batch_size > 0).requests for name in self.served}

    def close(self) -> None:
        for feed in self._feeds.values():
            if feed.shm is not None:
                feed.shm.close()
        self._feeds = {}

    def __enter__(self) -> Evaluator:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def evaluate(self, config: ModelConfig, race: Race | None = None, cold: bool = False,
                 first_rate: float | None = None, others: Members | None = None) -> Outcome:
        """Loads `config` (its `others` first: a pipeline's members, or the models served beside it)
        and measures it; when the server goes down under it, the server is restarted and the config
        measured again, and a config it goes down under on attempts in a row is the cause
        (`Failure.CRASH`); likewise requests that break midway, or hang (tuner.faults). A capacity
        search starts at `first_rate` (default: 0.9 of what the load `spec` gets through)."""
        faults: list[Failure] = []
        while True:
            # measured again: loaded fresh (unloaded first), so no instance of the broken one remains
            once = self._evaluate_once(config, race, cold or bool(faults), first_rate, others or {})
            outcome = dataclasses.replace(once, attempts=len(faults) + 1)
            if outcome.failure is None or not measured_again(outcome.failure):
                return outcome
            faults.append(outcome.failure)
            if (config_failure := blamed(faults)) is not None:
                return dataclasses.replace(outcome, failure=config_failure)

    def _evaluate_once(self, config: ModelConfig, race: Race | None, cold: bool, first_rate: float | None,
                       others: Members) -> Outcome:
        """Loads `config` and measures it once; with `race`, until its question is settled. `cold` loads
        it as a deployment would: unloaded first, then read from its written config.pbtxt, because
        Triton applies a change of instance count alone in place, initialising the new instances
        with the previous config."""
        start = time.perf_counter()
        for name, each in {**others, self.model: config}.items():  # the others first: the entry calls its members
            key = fingerprint(each)
            if name != self.model and not cold and self._loaded.get(name) == key:
                continue
            self._loaded.pop(name, None)
            began = time.perf_counter()
            try:
                self._load(name, each, cold)
            except LoadError as e:
                which = f"load of '{name}' failed" if others else "load failed"
                return self._failed(Failure.COLD_LOAD if cold else Failure.LOAD, f"{which}: {e}",
                                    time.perf_counter() - start)
            except Stalled as e:
                return self._hung(str(e), time.perf_counter() - start)
            self._loaded[name] = key
            self._slowest_load_s = max(self._slowest_load_s, time.perf_counter() - began)
        load_s = time.perf_counter() - start
        try:
            requests = self._requests({**others, self.model: config})
            error = self._output_error()
            found = None
            if len(self.served) > 1:
                m = measure_mix(self.server.control, requests, self.spec, race=race, model_slos=self.model_slos)
            elif self.capacity is None:
                m = measure(self.server.control, self.model, requests[self.model], self.spec, race=race,
                            slo_p95_ms=self.slo_p95_ms, steps=tuple(others))
            else:
                found = self._capacity(requests[self.model], self.capacity, race, first_rate, tuple(others))
                m = found.at
            _check_answered(m)
        except Stalled as e:
            return self._hung(f"{e} after load", load_s)
        except InferenceServerException as e:  # the server went away between our calls
            return self._failed(Failure.REQUESTS, f"server error: {e.message() or e}", load_s)
        except grpc.RpcError as e:  # the fixed-input inference failed: so would the measurement
            if e.code() is grpc.StatusCode.DEADLINE_EXCEEDED:
                return self._hung(f"an inference got no answer within {self.spec.timeout_s:g} s after load", load_s)
            return self._failed(Failure.REQUESTS, f"inference failed: {e.details()}", load_s)
        # a capacity step over the limit may fail requests: that is its answer, not a failure, unless
        # even the lowest rate's did (or the server went down)
        problem = self._problem(m) if found is None or found.rate == 0 else self._problem(m, errors_allowed=True)
        if problem:
            # requests that served first and then failed: something broke midway (a backend process
            # killed, say), which a config that cannot serve does not show
            served = all(each.samples for each in (m.models or {"": m}).values())
            return self._failed(Failure.BROKE_MIDWAY if served else Failure.REQUESTS, problem, load_s)
        self._derive_deadline(m.p99_ms, measured=True)
        return Outcome(m, None, "", load_s, memory_mib=self.server.memory_mib(), output_error=error, capacity=found)

    def _load(self, model: str, config: ModelConfig, cold: bool) -> None:
        path = self._config_path(model)
        if path is not None:  # the working copy shows the config being measured, and survives restarts
            path.write_text(render_pbtxt(config))
        control, slowest = self.server.control, self._slowest_load_s
        deadline = max(_LOAD_DEADLINE_FLOOR_S, _LOAD_DEADLINE_X * slowest) if slowest else LOAD_S
        if cold and path is not None:
            control.unload(model, deadline)
            control.load(model, timeout_s=deadline)
        else:
            control.load(model, to_json(config), deadline)

    def _capacity(self, requests: list[bytes], spec: CapacitySpec, race: Race | None,
                  first_rate: float | None, steps: tuple[str, ...]) -> Capacity:
        """The loaded config's capacity under the SLO, each step raced to whether it meets the SLO."""
        def measure_at(rate: float) -> Measurement:
            def decided(throughput: Interval, p95: Interval, sent: float | None) -> bool:
                return holds_slo(throughput, p95, sent, spec) is not None

            step_race = Race(decided, race.precision if race else PRECISION, spec.min_samples, spec.min_step_s)
            at = dataclasses.replace(self.spec, request_rate=rate)
            return _check_answered(measure(self.server.control, self.model, requests, at, race=step_race,
                                           slo_p95_ms=spec.slo_p95_ms, steps=steps))

        if first_rate is None:  # what the closed loop gets through is about the most it can take
            closed = dataclasses.replace(self.spec, request_rate=None)
            probe = measure(self.server.control, self.model, requests, closed, race=Race(lambda *_: False))
            first_rate = 0.9 * probe.throughput if probe.samples else 1.0
        return find_capacity(measure_at, spec, first_rate)

    def take_reference(self, config: ModelConfig, others: Members | None = None) -> None:
        """Loads `config` (the user's own; its `others` first) and keeps its outputs on the
        fixed inputs, which every config's are compared with from then on. Called before the first
        trial, because a model whose own config does not load or serve has nothing to tune from and
        should spend no trial."""
        try:
            configs = {**(others or {}), self.model: config}
            for name, each in configs.items():
                self.server.control.load(name, to_json(each))
                self._loaded[name] = fingerprint(each)
            self._requests(configs)
            began = time.perf_counter()
            for name in self.served:
                self._references[name] = infer_outputs(self.server.url, name, self._feeds[name].sets)
            self._derive_deadline((time.perf_counter() - began) * 1e3)
        except LoadError as e:
            raise TunerError(f"the model's own config does not load, so there is nothing to tune from: {e}") from None
        except (grpc.RpcError, InferenceServerException) as e:
            raise TunerError(f"the model's own config does not serve, so there is nothing to tune from: {e}") from None

    def _output_error(self) -> float | None:
        """The loaded configs' outputs on the fixed inputs against the reference's, when one was
        taken (for several models, the one that differs most)."""
        errors = [relative_error(reference, infer_outputs(self.server.url, name, self._feeds[name].sets,
                                                          self.spec.timeout_s))
                  for name, reference in self._references.items()]
        return max(errors) if errors else None

    def _problem(self, m: Measurement, errors_allowed: bool = False) -> str | None:
        """Why a measurement cannot stand for the config (None when it can); several models' are
        judged each on its own, so a small share of the load cannot hide a model that fails."""
        for name, each in (m.models or {"": m}).items():
            to = f" to '{name}'" if name else ""
            if each.overloaded and not errors_allowed:
                return (f"overloaded{to}: it served {each.throughput:.1f} of the {each.offered or 0:.1f} requests/s "
                        f"offered, and its backlog passed the load generator's bound")
            if each.samples == 0:
                return f"no request{to} succeeded: {each.first_error}"
            too_many = not errors_allowed and each.errors > _TOLERATED_ERRORS * (each.samples + each.errors)
            if too_many or not self.server.healthy():
                return f"{each.errors} of {each.samples + each.errors} requests{to} failed: {each.first_error}"
        return None

    def _derive_deadline(self, latency_ms: float, measured: bool = False) -> None:
        """A request's deadline, unless the user set one: from the reference outputs' inferences
        until a config is measured, then from the first measured P99."""
        if self._user_deadline or self._deadline_measured:
            return
        self._deadline_measured = measured
        self.spec = dataclasses.replace(self.spec, request_timeout_s=max(_DEADLINE_FLOOR_S,
                                                                         _DEADLINE_P99S * latency_ms / 1e3))

    def _hung(self, reason: str, load_s: float) -> Outcome:
        """Requests or a load got no answer at all: whether the server still answers its liveness
        probe says whose (the server's, or the model's), but either way what hangs holds the server,
        so it is killed and started afresh, and the config measured again."""
        who = "the model" if self.server.healthy() else "the server"
        self._restart(f"{who} stopped answering: {reason}", graceful=False)
        return Outcome(None, Failure.HUNG, f"{who} stopped answering: {reason}; restarted the server", load_s)

    def _restart(self, reason: str, graceful: bool = True) -> None:
        self.close()  # a new server knows nothing of our shared-memory registrations, nor of what was loaded
        self._loaded.clear()
        try:
            self.server.restart(graceful)
        except ServerError as e:
            raise EnvironmentBroken(f"the server went down ({reason}) and could not be brought back: {e}") from None

    def _failed(self, failure: Failure, reason: str, load_s: float) -> Outcome:
        """The config's failure, unless the server went down under it (died, or stopped from
        outside and shutting down): then it is restarted, so the next measurement finds one."""
        if self.server.healthy():
            return Outcome(None, failure, reason, load_s)
        self._restart(reason)
        return Outcome(None, Failure.SERVER_DOWN, f"the server went down ({reason}); restarted it", load_s)


def _check_answered(m: Measurement) -> Measurement:
    if m.stalled_s is not None:
        raise Stalled(f"requests got no answer for {m.stalled_s:.1f} s")
    return m
