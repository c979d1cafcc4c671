"""The GPU study on a real backend: the demo detector as TorchScript on Triton's PyTorch backend,
built on the GPU machine against its torch, tuned by `tuner search` over instances, batching, queue
delay, precision version (1: FP32, 2: FP16) and backend parameters, inputs in CUDA shared memory.

    bash benchmarks/gpu/run.sh libtorch --trials 25 --width 32      (on the GPU machine)

Steps, timed: build the backend; export the TorchScript versions; the study (GPU utilisation
sampled throughout; the export measures the engine-only ceiling); then the baseline (1 instance, no
batching, FP32) and the exported config re-measured alternately over system and CUDA shared memory;
and the exported config on the python backend (the same network in the demo's model.py), to compare
backends and count the numpy-2 DLPack log lines. Results: a printed table and $OUT/gpu_libtorch.json.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "model_repository_template" / "detector_python" / "1"))

import build_torchscript  # noqa: E402

from benchmarks.common import median, table  # noqa: E402
from benchmarks.gpu.gpu_study import HEADERS, GpuSampler, gpu_repository, measured, row  # noqa: E402
from tuner import backends  # noqa: E402
from tuner.config.modelconfig import apply_knobs, read_config  # noqa: E402
from tuner.measure.evaluate import Evaluator  # noqa: E402
from tuner.measure.inputs import Inputs, Memory  # noqa: E402
from tuner.measure.load import LoadSpec  # noqa: E402
from tuner.server import EmbeddedServer  # noqa: E402

MODEL = "detector_torch"


def study(args, repo: Path, sampler: GpuSampler) -> dict:
    storage = f"sqlite:///{args.out / 'gpu_libtorch.db'}"
    cmd = [sys.executable, "-m", "tuner", "search", "--model-repository", str(repo), "--model", MODEL,
           "--search-space", str(ROOT / "search_spaces" / "detector_torch_gpu.yaml"),
           "--trials", str(args.trials), "--storage", storage, "--out", str(args.out / "export"),
           "--run-dir", "/tmp/libtorch_runs", "--concurrency", str(args.concurrency), "--no-progress",
           "--min-samples", str(args.min_samples), "--max-measure-s", "10", "--shared-memory", "cuda",
           "--max-output-error", str(args.max_output_error), "--seed", "0"]
    print(" ".join(cmd), flush=True)
    start = time.monotonic()
    done = subprocess.run(cmd, cwd=ROOT, text=True, capture_output=True)
    wall = time.monotonic() - start
    print(done.stdout[-5000:], done.stderr[-3000:], flush=True)
    import optuna

    trials = optuna.load_study(study_name=MODEL, storage=storage).get_trials()
    loads = [t.user_attrs["load_s"] for t in trials if "load_s" in t.user_attrs and "duplicate_of" not in t.user_attrs]
    states = [t.state.name for t in trials]
    manifest_path = args.out / "export" / MODEL / "tuner_manifest.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {}
    return {"returncode": done.returncode, "wall_s": wall, "trials": len(trials), "complete": states.count("COMPLETE"),
            "failed": states.count("FAIL"), "reload_s_median": median(loads), "reload_s_max": max(loads, default=0),
            "gpu_during_study": sampler.between(start, start + wall), "chosen_trial": manifest.get("trial"),
            "chosen_knobs": manifest.get("knobs"), "ceiling": manifest.get("ceiling"),
            "output_errors": {t.number: t.user_attrs.get("output_error") for t in trials if "output_error" in t.user_attrs}}


def compare(args, repo: Path, sampler: GpuSampler) -> dict:
    """Baseline vs exported, alternating, over system and CUDA shared memory in one server."""
    base = read_config(repo / MODEL / "config.pbtxt")
    exported = read_config(args.out / "export" / MODEL / "config.pbtxt")
    spec = LoadSpec(concurrency=args.concurrency, min_samples=args.min_samples, max_duration_s=12)
    runs: dict[str, list[dict]] = {}
    with EmbeddedServer(repo, Path("/tmp/libtorch_final")) as server:
        for memory in (Memory.SYSTEM, Memory.CUDA):
            with Evaluator(server, MODEL, spec, Inputs(shared_memory=memory)) as ev:
                for r in range(args.rounds):
                    for label in (("baseline", "best") if r % 2 == 0 else ("best", "baseline")):
                        key = f"{label}, {memory.value} shm"
                        runs.setdefault(key, []).append(measured(ev, base if label == "baseline" else exported,
                                                                 sampler))
                        print(key, json.dumps(runs[key][-1]), flush=True)
    return runs


def python_backend(args, knobs: dict, sampler: GpuSampler) -> dict:
    """The exported knobs on the demo's python-backend twin (torch runtime on the GPU)."""
    repo = gpu_repository(Path("/tmp/py_repo"), args.width)
    precision = "FP16" if knobs.get("model_version") == 2 else "FP32"
    same = {k: v for k, v in knobs.items() if k not in ("model_version", "parameters")}
    config = apply_knobs(read_config(repo / "detector" / "config.pbtxt"),
                         {**same, "parameters": {"width": str(args.width), "precision_mode": precision}})
    spec = LoadSpec(concurrency=args.concurrency, min_samples=args.min_samples, max_duration_s=12)
    run = Path("/tmp/py_run")
    with EmbeddedServer(repo, run) as server, Evaluator(server, "detector", spec,
                                                        Inputs(shared_memory=Memory.SYSTEM)) as ev:
        result = measured(ev, config, sampler)
    log = (run / "tritonserver.log").read_text(errors="replace")
    result["pycapsule_log_lines"] = log.count("PyCapsule_GetPointer")
    result["numpy_line"] = next((line[line.index("demo detector"):] for line in log.splitlines()
                                 if "demo detector: numpy" in line), "")
    return result


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--trials", type=int, default=25)
    ap.add_argument("--width", type=int, default=32)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--min-samples", type=int, default=1000)
    ap.add_argument("--max-output-error", type=float, default=5e-3)
    ap.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", "gpu_out")))
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    result: dict = {"args": {k: str(v) for k, v in vars(args).items()}}
    start = time.monotonic()
    backends.build("pytorch", say=print)
    result["build_s"] = time.monotonic() - start
    start = time.monotonic()
    repo = Path("/tmp/torch_repo")
    build_torchscript.write(repo, args.width, "cuda", MODEL, max_batch=16)
    result["export_s"] = time.monotonic() - start
    print(f"built in {result['build_s']:.0f} s, exported in {result['export_s']:.0f} s", flush=True)
    with GpuSampler() as sampler:
        result["study"] = study(args, repo, sampler)
        print(json.dumps(result["study"], indent=1, default=str), flush=True)
        (args.out / "gpu_libtorch.json").write_text(json.dumps(result, indent=1, default=str))
        if result["study"]["chosen_knobs"] is None:
            return 1
        runs = compare(args, repo, sampler)
        result["final"] = runs
        result["python_backend"] = python_backend(args, result["study"]["chosen_knobs"], sampler)
    summary = {k: {m: median([x[m] for x in rs if m in x]) for m in rs[0] if m != "error"}
               for k, rs in runs.items() if rs and "error" not in rs[0]}
    result["summary"] = summary
    rows = [row(f"{k} (median of {args.rounds})", v) for k, v in summary.items()]
    rows.append(row("best on the python backend, system shm", result["python_backend"]))
    print(table(HEADERS, rows))
    ceiling = result["study"]["ceiling"]
    for memory in ("system", "cuda"):
        best = summary.get(f"best, {memory} shm")
        if ceiling and best:
            print(f"best over {memory} shm: {best['throughput']:.0f} infer/s = {best['throughput'] / ceiling['rate']:.0%} "
                  f"of the engine-only ceiling at the study's load ({ceiling['rate']:.0f}, batch {ceiling['batch']}), "
                  f"{best['throughput'] / ceiling['max_rate']:.0%} of the one at the config's max batch "
                  f"({ceiling['max_rate']:.0f}, batch {ceiling['max_batch']})")
    (args.out / "gpu_libtorch.json").write_text(json.dumps(result, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
