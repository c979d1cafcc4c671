"""The command line's grammar: every command, its options, and typed parsers whose refusals name
the option and what it takes, in one line."""
from __future__ import annotations

import argparse
from pathlib import Path

from tuner import __version__, backends
from tuner.faults import OUTAGE_S
from tuner.measure.agreement import DEFAULT_MAX_ERROR
from tuner.measure.inputs import Memory
from tuner.measure.load import PRECISION
from tuner.run import DEFAULT_STORAGE
from tuner.server import DEFAULT_IMAGE
from tuner.study.goal import Cost, Objective
from tuner.study.selection import POLICIES


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
    """`--slo-p95-ms MS`, one limit for every model, or `NAME=MS,...`, one per model (into `model_slos`)."""

    def __call__(self, parser, namespace, text, option_string=None):
        try:
            if "=" in text:
                namespace.model_slos = _shares(text)
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
    s.set_defaults(model_slos=())
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
    s.add_argument("--guide", choices=["model", "tpe"], default="tpe", help="model: after the baseline, a "
                   "performance model fitted from Triton's per-batch statistics proposes the configs it predicts "
                   "best, and ends the search once nothing unmeasured is predicted to beat the best; tpe: Optuna's "
                   "TPE sampler proposes every config. The model predicts instances, batching, max batch, queue "
                   "delay and preferred sizes of one model, or of each step of an ensemble, at throughput against "
                   "P95; other studies use TPE")
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
