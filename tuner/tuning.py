"""A tuning run's lifecycle: the model and its checks, the server, the study and the evaluator.

The CLI turns arguments into `Options` and calls `search` or `measure_once`; workers receive the
same `Options`. Every check that needs only files (the model, the search space against it, input
shapes, options, the storage) runs before any server starts, so refused input starts nothing and
leaves nothing on disk.
"""
from __future__ import annotations

import dataclasses
import hashlib
import shutil
import sys
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

import optuna
from google.protobuf import json_format

from tuner import autocomplete, backends, cuda, knobs, modelconfig, pipeline
from tuner.agreement import DEFAULT_MAX_ERROR
from tuner.arrivals import Shape, check_inputs
from tuner.capacity import CapacitySpec
from tuner.confirm import is_current, remeasure
from tuner.errors import ConfigError
from tuner.evaluate import Evaluator, Outcome
from tuner.faults import OUTAGE_S
from tuner.goal import Goal, Objective, check_goal
from tuner.inputs import Inputs, Memory, check_shapes, input_entries
from tuner.loadgen import PRECISION, LoadSpec
from tuner.modelconfig import ModelConfig
from tuner.server import DEFAULT_IMAGE, DockerServer, EmbeddedServer, RemoteServer
from tuner.server.base import Server
from tuner.shipped import DEMO_MODEL, DEMO_REPOSITORY, SPACES
from tuner.space import SearchSpace, load_space
from tuner.storage import check_writable
from tuner.study import StudySettings, open_study
from tuner.study import search as search_study
from tuner.workers import run_workers

DEFAULT_STORAGE = "sqlite:///tuner_runs/tuner.db"
_BACKEND_SPACES = {"onnxruntime": "default", "openvino": "openvino", "pytorch": "pytorch"}


class Launcher(str, Enum):
    EMBEDDED = "embedded"  # the tritonserver of the nvidia-pytriton wheel
    DOCKER = "docker"  # a tritonserver container
    REMOTE = "remote"  # a server already running


@dataclass(frozen=True)
class Target:
    """Which model, and the server that serves it."""
    launcher: Launcher = Launcher.EMBEDDED
    model_repository: Path | None = None  # default: the demo (or, remote, the server's own)
    model: str | None = None
    url: str | None = None  # remote: host:port (gRPC)
    host: str = "127.0.0.1"
    gpus: str | tuple[str, ...] | None = None  # "all" or device ids
    run_dir: Path = Path("tuner_runs")
    image: str = DEFAULT_IMAGE
    docker_network: str = "bridge"
    shm_size: str = "1g"
    calls: tuple[str, ...] = ()  # the models a BLS model calls (--with): tuned with it
    shared: tuple[str, ...] = ()  # more models on the same server (--model a --model b): tuned together


@dataclass(frozen=True)
class Options:
    """Everything a search (or one of its workers) needs; picklable, as workers receive it."""
    target: Target = Target()
    load: LoadSpec = LoadSpec()
    inputs: Inputs = Inputs()
    search_space: str | None = None  # a YAML file or a shipped name; default by the model's backend
    trials: int = 50
    storage: str = DEFAULT_STORAGE
    study_name: str | None = None
    slo_p95_ms: float | None = None
    max_memory_mib: float | None = None
    max_output_error: float = DEFAULT_MAX_ERROR
    seed: int | None = None
    remeasure: int = 2
    precision: float | None = PRECISION  # racing the sampler's proposals; None measures them fully
    goal: Goal = Goal()  # what is raised and what lowered: throughput against P95 by default
    workers: int = 1
    progress: bool = True
    slos: tuple[tuple[str, float], ...] = ()  # several models: each one's own P95 limit (--slo-p95-ms a=50,b=200)
    outage_s: float = OUTAGE_S  # a storage or remote server out of reach this long stops the study


@dataclass(frozen=True)
class Model:
    """The model to tune: its name, its config (None for a remote server until connected) and the
    repository it is read from (None for a remote server)."""
    name: str
    base: ModelConfig | None
    repository: Path | None
    # a pipeline's other models, or the other models of a shared server
    members: pipeline.Members = dataclasses.field(default_factory=dict)
    shared: bool = False  # the members are served beside it (each gets its part of the load), not called by it

    @property
    def study_name(self) -> str:
        return "+".join((self.name, *self.members)) if self.shared else self.name


