"""What every launcher shares: a restart is a stop and a start, and `with` stops the server."""
from __future__ import annotations


class Server:
    """Launchers define start() (returning self), stop(), alive(), `url`, `launcher` and `control`."""

    def restart(self) -> None:
        self.stop()
        self.start()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
