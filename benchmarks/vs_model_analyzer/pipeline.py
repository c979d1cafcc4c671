"""Model Analyzer's ensemble quick search and the tuner on the demo pipeline (detector_pipeline:
preprocess -> detector -> postprocess), on the same server binary and load, side by side.

    bash benchmarks/vs_model_analyzer/setup.sh          # once: Model Analyzer 1.58 in /tmp/ma-venv
    python benchmarks/vs_model_analyzer/pipeline.py [--trials 30] [--rounds 3] [--guide model]

1. Model Analyzer `profile` of the ensemble, quick search (the only mode it tunes ensembles in), local
   launch mode, CPU-only composing models, concurrency 8, instance count <= 3, max batch size <= 8.
   Wall time; its best ensemble config (highest throughput) and the step configs it names.
2. `python -m tuner search --model detector_pipeline` with the shipped pipeline space, concurrency 8.
3. Both best sets of configs re-measured by one instrument (the tuner's load generator through the
   ensemble), alternately, in one embedded server; and the baseline (the shipped configs).

Prints tables and writes benchmarks/results/vs_model_analyzer_pipeline.json; the rest goes under
--work (default /tmp/tuner-vs-ma-pipeline).
"""
from __future__ import annotations

import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT))

import optuna  # noqa: E402

from benchmarks.vs_model_analyzer.run import arguments, profile, summarize  # noqa: E402
from tuner.config.modelconfig import read_config  # noqa: E402
from tuner.config.pipeline import read_members  # noqa: E402
from tuner.config.shipped import DEMO_REPOSITORY  # noqa: E402
from tuner.measure.evaluate import Evaluator  # noqa: E402
from tuner.measure.load import LoadSpec  # noqa: E402
from tuner.server import EmbeddedServer  # noqa: E402

MODEL = "detector_pipeline"
STEPS = ("preprocess", "detector", "postprocess")


def copy_pipeline(dest: Path) -> Path:
    for name in (MODEL, *STEPS):
        shutil.copytree(DEMO_REPOSITORY / name, dest / name)
    return dest


def run_model_analyzer(work: Path, ma: Path, venv: Path, timeout_s: int) -> dict:
    copy_pipeline(work / "ma_models")
    found, best = profile(work, ma, venv, timeout_s,
                          f"  {MODEL}: {{}}\ncpu_only_composing_models: [{', '.join(STEPS)}]\n")
    outputs = work / "ma_run" / "output_models"
    members = {}
    # an ensemble's row names its steps' variants: "detector_pipeline_config_1: preprocess_config_0, ..."
    for step in best["Model Config Path"].partition(": ")[2].split(", "):
        config = read_config(outputs / step / "config.pbtxt")
        config.name = next(s for s in STEPS if step.startswith(s))
        members[config.name] = config
    return found | {"members": members}


def run_tuner(work: Path, trials: int, guide: str = "tpe") -> dict:
    repo = copy_pipeline(work / "tuner_models")
    storage = f"sqlite:///{work / 'tuner.db'}"
    start_wall, start = time.time(), time.perf_counter()
    with open(work / "tuner.log", "w") as log:
        done = subprocess.run([sys.executable, "-m", "tuner", "search", "--model-repository", str(repo), "--model",
                               MODEL, "--search-space", "detector_pipeline", "--trials", str(trials), "--storage",
                               storage, "--run-dir", str(work / "tuner_runs"), "--out", str(work / "tuner_out"),
                               "--no-progress", "--guide", guide], cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    wall = time.perf_counter() - start
    study = optuna.load_study(study_name=MODEL, storage=storage)
    members = {name: read_config(work / "tuner_out" / name / "config.pbtxt") for name in STEPS}
    return {"wall_s": wall, "returncode": done.returncode, "study": study, "started": start_wall,
            "trials": len([t for t in study.get_trials() if t.values is not None]), "members": members}


def remeasure(work: Path, candidates: dict, rounds: int) -> dict:
    repo = copy_pipeline(work / "remeasure" / "repository")
    entry = read_config(repo / MODEL / "config.pbtxt")
    runs: dict[str, list[tuple[float, float]]] = {name: [] for name in candidates}
    with EmbeddedServer(repo, work / "remeasure") as server, \
            Evaluator(server, MODEL, LoadSpec(min_samples=1000)) as evaluator:
        for r in range(rounds):
            for name in (list(candidates) if r % 2 == 0 else list(candidates)[::-1]):
                outcome = evaluator.evaluate(entry, others=candidates[name])
                if outcome.measurement is not None:
                    runs[name].append((outcome.measurement.throughput, outcome.measurement.p95_ms))
                else:
                    print(f"{name}: {outcome.reason}", flush=True)
    return {name: {"throughput": statistics.median(v[0] for v in got), "p95_ms": statistics.median(v[1] for v in got),
                   "runs": got} for name, got in runs.items() if got}


def steps_text(members: dict) -> str:
    def one(c) -> str:
        batching = f"db {c.dynamic_batching.max_queue_delay_microseconds}us" if c.HasField("dynamic_batching") else "no db"
        return f"{c.instance_group[0].count}x mbs {c.max_batch_size} {batching}"
    return "; ".join(f"{name}: {one(c)}" for name, c in members.items())


def main() -> None:
    args = arguments(__doc__, 30, Path("/tmp/tuner-vs-ma-pipeline"))
    ma = run_model_analyzer(args.work, args.ma_work, args.ma_venv, args.ma_timeout_s)
    print(f"Model Analyzer: {ma['wall_s']:.0f} s, {ma['configs']} configs, best {ma['best_variant']}", flush=True)
    tuner = run_tuner(args.work, args.trials, args.guide)
    print(f"tuner: {tuner['wall_s']:.0f} s, {tuner['trials']} trials", flush=True)
    baseline = read_members(DEMO_REPOSITORY, read_config(DEMO_REPOSITORY / MODEL / "config.pbtxt"))
    again = remeasure(args.work, {"baseline (shipped configs)": baseline, "Model Analyzer best": ma["members"],
                                  "tuner best": tuner["members"]}, args.rounds)
    summarize("vs_model_analyzer_pipeline", ma, tuner, again, args.rounds, steps_text(ma.pop("members")),
              steps_text(tuner["members"]))


if __name__ == "__main__":
    main()
