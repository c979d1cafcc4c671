"""The model to tune: found in its repository and checked, with its pipeline's members or the
models sharing its server; the demo's backends built on first use."""
from __future__ import annotations

import dataclasses
import sys
from dataclasses import dataclass
from pathlib import Path

from tuner import backends
from tuner.config import modelconfig, pipeline
from tuner.config.modelconfig import ModelConfig
from tuner.config.shipped import DEMO_MODEL, DEMO_REPOSITORY
from tuner.errors import ConfigError
from tuner.run.options import Launcher, Target


@dataclass(frozen=True)
class Model:
    """The model to tune: its name, its config (None for a remote server until connected) and the
    repository it is read from (None for a remote server). Its `members` are a pipeline's models
    (an ensemble's steps, or the models a BLS model calls), which it calls; its `co_served` models
    share its server, each with its own part of the load, and it calls none of them. A trial
    configures both alike: they are its `others`."""
    name: str
    base: ModelConfig | None
    repository: Path | None
    members: pipeline.Members = dataclasses.field(default_factory=dict)
    co_served: pipeline.Members = dataclasses.field(default_factory=dict)

    @property
    def others(self) -> pipeline.Members:
        """The other models each trial writes a config for and loads, before this one."""
        return {**self.members, **self.co_served}

    @property
    def study_name(self) -> str:
        return "+".join((self.name, *self.co_served)) if self.co_served else self.name


def find_model(target: Target) -> Model:
    """The model and its config, checked; for a remote server only its name until connected."""
    if target.launcher is Launcher.REMOTE:
        return Model(target.model or "", None, None)
    repository = target.model_repository or DEMO_REPOSITORY
    if not repository.is_dir():
        raise ConfigError(f"--model-repository {repository}: not a directory")
    name = _pick_model(repository, target.model)
    config = _read_model(repository, name)
    members, co_served = {}, {}
    if target.shared:
        co_served = {other: _read_model(repository, _pick_model(repository, other)) for other in target.shared}
        for each, each_config in {name: config, **co_served}.items():
            if pipeline.is_ensemble(each_config):
                raise ConfigError(f"{repository / each / 'config.pbtxt'}: '{each}' is an ensemble; tuning an ensemble "
                                  "beside other models is not supported: tune it on its own")
            modelconfig.check_tunable(each_config, str(repository / each / "config.pbtxt"))
    elif pipeline.is_ensemble(config) or target.calls:
        members = pipeline.read_members(repository, config, target.calls)
    if target.launcher is Launcher.EMBEDDED:
        if repository == DEMO_REPOSITORY:
            failed = _build_for_demo({name: config, **members, **co_served}.values())
            if failed and target.model is None:
                twin = f"{config.name}_python"
                print(f"cannot build it ({failed}); tuning the demo's python-backend twin '{twin}' instead",
                      file=sys.stderr)
                return Model(twin, modelconfig.read_config(repository / twin / "config.pbtxt"), repository)
            if failed:
                raise failed
        for each, each_config in {name: config, **members, **co_served}.items():
            why = backends.missing_backend(modelconfig.backend_of(each_config))
            if why:
                raise ConfigError(f"{repository / each / 'config.pbtxt'}: {why}")
    return Model(name, config, repository, members, co_served)


def _read_model(repository: Path, name: str) -> ModelConfig:
    config = modelconfig.read_config(repository / name / "config.pbtxt")
    if config.name != name:
        raise ConfigError(f"{repository / name / 'config.pbtxt'}: name is '{config.name}' but the folder is '{name}'")
    return config


def _pick_model(repository: Path, model: str | None) -> str:
    found = sorted(p.parent.name for p in repository.glob("*/config.pbtxt"))
    if model:
        if model not in found:
            raise ConfigError(f"--model {model}: no {repository / model / 'config.pbtxt'}; the repository has "
                              f"{', '.join(found) or 'no model with a config.pbtxt'}")
        return model
    if repository == DEMO_REPOSITORY:
        return DEMO_MODEL
    if len(found) != 1:
        raise ConfigError(f"{repository}: {'no model' if not found else 'several models (' + ', '.join(found) + ')'}"
                          " with a config.pbtxt; name one with --model")
    return found[0]


def _build_for_demo(configs) -> backends.BuildError | None:
    """The demo on first use: the backends its models need, built (a few seconds each, once)."""
    # only the backends these models use are looked up: finding another's library imports its wheel (torch: seconds)
    needed = sorted(b for b in {modelconfig.backend_of(c) for c in configs} & set(backends.RECIPES)
                    if backends.built_folder(b) is None)
    for backend in needed:
        print(f"building Triton's {backend} backend for the demo (first use, once; see `tuner backends list`)",
              file=sys.stderr, flush=True)
        try:
            backends.build(backend, say=lambda _: None)
        except backends.BuildError as e:
            return e
    return None
