"""Command line: argument parsing and wiring only; the work is in the modules it calls."""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
from pathlib import Path

import optuna
from optuna.trial import FrozenTrial

from tuner import __version__, backends, ceiling, modelconfig, storage
from tuner.agreement import DEFAULT_MAX_ERROR
from tuner.arrivals import Arrivals, parse_arrivals
from tuner.ceiling import Ceiling
from tuner.confirm import confirmed, is_current, rejected
from tuner.errors import ConfigError, Exit, TunerError
from tuner.export import export
from tuner.faults import OUTAGE_S, EnvironmentBroken
from tuner.goal import Cost, Goal, Objective, goal_of
from tuner.inputs import Inputs, Memory
from tuner.loadgen import PRECISION, LoadSpec
from tuner.report import ceiling_text, counts_line, failures, front_table, measurement_text, models_text, steps_text
from tuner.select import POLICIES, baseline_of, choose
from tuner.server import DEFAULT_IMAGE, RemoteServer
from tuner.trials import Key
from tuner.tuning import DEFAULT_STORAGE, Launcher, Options, Target, measure_once, search, verify_server


def _shape(text: str) -> tuple[str, list[int]]:
    name, _, dims = text.rpartition(":")
    try:
        return name, [int(d) for d in dims.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--shape {text!r}: expected NAME:D1,D2,... (the batch dimension "
                                         "not included)") from None


def _gpus(text: str) -> str | list[str]:
    if text == "all":
        return text
    ids = text.split(",")
    if not all(i.strip().isdigit() for i in ids):
        raise argparse.ArgumentTypeError(f"--gpus {text!r}: expected 'all' or ids like 0,1")
    return [i.strip() for i in ids]


def _number(kind, low: float, inclusive: bool):
    """A parser of numbers of `kind` above `low` (or at it, `inclusive`), whose refusal says what it takes."""
    bound = f">= {low:g}" if inclusive else f"> {low:g}"
    what = f"{'an integer' if kind is int else 'a number'} {bound}"

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r}: expected {what}") from None
        if value < low or (value == low and not inclusive):
            raise argparse.ArgumentTypeError(f"{text}: must be {bound}")
        return value
    return parse


def _positive(kind):
    return _number(kind, 0, inclusive=False)


def _non_negative(kind):
    return _number(kind, 0, inclusive=True)


def _port(text: str) -> int:
    value = _number(int, 1, inclusive=True)(text)
    if value > 65535:
        raise argparse.ArgumentTypeError(f"{text}: a port is 1 to 65535")
    return value


