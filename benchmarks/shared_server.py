"""Two models on one server: tuned together under their load mix, against each tuned alone at its
share of the load and the two best-alone configs deployed together (what tuning one model at a
time gives), and against the shipped configs.

    python benchmarks/shared_server.py [--trials 15] [--together-trials 30] [--rounds 2]

Models: the demo's detector (ONNX Runtime) and detector_openvino (OpenVINO), real C++ backends that
share the machine's cores. The mix is 1:1 at concurrency 8 (4 requests in flight each).
1. each alone: `tuner search --model X --concurrency 4` (its share), `--trials` each, on a server of
   its own, as a user tuning one model at a time would;
2. together: `tuner search --model detector --model detector_openvino --concurrency 8`,
   `--together-trials` (default: the two alone studies' trials together, the same budget);
3. the three sets re-measured by one instrument under the mix, alternately, in one embedded server
   (medians of `--rounds`): total infer/s, worst P95, and each model's.

Prints a table and writes benchmarks/results/shared_server.json; the rest goes under --work.
"""
from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.common import table, write_json  # noqa: E402
from tuner.config.modelconfig import read_config  # noqa: E402
from tuner.config.shipped import DEMO_REPOSITORY  # noqa: E402
from tuner.measure.evaluate import Evaluator  # noqa: E402
from tuner.measure.load import LoadSpec  # noqa: E402
from tuner.server import EmbeddedServer  # noqa: E402

MODELS = ("detector", "detector_openvino")
CONCURRENCY = 8


def search(work: Path, label: str, models: tuple[str, ...], concurrency: int, trials: int) -> dict:
    """One `tuner search`; its exported configs and wall time."""
    out = work / f"{label}_out"
    start = time.perf_counter()
    with open(work / f"{label}.log", "w") as log:
        done = subprocess.run([sys.executable, "-m", "tuner", "search", *(a for m in models for a in ("--model", m)),
                               "--concurrency", str(concurrency), "--trials", str(trials), "--storage",
                               f"sqlite:///{work / 'studies.db'}", "--run-dir", str(work / f"{label}_runs"),
                               "--out", str(out), "--no-progress"], cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    if done.returncode:
        raise SystemExit(f"{label}: tuner search failed, see {work / f'{label}.log'}")
    manifest = json.loads((out / models[0] / "tuner_manifest.json").read_text())
    return {"wall_s": time.perf_counter() - start, "configs": {m: read_config(out / m / "config.pbtxt") for m in models},
            "own": (manifest["throughput_infer_per_s"], manifest["p95_latency_ms"])}


def remeasure(work: Path, sets: dict[str, dict], rounds: int) -> dict:
    """Each set of configs loaded and measured under the mix, alternately; medians."""
    repo = work / "remeasure" / "repository"
    for name in MODELS:
        shutil.copytree(DEMO_REPOSITORY / name, repo / name)
    spec = LoadSpec(concurrency=CONCURRENCY, min_samples=1000, mix=tuple((m, 1.0) for m in MODELS))
    runs: dict[str, list] = {label: [] for label in sets}
    with EmbeddedServer(repo, work / "remeasure") as server, Evaluator(server, MODELS[0], spec) as evaluator:
        for r in range(rounds):
            for label in (list(sets) if r % 2 == 0 else list(sets)[::-1]):
                configs = dict(sets[label])
                outcome = evaluator.evaluate(configs.pop(MODELS[0]), others=configs)
                m = outcome.measurement
                if m is None:
                    print(f"{label}: {outcome.reason}", flush=True)
                    continue
                runs[label].append({"throughput": m.throughput, "p95_ms": m.p95_ms,
                                    **{f"{n} infer/s": e.throughput for n, e in m.models.items()},
                                    **{f"{n} p95 ms": e.p95_ms for n, e in m.models.items()}})
    return {label: {key: statistics.median(r[key] for r in got) for key in got[0]} | {"runs": got}
            for label, got in runs.items() if got}


def knobs(config) -> str:
    group = config.instance_group[0] if config.instance_group else None
    params = " ".join(f"{k}={v.string_value}" for k, v in sorted(config.parameters.items()))
    batching = f"db {config.dynamic_batching.max_queue_delay_microseconds}us" \
        if config.HasField("dynamic_batching") else "no db"
    return f"{group.count if group else 1}x mbs {config.max_batch_size} {batching} {params}".strip()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--trials", type=int, default=15)
    ap.add_argument("--together-trials", type=int)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--work", type=Path, default=Path("/tmp/tuner-shared-server"))
    args = ap.parse_args()
    shutil.rmtree(args.work, ignore_errors=True)
    args.work.mkdir(parents=True)
    alone = {m: search(args.work, m, (m,), CONCURRENCY // len(MODELS), args.trials) for m in MODELS}
    together = search(args.work, "together", MODELS, CONCURRENCY, args.together_trials or args.trials * len(MODELS))
    shipped = {m: read_config(DEMO_REPOSITORY / m / "config.pbtxt") for m in MODELS}
    sets = {"shipped configs": shipped, "each tuned alone": {m: alone[m]["configs"][m] for m in MODELS},
            "tuned together": together["configs"]}
    again = remeasure(args.work, sets, args.rounds)
    print("\nsearches: " + ", ".join(f"{m} alone {args.trials} trials {alone[m]['wall_s']:.0f} s, its choice "
                                     f"{alone[m]['own'][0]:.1f} infer/s at P95 {alone[m]['own'][1]:.1f} ms" for m in MODELS)
          + f"; together {args.together_trials or args.trials * len(MODELS)} trials {together['wall_s']:.0f} s")
    print(f"\nre-measured under the mix ({', '.join(MODELS)} 1:1, concurrency {CONCURRENCY}), medians of "
          f"{args.rounds} rounds, alternating")
    keys = ["throughput", "p95_ms", *(f"{m} infer/s" for m in MODELS), *(f"{m} p95 ms" for m in MODELS)]
    print(table(["configs", "total infer/s", "worst p95 ms", *keys[2:]],
                [[label, *(f"{v[k]:.1f}" for k in keys)] for label, v in again.items()]))
    for label, configs in sets.items():
        print(f"{label:18} " + " | ".join(f"{m}: {knobs(c)}" for m, c in configs.items()))
    path = write_json("shared_server", {
        "trials": args.trials, "together_trials": args.together_trials or args.trials * len(MODELS),
        "rounds": args.rounds, "alone_own": {m: alone[m]["own"] for m in MODELS}, "mix": f"{' '.join(MODELS)} 1:1 at concurrency {CONCURRENCY}",
        "wall_s": {**{f"{m} alone": alone[m]["wall_s"] for m in MODELS}, "together": together["wall_s"]},
        "remeasured": again, "configs": {label: {m: knobs(c) for m, c in s.items()} for label, s in sets.items()}})
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
