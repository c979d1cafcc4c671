"""Model Analyzer quick search and the tuner on the same model, server binary and load, side by side.

    bash benchmarks/vs_model_analyzer/setup.sh          # once: Model Analyzer 1.58 in /tmp/ma-venv
    python benchmarks/vs_model_analyzer/run.py [--trials 50] [--rounds 3] [--guide model] [--no-start-with]
                                               [--landscape K]

1. Model Analyzer `profile`, quick search, local launch mode (it starts tritonserver itself, once per
   config), CPU only, concurrency 8 (quick search takes no concurrency list: its min and max
   concurrency are both set to 8), instance count <= 3, max batch size <= 8 (the ranges of
   search_spaces/default.yaml), on a copy of the demo detector. Wall time; its best config (highest
   throughput, its default objective) from its results CSV.
2. `python -m tuner search` with its defaults (default search space, concurrency 8) on another copy.
   Wall time, and when (seconds after it was started) a trial first matched what Model Analyzer found.
3. Both best configs re-measured by one instrument, the tuner's load generator, alternately, in one
   embedded server: the fair comparison of quality. "Matched" in step 2 uses these re-measured numbers
   of Model Analyzer's best (throughput at least as high, P95 no worse), and counts only the configs
   the search proposed: not the baseline, not `start_with`.

With --landscape K, the model is landscape K of benchmarks/landscapes.py (seed 0: the tests' tiny
python model with a random cost formula, a model neither tool was tuned for) instead of the demo,
searched in the python backend's space (generic.yaml: the same instance and max batch ranges), and
both bests and the space's optimum are also valued by the formula.

Prints two tables and writes benchmarks/results/vs_model_analyzer[_landscapeK].json. Everything else
goes under --work (default /tmp/tuner-vs-ma).
"""
from __future__ import annotations

import argparse
import csv
import os
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
import yaml  # noqa: E402

from benchmarks import landscapes  # noqa: E402
from benchmarks.common import table, write_json  # noqa: E402
from tuner.config.modelconfig import ModelConfig, parse_config, read_config  # noqa: E402
from tuner.config.shipped import DEMO_REPOSITORY, SPACES  # noqa: E402
from tuner.config.space import load_space  # noqa: E402
from tuner.measure.evaluate import Evaluator  # noqa: E402
from tuner.measure.load import LoadSpec  # noqa: E402
from tuner.server import EmbeddedServer  # noqa: E402
from tuner.study import trials as tr  # noqa: E402
from tuner.study.trials import Role  # noqa: E402

MODEL = "detector"


def ma_config(work: Path, ma: Path, models: str) -> str:
    """Model Analyzer's YAML; `models` is its profile_models section (the model and its options)."""
    return f"""model_repository: {work / 'ma_models'}
output_model_repository_path: {work / 'ma_run' / 'output_models'}
override_output_model_repository: true
export_path: {work / 'ma_run' / 'results'}
checkpoint_directory: {work / 'ma_run' / 'checkpoints'}
triton_launch_mode: local
triton_server_path: {ma / 'bin' / 'tritonserver'}
triton_server_flags:
  backend-directory: {ma / 'backends'}
  backend-config: python,shm-default-byte-size=67108864
triton_output_path: {work / 'ma_run' / 'triton.log'}
perf_analyzer_path: {ma / 'bin' / 'perf_analyzer'}
perf_output: true
perf_output_path: {work / 'ma_run' / 'perf_output.log'}
run_config_search_mode: quick
run_config_search_min_concurrency: 8
run_config_search_max_concurrency: 8
run_config_search_max_instance_count: 3
run_config_search_max_model_batch_size: 8
inference_output_fields: [model_name, batch_size, concurrency, model_config_path, instance_group, max_batch_size,
                          perf_throughput, perf_latency_p95, perf_latency_p99]
profile_models:
{models}"""


