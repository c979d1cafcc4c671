"""The engine-only ceiling at the study's load against the one at the config's max batch, on the
GPU: the demo detector as TorchScript (FP16 version, width 32) with dynamic batching up to 16 and
two instances, measured by the tuner at concurrency 8 (no batch can exceed 8) and 32 (batches of
16 can form), each beside tuner.measure.ceiling's two figures for that load.

    bash benchmarks/gpu/run.sh ceiling            (on the GPU machine; writes $OUT/ceiling_at_load.json)
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "model_repository_template" / "detector_python" / "1"))

import build_torchscript  # noqa: E402

from benchmarks.common import table  # noqa: E402
from tuner import backends  # noqa: E402
from tuner.config.modelconfig import apply_knobs, read_config  # noqa: E402
from tuner.measure import ceiling  # noqa: E402
from tuner.measure.evaluate import Evaluator  # noqa: E402
from tuner.measure.inputs import Inputs, Memory  # noqa: E402
from tuner.measure.load import LoadSpec  # noqa: E402
from tuner.server import EmbeddedServer  # noqa: E402

MODEL = "detector_torch"
KNOBS = {"instance_kind": "KIND_GPU", "instance_count": 2, "max_batch_size": 16, "dynamic_batching": True,
         "max_queue_delay_us": 500, "model_version": 2}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--width", type=int, default=32)
    ap.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", "gpu_out")))
    args = ap.parse_args()
    backends.build("pytorch", say=print)
    repo = Path("/tmp/ceiling_repo")
    build_torchscript.write(repo, args.width, "cuda", MODEL, max_batch=16)
    config = apply_knobs(read_config(repo / MODEL / "config.pbtxt"), KNOBS)
    rows: list[list] = []
    cells: list[dict] = []
    with EmbeddedServer(repo, Path("/tmp/ceiling_run")) as server:
        for concurrency in (8, 32):
            spec = LoadSpec(concurrency=concurrency, min_samples=2000, max_duration_s=15)
            with Evaluator(server, MODEL, spec, Inputs(shared_memory=Memory.CUDA)) as evaluator:
                m = evaluator.evaluate(config).measurement
            found = ceiling.measure(repo / MODEL, config, spec, seconds=3.0)
            assert m is not None and found is not None
            cell = {"concurrency": concurrency, "served": m.throughput, "p95_ms": m.p95_ms,
                    "avg_batch": m.server.avg_batch_size if m.server else None, "ceiling": found.to_json()}
            cells.append(cell)
            rows.append([concurrency, f"{m.throughput:.0f}", f"{cell['avg_batch']:.1f}", found.batch,
                         f"{found.rate:.0f}", f"{m.throughput / found.rate:.0%}", found.max_batch,
                         f"{found.max_rate:.0f}", f"{m.throughput / found.max_rate:.0%}",
                         "load" if found.load_bound else "config"])
            print(rows[-1], flush=True)
    print(table(["clients", "served /s", "avg batch", "load's batch", "ceiling at load", "served of it",
                 "max batch", "ceiling at max", "served of it", "limit"], rows))
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "ceiling_at_load.json").write_text(json.dumps({"knobs": KNOBS, "cells": cells}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
