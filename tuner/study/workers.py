"""Several workers on this host, one process each, measuring trials of one shared study.

Coordination is Optuna's own storage (the shared queue, heartbeats): this module only starts the
processes, gives each its share of the CPU cores, shows the study's progress while they run, and
reports any that stopped early.
"""
from __future__ import annotations

import multiprocessing
import os
import sys
import time
from collections.abc import Callable
from typing import Any

import optuna
from tqdm import tqdm

from tuner.errors import TunerError
from tuner.faults import EnvironmentBroken
from tuner.study.study import best_text
from tuner.study.trials import counted


def _main(work: Callable[[Any, int], Any], options, index: int, cores: list[int] | None) -> None:
    """A worker process (spawned, so it starts clean of the parent's threads and connections)."""
    if cores:
        os.sched_setaffinity(0, cores)  # the server it starts inherits the same cores
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        work(options, index)
    except EnvironmentBroken as e:
        print(f"error: worker-{index}: {e}", file=sys.stderr)
        sys.exit(EnvironmentBroken.exit_code)
    except TunerError as e:
        print(f"error: worker-{index}: {e}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        sys.exit(130)


def core_shares(workers: int) -> list[list[int] | None]:
    """This process's CPU cores cut into one contiguous share per worker (none if too few)."""
    cores = sorted(os.sched_getaffinity(0))
    if len(cores) < workers:
        return [None] * workers
    size = len(cores) // workers
    return [cores[i * size:(i + 1) * size] for i in range(workers)]


def run_workers(work: Callable[[Any, int], Any], options, study: optuna.Study, workers: int, trials: int,
                slo_p95_ms: float | None = None, progress: bool = True) -> None:
    """Runs `work(options, i)` for i in 0..workers-1, each in its own process, until all have ended."""
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_main, args=(work, options, i, cores), name=f"worker-{i}")
             for i, cores in enumerate(core_shares(workers))]
    for proc in procs:
        proc.start()
    try:
        with tqdm(total=trials, disable=not progress, unit="trial", dynamic_ncols=True) as bar:
            while True:
                running = any(p.is_alive() for p in procs)
                bar.update(min(len(counted(study.get_trials(deepcopy=False))), trials) - bar.n)
                if not running:
                    break
                bar.set_postfix_str(best_text(study, slo_p95_ms))
                time.sleep(2)
    except KeyboardInterrupt:  # the workers got the same Ctrl-C: let them queue their trials again
        for proc in procs:
            proc.join(timeout=60)
        raise
    failed = [f"{p.name} (exit code {p.exitcode})" for p in procs if p.exitcode != 0]
    if failed:
        raise TunerError(f"{', '.join(failed)} stopped early (their errors are above)")