def profile(work: Path, ma: Path, venv: Path, timeout_s: int, models: str) -> tuple[dict, dict]:
    """Runs Model Analyzer on work/ma_models with the profile_models section `models`: its numbers,
    and the CSV row of its best config (highest throughput at concurrency 8)."""
    (work / "ma_run").mkdir()
    config = work / "ma_run" / "config.yml"
    config.write_text(ma_config(work, ma, models))
    env = {**os.environ, "PATH": f"{ma / 'bin'}:{venv / 'bin'}:{os.environ['PATH']}"}
    start = time.perf_counter()
    with open(work / "ma_run" / "ma.log", "w") as log:
        done = subprocess.run([str(venv / "bin" / "model-analyzer"), "profile", "-f", str(config)], env=env,
                              stdout=log, stderr=subprocess.STDOUT, timeout=timeout_s)
    wall = time.perf_counter() - start
    rows = list(csv.DictReader(open(work / "ma_run" / "results" / "results" / "metrics-model-inference.csv")))
    rows = [r for r in rows if r.get("Model")]
    at8 = [r for r in rows if r["Concurrency"] == "8"]  # quick search may add a row at 16 for its default
    best = max(at8, key=lambda r: float(r["Throughput (infer/sec)"]))
    return {"wall_s": wall, "returncode": done.returncode, "measurements": len(rows),
            "configs": len({r["Model Config Path"] for r in rows}), "best_variant": best["Model Config Path"],
            "reported_throughput": float(best["Throughput (infer/sec)"]),
            "reported_p95_ms": float(best.get("p95 Latency (ms)") or "nan")}, best


def run_model_analyzer(work: Path, ma: Path, venv: Path, timeout_s: int, source: Path = DEMO_REPOSITORY,
                       model: str = MODEL) -> dict:
    shutil.copytree(source / model, work / "ma_models" / model)
    found, best = profile(work, ma, venv, timeout_s, f"  {model}:\n    cpu_only: true\n")
    variant = best["Model Config Path"]
    text = (work / "ma_run" / "output_models" / variant / "config.pbtxt").read_text()
    config = parse_config(text, f"Model Analyzer's {variant}")
    config.name = model
    return found | {"config": config}


def run_tuner(work: Path, trials: int, guide: str = "tpe", start_with: bool = True, source: Path = DEMO_REPOSITORY,
              model: str = MODEL, space: Path = SPACES / "default.yaml") -> dict:
    """The tuner's search of `model` in `space`; without `start_with`, the space with its
    known-good configs removed (what the search itself finds)."""
    shutil.copytree(source / model, work / "tuner_models" / model)
    storage = f"sqlite:///{work / 'tuner.db'}"
    if not start_with:
        found = yaml.safe_load(space.read_text())
        found.pop("start_with", None)
        space = work / f"{space.stem}_without_start_with.yaml"
        space.write_text(yaml.safe_dump(found))
    start_wall = time.time()
    start = time.perf_counter()
    with open(work / "tuner.log", "w") as log:
        done = subprocess.run([sys.executable, "-m", "tuner", "search", "--model-repository", str(work / "tuner_models"),
                               "--trials", str(trials), "--storage", storage, "--run-dir", str(work / "tuner_runs"),
                               "--out", str(work / "tuner_out"), "--no-progress", "--search-space", str(space),
                               "--model", model, "--guide", guide], cwd=ROOT, stdout=log,
                              stderr=subprocess.STDOUT)
    wall = time.perf_counter() - start
    study = optuna.load_study(study_name=model, storage=storage)
    trials_done = [t for t in study.get_trials() if t.values is not None]
    return {"wall_s": wall, "returncode": done.returncode, "trials": len(trials_done), "study": study,
            "started": start_wall, "config": read_config(work / "tuner_out" / model / "config.pbtxt")}


