"""The remote launcher: a Triton server the user already runs, in explicit model-control mode."""
from __future__ import annotations

import socket
import time

from tuner.errors import ServerError
from tuner.faults import OUTAGE_S
from tuner.server.base import Server
from tuner.server.client import TritonControl


class RemoteServer(Server):
    """Connects to `host:port` (gRPC). Nothing is started or stopped (a restart only reconnects:
    someone else's server cannot be restarted); only the tuned model is loaded, so other models on
    the server are left alone. A server gone from the network is reconnected to with backoff for
    up to `reconnect_s`; the first connection is not retried, so a wrong --url is said at once."""

    launcher = "remote"
    model_repository = None  # the server reads its own repository; configs travel as overrides

    def __init__(self, url: str, ready_timeout_s: float = 30.0, reconnect_s: float = OUTAGE_S):
        self._url = url
        self.ready_timeout_s = ready_timeout_s
        self.reconnect_s = reconnect_s

    @property
    def url(self) -> str:
        return self._url

    def start(self) -> RemoteServer:
        host, _, port = self.url.rpartition(":")
        try:  # said in the first second, rather than "not ready" after the whole timeout
            socket.create_connection((host.strip("[]"), int(port)), timeout=5).close()
        except ValueError:
            raise ServerError(f"--url {self.url}: expected HOST:PORT") from None
        except OSError as e:
            raise ServerError(f"--url {self.url}: cannot connect ({e.strerror or e}); is tritonserver running "
                              "there, with its gRPC port?") from None
        self._control = TritonControl(self.url)
        self.control.wait_ready(self.ready_timeout_s)
        refused = self.control.control_mode_problem()
        if refused:
            self.stop()
            raise ServerError(f"{self.url} is not in explicit model-control mode (Triton: {refused}); the tuner "
                              "hot-reloads one model with config overrides and leaves the others alone, which "
                              "needs tritonserver --model-control-mode=explicit")
        return self

    def restart(self, graceful: bool = True) -> None:
        self.stop()
        deadline, pause = time.monotonic() + self.reconnect_s, 1.0
        while True:
            try:
                self.start()
                return
            except ServerError as e:
                if time.monotonic() + pause > deadline:
                    raise ServerError(f"{self.url} has been out of reach for {self.reconnect_s:g} s: {e}") from None
            time.sleep(pause)
            pause = min(2 * pause, 10.0)

    def healthy(self) -> bool:
        """Live: a remote server may run with strict readiness, where a model that failed to load
        makes the whole server "not ready"; its shutdown is seen once it stops answering."""
        return self.alive()

    def alive(self) -> bool:
        return self._control is not None and self._control.is_live()

    def memory_mib(self) -> None:
        """Unknown: the server's memory is not the tuned model's alone."""
        return None
