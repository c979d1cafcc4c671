"""The checks that need only the options and files, made before any server starts: refused input
starts nothing and leaves nothing on disk."""
from __future__ import annotations

from tuner.errors import ConfigError
from tuner.measure.arrivals import Shape, check_inputs
from tuner.measure.inputs import Inputs, input_entries
from tuner.measure.load import LoadSpec
from tuner.run.options import Launcher, Options
from tuner.study.goal import Goal, Objective, check_goal

REMOTE_PIPELINE = ("a pipeline (an ensemble, or --with) is tuned from its models' files: use --launcher embedded "
                    "or docker on the repository")


def check_options(options: Options) -> None:
    t = options.target
    if t.launcher is Launcher.REMOTE and not (t.url and t.model):
        raise ConfigError("--launcher remote needs --url HOST:PORT and --model NAME")
    if t.launcher is Launcher.REMOTE and t.calls:
        raise ConfigError(REMOTE_PIPELINE)
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
    model_slos = dict(options.model_slos)
    if not t.shared:
        if model_slos:
            given = ",".join(f"{k}={v:g}" for k, v in model_slos.items())
            raise ConfigError(f"--slo-p95-ms {given}: per-model SLOs are for several models on one server "
                              "(--model a --model b); give one number")
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
    if unknown := sorted(set(model_slos) - set(names)):
        raise ConfigError(f"--slo-p95-ms {','.join(unknown)}: not a --model of this study ({', '.join(names)})")


def check_load(spec: LoadSpec, inputs: Inputs, goal: Goal = Goal()) -> None:
    """Arrivals shape open-loop traffic, and a recorded file's inputs must exist."""
    if spec.arrivals.shape is not Shape.POISSON and not spec.request_rate and goal.objective is not Objective.CAPACITY:
        raise ConfigError(f"--arrivals {spec.arrivals.describe()}: arrivals shape open-loop traffic; give "
                          "--request-rate (the mean rate), or --objective capacity (which finds it)")
    check_inputs(spec.arrivals, input_entries(inputs.data_file),
                 f"--input-data {inputs.data_file}" if inputs.data_file else "the synthetic input (no --input-data)")
