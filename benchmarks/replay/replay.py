"""Which sampler finds the throughput / P95 front fastest? Replays grid.json (real measurements of
every point of space.yaml on the demo detector, from record_grid.py) as a deterministic objective.

    python benchmarks/replay/replay.py [--seeds 20] [--trials 50] [--grid grid.json]

grid.json is the real ONNX Runtime demo (2 cores); grid_python_demo.json the python model that stood
in for it before.

For each sampler and seed, a study of `--trials` trials over space.yaml; each trial's values are
the grid's measurement of the config it picked (a config that failed in the grid fails the trial).
Trials are counted as a repeated config was counted before (a repeat is a trial, told its values
again; a failure is FAIL), except in the last row, which does what the tuner does now: `--trials`
distinct configs, a repeat told as FAIL and not counted, a failed config told as PRUNED with a
violated constraint (tuner.study.trials). Quality is the
hypervolume of the trials' front as a fraction of the whole grid's, both objectives scaled to the
grid's range, the reference point the grid's worst throughput and worst P95. Prints the median (and
the 25th-75th percentiles) after 10/20/30/50 trials and writes benchmarks/results/replay.json.
The samplers start from nothing; the last row is the tuner as shipped, with the space's start_with
config queued first (as search_spaces/default.yaml does). GP needs scipy and torch (pip install scipy
torch==2.13.0), which the tuner itself does not.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import optuna

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))

from benchmarks.common import table, write_json  # noqa: E402
from benchmarks.replay.record_grid import GRID, SPACE, key  # noqa: E402
from tuner.config.space import load_space  # noqa: E402
from tuner.study.study import MAX_REPEATS  # noqa: E402
from tuner.study.trials import CONFIG_FAILED  # noqa: E402

CHECKPOINTS = (10, 20, 30, 50)


def _tuner_default(seed: int) -> optuna.samplers.BaseSampler:
    return optuna.samplers.TPESampler(multivariate=True, n_startup_trials=8, constant_liar=True, seed=seed)


def samplers(seed: int) -> dict[str, tuple[optuna.samplers.BaseSampler, bool]]:
    """name -> (sampler, whether the space's start_with configs are queued first). The samplers
    are compared on their own; the last row is the tuner as shipped, start_with included."""
    return {
        "TPE multivariate (tuner default)": (_tuner_default(seed), False),
        "TPE independent": (optuna.samplers.TPESampler(seed=seed), False),
        "NSGA-II (population 10)": (optuna.samplers.NSGAIISampler(population_size=10, seed=seed), False),
        "GP": (optuna.samplers.GPSampler(seed=seed, n_startup_trials=8), False),
        "random": (optuna.samplers.RandomSampler(seed=seed), False),
        "tuner before (TPE + start_with, repeats counted)": (_tuner_default(seed), True),
        "tuner as shipped (+ distinct configs, failures learned)": (_tuner_default(seed), True),
    }


def hypervolume(points: np.ndarray, ref: np.ndarray) -> float:
    """2-D hypervolume of points to minimize on both axes, against reference point `ref`."""
    points = points[(points < ref).all(axis=1)]
    volume, best_y = 0.0, ref[1]
    for x, y in points[np.argsort(points[:, 0])]:
        if y < best_y:
            volume += (ref[0] - x) * (best_y - y)
            best_y = y
    return volume


class Grid:
    def __init__(self, path: Path):
        self.points = json.loads(path.read_text())["points"]
        ok = np.array([[v["throughput"], v["p95_ms"]] for v in self.points.values() if "throughput" in v])
        self.low, self.high = ok.min(axis=0), ok.max(axis=0)
        self.full = self.volume(ok)
        front = [v for v in ok if not any((o[0] >= v[0]) & (o[1] <= v[1]) & ((o != v).any()) for o in ok)]
        self.front = sorted((round(float(t), 1), round(float(p), 1)) for t, p in front)  # (infer/s, P95 ms)

    def scaled(self, values: np.ndarray) -> np.ndarray:
        """Both to minimize, in [0, 1]: 0 = the grid's best, 1 = its worst."""
        thr = (self.high[0] - values[:, 0]) / (self.high[0] - self.low[0])
        p95 = (values[:, 1] - self.low[1]) / (self.high[1] - self.low[1])
        return np.column_stack([thr, p95])

    def volume(self, values: np.ndarray) -> float:
        return hypervolume(self.scaled(values), np.array([1.0, 1.0])) if len(values) else 0.0


def run(grid: Grid, space, sampler: optuna.samplers.BaseSampler, trials: int, start_with: bool,
        distinct: bool = False) -> list[float]:
    """Hypervolume fraction after each trial (with `distinct`, after each distinct config)."""
    study = optuna.create_study(directions=["maximize", "minimize"], sampler=sampler)
    for params in space.start_with if start_with else ():  # as the tuner does: known-good configs first
        study.enqueue_trial(params)
    found: list[list[float]] = []
    curve: list[float] = []
    seen: set[str] = set()
    repeats = 0
    while len(curve) < trials and repeats < MAX_REPEATS:
        guided = study.sampler
        if repeats:  # after a repeat, as the tuner does: one proposal at random
            study.sampler = optuna.samplers.RandomSampler(seed=len(study.trials))
        trial = study.ask()
        knobs = space.suggest(trial)
        study.sampler = guided
        params = {k: v for k, v in knobs.items() if k != "parameters"}
        params.update({f"param.{k}": v for k, v in knobs.get("parameters", {}).items()})
        point = grid.points[key(params)]
        if distinct and key(params) in seen:
            study.tell(trial, state=optuna.trial.TrialState.FAIL)  # answered, not counted, not told again
            repeats += 1
            continue
        seen.add(key(params))
        repeats = 0
        if "throughput" in point:
            study.tell(trial, [point["throughput"], point["p95_ms"]])
            found.append([point["throughput"], point["p95_ms"]])
        elif distinct:
            trial.set_constraint(CONFIG_FAILED, 1.0)
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
        else:
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
        curve.append(grid.volume(np.array(found)) / grid.full)
    return curve + [curve[-1]] * (trials - len(curve))  # a space measured out keeps its last value


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, default=20)
    ap.add_argument("--trials", type=int, default=50)
    ap.add_argument("--only", help="run only the samplers whose name contains this")
    ap.add_argument("--grid", type=Path, default=GRID, help="a recorded grid (record_grid.py)")
    args = ap.parse_args()
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    grid, space = Grid(args.grid), load_space(SPACE)
    curves: dict[str, list[list[float]]] = {}
    seconds: dict[str, float] = {}
    for seed in range(args.seeds):
        for name, (sampler, start_with) in samplers(seed).items():
            if args.only and args.only not in name:
                continue
            start = time.perf_counter()
            curves.setdefault(name, []).append(run(grid, space, sampler, args.trials, start_with,
                                                   distinct="as shipped" in name))
            seconds[name] = seconds.get(name, 0.0) + time.perf_counter() - start
    rows, summary = [], {}
    marks = [n for n in CHECKPOINTS if n <= args.trials]
    for name, runs in curves.items():
        at = np.array(runs)[:, [n - 1 for n in marks]]
        med, q1, q3 = np.median(at, axis=0), np.percentile(at, 25, axis=0), np.percentile(at, 75, axis=0)
        reach = [next((i + 1 for i, v in enumerate(r) if v >= 0.95), None) for r in runs]
        reached = sorted(n for n in reach if n is not None)
        median_reach = reached[len(runs) // 2] if len(reached) > len(runs) // 2 else None
        rows.append([name, *(f"{m:.3f} ({a:.2f}-{b:.2f})" for m, a, b in zip(med, q1, q3, strict=True)),
                     median_reach or f">{args.trials}", f"{seconds[name] / len(runs):.2f}"])
        summary[name] = {"median": dict(zip(marks, med.round(4).tolist(), strict=True)),
                         "q25": dict(zip(marks, q1.round(4).tolist(), strict=True)), "q75": dict(zip(marks, q3.round(4).tolist(), strict=True)),
                         "median_trials_to_95pct": median_reach, "seconds_per_study": seconds[name] / len(runs)}
    print(f"grid: {args.grid.name}, {len(grid.points)} configs of {SPACE.name}, front {grid.front}; hypervolume fraction of the grid's front, "
          f"median (25th-75th percentile) over {args.seeds} seeds")
    print(table(["sampler", *(f"after {n}" for n in marks), "trials to 95% (median)", "s/study"], rows))
    path = write_json(f"replay_{args.grid.stem}", {"seeds": args.seeds, "trials": args.trials, "grid": args.grid.name,
                                                   "grid_points": len(grid.points), "samplers": summary})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
