"""What every launcher shares: closing the control channel on stop, a restart as a stop and a
start, `with` stopping the server, and the resident memory of a server's processes."""
from __future__ import annotations

import os
from abc import ABC, abstractmethod
from pathlib import Path

from tuner.errors import ServerError
from tuner.server.client import TritonControl

# every shared-memory region of a tuner, its own or its server's: tuner_<tuner pid>_..., so the next
# start can remove what a tuner killed outright left (tuner.server.embedded.remove_leftovers)
SHM_PREFIX = "tuner_"


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        pass
    return True


def tree_rss_mib(pid: int) -> float:
    """Resident memory of process `pid` and its descendants (tritonserver and its backend stubs)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:  # it has just exited
        return 0.0
    rss_kib = next((int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:")), 0)
    return rss_kib / 1024 + sum(tree_rss_mib(int(child)) for child in children)


class Server(ABC):
    """What the tuner needs of a Triton server, whoever launches it: start and stop it (a restart
    is both), say whether it is alive and ready, its gRPC `url`, its control channel, its memory.
    Launchers extend stop() to end what they started."""

    launcher: str  # "embedded", "docker" or "remote"
    model_repository: Path | None = None  # where trial configs are written; None: overrides only
    gpus: str | tuple[str, ...] | None = None  # the GPUs it was given ("all", ids), None: all it finds
    ready_s = 0.0  # start-to-ready time of the last start
    _control: TritonControl | None = None

    @property
    @abstractmethod
    def url(self) -> str: ...

    @abstractmethod
    def start(self) -> Server: ...

    @abstractmethod
    def alive(self) -> bool: ...

    @abstractmethod
    def memory_mib(self) -> float | None: ...

    @property
    def control(self) -> TritonControl:
        if self._control is None:
            raise ServerError("the server is not started")
        return self._control

    def stop(self, graceful: bool = True) -> None:
        """Stops it; not `graceful`: at once (it hangs, so it would not shut down)."""
        if self._control is not None:
            self._control.close()
            self._control = None

    def healthy(self) -> bool:
        """Running and ready: a server stopped gracefully from outside (SIGTERM, SIGINT) stays alive
        while it shuts down, but is no longer ready."""
        return self.alive() and self._control is not None and self._control.is_ready()

    def restart(self, graceful: bool = True) -> None:
        self.stop(graceful)
        self.start()

    def __enter__(self) -> Server:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
