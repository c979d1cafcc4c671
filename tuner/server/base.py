"""What every launcher shares: closing the control channel on stop, a restart as a stop and a
start, `with` stopping the server, and the resident memory of a server's processes."""
from __future__ import annotations

from pathlib import Path


def tree_rss_mib(pid: int) -> float:
    """Resident memory of process `pid` and its descendants (tritonserver and its backend stubs)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:  # it has just exited
        return 0.0
    rss_kib = next((int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:")), 0)
    return rss_kib / 1024 + sum(tree_rss_mib(int(child)) for child in children)


class Server:
    """Launchers define start() (returning self), alive(), `url` and `launcher`, and extend stop()."""

    control = None  # a TritonControl while started

    def stop(self) -> None:
        if self.control is not None:
            self.control.close()
            self.control = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
