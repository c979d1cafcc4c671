"""Pipelines: the model requests go to (the entry) and the models it calls, tuned together.

An ensemble's members are its steps, read from its `ensemble_scheduling`; a BLS model's are the
models its `model.py` calls, which only the user can name (`--with`). Each member has its own
config and its own knobs (a `models:` section of the search space). A trial writes and loads every
member's config first, then the entry's, and measures end to end through the entry.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

from tritonclient.grpc.model_config_pb2 import ModelConfig

from tuner.config import modelconfig
from tuner.config.parameters import backend_of
from tuner.errors import ConfigError

Members = dict[str, ModelConfig]  # name -> config, in load order


def is_ensemble(config: ModelConfig) -> bool:
    return backend_of(config) == "ensemble" or config.HasField("ensemble_scheduling")


def ensemble_steps(config: ModelConfig) -> list[str]:
    """An ensemble's step models, each once, in the order its steps name them."""
    return list(dict.fromkeys(step.model_name for step in config.ensemble_scheduling.step))


def read_members(repository: Path, entry: ModelConfig, named: tuple[str, ...] = ()) -> Members:
    """The members' configs from the repository: an ensemble's steps, or the models `--with` names
    for a BLS model. Each is checked as a model to tune; nested ensembles are refused."""
    source = repository / entry.name / "config.pbtxt"
    if is_ensemble(entry) and named:
        raise ConfigError(f"--with {','.join(named)}: '{entry.name}' is an ensemble; its members are its steps "
                          f"({', '.join(ensemble_steps(entry))})")
    names = ensemble_steps(entry) if is_ensemble(entry) else list(named)
    if is_ensemble(entry) and not names:
        raise ConfigError(f"{source}: the ensemble has no steps")
    members: Members = {}
    for name in names:
        path = repository / name / "config.pbtxt"
        if name == entry.name:
            raise ConfigError(f"--with {name}: that is the model being tuned")
        if not path.is_file():
            raise ConfigError(f"{source}: member '{name}' has no {path}")
        config = modelconfig.read_config(path)
        if is_ensemble(config):
            raise ConfigError(f"{path}: '{name}' is an ensemble inside the ensemble '{entry.name}'; nested ensembles "
                              "are not supported: tune the inner ensemble on its own")
        modelconfig.check_tunable(config, str(path))
        members[name] = config
    return members


def apply(members: Members, knobs: dict) -> Members:
    """Each member's config with its knobs (`knobs["models"][name]`) set."""
    chosen = knobs.get("models", {})
    return {name: modelconfig.apply_knobs(config, chosen.get(name, {})) for name, config in members.items()}


def fingerprint(entry: ModelConfig, members: Members) -> str:
    """The entry's fingerprint alone for a single model (as studies before pipelines stored it)."""
    if not members:
        return modelconfig.fingerprint(entry)
    parts = [modelconfig.fingerprint(entry), *(f"{n}:{modelconfig.fingerprint(c)}" for n, c in sorted(members.items()))]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


def render(members: Members) -> dict[str, str]:
    return {name: modelconfig.render_pbtxt(config) for name, config in members.items()}


def parse(rendered: dict[str, str]) -> Members:
    return {name: modelconfig.parse_config(text, f"member {name}") for name, text in rendered.items()}
