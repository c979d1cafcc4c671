"""Search on landscapes nobody tuned for: random closed-form models served by the real embedded
Triton, searched by the model-guided search (`--guide model`), by TPE alone (`--guide tpe`) and by
the shipped space's `start_with` (the python backend's space, generic.yaml, has none: that is the
baseline alone), each against the true optimum computed from the formula.

Each landscape is the tests' tiny python model with a random cost: an execution of b requests on a
config of n instances sleeps

    (delay_ms * ceil(b / useful_batch) + per_request_ms * b) * (1 + sharing * (n - 1))

(a fixed cost, a cost per request, no gain past a random batch size, instances that slow each
other). One in four is flat: no gain from batching (useful_batch 1) and none from instances
(sharing 1). The true optimum is the best throughput over every config of the space at the load
(concurrency 8), from the simulation of Triton's batcher (tuner/measure/simulate.py) with the
formula as the execution time plus what the python backend adds to an execution and a request's
trip, both measured here first.

    python benchmarks/landscapes.py [--landscapes 20] [--trials 25] [--parallel 2]

The fraction of the optimum after k trials is that of the config measured best so far, its
throughput from the formula (as measured, in brackets: the simulation and the server differ by a
few percent, so a measured fraction compares the search with an optimum it cannot reach exactly).
Prints a table and writes the JSON (--out).
"""
from __future__ import annotations

import argparse
import json
import math
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

import optuna  # noqa: E402

from benchmarks.common import table, write_json  # noqa: E402
from tuner.config.modelconfig import apply_knobs, read_config, render_pbtxt  # noqa: E402
from tuner.config.shipped import SPACES  # noqa: E402
from tuner.config.space import load_space  # noqa: E402
from tuner.measure.evaluate import Evaluator  # noqa: E402
from tuner.measure.load import LoadSpec  # noqa: E402
from tuner.measure.simulate import simulate  # noqa: E402
from tuner.server import EmbeddedServer  # noqa: E402
from tuner.study import costmodel, guide  # noqa: E402
from tuner.study import trials as tr  # noqa: E402

TINY = HERE.parent / "tests" / "models" / "tiny"
METHODS = ("guided", "tpe", "start_with")
CONCURRENCY = 8


def landscape(k: int, seed: int) -> dict:
    rng = random.Random(seed * 1000 + k)
    if k % 4 == 3:  # flat: neither batching nor instances help
        return {"delay_ms": round(rng.uniform(2, 8), 2), "delay_per_request_ms": round(rng.uniform(0.5, 3), 2),
                "useful_batch": 1, "sharing": 1.0}
    return {"delay_ms": round(math.exp(rng.uniform(math.log(2), math.log(20))), 2),
            "delay_per_request_ms": round(rng.uniform(0.1, 2.0), 2), "useful_batch": rng.choice([2, 4, 8, 16]),
            "sharing": round(rng.uniform(0.0, 0.8), 2)}


def repository(root: Path, params: dict) -> Path:
    """A repository under `root` holding the tiny model with the landscape's cost `params`."""
    shutil.copytree(TINY, root / "tiny")
    base = read_config(root / "tiny" / "config.pbtxt")
    (root / "tiny" / "config.pbtxt").write_text(render_pbtxt(apply_knobs(
        base, {"parameters": {k: str(v) for k, v in params.items()}})))
    return root


def overheads(work: Path) -> tuple[float, float, float]:
    """What the python backend adds to an execution, a request's trip outside Triton and the
    client's CPU time for each answer (ms): a 1 ms sleep at concurrency 1, as Triton times it and
    as the client does."""
    repo = repository(work / "calibrate", {"delay_ms": 1})
    base = read_config(repo / "tiny" / "config.pbtxt")
    with EmbeddedServer(repo, work / "calibrate-run") as server, \
            Evaluator(server, "tiny", LoadSpec(concurrency=1, min_samples=1000, max_duration_s=10)) as evaluator:
        m = evaluator.evaluate(base).measurement
    assert m is not None and m.server is not None
    executed = m.server.compute_input_ms + m.server.compute_infer_ms + m.server.compute_output_ms
    return executed - 1.0, 1e3 / m.throughput - executed, m.client_cpu / m.throughput * 1e3


