"""The docker launcher against a real Docker engine and a real Triton inside a container.

No image registry is reachable here, so the image is a local stand-in laid out like NGC's
tritonserver image (tests/docker/build_standin_image.sh: a debootstrap Debian root filesystem
plus the embedded Triton). The engine runs without a bridge network (`dockerd --iptables=false
--bridge=none`), so containers use the host's network and Triton binds 127.0.0.1 itself.
"""
import os
import subprocess
import sys
from pathlib import Path

import pytest
from support import SPACES, load_study, search

from tuner.server.docker import _OWNER, DockerServer

# building the stand-in image (the first test) takes minutes
pytestmark = [pytest.mark.system, pytest.mark.timeout(1500)]

IMAGE = "tuner-test/tritonserver:standin"
BUILD = Path(__file__).resolve().parent / "docker" / "build_standin_image.sh"


@pytest.fixture(scope="module")
def docker_client():
    docker = pytest.importorskip("docker")
    try:
        client = docker.from_env()
        client.ping()
    except docker.errors.DockerException as e:
        pytest.skip(f"no Docker engine answers ({e}); .ci/run starts one with "
                    "'dockerd --iptables=false --bridge=none'")
    try:
        client.images.get(IMAGE)
    except docker.errors.ImageNotFound:
        if os.geteuid() != 0 or subprocess.run(["which", "debootstrap"], capture_output=True).returncode:
            pytest.skip(f"no image {IMAGE}, and building it needs root and debootstrap")
        built = subprocess.run(["bash", str(BUILD), IMAGE, sys.executable], capture_output=True, text=True,
                               timeout=1200)
        if built.returncode:
            pytest.skip(f"could not build {IMAGE} (no Debian mirror?): {built.stderr[-500:]}")
    try:  # an engine that starts but cannot run containers here (no overlay, no namespaces)
        client.containers.run(IMAGE, ["true"], network_mode="host", remove=True)
    except docker.errors.DockerException as e:
        pytest.skip(f"the Docker engine cannot run containers on this machine: {e}")
    return client


def _ours(client) -> list:
    return client.containers.list(all=True, filters={"label": _OWNER})


def test_search_in_a_container_and_the_container_is_removed(workdir, docker_client):
    done = search(workdir, "--launcher", "docker", "--image", IMAGE, "--docker-network", "host",
                  "--search-space", str(SPACES / "tiny.yaml"), "--trials", "3")
    assert done.returncode == 0, done.stderr
    assert "(docker, ready in" in done.stderr
    study = load_study(workdir)
    assert study.user_attrs["context"]["launcher"] == "docker"
    assert study.user_attrs["context"]["image"] == IMAGE
    assert sum(t.values is not None for t in study.get_trials()) == 3
    log = (workdir / "runs" / "tiny" / "tritonserver.log").read_text()
    assert "Started GRPCInferenceService at 127.0.0.1:" in log  # loopback only
    assert "successfully loaded" in log
    assert not _ours(docker_client), "container left behind"


def test_containers_of_a_dead_tuner_are_removed_and_logs_kept(workdir, docker_client):
    dead = subprocess.Popen(["true"])
    dead.wait()  # a pid that no longer runs: its tuner was killed without cleaning up
    orphan = docker_client.containers.create(IMAGE, ["sleep", "600"], network_mode="host",
                                             labels={_OWNER: f"{os.uname().nodename}:{dead.pid}"})
    repo = workdir / "repo"
    (repo / "tiny").mkdir(parents=True)
    with DockerServer(repo, workdir / "run", image=IMAGE, network="host") as server:
        assert server.alive() and server.control.is_live()
        assert [c.id for c in _ours(docker_client)] == [server.container.id]
        assert 0 < server.ready_s < 120
        container = server.container
    assert orphan.id not in [c.id for c in docker_client.containers.list(all=True)]
    assert container.id not in [c.id for c in docker_client.containers.list(all=True)]
    assert "Started GRPCInferenceService" in (workdir / "run" / "tritonserver.log").read_text()
