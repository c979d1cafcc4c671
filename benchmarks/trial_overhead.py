"""Per-trial overhead of a finished study: each measured trial's wall time minus the time its
measurement window ran (metrics.duration_s). What is left is the reload, the output-agreement check,
the warm-up, the sampler and the storage.

    python benchmarks/trial_overhead.py --storage sqlite:///tuner_runs/tuner.db [--study-name detector]

Prints a small table and writes benchmarks/results/trial_overhead_<study>.json.
"""
from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

import optuna
from optuna.trial import TrialState

HERE = Path(__file__).resolve().parent


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--storage", default="sqlite:///tuner_runs/tuner.db")
    p.add_argument("--study-name", default="detector")
    args = p.parse_args()
    study = optuna.load_study(study_name=args.study_name, storage=args.storage)
    rows = []
    for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        if "duplicate_of" in t.user_attrs or "metrics" not in t.user_attrs or not (t.datetime_start and t.datetime_complete):
            continue  # answered from an earlier trial: nothing was measured
        wall = (t.datetime_complete - t.datetime_start).total_seconds()
        window = t.user_attrs["metrics"]["duration_s"]
        rows.append({"trial": t.number, "wall_s": round(wall, 3), "window_s": round(window, 3),
                     "overhead_s": round(wall - window, 3), "load_s": t.user_attrs.get("load_s"),
                     "screened": bool(t.user_attrs.get("screened"))})
    overheads = [r["overhead_s"] for r in rows]
    loads = [r["load_s"] for r in rows if r["load_s"] is not None]
    summary = {"study": args.study_name, "trials": len(rows), "median_overhead_s": statistics.median(overheads),
               "p90_overhead_s": sorted(overheads)[int(0.9 * (len(overheads) - 1))],
               "median_load_s": statistics.median(loads), "median_window_s": statistics.median(r["window_s"] for r in rows)}
    print(f"{'measured trials':24} {summary['trials']}")
    for key in ("median_overhead_s", "p90_overhead_s", "median_load_s", "median_window_s"):
        print(f"{key:24} {summary[key]:.3f}")
    out = HERE / "results" / f"trial_overhead_{args.study_name}.json"
    out.write_text(json.dumps({**summary, "rows": rows}, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