# --- checks that need only files -------------------------------------------------------------

def check_options(options: Options) -> None:
    t = options.target
    if t.launcher is Launcher.REMOTE and not (t.url and t.model):
        raise ConfigError("--launcher remote needs --url HOST:PORT and --model NAME")
    if t.launcher is Launcher.REMOTE and t.calls:
        raise ConfigError(_REMOTE_PIPELINE)
    check_shared(options)
    if options.inputs.data_file and not options.inputs.data_file.is_file():
        raise ConfigError(f"--input-data {options.inputs.data_file}: no such file")
    check_goal(options.goal, options.slo_p95_ms, options.load.request_rate, t.launcher is Launcher.REMOTE)
    check_load(options.load, options.inputs, options.goal)
    if options.max_memory_mib and t.launcher is Launcher.REMOTE:
        raise ConfigError("--max-memory-mib needs a server of the tuner's own (embedded or docker): a remote "
                          "server's memory is not the tuned model's alone")
    if options.workers == 1:
        return
    if t.launcher is Launcher.REMOTE:
        raise ConfigError("--workers > 1 needs a server per worker, and --launcher remote has one; run the "
                          "same command on each host with a server of its own and the same --storage instead")
    if t.gpus == "all":
        raise ConfigError("--workers with --gpus all: name the GPUs (e.g. --gpus 0,1), worker i gets the i-th")
    if t.gpus and len(t.gpus) < options.workers:
        raise ConfigError(f"--workers {options.workers} but --gpus names {len(t.gpus)}: one GPU per worker")


def check_shared(options: Options) -> None:
    """Several models on one server: a mix of exactly those models, measured at a fixed load for
    throughput against the worst P95; per-model SLOs only for models of the mix."""
    t = options.target
    names = (t.model or "", *t.shared)
    slos = dict(options.slos)
    if not t.shared:
        if slos:
            raise ConfigError(f"--slo-p95-ms {','.join(f'{k}={v:g}' for k, v in slos.items())}: per-model SLOs are "
                              "for several models on one server (--model a --model b); give one number")
        if options.load.mix:
            raise ConfigError("--mix shares the load between several models on one server: give --model more than once")
        return
    if len(set(names)) != len(names):
        raise ConfigError(f"--model {' --model '.join(str(n) for n in names)}: a model named twice")
    if t.launcher is Launcher.REMOTE:
        raise ConfigError("several models are tuned from their files: use --launcher embedded or docker on the "
                          "repository")
    if t.calls:
        raise ConfigError("--with names the models a BLS model calls: tune a BLS model on its own, not beside others")
    if options.goal.objective is not Objective.THROUGHPUT:
        raise ConfigError(f"--objective {options.goal.objective.value} with several models: a mix is tuned for its "
                          "total throughput against the worst model's P95 (give each model an SLO with "
                          "--slo-p95-ms NAME=MS,...)")
    if options.inputs.data_file:
        raise ConfigError("--input-data with several models: its tensors are one model's; each model of a mix gets "
                          "synthetic inputs from its own config")
    mixed = [name for name, _ in options.load.mix]
    if sorted(mixed) != sorted(names):
        raise ConfigError(f"--mix {','.join(mixed)}: name each --model once ({', '.join(names)})")
    if not options.load.request_rate and options.load.concurrency < len(names):
        raise ConfigError(f"--concurrency {options.load.concurrency} for {len(names)} models: each needs at least "
                          "one request in flight")
    if unknown := sorted(set(slos) - set(names)):
        raise ConfigError(f"--slo-p95-ms {','.join(unknown)}: not a --model of this study ({', '.join(names)})")


def check_load(spec: LoadSpec, inputs: Inputs, goal: Goal = Goal()) -> None:
    """Arrivals shape open-loop traffic, and a recorded file's inputs must exist."""
    if spec.arrivals.shape is not Shape.POISSON and not spec.request_rate and goal.objective is not Objective.CAPACITY:
        raise ConfigError(f"--arrivals {spec.arrivals.describe()}: arrivals shape open-loop traffic; give "
                          "--request-rate (the mean rate), or --objective capacity (which finds it)")
    check_inputs(spec.arrivals, input_entries(inputs.data_file),
                 f"--input-data {inputs.data_file}" if inputs.data_file else "the synthetic input (no --input-data)")