class _Parser(argparse.ArgumentParser):
    """A refused argument is one line naming it (and where help is), not the whole usage."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _shares(text: str) -> tuple[tuple[str, float], ...]:
    """NAME=NUMBER,NAME=NUMBER (each number > 0)."""
    pairs = []
    for item in text.split(","):
        name, _, value = item.partition("=")
        try:
            number = float(value)
        except ValueError:
            number = 0.0
        if not name or number <= 0:
            raise argparse.ArgumentTypeError(f"{text!r}: expected NAME=NUMBER,NAME=NUMBER with numbers > 0")
        pairs.append((name.strip(), number))
    return tuple(pairs)


class _Slo(argparse.Action):
    """`--slo-p95-ms MS`, one limit for every model, or `NAME=MS,...`, one per model (into `slos`)."""

    def __call__(self, parser, namespace, text, option_string=None):
        try:
            if "=" in text:
                namespace.slos = _shares(text)
            else:
                setattr(namespace, self.dest, _positive(float)(text))
        except (argparse.ArgumentTypeError, ValueError) as e:
            parser.error(f"argument {option_string}: {e}")


def _add_target(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("model and server")
    g.add_argument("--model-repository", type=Path, help="the Triton model repository (never modified; "
                   "default: the demo repository, or the server's own with --launcher remote)")
    g.add_argument("--model", action="append", default=[], help="model to use (default: the only model in the "
                   "repository); an ensemble is tuned with its steps; given more than once, the models share one "
                   "server and are tuned together under a load mix (--mix)")
    g.add_argument("--with", dest="calls", type=lambda s: tuple(n for n in s.split(",") if n), default=(),
                   metavar="MODEL,MODEL", help="the models a BLS --model calls: tuned with it, each with knobs of "
                   "its own (the search space's models: section)")
    g.add_argument("--launcher", choices=("embedded", "docker", "remote"), default="embedded",
                   help="embedded: the Triton of the nvidia-pytriton wheel; docker: a tritonserver container; "
                   "remote: a server already running (--url)")
    g.add_argument("--url", help="gRPC host:port of the server (--launcher remote)")
    g.add_argument("--host", default="127.0.0.1", help="address the server binds (or its ports are published) to")
    g.add_argument("--gpus", type=_gpus, help="GPUs for the server: 'all' or ids like 0,1 (with --workers, "
                   "worker i gets the i-th id); default: none for docker, whatever is visible for embedded")
    g.add_argument("--run-dir", type=Path, default=Path("tuner_runs"), help="server logs and working copy")
    d = p.add_argument_group("docker launcher")
    d.add_argument("--image", default=DEFAULT_IMAGE, help="tritonserver image")
    d.add_argument("--docker-network", choices=("bridge", "host"), default="bridge",
                   help="bridge: ports published on --host only; host: the host's network (engines without "
                   "a bridge), Triton binds --host")
    d.add_argument("--shm-size", default="1g", help="the container's /dev/shm (the host's IPC namespace is "
                   "shared instead with --shared-memory system)")


def _add_load(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("measurement")
    g.add_argument("--concurrency", type=_positive(int), default=8, help="requests in flight (closed loop)")
    g.add_argument("--request-rate", type=_positive(float), help="requests/s with Poisson arrivals (open loop) "
                   "instead of a fixed concurrency")
    g.add_argument("--mix", type=_shares, metavar="MODEL=SHARE,...", help="several --model: each one's share of "
                   "--concurrency (or of --request-rate), as the traffic you expect; a=3,b=1 at concurrency 8 "
                   "sends a 6 requests in flight and b 2 (default: equal shares)")
    g.add_argument("--arrivals", default="poisson", help="how open-loop requests arrive, at the mean rate: "
                   "poisson, bursts:ON/OFF (seconds), ramp:PERIOD (seconds), or a recorded CSV/JSON file of "
                   "offset_s (and input) replayed with its gaps scaled to the rate")
    g.add_argument("--min-samples", type=_positive(int), default=1000, help="latency samples per measurement")
    g.add_argument("--warmup-s", type=_non_negative(float), default=1.0, help="warm-up before measuring")
    g.add_argument("--window-s", type=_positive(float), default=1.0, help="measurement window length")
    g.add_argument("--max-measure-s", type=_positive(float), default=20.0, help="time limit per measurement")
    g.add_argument("--request-timeout-s", type=_positive(float),
                   help="a request without a response by then counts as failed, and when none at all comes for "
                   "that long the server is restarted (default: 20x the first measured P99, 10 s at the least; "
                   "30 s until then)")
    g.add_argument("--shape", type=_shape, action="append", default=[], help="NAME:D1,D2 for an input with "
                   "dynamic dims, as config.pbtxt's dims: without the batch dimension")
    g.add_argument("--input-data", type=Path, help="real inputs, a JSON file in perf_analyzer's --input-data format")
    g.add_argument("--shared-memory", choices=[m.value for m in Memory], default="none",
                   help="pass inputs and outputs through system shared memory, or GPU memory (cuda: CUDA IPC, "
                        "so a trial measures the server and the GPU, not host copies), instead of gRPC")


def _add_study(p: argparse.ArgumentParser) -> None:
    p.add_argument("--storage", default=DEFAULT_STORAGE, help="Optuna storage URL")
    p.add_argument("--study-name", help="default: the only study in the storage")
    p.add_argument("--policy", choices=POLICIES, default="knee", help="how to choose from the Pareto front")
    p.add_argument("--slo-p95-ms", type=_positive(float), help="choose the highest throughput under this P95 "
                   "(default: the study's own SLO, if it was searched under one)")


def parser() -> argparse.ArgumentParser:
    p = _Parser(prog="tuner", description="Auto-tune a Triton model's config.pbtxt.")
    p.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = p.add_subparsers(dest="command", required=True)
    fmt = argparse.ArgumentDefaultsHelpFormatter
    s = sub.add_parser("search", help="run (or resume) a study and export the chosen config", formatter_class=fmt)
    _add_target(s)
    s.add_argument("--search-space", help="YAML file, or a name under search_spaces/ (default: the space for the "
                   "model's backend: default for onnxruntime, openvino, else generic)")
    s.add_argument("--trials", type=_positive(int), default=50, help="trials in the study, baseline included")
    s.add_argument("--storage", default=DEFAULT_STORAGE, help="Optuna storage URL")
    s.add_argument("--outage-s", type=_positive(float), default=OUTAGE_S, help="how long a storage or a remote "
                   "server out of reach (a database restarting, a network down) is waited for before the study stops, "
                   "to be resumed by the same command")
    s.add_argument("--study-name", help="default: the model name; the same name resumes the study")
    s.add_argument("--out", type=Path, default=Path("tuner_out"), help="where the chosen config is exported")
    s.add_argument("--policy", choices=POLICIES, default="knee", help="how to choose from the Pareto front")
    s.set_defaults(slos=())
    s.add_argument("--slo-p95-ms", action=_Slo, metavar="MS or MODEL=MS,...", help="P95 limit: a constraint the "
                   "sampler learns, and the export picks the highest throughput within it; with several --model, "
                   "one for each model (a=50,b=200) or one for all")
    s.add_argument("--max-memory-mib", type=_positive(float), help="memory limit for the server (its resident "
                   "memory under load): a constraint the sampler learns; configs over it are never exported")
    s.add_argument("--max-output-error", type=_positive(float), default=DEFAULT_MAX_ERROR,
                   help="a config whose outputs on fixed inputs differ from your config's by more than this "
                   "(largest difference / largest output magnitude) is infeasible: a constraint, never exported")
    s.add_argument("--objective", choices=[o.value for o in Objective], default=Objective.THROUGHPUT.value,
                   help="throughput: infer/s at the load given, against P95; goodput: requests/s within "
                   "--slo-p95-ms at the load given; capacity: the highest request rate held with P95 within "
                   "--slo-p95-ms (found per config in a few open-loop measurements)")
    s.add_argument("--cost", choices=[c.value for c in Cost], default=Cost.P95.value, help="what goodput or "
                   "capacity is weighed against: P95 (at capacity), the instances the config runs, or the "
                   "server's memory")
    s.add_argument("--seed", type=int, help="sampler seed")
    s.add_argument("--remeasure", type=_non_negative(int), default=2, metavar="ROUNDS", help="at the end, measure "
                   "the baseline and the Pareto candidates this many more times, alternately, and choose on the "
                   "medians (0: choose on the single measurements)")
    s.add_argument("--precision", type=_positive(float), default=PRECISION, help="racing: a proposed config is "
                   "measured until it is clearly behind the front, or until its throughput and P95 intervals are "
                   "within this fraction of their values")
    s.add_argument("--no-racing", action="store_true", help="measure every proposed config fully (--min-samples "
                   "and stable windows), like the baseline")
    s.add_argument("--keep-chosen", action="store_true", help="with --launcher remote: leave the exported config "
                   "loaded on the server instead of restoring the model's original config")
    s.add_argument("--workers", type=_positive(int), default=1, help="servers measuring trials of the study "
                   "in parallel on this host, each on its own GPU (--gpus) or its own share of the CPU cores; "
                   "other hosts join by running the same command on the same --storage")
    s.add_argument("--no-progress", action="store_true", help="no progress bar (there is none when stderr is not "
                   "a terminal: a log or a pipe)")
    _add_load(s)
    d = sub.add_parser("dashboard", help="serve optuna-dashboard on the study storage", formatter_class=fmt)
    d.add_argument("--storage", default=DEFAULT_STORAGE, help="Optuna storage URL")
    d.add_argument("--host", default="127.0.0.1", help="address to bind (127.0.0.1: this machine only)")
    d.add_argument("--port", type=_port, default=8080)
    r = sub.add_parser("report", help="Pareto picture, importances, front table and config diff",
                       formatter_class=fmt)
    _add_study(r)
    r.add_argument("--out", type=Path, default=Path("tuner_report"), help="folder for pareto.png, "
                   "importance.png and report.html")
    e = sub.add_parser("export", help="write a chosen trial's config.pbtxt (and verify it)", formatter_class=fmt)
    _add_study(e)
    e.add_argument("--trial", type=_non_negative(int), help="export this trial number instead of choosing by policy")
    e.add_argument("--out", type=Path, default=Path("tuner_out"), help="writes <out>/<model>/config.pbtxt")
    e.add_argument("--verify", action="store_true", help="deploy the export into a fresh embedded server "
                   "and measure it again, with the study's load settings")
    e.add_argument("--run-dir", type=Path, default=Path("tuner_runs"), help="where --verify runs its server")
    b = sub.add_parser("backends", help="build Triton's C++ backends for the embedded server, or list them",
                       formatter_class=fmt)
    bsub = b.add_subparsers(dest="action", required=True)
    bb = bsub.add_parser("build", help="build backends at the pinned revisions into the cache (built ones: no-op)",
                         formatter_class=fmt)
    bb.add_argument("names", nargs="+", choices=sorted(backends.RECIPES), metavar="BACKEND",
                    help=f"one or more of: {', '.join(sorted(backends.RECIPES))}")
    bb.add_argument("--source-dir", type=Path, default=backends.default_source_dir(),
                    help="a folder of the pinned sources (checkouts or tarballs) instead of fetching them from "
                    "GitHub; default $TUNER_BACKEND_SOURCES")
    bb.add_argument("--jobs", type=_positive(int), help="parallel compile jobs (default: all cores)")
    bsub.add_parser("list", help="what the embedded server has, and where")
    m = sub.add_parser("measure", help="measure one config, like perf_analyzer (no search)", formatter_class=fmt)
    _add_target(m)
    m.add_argument("--config", type=Path, help="a config.pbtxt to measure instead of the model's own")
    m.add_argument("--json", type=Path, help="also write the measurement here as JSON")
    _add_load(m)
    return p


def _target(args) -> Target:
    first, *shared = args.model or [None]
    return Target(Launcher(args.launcher), args.model_repository, first, args.url, args.host,
                  tuple(args.gpus) if isinstance(args.gpus, list) else args.gpus, args.run_dir, args.image,
                  args.docker_network, args.shm_size, args.calls, tuple(shared))


def _load(args) -> tuple[LoadSpec, Inputs]:
    arrivals = Arrivals() if args.arrivals == "poisson" else parse_arrivals(args.arrivals)
    mix = args.mix or (tuple((name, 1.0) for name in args.model) if len(args.model) > 1 else ())
    spec = LoadSpec(concurrency=args.concurrency, request_rate=args.request_rate, arrivals=arrivals,
                    warmup_s=args.warmup_s,
                    window_s=args.window_s, min_samples=args.min_samples, max_duration_s=args.max_measure_s,
                    request_timeout_s=args.request_timeout_s, mix=mix)
    return spec, Inputs(dict(args.shape) or None, args.input_data, Memory(args.shared_memory))


def options(args) -> Options:
    """The search's arguments as the typed options every part of the run (and each worker) gets."""
    spec, inputs = _load(args)
    return Options(_target(args), spec, inputs, args.search_space, args.trials, args.storage, args.study_name,
                   args.slo_p95_ms, args.max_memory_mib, args.max_output_error, args.seed, args.remeasure,
                   None if args.no_racing else args.precision, Goal(Objective(args.objective), Cost(args.cost)),
                   args.workers, not args.no_progress and sys.stderr.isatty(), args.slos, args.outage_s)


