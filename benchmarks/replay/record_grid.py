"""Measures every point of space.yaml on the demo detector once, into grid.json (resumable).

    python benchmarks/replay/record_grid.py [--min-samples 400]

One embedded Triton, one hot reload per point, the tuner's own measurement. Points already in
grid.json are skipped, so an interrupted recording goes on where it stopped. replay.py then uses
the file as a deterministic objective to compare samplers without a server.
"""
from __future__ import annotations

import argparse
import itertools
import json
import shutil
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))

from tuner.config.modelconfig import apply_knobs, read_config  # noqa: E402
from tuner.config.shipped import DEMO_REPOSITORY  # noqa: E402
from tuner.config.space import Choice, SearchSpace, load_space  # noqa: E402
from tuner.measure.evaluate import Evaluator  # noqa: E402
from tuner.measure.load import LoadSpec  # noqa: E402
from tuner.server import EmbeddedServer  # noqa: E402

GRID = HERE / "grid.json"
SPACE = HERE / "space.yaml"


def points(space: SearchSpace) -> list[dict]:
    """Every Optuna params dict the space can produce (batcher knobs only when batching is on)."""
    specs = {**space.knobs, **{f"param.{k}": s for k, s in space.parameters.items()}}
    choices = [s for s in specs.values() if isinstance(s, Choice)]
    if len(choices) < len(specs):
        raise SystemExit(f"{SPACE}: a grid needs lists of values only")
    found = []
    for values in itertools.product(*(s.values for s in choices)):
        params = dict(zip(specs, values, strict=True))
        if params.get("dynamic_batching") is False:
            params = {k: v for k, v in params.items() if k not in ("max_queue_delay_us", "preferred_batch_sizes")}
        if params not in found:
            found.append(params)
    return found


def knobs_of(params: dict) -> dict:
    knobs = {k: v for k, v in params.items() if not k.startswith("param.")}
    knobs["parameters"] = {k.removeprefix("param."): v for k, v in params.items() if k.startswith("param.")}
    return knobs


def key(params: dict) -> str:
    return json.dumps(params, sort_keys=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--min-samples", type=int, default=400)
    ap.add_argument("--run-dir", type=Path, default=Path("/tmp/tuner_grid"))
    args = ap.parse_args()
    grid: dict = json.loads(GRID.read_text()) if GRID.exists() else {"space": str(SPACE.name), "points": {}}
    todo = [p for p in points(load_space(SPACE)) if key(p) not in grid["points"]]
    base = read_config(DEMO_REPOSITORY / "detector" / "config.pbtxt")
    work = args.run_dir / "repository"
    shutil.rmtree(work, ignore_errors=True)
    shutil.copytree(DEMO_REPOSITORY / "detector", work / "detector")
    spec = LoadSpec(min_samples=args.min_samples, max_duration_s=10.0)
    grid["load"] = f"concurrency {spec.concurrency}, >= {spec.min_samples} samples"
    with EmbeddedServer(work, args.run_dir) as server, Evaluator(server, "detector", spec) as evaluator:
        for i, params in enumerate(todo, 1):
            start = time.perf_counter()
            outcome = evaluator.evaluate(apply_knobs(base, knobs_of(params)))
            m = outcome.measurement
            grid["points"][key(params)] = ({"throughput": round(m.throughput, 2), "p95_ms": round(m.p95_ms, 2)}
                                           if m else {"failed": outcome.reason})
            GRID.write_text(json.dumps(grid, indent=1, sort_keys=True) + "\n")
            print(f"{i}/{len(todo)} {time.perf_counter() - start:.1f}s {params} -> {grid['points'][key(params)]}",
                  flush=True)


if __name__ == "__main__":
    main()
