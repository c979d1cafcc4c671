"""The servers a run measures on: the launcher's server on a working copy of the model's folder,
a remote server's model read and restored, and servers like the study's for `export --verify`."""
from __future__ import annotations

import shutil
from pathlib import Path

from google.protobuf import json_format

from tuner.config import autocomplete, modelconfig, pipeline
from tuner.config.modelconfig import ModelConfig
from tuner.errors import ConfigError
from tuner.measure.inputs import Inputs, Memory
from tuner.run.checks import REMOTE_PIPELINE
from tuner.run.model import Model
from tuner.run.options import Launcher, Options
from tuner.server import DEFAULT_IMAGE, DockerServer, EmbeddedServer, RemoteServer
from tuner.server.base import Server


def make_server(options: Options, model: Model, run_dir: Path, gpus: str | tuple[str, ...] | None = None) -> Server:
    """The launcher's server, on a working copy of the model's folder: trials write there, never
    to the user's repository."""
    t = options.target
    if t.launcher is Launcher.REMOTE:
        return RemoteServer(t.url or "", reconnect_s=options.outage_s)
    assert model.repository is not None and model.base is not None
    work = run_dir / "repository"
    for name in (model.name, *model.others):  # trials write the others' configs too
        shutil.rmtree(work / name, ignore_errors=True)
        shutil.copytree(model.repository / name, work / name)
    gpus = gpus if gpus is not None else t.gpus
    completes = any(autocomplete.can_change(model.repository / name, config)
                    for name, config in {model.name: model.base, **model.others}.items())
    if t.launcher is Launcher.DOCKER:
        return DockerServer(work, run_dir, image=t.image, gpus=gpus, host=t.host, network=t.docker_network,
                            shm_size=t.shm_size, ipc_host=options.inputs.shared_memory is not Memory.NONE,
                            auto_complete=completes)
    return EmbeddedServer(work, run_dir, host=t.host, gpus=gpus, auto_complete=completes)


def remote_base(server: Server, name: str) -> ModelConfig:
    """A remote model's config as the server has it (the only copy the tuner can read)."""
    if not server.control.is_model_ready(name):
        server.control.load(name)
    config = json_format.ParseDict(server.control.model_config_json(name), ModelConfig(),
                                   ignore_unknown_fields=True)
    modelconfig.check_tunable(config, f"{server.url}/{name}")
    if pipeline.is_ensemble(config):
        raise ConfigError(f"{server.url}/{name}: an ensemble; {REMOTE_PIPELINE}")
    return config


def restore_remote(server: Server, name: str) -> None:
    """Leaves a remote server as it was found: the model reloaded from the server's own repository,
    not from a copy of its config that went through JSON. Unloaded first: Triton keeps the last
    override when the repository has not changed (the model is unavailable for that moment)."""
    server.control.unload(name)
    server.control.load(name)


def verify_server(context: dict):
    """A factory of servers like the study's, for `export --verify`: the same launcher, image and GPUs."""
    gpus = context.get("gpus")
    gpus = tuple(gpus) if isinstance(gpus, list) else gpus
    if context.get("launcher") == Launcher.DOCKER.value:
        shm = Inputs.from_json(context.get("inputs")).shared_memory is not Memory.NONE
        return lambda repo, run: DockerServer(repo, run, image=context.get("image") or DEFAULT_IMAGE, gpus=gpus,
                                              ipc_host=shm)
    return lambda repo, run: EmbeddedServer(repo, run, gpus=gpus)