_REMOTE_PIPELINE = ("a pipeline (an ensemble, or --with) is tuned from its models' files: use --launcher embedded "
                    "or docker on the repository")


def find_model(target: Target) -> Model:
    """The model and its config, checked; for a remote server only its name until connected."""
    if target.launcher is Launcher.REMOTE:
        return Model(target.model or "", None, None)
    repository = target.model_repository or DEMO_REPOSITORY
    if not repository.is_dir():
        raise ConfigError(f"--model-repository {repository}: not a directory")
    name = _pick_model(repository, target.model)
    config = _read_model(repository, name)
    if target.shared:
        members = {other: _read_model(repository, _pick_model(repository, other)) for other in target.shared}
        for each, each_config in {name: config, **members}.items():
            if pipeline.is_ensemble(each_config):
                raise ConfigError(f"{repository / each / 'config.pbtxt'}: '{each}' is an ensemble; tuning an ensemble "
                                  "beside other models is not supported: tune it on its own")
            modelconfig.check_tunable(each_config, str(repository / each / "config.pbtxt"))
    elif pipeline.is_ensemble(config) or target.calls:
        members = pipeline.read_members(repository, config, target.calls)
    else:
        members = {}
    if target.launcher is Launcher.EMBEDDED:
        if repository == DEMO_REPOSITORY:
            failed = _build_for_demo({name: config, **members}.values())
            if failed and target.model is None:
                twin = f"{config.name}_python"
                print(f"cannot build it ({failed}); tuning the demo's python-backend twin '{twin}' instead",
                      file=sys.stderr)
                return Model(twin, modelconfig.read_config(repository / twin / "config.pbtxt"), repository)
            if failed:
                raise failed
        for each, each_config in {name: config, **members}.items():
            why = backends.missing_backend(modelconfig.backend_of(each_config))
            if why:
                raise ConfigError(f"{repository / each / 'config.pbtxt'}: {why}")
    return Model(name, config, repository, members, shared=bool(target.shared))


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
    needed = sorted({modelconfig.backend_of(c) for c in configs} & set(backends.RECIPES) - set(backends.built()))
    for backend in needed:
        print(f"building Triton's {backend} backend for the demo (first use, once; see `tuner backends list`)",
              file=sys.stderr, flush=True)
        try:
            backends.build(backend, say=lambda _: None)
        except backends.BuildError as e:
            return e
    return None


def space_for(options: Options, model: Model, base: ModelConfig) -> SearchSpace:
    """The named search space, or the shipped one for the model's backend (for a pipeline: for each
    member's, keeping the knobs that act on it), checked against the model: knobs that cannot act
    on it are refused, and backend parameters that act only under another knob's values are
    sampled only then."""
    if model.members and not options.search_space:
        return _pipeline_default(options, model, base)
    if not options.search_space and not model.shared:
        space, dropped = _acting(options, model.repository, model.name, base)
        if dropped:
            print(f"the shipped space '{_default_space(base)}' is searched without what cannot act on "
                  f"'{model.name}': {'; '.join(dropped)}", file=sys.stderr)
        return space
    space = _shipped(options.search_space or _default_space(base))
    if model.shared and model.name in space.models:
        space = _lifted(space, model.name)
    problems, conditions = _problems(options, model.repository, model.name, base, space)
    members = {}
    for member, sub in space.models.items():
        if member not in model.members:
            raise ConfigError(f"{space.source}: models.{member}: not a member of '{model.name}' (its members: "
                              f"{', '.join(model.members) or 'none; name the models a BLS model calls with --with'})")
        more, sub_conditions = _problems(options, model.repository, member, model.members[member], sub,
                                         entry_batch=_ensemble_batch(base))
        problems += [f"models.{member}.{p}" for p in more]
        members[member] = dataclasses.replace(sub, conditions=sub_conditions)
    if problems:
        raise ConfigError(f"{space.source}: knobs that do not act on '{model.name}' "
                          f"({modelconfig.backend_of(base)} backend):\n  " + "\n  ".join(problems))
    return dataclasses.replace(space, conditions=conditions, models=members)


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
    problems, conditions = knobs.space_problems(config, space, embedded=options.target.launcher is Launcher.EMBEDDED,
                                                versions=versions)
    batch = space.knobs.get("max_batch_size")
    if entry_batch and batch is not None and any(float(v) < entry_batch for v in batch.options):
        problems.append(f"max_batch_size: values below the ensemble's max_batch_size ({entry_batch}) make the "
                        "ensemble fail to load")
    return problems, conditions


