"""The tuner's load generator against perf_analyzer, side by side on one embedded Triton.

perf_analyzer is the yardstick, never a dependency. This script installs nothing; to get it:
  * `pip install tritonclient==2.51.0` (the tuner already pins it): its manylinux wheel carries the
    binary as <venv>/bin/perf_analyzer;
  * libb64.so.0d and a libcudart.so.12 on LD_LIBRARY_PATH, even without a GPU: this script links
    the ones inside nvidia_pytriton.libs into a temporary folder for you.

    python benchmarks/loadgen_vs_perf_analyzer.py [--rounds 3] [--perf-analyzer PATH]

For each config, rounds alternate the two tools (A B, B A, A B ...) so drift on a noisy machine
hits both alike. Both run closed loop over gRPC at the same concurrency against the same server.
Client CPU is each tool's CPU seconds over its wall seconds (perf_analyzer: its whole process).
Prints two tables and writes benchmarks/results/loadgen_vs_perf_analyzer.json.
"""
from __future__ import annotations

import argparse
import csv
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from benchmarks.common import median, table, write_json  # noqa: E402
from tuner.config.modelconfig import apply_knobs, read_config, to_json  # noqa: E402
from tuner.config.shipped import DEMO_REPOSITORY  # noqa: E402
from tuner.measure.evaluate import Evaluator  # noqa: E402
from tuner.measure.load import LoadSpec  # noqa: E402
from tuner.server import EmbeddedServer  # noqa: E402
from tuner.server.embedded import triton_dist  # noqa: E402


def perf_analyzer_env(tmp: Path) -> dict:
    _, libs = triton_dist()
    (tmp / "libcudart.so.12").symlink_to(next(libs.glob("libcudart-*.so.12*")))
    (tmp / "libb64.so.0d").symlink_to(next(libs.glob("libb64-*.so.0d")))
    return {**os.environ, "LD_LIBRARY_PATH": f"{tmp}:{os.environ.get('LD_LIBRARY_PATH', '')}"}


def perf_analyzer_option(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--perf-analyzer", default=shutil.which("perf_analyzer") or str(Path(sys.executable).parent / "perf_analyzer"))


def setup(perf_analyzer: str, prefix: str) -> tuple[Path, dict, Path]:
    """A temporary folder, perf_analyzer's environment, and a repository there holding the demo."""
    if not Path(perf_analyzer).exists():
        sys.exit(f"perf_analyzer not found at {perf_analyzer}: see loadgen_vs_perf_analyzer.py's docstring")
    tmp = Path(tempfile.mkdtemp(prefix=prefix))
    repo = tmp / "repo"
    shutil.copytree(DEMO_REPOSITORY / "detector", repo / "detector")
    return tmp, perf_analyzer_env(tmp), repo


def run_perf_analyzer(pa: str, env: dict, url: str, model: str, concurrency: int, tmp: Path) -> dict:
    csv_path = tmp / "pa.csv"
    csv_path.unlink(missing_ok=True)
    cmd = [pa, "-m", model, "-u", url, "-i", "grpc", "--concurrency-range", str(concurrency),
           "--percentile=95", "--measurement-interval", "3000", "-f", str(csv_path)]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime) / wall
    if done.returncode != 0 or not csv_path.exists():
        return {"throughput": float("nan"), "p95_ms": float("nan"), "samples": 0, "cpu": cpu, "wall_s": wall,
                "error": (done.stdout + done.stderr).strip().splitlines()[-1:]}
    row = next(csv.DictReader(csv_path.open()))
    windows = done.stdout.count("Pass [")
    return {"throughput": float(row["Inferences/Second"]), "p95_ms": float(row["p95 latency"]) / 1000,
            "samples": None, "windows": windows, "cpu": cpu, "wall_s": wall}


