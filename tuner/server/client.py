"""Control calls to a running Triton over gRPC: readiness, load/unload with a config override,
metadata and statistics. Inference traffic goes through `tuner.measure.loadgen`, not through here."""
from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as Pending
from pathlib import Path
from typing import TypeVar

import grpc
import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException

from tuner.errors import ServerError


class LoadError(Exception):
    """Triton refused or failed to load a model config; the message is Triton's reason."""


class Stalled(ServerError):
    """A control call got no answer within its deadline: the server, or the model's backend, hangs."""


# Every call has a deadline, so a server that stops answering without dying (stopped, deadlocked,
# swapped out) is found rather than waited for. Quick calls answer within milliseconds; a load
# runs the model's initialisation, which may compile for minutes (callers pass their own).
CALL_S = 5.0
LOAD_S = 1800.0
PROBE_S = 5.0  # while a load runs, whether the server still answers is asked this often


# gRPC waits up to 1 s before reconnecting to a port that refused it; a server that is starting
# answers within ~0.1 s, so retry sooner.
_CHANNEL = [("grpc.max_send_message_length", grpcclient.MAX_GRPC_MESSAGE_SIZE),
            ("grpc.max_receive_message_length", grpcclient.MAX_GRPC_MESSAGE_SIZE),
            ("grpc.initial_reconnect_backoff_ms", 100), ("grpc.min_reconnect_backoff_ms", 100),
            ("grpc.max_reconnect_backoff_ms", 500)]


class TritonControl:
    def __init__(self, url: str):
        self.url = url
        self.client = grpcclient.InferenceServerClient(url, channel_args=_CHANNEL)

    def close(self) -> None:
        self.client.close()

    def wait_ready(self, timeout_s: float, alive: Callable[[], bool] = lambda: True,
                   log_path: Path | None = None) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if not alive():
                raise ServerError(f"tritonserver exited during start-up{_log_tail(log_path)}")
            try:
                if self.client.is_server_ready(client_timeout=CALL_S):
                    return
            except InferenceServerException:
                pass
            time.sleep(0.2)
        raise ServerError(f"tritonserver at {self.url} not ready after {timeout_s:.0f} s{_log_tail(log_path)}")

    def is_live(self) -> bool:
        try:
            return bool(self.client.is_server_live(client_timeout=CALL_S))
        except InferenceServerException:
            return False

    def is_ready(self) -> bool:
        try:
            return bool(self.client.is_server_ready(client_timeout=CALL_S))
        except InferenceServerException:
            return False

    def control_mode_problem(self) -> str | None:
        """None in explicit model-control mode, else Triton's refusal. Unloading a model name that
        cannot exist changes nothing, and only explicit mode allows it."""
        try:
            self.client.unload_model("__tuner_explicit_mode_probe__", client_timeout=CALL_S)
            return None
        except InferenceServerException as e:
            return e.message() or str(e)

    def version(self) -> str:
        return _answered(lambda: self.client.get_server_metadata(client_timeout=CALL_S)).version

    def load(self, model: str, config_json: str | None = None, timeout_s: float = LOAD_S) -> None:
        """Loads (or hot-reloads) `model`; with `config_json`, that config overrides the file."""
        try:
            self._probed(lambda: self.client.load_model(model, config=config_json, client_timeout=timeout_s),
                         f"the load of '{model}'")
        except InferenceServerException as e:
            raise LoadError(e.message() or str(e)) from None

    def unload(self, model: str, timeout_s: float = LOAD_S) -> None:
        try:
            self._probed(lambda: self.client.unload_model(model, client_timeout=timeout_s), f"the unload of '{model}'")
        except InferenceServerException:
            pass  # already gone: nothing to undo

    def _probed(self, call: Callable, what: str) -> None:
        """Runs a long call (a load may compile for minutes) while probing the server's liveness:
        a server that stops answering is found within seconds, not at the call's deadline."""
        pool = ThreadPoolExecutor(1)
        try:
            running = pool.submit(_answered, call, what)
            while True:
                try:
                    return running.result(timeout=PROBE_S)
                except Pending:
                    if not self.is_live():
                        raise Stalled(f"the server stopped answering during {what}") from None
        finally:
            pool.shutdown(wait=False)

    def is_model_ready(self, model: str) -> bool:
        try:
            return bool(self.client.is_model_ready(model, client_timeout=CALL_S))
        except InferenceServerException:
            return False

    def model_config_json(self, model: str) -> dict:
        return _answered(lambda: self.client.get_model_config(model, as_json=True, client_timeout=CALL_S))["config"]

    def model_metadata(self, model: str) -> dict:
        return _answered(lambda: self.client.get_model_metadata(model, as_json=True, client_timeout=CALL_S))

    def statistics(self, model: str) -> dict:
        """Cumulative counters of `model`; empty when the server cannot say (it died, or hangs)."""
        try:
            stats = self.client.get_inference_statistics(model, as_json=True, client_timeout=CALL_S)
        except InferenceServerException:
            return {}
        found = stats.get("model_stats", [])
        return found[0] if found else {}


T = TypeVar("T")


def bounded(call: Callable[[], T], seconds: float, what: str) -> T:
    """`call()`'s result, given up on after `seconds` (`Stalled`). gRPC's own deadline is not
    enough for a request larger than the socket's buffers: once the server stops reading (stopped,
    swapped out), the call outlives its deadline, so it runs in a thread that can be left behind
    (it ends when the server is killed and the connection with it)."""
    pool = ThreadPoolExecutor(1)
    try:
        return pool.submit(call).result(timeout=seconds)
    except Pending:
        raise Stalled(f"{what} got no answer within {seconds:g} s") from None
    finally:
        pool.shutdown(wait=False)


def _answered(call: Callable, what: str = "the server"):
    """`call`'s result; a call past its deadline raises `Stalled` (other refusals pass through)."""
    try:
        return call()
    except InferenceServerException as e:
        if e.status() == str(grpc.StatusCode.DEADLINE_EXCEEDED):
            raise Stalled(f"{what} got no answer within its deadline") from None
        raise


def _log_tail(log_path: Path | None, lines: int = 15) -> str:
    if log_path is None or not Path(log_path).exists():
        return ""
    tail = Path(log_path).read_text(errors="replace").splitlines()[-lines:]
    return f"; last lines of {log_path}:\n  " + "\n  ".join(tail)