def remeasure(work: Path, configs: dict, rounds: int, source: Path = DEMO_REPOSITORY, model: str = MODEL) -> dict:
    """Each config `rounds` times, alternately, in one embedded server, by the tuner's instrument."""
    shutil.copytree(source / model, work / "remeasure" / "repository" / model)
    runs: dict[str, list[tuple[float, float]]] = {name: [] for name in configs}
    spec = LoadSpec(min_samples=1000)
    with EmbeddedServer(work / "remeasure" / "repository", work / "remeasure") as server, \
            Evaluator(server, model, spec) as evaluator:
        for r in range(rounds):
            for name in (list(configs) if r % 2 == 0 else list(configs)[::-1]):
                outcome = evaluator.evaluate(configs[name])
                if outcome.measurement is not None:
                    runs[name].append((outcome.measurement.throughput, outcome.measurement.p95_ms))
    return {name: {"throughput": statistics.median(v[0] for v in got), "p95_ms": statistics.median(v[1] for v in got),
                   "runs": got} for name, got in runs.items() if got}


def first_match(study: optuna.Study, started: float, throughput: float, p95_ms: float):
    """The first trial the search proposed (not the baseline, not a `start_with` config), by
    completion time, at least as fast as `throughput` at a P95 no worse."""
    done = sorted(((t, t.datetime_complete.timestamp()) for t in study.get_trials()
                   if t.values is not None and t.datetime_complete and tr.role(t) is Role.SEARCH),
                  key=lambda pair: pair[1])
    for t, completed in done:
        if t.values[0] >= throughput and t.values[1] <= p95_ms:
            return t, completed - started
    return None, None


def summarize(name: str, ma: dict, tuner: dict, again: dict, rounds: int, ma_best: str, tuner_best: str,
              extra: dict | None = None) -> None:
    """Prints both searches and the re-measured bests, and writes benchmarks/results/<name>.json
    (with `extra`). `ma` and `tuner` are what run_model_analyzer and run_tuner returned
    (JSON-friendly values), `again` the re-measurement, with "Model Analyzer best" and "tuner best"
    among its keys."""
    target = again["Model Analyzer best"]
    match, match_s = first_match(tuner["study"], tuner["started"], target["throughput"], target["p95_ms"])
    print("\nsearch (each tool's own numbers)")
    print(table(["tool", "wall s", "configs measured", "best config", "its infer/s", "its p95 ms"], [
        ["Model Analyzer quick", f"{ma['wall_s']:.0f}", ma["configs"], ma_best,
         f"{ma['reported_throughput']:.1f}", f"{ma['reported_p95_ms']:.1f}"],
        ["tuner", f"{tuner['wall_s']:.0f}", tuner["trials"], tuner_best, "", ""]]))
    print(f"\nthe best configs re-measured alternately ({rounds} rounds, tuner's load generator, medians)")
    print(table(["config", "infer/s", "p95 ms", "runs (infer/s)"], [
        [label, f"{v['throughput']:.1f}", f"{v['p95_ms']:.1f}", " ".join(f"{r[0]:.0f}" for r in v["runs"])]
        for label, v in again.items()]))
    ratio = again["tuner best"]["throughput"] / target["throughput"]
    reach = (f"trial #{match.number} matched Model Analyzer's best {match_s:.0f} s after start "
             f"({match_s / ma['wall_s']:.2f} of Model Analyzer's wall time)" if match else "no trial matched it")
    print(f"\ntuner best / Model Analyzer best throughput: {ratio:.3f}; {reach}")
    path = write_json(name, {
        "model_analyzer": ma | {"best_config": ma_best},
        "tuner": {"wall_s": tuner["wall_s"], "trials": tuner["trials"], "returncode": tuner["returncode"],
                  "best_config": tuner_best},
        "remeasured": again, "throughput_ratio": ratio,
        "tuner_matched_ma_at_s": match_s, "tuner_matched_trial": match.number if match else None,
        "matched_fraction_of_ma_wall": match_s / ma["wall_s"] if match else None, **(extra or {})})
    print(f"wrote {path}")


