"""Command line: argument parsing and wiring only; the work is in the modules it calls."""
from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import sys
from pathlib import Path

import optuna
from google.protobuf import json_format

from tuner import modelconfig
from tuner.errors import ConfigError, TunerError
from tuner.evaluate import Evaluator, Inputs
from tuner.export import export
from tuner.loadgen import LoadSpec
from tuner.report import counts_line, failures, front_table, measurement_text
from tuner.select import POLICIES, choose
from tuner.server import EmbeddedServer, RemoteServer
from tuner.space import load_space
from tuner.study import StudySettings, baseline, open_study, search

PROJECT = Path(__file__).resolve().parents[1]
DEMO_REPOSITORY = PROJECT / "model_repository_template"
SPACES = PROJECT / "search_spaces"


def _shape(text: str) -> tuple[str, list[int]]:
    name, _, dims = text.rpartition(":")
    try:
        return name, [int(d) for d in dims.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--shape {text!r}: expected NAME:D1,D2,...") from None


def _positive(kind):
    def parse(text: str):
        value = kind(text)
        if value <= 0:
            raise argparse.ArgumentTypeError(f"{text}: must be > 0")
        return value
    return parse


def _add_target(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("model and server")
    g.add_argument("--model-repository", type=Path, help="the Triton model repository (never modified; "
                   "default: the demo repository, or the server's own with --launcher remote)")
    g.add_argument("--model", help="model to use (default: the only model in the repository)")
    g.add_argument("--launcher", choices=("embedded", "remote"), default="embedded")
    g.add_argument("--url", help="gRPC host:port of the server (--launcher remote)")
    g.add_argument("--host", default="127.0.0.1", help="address the embedded server binds to")
    g.add_argument("--run-dir", type=Path, default=Path("tuner_runs"), help="server logs and working copy")


def _add_load(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("measurement")
    g.add_argument("--concurrency", type=_positive(int), default=8, help="requests in flight (closed loop)")
    g.add_argument("--request-rate", type=_positive(float), help="requests/s with Poisson arrivals (open loop) "
                   "instead of a fixed concurrency")
    g.add_argument("--min-samples", type=_positive(int), default=1000, help="latency samples per measurement")
    g.add_argument("--warmup-s", type=float, default=1.0, help="warm-up before measuring")
    g.add_argument("--window-s", type=_positive(float), default=1.0, help="measurement window length")
    g.add_argument("--max-measure-s", type=_positive(float), default=20.0, help="time limit per measurement")
    g.add_argument("--shape", type=_shape, action="append", default=[], help="NAME:D1,D2 for dynamic input dims")
    g.add_argument("--input-data", type=Path, help="real inputs, a JSON file in perf_analyzer's --input-data format")
    g.add_argument("--shared-memory", choices=("none", "system"), default="none",
                   help="pass inputs and outputs through system shared memory instead of gRPC")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="tuner", description="Auto-tune a Triton model's config.pbtxt.")
    sub = p.add_subparsers(dest="command", required=True)
    fmt = argparse.ArgumentDefaultsHelpFormatter
    s = sub.add_parser("search", help="run (or resume) a study and export the chosen config", formatter_class=fmt)
    _add_target(s)
    s.add_argument("--search-space", default="default", help="YAML file, or a name under search_spaces/")
    s.add_argument("--trials", type=_positive(int), default=50, help="trials in the study, baseline included")
    s.add_argument("--storage", default="sqlite:///tuner_runs/tuner.db", help="Optuna storage URL")
    s.add_argument("--study-name", help="default: the model name; the same name resumes the study")
    s.add_argument("--out", type=Path, default=Path("tuner_out"), help="where the chosen config is exported")
    s.add_argument("--policy", choices=POLICIES, default="knee", help="how to choose from the Pareto front")
    s.add_argument("--slo-p95-ms", type=_positive(float), help="choose the highest throughput under this P95")
    s.add_argument("--seed", type=int, help="sampler seed")
    s.add_argument("--no-progress", action="store_true", help="no progress bar")
    _add_load(s)
    m = sub.add_parser("measure", help="measure one config, like perf_analyzer (no search)", formatter_class=fmt)
    _add_target(m)
    m.add_argument("--config", type=Path, help="a config.pbtxt to measure instead of the model's own")
    m.add_argument("--json", type=Path, help="also write the measurement here as JSON")
    _add_load(m)
    return p


def _load_spec(args) -> LoadSpec:
    return LoadSpec(concurrency=args.concurrency, request_rate=args.request_rate, warmup_s=args.warmup_s,
                    window_s=args.window_s, min_samples=args.min_samples, max_duration_s=args.max_measure_s)


def _inputs(args) -> Inputs:
    if args.input_data and not args.input_data.is_file():
        raise ConfigError(f"--input-data {args.input_data}: no such file")
    return Inputs(dict(args.shape) or None, args.input_data, args.shared_memory == "system")


def _space_path(value: str) -> Path:
    path = Path(value)
    if path.suffix in (".yaml", ".yml") or path.exists():
        return path
    return SPACES / f"{value}.yaml"


def _pick_model(repository: Path, model: str | None) -> str:
    if model:
        return model
    found = sorted(p.parent.name for p in repository.glob("*/config.pbtxt"))
    if len(found) != 1:
        raise ConfigError(f"{repository}: {'no model' if not found else 'several models (' + ', '.join(found) + ')'}"
                          " with a config.pbtxt; name one with --model")
    return found[0]


def _local_base(args) -> tuple[Path, str, modelconfig.ModelConfig]:
    repository = args.model_repository or DEMO_REPOSITORY
    if not repository.is_dir():
        raise ConfigError(f"--model-repository {repository}: not a directory")
    model = _pick_model(repository, args.model)
    config = modelconfig.read_config(repository / model / "config.pbtxt")
    if config.name != model:
        raise ConfigError(f"{repository / model / 'config.pbtxt'}: name is '{config.name}' but the folder is '{model}'")
    return repository, model, config


def _remote_base(server: RemoteServer, model: str) -> modelconfig.ModelConfig:
    if not server.control.is_model_ready(model):
        server.control.load(model)
    config = json_format.ParseDict(server.control.model_config_json(model), modelconfig.ModelConfig(),
                                   ignore_unknown_fields=True)
    modelconfig.check_tunable(config, f"{server.url}/{model}")
    return config


def _server(args, run_dir: Path):
    """(server, model, base config or None for remote: read from the server once connected)."""
    if args.launcher == "remote":
        if not args.url or not args.model:
            raise ConfigError("--launcher remote needs --url HOST:PORT and --model NAME")
        return RemoteServer(args.url), args.model, None
    repository, model, base = _local_base(args)
    work = run_dir / "repository"
    shutil.rmtree(work / model, ignore_errors=True)
    shutil.copytree(repository / model, work / model)  # trials write here, never to the user's copy
    return EmbeddedServer(work, run_dir, host=args.host), model, base


def _model_name(args) -> str:
    return args.model if args.launcher == "remote" else _local_base(args)[1]


def cmd_search(args) -> int:
    space = load_space(_space_path(args.search_space))
    spec, inputs = _load_spec(args), _inputs(args)
    name = args.study_name or _model_name(args)
    if args.storage.startswith("sqlite:///"):
        Path(args.storage.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    server, model, base = _server(args, args.run_dir / name)
    with server:
        if base is None:
            base = _remote_base(server, model)
        problems = modelconfig.knob_problems(base, space.names)
        if problems:
            raise ConfigError(f"{space.source}: knobs that do not apply to '{model}' "
                              f"({modelconfig.backend_of(base)} backend):\n  " + "\n  ".join(problems))
        load = f"request rate {args.request_rate:g}/s" if args.request_rate else f"concurrency {args.concurrency}"
        settings = StudySettings(model, load, modelconfig.fingerprint(base), space.describe())
        study = open_study(args.storage, name, settings, args.seed)
        print(f"study '{name}' in {args.storage}; server {server.url} ({server.launcher}); "
              f"Triton {server.control.version()}", file=sys.stderr)
        try:
            with Evaluator(server, model, spec, inputs) as evaluator:
                search(study, evaluator, base, space, args.trials, args.slo_p95_ms, progress=not args.no_progress)
        finally:
            if args.launcher == "remote":  # leave the user's server as we found it
                server.control.load(model, modelconfig.to_json(base))
    return _finish(study, model, args)


def cmd_measure(args) -> int:
    spec, inputs = _load_spec(args), _inputs(args)
    config = modelconfig.read_config(args.config) if args.config else None
    server, model, base = _server(args, args.run_dir / "measure")
    with server:
        config = config or base or _remote_base(server, model)
        with Evaluator(server, model, spec, inputs) as evaluator:
            outcome = evaluator.evaluate(config)
        if args.launcher == "remote" and base is None and args.config:
            server.control.load(model)  # back to the server's own config
    if not outcome.ok:
        print(f"error: {outcome.reason}", file=sys.stderr)
        return 1
    print(measurement_text(outcome.measurement))
    if args.json:
        args.json.write_text(json.dumps(dataclasses.asdict(outcome.measurement), indent=2) + "\n")
    return 0


def _finish(study: optuna.Study, model: str, args) -> int:
    trials = study.get_trials(deepcopy=False)
    base = baseline(study)
    chosen = choose(trials, args.policy, args.slo_p95_ms)
    print(f"\n{counts_line(trials)}\nPareto front (* = exported):")
    print(front_table(trials, base, chosen))
    for line in failures(trials):
        print(f"failed {line}")
    if chosen is None:
        print(f"\nno trial meets P95 <= {args.slo_p95_ms} ms: nothing exported", file=sys.stderr)
        return 1
    path = export(chosen, args.out, model, {"study": study.study_name, "storage": args.storage,
                                            "policy": "slo" if args.slo_p95_ms else args.policy,
                                            "slo_p95_ms": args.slo_p95_ms, "concurrency": args.concurrency})
    gain = f" ({chosen.values[0] / base.values[0]:.2f}x the baseline's throughput)" if base else ""
    print(f"\nexported trial #{chosen.number}{gain} to {path}")
    print(f"watch or browse the study: optuna-dashboard {args.storage}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        return {"search": cmd_search, "measure": cmd_measure}[args.command](args)
    except TunerError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\ninterrupted: the server is stopped and the study saved; rerun the same command to resume",
              file=sys.stderr)
        return 130
