"""What a run is asked to do: which model on which server (Target), and everything a search or
one of its workers needs (Options, picklable: workers receive it)."""
from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from tuner.faults import OUTAGE_S
from tuner.measure.agreement import DEFAULT_MAX_ERROR
from tuner.measure.inputs import Inputs
from tuner.measure.load import PRECISION, LoadSpec
from tuner.server import DEFAULT_IMAGE
from tuner.study.goal import Goal

DEFAULT_STORAGE = "sqlite:///tuner_runs/tuner.db"


class Launcher(str, Enum):
    EMBEDDED = "embedded"  # the tritonserver of the nvidia-pytriton wheel
    DOCKER = "docker"  # a tritonserver container
    REMOTE = "remote"  # a server already running


@dataclass(frozen=True, kw_only=True)
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


@dataclass(frozen=True, kw_only=True)
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
    guided: bool = False  # the performance model proposes configs and ends the search (tuner.study.guide)
    goal: Goal = Goal()  # what is raised and what lowered: throughput against P95 by default
    workers: int = 1
    progress: bool = True
    model_slos: tuple[tuple[str, float], ...] = ()  # several models: each one's own P95 limit (--slo-p95-ms a=50,b=200)
    outage_s: float = OUTAGE_S  # a storage or remote server out of reach this long stops the study
