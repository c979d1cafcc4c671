"""The embedded launcher's own server: ports taken before it binds them, and a start that fails
leaves nothing running."""
import socket

import pytest
from support import servers_of

from tuner.errors import ServerError
from tuner.server import EmbeddedServer, embedded


@pytest.mark.integration
def test_a_port_taken_before_the_server_binds_it_gets_new_ports(workdir, monkeypatch):
    (workdir / "repo").mkdir()
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        taken = blocker.getsockname()[1]
        real = embedded.free_ports
        given = iter([[taken, *real(2)]])
        # the race, made certain
        monkeypatch.setattr(embedded, "free_ports", lambda count: next(given, None) or real(count))
        with EmbeddedServer(workdir / "repo", workdir / "run") as server:
            assert server.control.is_ready() and server.grpc_port != taken


@pytest.mark.unit
def test_the_ports_of_one_server_are_distinct():
    for _ in range(500):
        ports = embedded.free_ports(3)
        assert len(set(ports)) == 3


@pytest.mark.integration
def test_a_server_that_does_not_become_ready_is_not_left_running(workdir):
    (workdir / "repo").mkdir()
    server = EmbeddedServer(workdir / "repo", workdir / "run", ready_timeout_s=0)
    with pytest.raises(ServerError, match="not ready"):
        server.start()
    assert not servers_of(workdir / "run")
