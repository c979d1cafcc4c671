"""The seed's GPU study, automated: the demo detector on KIND_GPU instances, tuned by `tuner search`.

Runs on the lent GPU machine (see run.sh for the wheels it installs). Two steps:

  python benchmarks/gpu/gpu_study.py calibrate --widths 8,16,32
      one embedded Triton; the baseline config and a hand-picked batched FP16 config at each
      network width, with GPU utilisation: shows where time goes and which width makes the GPU,
      not the data path, the bottleneck.
  python benchmarks/gpu/gpu_study.py search --width 16 --trials 30
      `python -m tuner search` with search_spaces/onnxruntime_tensorrt.yaml, then the baseline and
      the exported config re-measured alternately with GPU utilisation and memory sampled.

Results go to $OUT (or --out): gpu_study.json, the study's SQLite file, the exported config, and
a printed table.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from benchmarks.common import median, table  # noqa: E402
from tuner.config.modelconfig import apply_knobs, read_config, render_pbtxt  # noqa: E402
from tuner.config.shipped import DEMO_REPOSITORY  # noqa: E402
from tuner.measure.evaluate import Evaluator, Inputs  # noqa: E402
from tuner.measure.inputs import Memory  # noqa: E402
from tuner.measure.load import LoadSpec  # noqa: E402
from tuner.server import EmbeddedServer  # noqa: E402


class GpuSampler:
    """nvidia-smi every 200 ms in the background: utilisation and memory while something runs."""

    def __init__(self):
        self.samples: list[tuple[float, float, float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        proc = subprocess.Popen(["nvidia-smi", "--query-gpu=utilization.gpu,memory.used", "--format=csv,noheader,nounits",
                                 "-lms", "200"], stdout=subprocess.PIPE, text=True)
        for line in proc.stdout:
            if self._stop.is_set():
                break
            util, mem = (float(v) for v in line.split(",")[:2])
            self.samples.append((time.monotonic(), util, mem))
        proc.terminate()

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()

    def between(self, start: float, end: float) -> dict:
        inside = [(u, m) for t, u, m in self.samples if start <= t <= end]
        if not inside:
            return {"gpu_util_pct": float("nan"), "gpu_mem_mib": float("nan")}
        return {"gpu_util_pct": statistics.mean(u for u, _ in inside), "gpu_mem_mib": max(m for _, m in inside)}


def gpu_repository(dest: Path, width: int) -> Path:
    """The demo detector's python-backend twin deployed as a GPU user first would: one KIND_GPU
    instance, no batching, FP32 (named `detector` here, as in the recorded results)."""
    model = dest / "detector"
    shutil.rmtree(dest, ignore_errors=True)
    shutil.copytree(DEMO_REPOSITORY / "detector_python" / "1", model / "1")
    base = apply_knobs(read_config(DEMO_REPOSITORY / "detector_python" / "config.pbtxt"),
                       {"instance_kind": "KIND_GPU", "max_batch_size": 16, "parameters": {"width": str(width)}})
    base.name = "detector"
    (model / "config.pbtxt").write_text(render_pbtxt(base))
    return dest


def measured(evaluator: Evaluator, config, sampler: GpuSampler) -> dict:
    outcome = evaluator.evaluate(config)
    end = time.monotonic()
    m = outcome.measurement
    if m is None or m.server is None:
        return {"error": outcome.reason or "no statistics from the server"}
    return {"throughput": m.throughput, "p50_ms": m.p50_ms, "p95_ms": m.p95_ms, "p99_ms": m.p99_ms,
            "load_s": outcome.load_s, "queue_ms": m.server.queue_ms, "infer_ms": m.server.compute_infer_ms,
            "input_ms": m.server.compute_input_ms, "output_ms": m.server.compute_output_ms,
            "batch": m.server.avg_batch_size, "client_cpu": m.client_cpu,
            **sampler.between(end - m.duration_s, end)}


def row(label: str, r: dict) -> list:
    if "error" in r:
        return [label, "failed: " + r["error"][:60]] + [""] * 9
    return [label, round(r["throughput"], 1), round(r["p50_ms"], 2), round(r["p95_ms"], 2), round(r["p99_ms"], 2),
            round(r["gpu_util_pct"], 1), round(r["gpu_mem_mib"]), round(r["queue_ms"], 2), round(r["infer_ms"], 2),
            round(r["batch"], 2), round(r["client_cpu"], 2)]


HEADERS = ["config", "infer/s", "p50 ms", "p95 ms", "p99 ms", "GPU util %", "GPU MiB", "queue ms", "infer ms",
           "batch", "client cpu"]
CANDIDATES = {  # hand-picked configs to compare with the baseline at each width
    "2 inst, batching, FP16": {"instance_count": 2, "dynamic_batching": True, "max_queue_delay_us": 500,
                               "precision": "FP16"},
    "4 inst, batching, FP16": {"instance_count": 4, "dynamic_batching": True, "max_queue_delay_us": 500,
                               "precision": "FP16"},
}


def calibrate(args) -> dict:
    spec = LoadSpec(concurrency=args.concurrency, min_samples=500, max_duration_s=8)
    results = {}
    with GpuSampler() as sampler:
        for width in args.widths:
            repo = gpu_repository(Path("/tmp/gpu_cal") / f"w{width}", width)
            base = read_config(repo / "detector" / "config.pbtxt")
            with EmbeddedServer(repo, Path("/tmp/gpu_cal_run") / f"w{width}") as server:
                for shm in ((False, True) if args.grpc else (True,)):
                    with Evaluator(server, "detector", spec, Inputs(shared_memory=Memory.SYSTEM if shm else Memory.NONE)) as ev:
                        for label, knobs in (("baseline", {}), *CANDIDATES.items()):
                            key = f"w{width} {'shm' if shm else 'grpc'} {label}"
                            results[key] = measured(ev, apply_knobs(base, knobs), sampler)
                            print(key, json.dumps(results[key]), flush=True)
    print(table(HEADERS, [row(k, v) for k, v in results.items()]))
    return {"calibration": results}


def search(args) -> dict:
    repo = gpu_repository(Path("/tmp/gpu_repo"), args.width)
    base = read_config(repo / "detector" / "config.pbtxt")
    storage = f"sqlite:///{args.out / 'gpu_study.db'}"
    cmd = [sys.executable, "-m", "tuner", "search", "--model-repository", str(repo), "--search-space",
           str(ROOT / "search_spaces" / "onnxruntime_tensorrt.yaml"), "--trials", str(args.trials),
           "--storage", storage, "--out", str(args.out / "export"), "--run-dir", "/tmp/gpu_runs",
           "--concurrency", str(args.concurrency), "--no-progress", "--min-samples", str(args.min_samples),
           "--max-measure-s", "10", *(["--shared-memory", "system"] if args.shm else [])]
    print(" ".join(cmd), flush=True)
    with GpuSampler() as sampler:
        start = time.monotonic()
        done = subprocess.run(cmd, cwd=ROOT, text=True, capture_output=True)
        wall = time.monotonic() - start
        print(done.stdout[-6000:], done.stderr[-3000:], flush=True)
        search_util = sampler.between(start, start + wall)
        import optuna

        study = optuna.load_study(study_name="detector", storage=storage)
        trials = study.get_trials()
        exported = read_config(args.out / "export" / "detector" / "config.pbtxt")
        chosen = json.loads((args.out / "export" / "detector" / "tuner_manifest.json").read_text())
        spec = LoadSpec(concurrency=args.concurrency, min_samples=args.min_samples, max_duration_s=15)
        runs: dict[str, list[dict]] = {"baseline": [], "best": []}
        with EmbeddedServer(repo, Path("/tmp/gpu_final")) as server, \
                Evaluator(server, "detector", spec, Inputs(shared_memory=Memory.SYSTEM if args.shm else Memory.NONE)) as ev:
            for r in range(args.rounds):
                for label in (("baseline", "best") if r % 2 == 0 else ("best", "baseline")):
                    runs[label].append(measured(ev, base if label == "baseline" else exported, sampler))
                    print(label, json.dumps(runs[label][-1]), flush=True)
    overheads = [((t.datetime_complete - t.datetime_start).total_seconds() - t.user_attrs["metrics"]["duration_s"])
                 for t in trials if "metrics" in t.user_attrs and "duplicate_of" not in t.user_attrs
                 and t.user_attrs.get("role") == "search" and t.datetime_start and t.datetime_complete]
    summary = {label: {k: median([x[k] for x in rs if k in x]) for k in rs[0] if k != "error"} for label, rs in runs.items()
               if rs and "error" not in rs[0]}
    states = [t.state.name for t in trials]
    info = {"trials": len(trials), "complete": states.count("COMPLETE"), "failed": states.count("FAIL"),
            "wall_s": wall, "median_overhead_s": median(overheads), "search_gpu": search_util,
            "chosen_trial": chosen["trial"], "chosen_knobs": chosen["knobs"], "returncode": done.returncode}
    print(table(HEADERS, [row(f"{k} (median of {args.rounds})", v) for k, v in summary.items()]))
    if "baseline" in summary and "best" in summary:
        b, s = summary["baseline"], summary["best"]
        print(f"\nbest / baseline throughput: {s['throughput'] / b['throughput']:.2f}x; "
              f"P95 {s['p95_ms']:.2f} vs {b['p95_ms']:.2f} ms")
    print(json.dumps(info, indent=1, default=str))
    return {"search": info, "final": runs, "summary": summary}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("step", choices=("calibrate", "search"))
    ap.add_argument("--widths", type=lambda s: [int(x) for x in s.split(",")], default=[8, 16, 32])
    ap.add_argument("--width", type=int, default=16)
    ap.add_argument("--trials", type=int, default=30)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--min-samples", type=int, default=1000)
    ap.add_argument("--no-shm", dest="shm", action="store_false", help="inputs over gRPC, not shared memory")
    ap.add_argument("--grpc", action="store_true", help="calibrate: also measure with inputs over gRPC")
    ap.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", "gpu_out")))
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    result = (calibrate if args.step == "calibrate" else search)(args)
    (args.out / f"gpu_{args.step}.json").write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()},
                                                                **result}, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