def run_tuner(evaluator: Evaluator, config) -> dict:
    cpu0, start = time.process_time(), time.perf_counter()
    outcome = evaluator.evaluate(config)
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu0
    m = outcome.measurement
    if m is None:
        return {"throughput": float("nan"), "p95_ms": float("nan"), "samples": 0, "cpu": cpu / wall,
                "wall_s": wall, "error": outcome.reason}
    # the tuner's CPU over its measurement only (the reload is Triton's work, not the client's)
    return {"throughput": m.throughput, "p95_ms": m.p95_ms, "samples": m.samples, "cpu": m.client_cpu,
            "wall_s": wall, "stable": m.stable}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=5, help="repeats of one demo config for the CV")
    perf_analyzer_option(ap)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    tmp, env, repo = setup(args.perf_analyzer, "pa_vs_tuner_")
    shutil.copytree(HERE / "models" / "identity", repo / "identity")
    demo = read_config(repo / "detector" / "config.pbtxt")
    configs = [  # (label, model, config, concurrency)
        ("demo: as shipped", "detector", demo, 8),
        ("demo: 2 inst, 1 thread", "detector",
         apply_knobs(demo, {"instance_count": 2, "parameters": {"intra_op_thread_count": "1"}}), 8),
        ("identity c=8", "identity", read_config(repo / "identity" / "config.pbtxt"), 8),
        ("identity c=32", "identity", read_config(repo / "identity" / "config.pbtxt"), 32),
    ]
    results: list[dict] = []
    with EmbeddedServer(repo, tmp / "run") as server:
        for label, model, config, conc in configs:
            spec = LoadSpec(concurrency=conc, min_samples=1000, max_duration_s=20)
            with Evaluator(server, model, spec) as evaluator:
                runs: dict[str, list[dict]] = {"perf_analyzer": [], "tuner": []}
                for r in range(args.rounds):
                    order = ("perf_analyzer", "tuner") if r % 2 == 0 else ("tuner", "perf_analyzer")
                    for tool in order:
                        if tool == "tuner":
                            runs[tool].append(run_tuner(evaluator, config))
                        else:
                            server.control.load(model, to_json(config))
                            runs[tool].append(run_perf_analyzer(args.perf_analyzer, env, server.url, model, conc, tmp))
                        print(f"{label:24s} round {r + 1} {tool:13s} {runs[tool][-1]}", flush=True)
                results.append({"config": label, "concurrency": conc, "runs": runs})
        repeats = []
        with Evaluator(server, "detector", LoadSpec(concurrency=8, min_samples=1000, max_duration_s=20)) as ev:
            for _ in range(args.repeats):
                repeats.append(run_tuner(ev, demo)["throughput"])
    shutil.rmtree(tmp, ignore_errors=True)

    rows = []
    for res in results:
        pa, tu = res["runs"]["perf_analyzer"], res["runs"]["tuner"]
        pa_thr, tu_thr = median([x["throughput"] for x in pa]), median([x["throughput"] for x in tu])
        pa_p95, tu_p95 = median([x["p95_ms"] for x in pa]), median([x["p95_ms"] for x in tu])
        rows.append([res["config"], round(pa_thr, 1), round(tu_thr, 1), f"{tu_thr / pa_thr:.3f}",
                     round(pa_p95, 2), round(tu_p95, 2), f"{tu_p95 / pa_p95:.3f}",
                     median([x["samples"] for x in tu if x["samples"]]),
                     f"{median([x['cpu'] for x in pa]):.2f}", f"{median([x['cpu'] for x in tu]):.2f}",
                     f"{sum(x['throughput'] != x['throughput'] for x in pa)}/{len(pa)}"])
        res["median"] = {"pa_throughput": pa_thr, "tuner_throughput": tu_thr, "pa_p95_ms": pa_p95, "tuner_p95_ms": tu_p95}
    print("\nmedians of", args.rounds, "alternating rounds (throughput infer/s, P95 ms, client CPU in cores)")
    print(table(["config", "PA thr", "tuner thr", "ratio", "PA p95", "tuner p95", "ratio", "tuner samples",
                 "PA cpu", "tuner cpu", "PA failed"], rows))
    cv = statistics.stdev(repeats) / statistics.mean(repeats)
    print(f"\ndemo as shipped, tuner measured {args.repeats} times: {', '.join(f'{x:.1f}' for x in repeats)} "
          f"infer/s, CV {cv * 100:.1f}%")
    path = write_json("loadgen_vs_perf_analyzer", {"results": results, "repeats": repeats, "cv": cv}, args.out)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