def cmd_search(args) -> int:
    study = search(options(args))
    return _finish(study, study.user_attrs["settings"]["model"], args)


def _writable(path: Path, option: str) -> None:
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


def cmd_measure(args) -> int:
    if args.json:
        _writable(args.json, "--json")
    spec, inputs = _load(args)
    config = modelconfig.read_config(args.config) if args.config else None
    outcome = measure_once(Options(_target(args), spec, inputs), config)
    if outcome.measurement is None:
        print(f"error: {outcome.reason}", file=sys.stderr)
        return Exit.NOT_MET
    print(measurement_text(outcome.measurement))
    if args.json:
        args.json.write_text(json.dumps(dataclasses.asdict(outcome.measurement), indent=2) + "\n")
    return Exit.OK


def _slo(args, study: optuna.Study) -> float | None:
    """The P95 limit a choice keeps to: the one given, else the one the study was searched under."""
    searched_under = (study.user_attrs.get("settings") or {}).get("slo_p95_ms")
    return args.slo_p95_ms if args.slo_p95_ms is not None else searched_under


def _finish(study: optuna.Study, model: str, args) -> int:
    trials, final, out = study.get_trials(deepcopy=False), confirmed(study), rejected(study)
    goal = goal_of(study.user_attrs["settings"])
    chosen = choose(final, args.policy, goal.chooses_within(_slo(args, study)))
    how = " (re-measured: medians)" if is_current(study) else ""
    print(f"\n{counts_line(trials, out)}\nPareto front{how}, and the baseline (* = exported):")
    print(front_table(final, baseline_of(final), chosen, goal))
    for line in failures(trials, out):
        print(f"failed {line}")
    settings = study.user_attrs["settings"]
    for text in (steps_text(chosen), models_text(chosen, baseline_of(final), settings)) if chosen else ():
        if text:
            print(text)
    status = _export(study, model, chosen, args)
    if chosen is not None and status == 0 and args.launcher == "remote" and args.keep_chosen:
        with RemoteServer(args.url) as server:
            server.control.load(model, modelconfig.to_json(modelconfig.parse_config(chosen.user_attrs[Key.CONFIG])))
        print(f"left trial #{chosen.number}'s config loaded on {args.url}")
    return status