def _pipeline_default(options: Options, model: Model, base: ModelConfig) -> SearchSpace:
    """For each member, the knobs of its backend's shipped space that act on it (and, for a BLS
    entry, its own)."""
    entry = (SearchSpace({}, {}, "the shipped spaces") if pipeline.is_ensemble(base)
             else _acting(options, model.repository, model.name, base)[0])
    members = {m: _acting(options, model.repository, m, c, _ensemble_batch(base))[0] for m, c in model.members.items()}
    return dataclasses.replace(entry, source="the shipped spaces", start_with=(),
                               models={m: dataclasses.replace(s, start_with=()) for m, s in members.items()
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


def _checked(options: Options, model: Model, base: ModelConfig) -> SearchSpace:
    """The checks that need the model's config: the space and the input shapes."""
    source = (str(model.repository / model.name / "config.pbtxt") if model.repository
              else f"{options.target.url}/{model.name}")
    check_shapes(base, options.inputs.shapes, source)
    if options.inputs.shared_memory is Memory.CUDA:
        cuda.Runtime()  # no CUDA runtime or no GPU here: refused now, before any server starts
    return space_for(options, model, base)


# --- the server ----------------------------------------------------------------------------

def make_server(options: Options, model: Model, run_dir: Path, gpus: str | tuple[str, ...] | None = None) -> Server:
    """The launcher's server, on a working copy of the model's folder: trials write there, never
    to the user's repository."""
    t = options.target
    if t.launcher is Launcher.REMOTE:
        return RemoteServer(t.url or "", reconnect_s=options.outage_s)
    assert model.repository is not None and model.base is not None
    work = run_dir / "repository"
    for name in (model.name, *model.members):  # a pipeline's members are written by trials too
        shutil.rmtree(work / name, ignore_errors=True)
        shutil.copytree(model.repository / name, work / name)
    gpus = gpus if gpus is not None else t.gpus
    completes = any(autocomplete.can_change(model.repository / name, config)
                    for name, config in {model.name: model.base, **model.members}.items())
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
        raise ConfigError(f"{server.url}/{name}: an ensemble; {_REMOTE_PIPELINE}")
    return config


def restore_remote(server: Server, name: str) -> None:
    """Leaves a remote server as it was found: the model reloaded from the server's own repository,
    not from a copy of its config that went through JSON. Unloaded first: Triton keeps the last
    override when the repository has not changed (the model is unavailable for that moment)."""
    server.control.unload(name)
    server.control.load(name)


# --- the study -----------------------------------------------------------------------------

def settings(options: Options, model: Model, base: ModelConfig, space: SearchSpace) -> StudySettings:
    """What a resume must share with the study: load, inputs, limits, the space and the config."""
    spec, inputs = options.load, options.inputs
    data = hashlib.sha256(inputs.data_file.read_bytes()).hexdigest()[:16] if inputs.data_file else None
    carried = {"shapes": {k: list(v) for k, v in sorted((inputs.shapes or {}).items())}, "input_data": data,
               "shared_memory": inputs.shared_memory.value}
    goal = options.goal
    load = f"capacity, {spec.arrivals.describe()} arrivals" if goal.objective is Objective.CAPACITY else spec.mode
    return StudySettings(model.name, load, pipeline.fingerprint(base, model.members), space.describe(),
                         options.slo_p95_ms,
                         options.max_memory_mib, options.max_output_error, carried, goal.objective.value,
                         goal.cost.value, dict(options.slos) or None)


def _study(options: Options, model: Model, base: ModelConfig, space: SearchSpace, index: int = 0) -> optuna.Study:
    """Creates or joins the study (each worker's sampler gets its own seed, or the workers would
    propose the same configs)."""
    seed = None if options.seed is None else options.seed + index
    return open_study(options.storage, options.study_name or model.study_name, settings(options, model, base, space),
                      seed, space.start_with, options.outage_s)


def search(options: Options) -> optuna.Study:
    """Runs (or resumes) the study with one worker here, or several in processes of their own."""
    check_options(options)
    check_writable(options.storage)
    if options.workers == 1:
        return work(options, 0)
    model = find_model(options.target)
    assert model.base is not None  # check_options refuses --workers with a remote server
    study = _study(options, model, model.base, _checked(options, model, model.base))
    run_workers(work, options, study, options.workers, options.trials, options.slo_p95_ms, progress=options.progress)
    return study


def work(options: Options, index: int) -> optuna.Study:
    """One worker: its own server, measuring trials of the shared study until it has enough; the
    first worker then re-measures the front, alone."""
    t = options.target
    model = find_model(t)
    if model.base is not None:  # the space checked and the storage opened before any server starts
        space = _checked(options, model, model.base)
        study = _study(options, model, model.base, space, index)
    name = options.study_name or model.study_name
    label = f"worker-{index}" if options.workers > 1 else ""
    gpus = (t.gpus[index],) if options.workers > 1 and t.gpus and t.gpus != "all" else None
    with make_server(options, model, t.run_dir / name / label, gpus) as server:
        base = model.base or remote_base(server, model.name)
        if model.base is None:
            space = _checked(options, model, base)
            study = _study(options, model, base, space, index)
        version = server.control.version()
        study.set_user_attr("context", _context(options, server, space, version))
        ready = f", ready in {server.ready_s:.1f} s" if t.launcher is not Launcher.REMOTE else ""
        print(f"{label or 'study'} '{name}' in {options.storage}; server {server.url} ({server.launcher}{ready}); "
              f"Triton {version}", file=sys.stderr)
        try:
            steady = options.load.arrivals.shape is Shape.POISSON
            capacity = CapacitySpec(options.slo_p95_ms, judge_rate=steady) \
                if options.goal.objective is Objective.CAPACITY and options.slo_p95_ms else None
            with Evaluator(server, model.name, options.load, options.inputs, options.slo_p95_ms,
                           capacity, dict(options.slos)) as evaluator:
                evaluator.take_reference(base, model.members)
                search_study(study, evaluator, base, space, options.trials, options.slo_p95_ms,
                             progress=options.progress and options.workers == 1, worker=label,
                             precision=options.precision, members=model.members)
                if index == 0 and options.remeasure > 0 and not is_current(study):
                    remeasure(study, evaluator, options.remeasure, options.slo_p95_ms, progress=options.progress)
        finally:
            if t.launcher is Launcher.REMOTE and server.alive():  # out of reach: the resume restores it
                restore_remote(server, model.name)
    return study


def _context(options: Options, server: Server, space: SearchSpace, version: str) -> dict:
    """How the study was measured: written to the manifest, and what `export --verify` repeats."""
    t = options.target
    return {"launcher": t.launcher.value, "url": t.url, "triton_version": version,
            "image": t.image if t.launcher is Launcher.DOCKER else None, "workers": options.workers,
            "model_repository": str((t.model_repository or DEMO_REPOSITORY).resolve())
            if t.launcher is not Launcher.REMOTE else None,
            "gpus": list(t.gpus) if isinstance(t.gpus, tuple) else t.gpus,
            "search_space": str(space.source), "load": options.load.to_json(),
            "inputs": options.inputs.to_json()}


def measure_once(options: Options, config: ModelConfig | None = None) -> Outcome:
    """`tuner measure`: one config (the model's own by default) loaded and measured, no study."""
    check_options(options)
    model = find_model(options.target)
    if model.base is not None:
        check_shapes(model.base, options.inputs.shapes, f"{model.repository}/{model.name}/config.pbtxt")
    with make_server(options, model, options.target.run_dir / "measure") as server:
        try:
            chosen = config or model.base or remote_base(server, model.name)
            with Evaluator(server, model.name, options.load, options.inputs) as evaluator:
                return evaluator.evaluate(chosen, members=model.members)
        finally:
            if options.target.launcher is Launcher.REMOTE and config is not None:
                restore_remote(server, model.name)


def verify_server(context: dict):
    """A factory of servers like the study's, for `export --verify`: the same launcher, image and GPUs."""
    gpus = context.get("gpus")
    gpus = tuple(gpus) if isinstance(gpus, list) else gpus
    if context.get("launcher") == Launcher.DOCKER.value:
        shm = Inputs.from_json(context.get("inputs")).shared_memory is not Memory.NONE
        return lambda repo, run: DockerServer(repo, run, image=context.get("image") or DEFAULT_IMAGE, gpus=gpus,
                                              ipc_host=shm)
    return lambda repo, run: EmbeddedServer(repo, run, gpus=gpus)
