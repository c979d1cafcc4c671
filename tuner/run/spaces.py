"""The search space a run searches: the one named, or the shipped one for the model's backend,
checked against the model (for a pipeline, against each member)."""
from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

from tuner.config import modelconfig, pipeline
from tuner.config.modelconfig import ModelConfig
from tuner.config.shipped import SPACES
from tuner.config.space import SearchSpace, load_space
from tuner.errors import ConfigError
from tuner.measure import cuda
from tuner.measure.inputs import Memory, check_shapes
from tuner.run.model import Model
from tuner.run.options import Launcher, Options

_BACKEND_SPACES = {"onnxruntime": "default", "openvino": "openvino", "pytorch": "pytorch"}


def space_for(options: Options, model: Model, base: ModelConfig) -> SearchSpace:
    """The named search space, or the shipped one for the model's backend (with other models: for
    each one's backend, keeping the knobs that act on it), checked against the model: knobs that
    cannot act on it are refused, and backend parameters that act only under another knob's values
    are sampled only then. The space's `models:` section gives the others (tuner.run.model) theirs."""
    if model.others and not options.search_space:
        return _shipped_for_each(options, model, base)
    if not options.search_space:
        space, dropped = _acting(options, model.repository, model.name, base)
        if dropped:
            print(f"the shipped space '{_default_space(base)}' is searched without what cannot act on "
                  f"'{model.name}': {'; '.join(dropped)}", file=sys.stderr)
        return space
    space = _shipped(options.search_space)
    if model.co_served and model.name in space.models:
        space = _lifted(space, model.name)
    problems, conditions = _problems(options, model.repository, model.name, base, space)
    others = {}
    for other, sub in space.models.items():
        if other not in model.others:
            what = "a model served beside" if model.co_served else "a member of"
            raise ConfigError(f"{space.source}: models.{other}: not {what} '{model.name}' (those are: "
                              f"{', '.join(model.others) or 'none; name the models a BLS model calls with --with'})")
        more, sub_conditions = _problems(options, model.repository, other, model.others[other], sub,
                                         entry_batch=_ensemble_batch(base))
        problems += [f"models.{other}.{p}" for p in more]
        others[other] = dataclasses.replace(sub, conditions=sub_conditions)
    if problems:
        raise ConfigError(f"{space.source}: knobs that do not act on '{model.name}' "
                          f"({modelconfig.backend_of(base)} backend):\n  " + "\n  ".join(problems))
    return dataclasses.replace(space, conditions=conditions, models=others)


def _lifted(space: SearchSpace, name: str) -> SearchSpace:
    """Several models' space that gives the first one's knobs under `models:` too: they become its
    own (top-level) knobs, which is where a search keeps the first model's."""
    if space.knobs or space.parameters:
        raise ConfigError(f"{space.source}: both knobs: and models.{name}: give '{name}' knobs; give them in one place")
    own = space.models[name]
    return dataclasses.replace(space, knobs=own.knobs, parameters=own.parameters,
                               models={k: v for k, v in space.models.items() if k != name})


def _default_space(config: ModelConfig) -> str:
    return _BACKEND_SPACES.get(modelconfig.backend_of(config), "generic")


def _shipped(name: str) -> SearchSpace:
    """A YAML file, or the name of a shipped space."""
    path = Path(name)
    if path.suffix in (".yaml", ".yml") or path.exists():
        return load_space(path)
    if not (SPACES / f"{name}.yaml").is_file():
        shipped = ", ".join(sorted(p.stem for p in SPACES.glob("*.yaml")))
        raise ConfigError(f"--search-space {name}: no such file, nor a shipped space (shipped: {shipped}); "
                          "give a YAML file's path or one of those names")
    return load_space(SPACES / f"{name}.yaml")


def _ensemble_batch(entry: ModelConfig) -> int:
    """An ensemble's max batch size, which each step's must reach (Triton refuses the ensemble
    otherwise); 0 for a BLS entry, which sets no such bound."""
    return entry.max_batch_size if pipeline.is_ensemble(entry) else 0


def _problems(options: Options, repository: Path | None, name: str, config: ModelConfig, space: SearchSpace,
              entry_batch: int = 0) -> tuple[list[str], dict]:
    """Why knobs of `space` cannot act on the model `name`, and the conditions of those that act."""
    if pipeline.is_ensemble(config):
        given = sorted(space.knobs) + [f"parameters.{p}" for p in space.parameters]
        return ([f"{', '.join(given)}: '{name}' is an ensemble, with no instances or batcher of its own: give each "
                 "step's knobs under models:"] if given else []), {}
    folder = repository / name if repository else None
    versions = {int(p.name) for p in folder.iterdir() if p.is_dir() and p.name.isdigit()} if folder else None
    problems, conditions = space.problems(config, embedded=options.target.launcher is Launcher.EMBEDDED,
                                          versions=versions)
    batch = space.knobs.get("max_batch_size")
    if entry_batch and batch is not None and any(float(v) < entry_batch for v in batch.options):
        problems.append(f"max_batch_size: values below the ensemble's max_batch_size ({entry_batch}) make the "
                        "ensemble fail to load")
    return problems, conditions


def _shipped_for_each(options: Options, model: Model, base: ModelConfig) -> SearchSpace:
    """For the model and each of the others, the knobs of its backend's shipped space that act on it
    (an ensemble itself has none)."""
    entry = (SearchSpace({}, {}, "the shipped spaces") if pipeline.is_ensemble(base)
             else _acting(options, model.repository, model.name, base)[0])
    others = {m: _acting(options, model.repository, m, c, _ensemble_batch(base))[0] for m, c in model.others.items()}
    return dataclasses.replace(entry, source="the shipped spaces", start_with=(),
                               models={m: dataclasses.replace(s, start_with=()) for m, s in others.items()
                                       if s.knobs or s.parameters})


def _acting(options: Options, repository: Path | None, name: str, config: ModelConfig,
            entry_batch: int = 0) -> tuple[SearchSpace, list[str]]:
    """The shipped space for the model's backend, less what cannot act on it (and why each part was
    left out): a knob nobody asked for is left out, not refused."""
    shipped = _shipped(_default_space(config))

    def acts(space: SearchSpace) -> bool:
        return not _problems(options, repository, name, config, space, entry_batch)[0]

    kept = {k: s for k, s in shipped.knobs.items() if acts(dataclasses.replace(shipped, knobs={k: s}, parameters={}))}
    params = shipped.parameters if acts(dataclasses.replace(shipped, knobs={})) else {}
    dropped = _problems(options, repository, name, config, shipped, entry_batch)[0]
    # a known-good start is a whole config: with a knob left out it is another config
    start = () if dropped else shipped.start_with
    space = dataclasses.replace(shipped, knobs=kept, parameters=params, start_with=start)
    space = dataclasses.replace(space, conditions=_problems(options, repository, name, config, space)[1])
    return space, dropped


def checked(options: Options, model: Model, base: ModelConfig) -> SearchSpace:
    """The checks that need the model's config: the space and the input shapes."""
    source = (str(model.repository / model.name / "config.pbtxt") if model.repository
              else f"{options.target.url}/{model.name}")
    check_shapes(base, options.inputs.shapes, source)
    if options.inputs.shared_memory is Memory.CUDA:
        cuda.Runtime()  # no CUDA runtime or no GPU here: refused now, before any server starts
    return space_for(options, model, base)