def _export(study: optuna.Study, model: str, chosen, args) -> int:
    slo = _slo(args, study)
    if chosen is None:
        settings = study.user_attrs.get("settings") or {}
        limits = [f"P95 <= {slo} ms"] * bool(slo) + \
            [f"{name}'s P95 <= {slo:g} ms" for name, slo in (settings.get("model_slos") or {}).items()] + \
            [f"memory <= {settings.get('max_memory_mib')} MiB"] * bool(settings.get("max_memory_mib"))
        print(f"\nno measured trial meets {' and '.join(limits) or 'the limits'}: nothing exported", file=sys.stderr)
        return Exit.NOT_MET
    context = {"study": study.study_name, "storage": args.storage, "search_settings": study.user_attrs.get("settings"),
               "policy": "trial" if getattr(args, "trial", None) is not None else
               ("slo" if slo else args.policy), "slo_p95_ms": slo,
               **study.user_attrs.get("context", {})}
    goal = goal_of(study.user_attrs["settings"])
    found = _ceiling(chosen, model, context)
    if found is not None:  # kept with the study too, for `report`
        context["ceiling"] = {**found.to_json(), "trial": chosen.number, "fraction": chosen.values[0] / found.rate}
        study.set_user_attr("ceiling", context["ceiling"])
    path = export(chosen, args.out, model, context)
    base = baseline_of(confirmed(study))
    gain = (f", {chosen.values[0] / base.values[0]:.2f}x the baseline's {goal.objective.value}"
            if base and base.values[0] > 0 else "")
    counted_against = (study.user_attrs.get("settings") or {}).get("slo_p95_ms")  # what goodput was counted within
    print(f"\nexported trial #{chosen.number} ({goal.text(chosen.values, counted_against)}{gain}) to {path}")
    if found is not None:
        print(ceiling_text(context["ceiling"], chosen))
    print(f"watch or browse the study: python -m tuner dashboard --storage {args.storage}")
    return Exit.OK


