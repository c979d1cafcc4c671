"""A run from options to a finished study: the study created or joined, one worker here or
several in processes of their own, each with its own server, and the front re-measured at the end;
or one config measured (`tuner measure`)."""
from __future__ import annotations

import hashlib
import sys

import optuna

from tuner.config import pipeline
from tuner.config.modelconfig import ModelConfig
from tuner.config.shipped import DEMO_REPOSITORY
from tuner.config.space import SearchSpace
from tuner.measure.arrivals import Shape
from tuner.measure.capacity import CapacitySpec
from tuner.measure.evaluate import Evaluator, Outcome
from tuner.measure.inputs import check_shapes
from tuner.run.checks import check_options
from tuner.run.model import Model, find_model
from tuner.run.options import Launcher, Options
from tuner.run.servers import make_server, remote_base, restore_remote
from tuner.run.spaces import checked
from tuner.server.base import Server
from tuner.study.confirm import is_current, remeasure
from tuner.study.goal import Objective
from tuner.study.settings import StudySettings
from tuner.study.storage import check_writable
from tuner.study.study import open_study
from tuner.study.study import search as search_study
from tuner.study.workers import run_workers


def settings(options: Options, model: Model, base: ModelConfig, space: SearchSpace) -> StudySettings:
    """What a resume must share with the study: load, inputs, limits, the space and the config."""
    spec, inputs = options.load, options.inputs
    data = hashlib.sha256(inputs.data_file.read_bytes()).hexdigest()[:16] if inputs.data_file else None
    carried = {"shapes": {k: list(v) for k, v in sorted((inputs.shapes or {}).items())}, "input_data": data,
               "shared_memory": inputs.shared_memory.value}
    goal = options.goal
    load = f"capacity, {spec.arrivals.describe()} arrivals" if goal.objective is Objective.CAPACITY else spec.mode
    return StudySettings(model.name, load, pipeline.fingerprint(base, model.others), space.describe(),
                         options.slo_p95_ms,
                         options.max_memory_mib, options.max_output_error, carried, goal.objective.value,
                         goal.cost.value, dict(options.model_slos) or None)


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
    study = _study(options, model, model.base, checked(options, model, model.base))
    run_workers(work, options, study, options.workers, options.trials, options.slo_p95_ms, progress=options.progress)
    return study


def work(options: Options, index: int) -> optuna.Study:
    """One worker: its own server, measuring trials of the shared study until it has enough; the
    first worker then re-measures the front, alone."""
    t = options.target
    model = find_model(t)
    if model.base is not None:  # the space checked and the storage opened before any server starts
        space = checked(options, model, model.base)
        study = _study(options, model, model.base, space, index)
    name = options.study_name or model.study_name
    label = f"worker-{index}" if options.workers > 1 else ""
    gpus = (t.gpus[index],) if options.workers > 1 and t.gpus and t.gpus != "all" else None
    with make_server(options, model, t.run_dir / name / label, gpus) as server:
        base = model.base or remote_base(server, model.name)
        if model.base is None:
            space = checked(options, model, base)
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
                           capacity, dict(options.model_slos)) as evaluator:
                evaluator.take_reference(base, model.others)
                # an ensemble's steps run one after another, which the model simulates; a BLS model's calls
                # and models served beside it follow no order it knows
                guided = options.guided and options.goal.is_default and not model.co_served \
                    and (not model.members or pipeline.is_ensemble(base))
                search_study(study, evaluator, base, space, options.trials, options.slo_p95_ms,
                             progress=options.progress and options.workers == 1, worker=label,
                             precision=options.precision, others=model.others, guided=guided)
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
                return evaluator.evaluate(chosen, others=model.others)
        finally:
            if options.target.launcher is Launcher.REMOTE and config is not None:
                restore_remote(server, model.name)
