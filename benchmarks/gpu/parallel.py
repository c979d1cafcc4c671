"""Parallel search across the GPUs of one host: the same study with 1 worker and with one worker
per GPU (`tuner search --workers N --gpus 0,1,...`, one embedded Triton per GPU, one shared SQLite
storage), then one config measured repeatedly on each GPU to see whether the GPUs agree.

    bash benchmarks/gpu/run.sh parallel ...      (on the GPU machine; run.sh installs the wheels)
    python benchmarks/gpu/parallel.py --trials 50 --width 32 [--repeats 5]

With a single GPU it runs the 1-worker study and the repeats on GPU 0 only (and, with --workers 2,
two workers sharing that GPU), and says the multi-GPU part was not run. Results: a printed table
and $OUT/gpu_parallel.json.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from benchmarks.common import table  # noqa: E402
from benchmarks.gpu.gpu_study import gpu_repository  # noqa: E402
from tuner.config.modelconfig import read_config  # noqa: E402
from tuner.measure.evaluate import Evaluator, Inputs  # noqa: E402
from tuner.measure.inputs import Memory  # noqa: E402
from tuner.measure.load import LoadSpec  # noqa: E402
from tuner.server import EmbeddedServer  # noqa: E402

# NVLink multicast stays off on the lent machines (the device README); Triton inherits these.
NO_MULTICAST = {"NCCL_NVLS_ENABLE": "0", "TORCH_SYMM_MEM_DISABLE_MULTICAST": "1", "NVSHMEM_DISABLE_NVLS": "1"}


def gpu_count() -> int:
    found = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True)
    return sum(line.startswith("GPU ") for line in found.stdout.splitlines())


def study(args, repo: Path, workers: int, gpus: int) -> dict:
    """One `tuner search` with `workers` workers, worker i on GPU i mod `gpus`; wall time and best."""
    name = f"w{workers}"
    storage = f"sqlite:///{args.out / f'parallel_{name}.db'}"
    cmd = [sys.executable, "-m", "tuner", "search", "--model-repository", str(repo), "--study-name", name,
           "--search-space", str(ROOT / "search_spaces" / "onnxruntime_tensorrt.yaml"), "--trials", str(args.trials),
           "--storage", storage, "--out", str(args.out / f"export_{name}"), "--run-dir", f"/tmp/parallel_{name}",
           "--workers", str(workers), "--gpus", ",".join(str(i % gpus) for i in range(workers)),
           "--shared-memory", "system", "--no-progress", "--max-measure-s", "10", "--remeasure", "0",
           "--seed", str(args.seed)]
    print(" ".join(cmd), flush=True)
    start = time.monotonic()
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env={**os.environ, **NO_MULTICAST})
    wall = time.monotonic() - start
    print(done.stdout[-3000:], done.stderr[-2000:], flush=True)
    import optuna

    trials = optuna.load_study(study_name=name, storage=storage).get_trials()
    manifest = json.loads((args.out / f"export_{name}" / "detector" / "tuner_manifest.json").read_text())
    per_worker = Counter(t.user_attrs.get("worker", "worker-0") for t in trials)
    return {"workers": workers, "wall_s": wall, "returncode": done.returncode,
            "complete": sum(t.state.name == "COMPLETE" for t in trials),
            "failed": sum(t.state.name == "FAIL" for t in trials), "trials_per_worker": dict(per_worker),
            "best_trial": manifest["trial"], "best_knobs": manifest["knobs"],
            "best_throughput": manifest["throughput_infer_per_s"], "best_p95_ms": manifest["p95_latency_ms"]}


def per_gpu(args, repo: Path, config_path: Path, gpus: int) -> dict:
    """The same config measured `repeats` times on each GPU, the GPUs taking turns."""
    config = read_config(config_path)
    spec = LoadSpec(min_samples=1000, max_duration_s=15)
    runs: dict[int, list[float]] = {gpu: [] for gpu in range(gpus)}
    for r in range(args.repeats):
        for gpu in range(gpus):
            os.environ.update({**NO_MULTICAST, "CUDA_VISIBLE_DEVICES": str(gpu)})
            with EmbeddedServer(repo, Path(f"/tmp/parallel_gpu{gpu}")) as server, \
                    Evaluator(server, "detector", spec, Inputs(shared_memory=Memory.SYSTEM)) as ev:
                outcome = ev.evaluate(config)
            runs[gpu].append(outcome.measurement.throughput if outcome.measurement is not None else float("nan"))
            print(f"GPU {gpu} repeat {r}: {runs[gpu][-1]:.1f} infer/s", flush=True)
    return {str(gpu): {"median": statistics.median(v), "min": min(v), "max": max(v),
                       "cv_pct": 100 * statistics.stdev(v) / statistics.mean(v) if len(v) > 1 else 0.0, "runs": v}
            for gpu, v in runs.items()}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--trials", type=int, default=50)
    ap.add_argument("--width", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--gpus", type=int, help="GPUs to use (default: all)")
    ap.add_argument("--workers", type=int, help="workers of the parallel study (default: one per GPU; more "
                    "share GPUs round robin, which shows overlap of reloads, not a multi-GPU speed-up)")
    ap.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", "gpu_out")))
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    gpus = args.gpus or gpu_count()
    repo = gpu_repository(Path("/tmp/parallel_repo"), args.width)
    workers = args.workers or gpus
    runs = [study(args, repo, 1, gpus)] + ([study(args, repo, workers, gpus)] if workers > 1 else [])
    spread = per_gpu(args, repo, args.out / "export_w1" / "detector" / "config.pbtxt", gpus)

    one = runs[0]["wall_s"]
    print(f"\n{args.trials} trials, width {args.width}, {gpus} GPU(s)")
    print(table(["workers", "wall s", "speed-up", "complete", "failed", "per worker", "best infer/s", "best p95 ms",
                 "best knobs"],
                [[r["workers"], f"{r['wall_s']:.0f}", f"{one / r['wall_s']:.2f}x", r["complete"], r["failed"],
                  " ".join(f"{k}:{v}" for k, v in sorted(r["trials_per_worker"].items())),
                  f"{r['best_throughput']:.1f}", f"{r['best_p95_ms']:.1f}", json.dumps(r["best_knobs"])]
                 for r in runs]))
    base = spread["0"]["median"]
    print(f"\n1-worker best config, {args.repeats} repeats per GPU (infer/s)")
    print(table(["GPU", "median", "min", "max", "CV %", "vs GPU 0"],
                [[g, f"{s['median']:.1f}", f"{s['min']:.1f}", f"{s['max']:.1f}", f"{s['cv_pct']:.1f}",
                  f"{s['median'] / base:.3f}"] for g, s in spread.items()]))
    if gpus == 1:
        print("\none GPU here: no GPU-to-GPU comparison" + ("" if workers > 1 else ", no multi-worker study"))
    (args.out / "gpu_parallel.json").write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()},
                                                            "gpus": gpus, "studies": runs, "per_gpu": spread},
                                                           indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