def _ceiling(chosen, model: str, context: dict) -> Ceiling | None:
    """The engine-only ceiling of the exported config's model, where the model's files are here and
    its framework can run it on the GPU (tuner.ceiling)."""
    config = modelconfig.parse_config(chosen.user_attrs[Key.CONFIG])
    repository = context.get("model_repository")
    if repository is None or not ceiling.measurable(config):
        return None
    return ceiling.measure(Path(repository) / model, config)


def _open_existing(args) -> optuna.Study:
    rdb = storage.existing(args.storage)
    names = [s.study_name for s in optuna.get_all_study_summaries(rdb)]
    if not names:
        raise ConfigError(f"--storage {args.storage}: holds no study yet (run a search first)")
    name = args.study_name or (names[0] if len(names) == 1 else None)
    if name is None or name not in names:
        raise ConfigError(f"--storage {args.storage}: " + (f"no study '{name}'; it holds {', '.join(names)}" if name
                          else f"{len(names)} studies ({', '.join(names)}); name one with --study-name"))
    return optuna.load_study(study_name=name, storage=rdb)


def cmd_dashboard(args) -> int:
    from optuna_dashboard import run_server

    rdb = storage.existing(args.storage)
    print(f"optuna-dashboard on http://{args.host}:{args.port}/ for {args.storage} (Ctrl-C to stop)", flush=True)
    run_server(rdb, host=args.host, port=args.port)
    return Exit.OK