def knobs_text(config) -> str:
    groups = ", ".join(f"{g.count}x{'GPU' if g.kind == 1 else 'CPU'}" for g in config.instance_group)
    batching = (f"dyn. batching {config.dynamic_batching.max_queue_delay_microseconds} us"
                if config.HasField("dynamic_batching") else "no dyn. batching")
    threads = f", threads {config.parameters['intra_op_thread_count'].string_value}" \
        if "intra_op_thread_count" in config.parameters else ""
    return f"{groups} instances, max batch {config.max_batch_size}, {batching}{threads}"


def arguments(doc: str | None, trials: int, work: Path, search_options: bool = False) -> argparse.Namespace:
    """The options both benchmarks take, Model Analyzer's install checked and --work emptied."""
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--trials", type=int, default=trials)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--work", type=Path, default=work)
    ap.add_argument("--ma-venv", type=Path, default=Path(os.environ.get("MA_VENV", "/tmp/ma-venv")))
    ap.add_argument("--ma-work", type=Path, default=Path(os.environ.get("MA_WORK", "/tmp/ma")))
    ap.add_argument("--ma-timeout-s", type=int, default=3600)
    ap.add_argument("--guide", choices=["model", "tpe"], default="tpe", help="the tuner's --guide")
    if search_options:  # the single-model search's
        ap.add_argument("--no-start-with", action="store_true", help="the tuner searches the default space without "
                        "its known-good start_with configs")
        ap.add_argument("--landscape", type=int, help="landscape K of benchmarks/landscapes.py instead of the demo")
    args = ap.parse_args()
    if not (args.ma_venv / "bin" / "model-analyzer").exists():
        raise SystemExit(f"no Model Analyzer in {args.ma_venv}: run bash {HERE / 'setup.sh'} first")
    shutil.rmtree(args.work, ignore_errors=True)
    args.work.mkdir(parents=True)
    return args


def main() -> None:
    args = arguments(__doc__, 50, Path("/tmp/tuner-vs-ma"), search_options=True)
    if args.landscape is None:
        source, model, space, name = DEMO_REPOSITORY, MODEL, SPACES / "default.yaml", "vs_model_analyzer"
    else:
        params = landscapes.landscape(args.landscape, 0)
        source, model, space = landscapes.repository(args.work / "source", params), "tiny", SPACES / "generic.yaml"
        name = f"vs_model_analyzer_landscape{args.landscape}"
    ma = run_model_analyzer(args.work, args.ma_work, args.ma_venv, args.ma_timeout_s, source, model)
    print(f"Model Analyzer: {ma['wall_s']:.0f} s, {ma['configs']} configs, best {ma['best_variant']}", flush=True)
    tuner = run_tuner(args.work, args.trials, args.guide, not args.no_start_with, source, model, space)
    print(f"tuner: {tuner['wall_s']:.0f} s, {tuner['trials']} trials", flush=True)
    bests = {"Model Analyzer best": ma["config"], "tuner best": tuner["config"]}
    again = remeasure(args.work, bests, args.rounds, source, model)
    extra = None if args.landscape is None else by_formula(args.work, params, space, read_config(
        source / model / "config.pbtxt"), bests)
    summarize(name, ma, tuner, again, args.rounds, knobs_text(ma.pop("config")), knobs_text(tuner["config"]), extra)


def by_formula(work: Path, params: dict, space: Path, base: ModelConfig, bests: dict[str, ModelConfig]) -> dict:
    """A landscape's optimum over the space and each best config's fraction of it, by the formula."""
    calibration = landscapes.overheads(work)
    optimum, knobs = landscapes.optimum(params, load_space(space), base, calibration)
    fractions = {label: landscapes.formula(params, config, calibration) / optimum for label, config in bests.items()}
    print(f"\nby the formula: optimum {optimum:.1f} infer/s ({knobs}); "
          + ", ".join(f"{label} {f:.0%} of it" for label, f in fractions.items()))
    return {"landscape": params, "formula_optimum": optimum, "formula_optimum_knobs": knobs,
            "formula_fraction": fractions}


if __name__ == "__main__":
    main()
