"""The docker launcher: Triton in a container (an NGC `tritonserver` image), through the docker SDK.

The working copy of the model repository is mounted at /models; Triton binds loopback-published
ports only; the container is removed when the server stops, and containers left by a tuner that
was killed outright (no chance to clean up) are removed the next time one starts.
"""
from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any

from tuner.errors import ServerError
from tuner.server.base import Server, pid_alive, tree_rss_mib
from tuner.server.client import TritonControl
from tuner.server.embedded import free_ports

DEFAULT_IMAGE = "nvcr.io/nvidia/tritonserver:24.10-py3"  # Triton 2.51.0, as the embedded server
_OWNER = "tuner.owner"  # label: "<host>:<pid>" of the tuner that started the container
_PORTS = {"grpc": 8001, "http": 8000, "metrics": 8002}


def _client():
    import docker

    try:
        client = docker.from_env()
        client.ping()
        return client
    except docker.errors.DockerException as e:
        raise ServerError(f"--launcher docker: no Docker engine answers ({e}); start one, or set DOCKER_HOST") from None


def _owner() -> str:
    return f"{os.uname().nodename}:{os.getpid()}"


def remove_orphans(client) -> list[str]:
    """Containers of tuners on this host that no longer run (killed with SIGKILL, power loss)."""
    host = os.uname().nodename
    removed = []
    for container in client.containers.list(all=True, filters={"label": _OWNER}):
        owner_host, _, pid = container.labels[_OWNER].rpartition(":")
        if owner_host == host and not pid_alive(int(pid)):
            container.remove(force=True)
            removed.append(container.name)
    return removed


class DockerServer(Server):
    """Starts `tritonserver` in a container of `image`, in explicit model-control mode.

    gpus: "all", a list of device ids, or None (CPU only). network "bridge" publishes the ports on
    `host` (127.0.0.1) only; "host" shares the host's network (engines without a bridge), and
    Triton itself then binds `host`. ipc_host shares the host's IPC namespace, which system
    shared-memory inputs need; otherwise the container gets its own /dev/shm of `shm_size`.
    """

    launcher = "docker"

    model_repository: Path

    def __init__(self, model_repository: Path, run_dir: Path, image: str = DEFAULT_IMAGE,
                 gpus: str | tuple[str, ...] | None = None, host: str = "127.0.0.1", network: str = "bridge",
                 shm_size: str = "1g", ipc_host: bool = False, ready_timeout_s: float = 180.0,
                 auto_complete: bool = True):
        self.model_repository = Path(model_repository)
        self.run_dir = Path(run_dir)
        self.image, self.gpus, self.host, self.network = image, gpus, host, network
        self.shm_size, self.ipc_host, self.ready_timeout_s = shm_size, ipc_host, ready_timeout_s
        self.auto_complete = auto_complete  # off where it can change no model's config (tuner.config.autocomplete)
        self.log_path = self.run_dir / "tritonserver.log"
        self.container: Any = None  # a docker Container while started
        self.grpc_port = 0

    @property
    def url(self) -> str:
        return f"{self.host}:{self.grpc_port}"

    def command(self, ports: dict[str, int]) -> list[str]:
        addresses = [f"--{name}-address={self.host}" for name in ports] if self.network == "host" else []
        return ["tritonserver", "--model-repository=/models", "--model-control-mode=explicit",
                *addresses, *(f"--{name}-port={port}" for name, port in ports.items()),
                "--exit-timeout-secs=10",
                # ready means "up, not shutting down", even while a trial's config has failed to load
                # (strict readiness would say "not ready" then, and a stop from outside would look alike)
                "--strict-readiness=false",
                "--backend-config=python,shm-default-byte-size=67108864",
                "--backend-config=python,shm-growth-byte-size=67108864",
                *([] if self.auto_complete else ["--disable-auto-complete-config"])]

    def _device_requests(self):
        import docker

        if not self.gpus:
            return None
        if self.gpus == "all":
            return [docker.types.DeviceRequest(count=-1, capabilities=[["gpu"]])]
        return [docker.types.DeviceRequest(device_ids=list(self.gpus), capabilities=[["gpu"]])]

    def start(self) -> DockerServer:
        import docker

        client = _client()
        remove_orphans(client)
        try:
            client.images.get(self.image)
        except docker.errors.ImageNotFound:
            try:
                client.images.pull(self.image)
            except docker.errors.DockerException as e:
                raise ServerError(f"--image {self.image}: not on this machine and not pulled ({e})") from None
        self.run_dir.mkdir(parents=True, exist_ok=True)
        if self.network == "host":  # Triton's own ports on the host: free ones, bound to `host`
            ports = dict(zip(_PORTS, free_ports(len(_PORTS)), strict=True))
            published = None
        else:
            ports = dict(_PORTS)
            outer = free_ports(len(ports))
            published = {f"{inner}/tcp": (self.host, port) for inner, port in zip(ports.values(), outer, strict=True)}
        started = time.perf_counter()
        try:
            self.container = client.containers.run(
                self.image, self.command(ports), detach=True, labels={_OWNER: _owner()},
                volumes={str(self.model_repository.resolve()): {"bind": "/models", "mode": "rw"}},
                network_mode=self.network, ports=published, device_requests=self._device_requests(),
                ipc_mode="host" if self.ipc_host else None, shm_size=None if self.ipc_host else self.shm_size)
        except docker.errors.DockerException as e:
            raise ServerError(f"--launcher docker: the container did not start ({e})") from None
        threading.Thread(target=self._copy_logs, args=(self.container,), daemon=True).start()
        self.grpc_port = ports["grpc"] if published is None else published["8001/tcp"][1]
        self._control = TritonControl(self.url)
        try:
            self.control.wait_ready(self.ready_timeout_s, alive=self.alive, log_path=self.log_path)
        except ServerError:
            self.stop()
            raise
        self.ready_s = time.perf_counter() - started
        return self

    def _copy_logs(self, container) -> None:
        """The container's output, as it comes, into the run directory (it outlives the container)."""
        with open(self.log_path, "ab") as log:
            for chunk in container.logs(stream=True, follow=True):
                log.write(chunk)
                log.flush()

    def alive(self) -> bool:
        import docker

        if self.container is None:
            return False
        try:
            self.container.reload()
        except docker.errors.NotFound:
            return False
        return self.container.status in ("created", "running")

    def memory_mib(self) -> float | None:
        """Resident memory of the container's processes, read from /proc when the engine runs on
        this machine (instant); else `docker stats`, which waits about a second for a sample."""
        if not self.alive():
            return None
        pid = self.container.attrs["State"]["Pid"]
        try:
            local = self.container.id in Path(f"/proc/{pid}/cgroup").read_text()
        except OSError:
            local = False
        if local:
            return tree_rss_mib(pid)
        usage = self.container.stats(stream=False).get("memory_stats", {}).get("usage")
        return usage / 2**20 if usage else None

    def stop(self, graceful: bool = True) -> None:
        import docker

        super().stop()
        if self.container is None:
            return
        try:
            self.container.stop(timeout=15 if graceful else 0)  # SIGTERM: Triton unloads models and exits
            self.container.remove(force=True)
        except docker.errors.NotFound:
            pass
        self.container = None