def _execution_s(params: dict, overhead_ms: float):
    def execution_s(b: int, n: int) -> float:
        rounds = math.ceil(b / params["useful_batch"])
        sleep = (params["delay_ms"] * rounds + params["delay_per_request_ms"] * b) * (1 + params["sharing"] * (n - 1))
        return (sleep + overhead_ms) / 1e3
    return execution_s


def formula(params: dict, config, calibration: tuple[float, float, float]) -> float:
    """A config's throughput on the landscape at the load, from the formula (with the server's and
    the client's costs of `overheads`)."""
    overhead_ms, trip_ms, gap_ms = calibration
    batcher = costmodel.batcher_of(config)
    cost = _execution_s(params, overhead_ms)
    return simulate(batcher, lambda b: cost(b, batcher.instances), clients=CONCURRENCY, trip_s=trip_ms / 1e3,
                    gap_s=gap_ms / 1e3, requests=3000).throughput


def optimum(params: dict, space, base, calibration: tuple[float, float, float]) -> tuple[float, dict]:
    """The best throughput over every config of the space at the load, from the formula."""
    found = [(formula(params, config, calibration), knobs) for knobs, (config,) in guide.candidates(space, base, {})]
    return max(found, key=lambda f: f[0])


def search(method: str, k: int, params: dict, work: Path, trials: int, seed: int) -> tuple[float, int, str]:
    folder = work / f"{method}-{k}"
    repo = repository(folder / "repo", params)
    command = [sys.executable, "-m", "tuner", "search", "--model-repository", str(repo), "--model", "tiny",
               "--search-space", "generic", "--trials", str(1 if method == "start_with" else trials),
               "--guide", "model" if method == "guided" else "tpe", "--remeasure", "0", "--storage",
               f"sqlite:///{folder / 'study.db'}", "--min-samples", "300", "--max-measure-s", "5", "--concurrency",
               str(CONCURRENCY), "--seed", str(seed), "--no-progress", "--out", str(folder / "out"),
               "--run-dir", str(folder / "runs")]
    start = time.monotonic()
    done = subprocess.run(command, capture_output=True, text=True, timeout=1800)
    return time.monotonic() - start, done.returncode, done.stderr[-500:] if done.returncode else ""


def read(method: str, k: int, params: dict, work: Path, calibration: tuple[float, float, float]) -> dict:
    """What a search left in its study: each counted trial's measured throughput and its config's
    throughput from the formula, in order, and how the search ended."""
    study = optuna.load_study(study_name="tiny", storage=f"sqlite:///{work / f'{method}-{k}' / 'study.db'}")
    counted = sorted(tr.counted(study.get_trials()), key=lambda t: t.number)
    begun = min(t.datetime_start for t in counted if t.datetime_start)
    return {"method": method, "landscape": k,
            "throughputs": [t.values[0] if t.values else 0.0 for t in counted],
            "formula": [formula(params, costmodel.config_of(t), calibration) for t in counted],
            "elapsed_s": [(t.datetime_complete - begun).total_seconds() for t in counted if t.datetime_complete],
            "stopped": study.user_attrs.get(guide.DONE_ATTR), "prediction_errors": guide.errors(counted)}


def reached(result: dict, best: float, after: int, measured: bool = False) -> float:
    """The fraction of the optimum after `after` trials: of the config measured best so far, its
    throughput from the formula (or as measured)."""
    shown = result["throughputs"][:after]
    top = max(range(len(shown)), key=lambda i: shown[i])
    return (shown[top] if measured else result["formula"][top]) / best


