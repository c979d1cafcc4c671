"""The parsed arguments as the typed options the run takes (and each worker gets)."""
from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from tuner.errors import ConfigError
from tuner.measure.arrivals import Arrivals, parse_arrivals
from tuner.measure.inputs import Inputs, Memory
from tuner.measure.load import LoadSpec
from tuner.run import Launcher, Options, Target
from tuner.study.goal import Cost, Goal, Objective


def target(args) -> Target:
    first, *shared = args.model or [None]
    return Target(launcher=Launcher(args.launcher), model_repository=args.model_repository, model=first, url=args.url,
                  host=args.host, gpus=tuple(args.gpus) if isinstance(args.gpus, list) else args.gpus,
                  run_dir=args.run_dir, image=args.image, docker_network=args.docker_network,
                  shm_size=args.shm_size, calls=args.calls, shared=tuple(shared))


def load(args) -> tuple[LoadSpec, Inputs]:
    arrivals = Arrivals() if args.arrivals == "poisson" else parse_arrivals(args.arrivals)
    mix = args.mix or (tuple((name, 1.0) for name in args.model) if len(args.model) > 1 else ())
    spec = LoadSpec(concurrency=args.concurrency, request_rate=args.request_rate, arrivals=arrivals,
                    warmup_s=args.warmup_s, window_s=args.window_s, min_samples=args.min_samples,
                    max_duration_s=args.max_measure_s, request_timeout_s=args.request_timeout_s, mix=mix)
    return spec, Inputs(dict(args.shape) or None, args.input_data, Memory(args.shared_memory))


def options(args) -> Options:
    """The search's arguments as the typed options every part of the run (and each worker) gets."""
    spec, inputs = load(args)
    return Options(target=target(args), load=spec, inputs=inputs, search_space=args.search_space, trials=args.trials,
                   storage=args.storage, study_name=args.study_name, slo_p95_ms=args.slo_p95_ms,
                   max_memory_mib=args.max_memory_mib, max_output_error=args.max_output_error, seed=args.seed,
                   remeasure=args.remeasure, precision=None if args.no_racing else args.precision,
                   guided=args.guide == "model", goal=Goal(Objective(args.objective), Cost(args.cost)),
                   workers=args.workers,
                   progress=not args.no_progress and sys.stderr.isatty(), model_slos=args.model_slos,
                   outage_s=args.outage_s)


def measuring(args) -> Options:
    """`tuner measure`'s arguments: the model, the server and the load."""
    spec, inputs = load(args)
    return Options(target=target(args), load=spec, inputs=inputs)


def writable(path: Path, option: str) -> None:
    """Before the work: a file the result could not be written to afterwards (tried with a scratch
    file beside it, since permissions alone do not tell for root or special file systems)."""
    try:
        if path.is_dir():
            raise IsADirectoryError("it is a folder")
        with tempfile.NamedTemporaryFile(dir=path.absolute().parent):
            pass
    except OSError as e:
        raise ConfigError(f"{option} {path}: cannot write a file there ({e.strerror or e}); "
                          "name a file in a writable folder") from None