def cmd_report(args) -> int:
    from tuner import report

    study = _open_existing(args)
    trials, final, out = study.get_trials(deepcopy=False), confirmed(study), rejected(study)
    goal = goal_of(study.user_attrs["settings"])
    base, chosen = baseline_of(final), choose(final, args.policy, goal.chooses_within(_slo(args, study)))
    args.out.mkdir(parents=True, exist_ok=True)
    images = [(args.out / "pareto.png", f"{goal.objective.value} against {goal.cost.value}; the front, the "
               "baseline and the choice")]
    report.pareto_png(trials, base, chosen, images[0][0], title=f"study {study.study_name}:", goal=goal)
    curves = [t for t in (base, chosen) if t is not None and t.user_attrs.get(Key.CURVE)]
    if curves:
        report.curves_png(curves, args.out / "curves.png", (study.user_attrs.get("settings") or {}).get("slo_p95_ms"))
        images.append((args.out / "curves.png", "P95 against offered request rate, from the capacity search's "
                       "measurements: the baseline and the choice"))
    scores = report.importances(study)
    if scores:
        report.importance_png(scores, args.out / "importance.png")
        images.append((args.out / "importance.png", "which knobs mattered for high throughput, and for low P95"))
    table = front_table(final, base, chosen, goal)
    diff = report.config_diff(base, chosen) if base and chosen else ""
    summary = "\n".join(filter(None, [counts_line(trials, out), steps_text(chosen) if chosen else "",
                                      models_text(chosen, base, study.user_attrs["settings"]) if chosen else ""]))
    measured = study.user_attrs.get("ceiling") or {}
    ceiling_of = next((t for t in (*final, *trials) if t.number == measured.get("trial") and t.values), None)
    if ceiling_of is not None:
        summary += "\n" + ceiling_text(measured, ceiling_of)
    (args.out / "report.html").write_text(report.html_page(f"tuner report: {study.study_name}", table, diff,
                                                           images, summary))
    print(f"{summary}\n{table}\n\n{diff}")
    print(f"wrote {', '.join(str(p) for p, _ in images)} and {args.out / 'report.html'}")
    return Exit.OK


def cmd_export(args) -> int:
    from tuner.export import verify

    study = _open_existing(args)
    model = (study.user_attrs.get("settings") or {}).get("model") or study.study_name
    chosen: FrozenTrial | None
    if args.trial is not None:
        found = ([t for t in confirmed(study) if t.number == args.trial]
                 or [t for t in study.get_trials(deepcopy=False) if t.number == args.trial])
        if not found or found[0].values is None:
            raise ConfigError(f"--trial {args.trial}: no measured trial with that number in '{study.study_name}'")
        chosen = found[0]
    else:
        chosen = choose(confirmed(study), args.policy, goal_of(study.user_attrs["settings"]).chooses_within(
            _slo(args, study)))
    if args.verify and not goal_of(study.user_attrs["settings"]).is_default:
        raise ConfigError("--verify repeats a throughput study's measurement; for a goodput or capacity study, "
                          "measure the export with `tuner measure --config ... --request-rate RATE`")
    status = _export(study, model, chosen, args)
    if status or not args.verify or chosen is None:
        return status
    context = study.user_attrs.get("context", {})
    if not context.get("model_repository"):
        raise ConfigError("--verify needs the model's files: this study was made with a remote server, which reads "
                          "its own repository; copy the export there and run `tuner measure` against it")
    verdict = verify(args.out, Path(context["model_repository"]), model, list(chosen.user_attrs.get(Key.MEMBERS) or {}),
                     verify_server(context), LoadSpec.from_json(context["load"]),
                     Inputs.from_json(context.get("inputs")), chosen, args.run_dir / "verify")
    print(verdict.text(chosen))
    return Exit.OK if verdict.within_ci else Exit.NOT_MET  # not measured, or not what the study measured


def cmd_backends(args) -> int:
    if args.action == "build":
        for name in args.names:
            backends.build(name, args.source_dir, args.jobs)
        return Exit.OK
    print(f"cache: {backends.cache_root()}")
    print(f"{'backend':12} {'links':26} built")
    print(f"{'python':12} {'(in nvidia-pytriton)':26} yes")
    for row in backends.status():
        print(f"{row.backend:12} {row.library:26} {row.folder or 'no: python -m tuner backends build ' + row.backend}")
    return Exit.OK


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        commands = {"search": cmd_search, "measure": cmd_measure, "dashboard": cmd_dashboard,
                    "report": cmd_report, "export": cmd_export, "backends": cmd_backends}
        return commands[args.command](args)
    except EnvironmentBroken as e:
        print(f"error: {e}\nthe study is saved; rerun the same command to resume it", file=sys.stderr)
        return Exit.ENVIRONMENT
    except TunerError as e:
        print(f"error: {e}", file=sys.stderr)
        return Exit.BAD_INPUT
    except KeyboardInterrupt:
        print("\ninterrupted: the server is stopped and the study saved; rerun the same command to resume",
              file=sys.stderr)
        return Exit.INTERRUPTED