def trials_to(result: dict, best: float, measured: bool = False, fraction: float = 0.95) -> int | None:
    for i in range(1, len(result["throughputs"]) + 1):
        if reached(result, best, i, measured) >= fraction:
            return i
    return None


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--landscapes", type=int, default=20)
    ap.add_argument("--first", type=int, default=0, help="the first landscape's number (to split the runs)")
    ap.add_argument("--trials", type=int, default=25)
    ap.add_argument("--parallel", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--out", type=Path, help="the JSON's path (default: benchmarks/results/landscapes_FIRST-LAST.json)")
    ap.add_argument("--reread", type=Path, help="a work folder of an earlier run: read its studies again, search nothing")
    args = ap.parse_args()
    work = args.reread or Path(tempfile.mkdtemp(prefix="landscapes-"))
    calibration = work / "calibration.json"
    if args.reread:
        measured = tuple(json.loads(calibration.read_text()))
    else:
        measured = overheads(work)
        calibration.write_text(json.dumps(measured))
    print("the python backend adds {:.2f} ms to an execution; a request's trip is {:.2f} ms; the client spends "
          "{:.2f} ms on each answer".format(*measured), flush=True)
    space = load_space(SPACES / "generic.yaml")
    base = read_config(TINY / "config.pbtxt")
    numbers = range(args.first, args.first + args.landscapes)
    scapes = {k: landscape(k, args.seed) for k in numbers}
    truths = {k: optimum(p, space, base, measured) for k, p in scapes.items()}
    jobs = [(m, k) for k in numbers for m in args.methods.split(",")]
    walls: dict = {}
    if not args.reread:
        with ThreadPoolExecutor(args.parallel) as pool:
            walls = dict(zip(jobs, pool.map(lambda job: search(job[0], job[1], scapes[job[1]], work, args.trials,
                                                               args.seed + job[1]), jobs), strict=True))
    results = [{**read(m, k, scapes[k], work, measured),
                **dict(zip(("wall_s", "returncode", "error"), walls.get((m, k), (None, 0, "")), strict=True))}
               for m, k in jobs]
    rows, summary = [], {}
    for method in args.methods.split(","):
        mine = [r for r in results if r["method"] == method]
        fractions = {n: statistics.median(reached(r, truths[r["landscape"]][0], n) for r in mine) for n in (5, 10, 25)}
        as_found = {n: statistics.median(reached(r, truths[r["landscape"]][0], n, True) for r in mine)
                    for n in (5, 10, 25)}
        needed = [trials_to(r, truths[r["landscape"]][0]) for r in mine]
        reached_95 = sorted(n if n is not None else math.inf for n in needed)
        as_measured = sorted(n if n is not None else math.inf
                             for n in (trials_to(r, truths[r["landscape"]][0], True) for r in mine))
        errors = [abs(e) for r in mine for e in r["prediction_errors"]]
        flat = [r for r in mine if r["landscape"] % 4 == 3]
        summary[method] = {"median_fraction": fractions, "median_fraction_as_measured": as_found,
                           "median_trials_to_95": statistics.median(reached_95),
                           "median_trials_to_95_as_measured": statistics.median(as_measured),
                           "never_95": sum(n is None for n in needed),
                           "median_prediction_error": statistics.median(errors) if errors else None,
                           "flat_trials": [len(r["throughputs"]) for r in flat],
                           "flat_s": [round(r["elapsed_s"][-1], 1) for r in flat], "failed_runs": sum(
                               r["returncode"] != 0 for r in mine)}
        s = summary[method]
        rows.append([method, *(f"{fractions[n]:.2f} ({as_found[n]:.2f})" for n in (5, 10, 25)),
                     f"{s['median_trials_to_95']} ({s['median_trials_to_95_as_measured']})", s["never_95"],
                     "" if s["median_prediction_error"] is None else f"{s['median_prediction_error']:.1%}",
                     "/".join(map(str, s["flat_trials"])), "/".join(map(str, s["flat_s"]))])
    print(table(["method", "after 5", "after 10", "after 25", "trials to 95%", "never", "pred. error",
                 "flat: trials", "flat: s"], rows))
    write_json(f"landscapes_{args.first}-{args.first + args.landscapes - 1}", {
        "calibration_ms": dict(zip(("overhead", "trip", "gap"), measured, strict=True)), "landscapes": scapes,
        "optimum": {k: {"throughput": t, "knobs": w} for k, (t, w) in truths.items()},
        "summary": summary, "runs": results}, args.out)
    print(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
