"""The tuner under overload and a hung server, on the demo (embedded Triton, ONNX Runtime):

- `measure` at the default load (concurrency 8) and `measure --request-rate 400` (several times
  what the demo serves on a small machine): wall time, exit code, and the tuner process's own peak
  resident memory (VmHWM, its server not included), against a time bound of warm-up +
  --max-measure-s + 10 s (server start, drain, the statistics calls);
- `search --objective capacity --slo-p95-ms 100 --trials 4`: completes, peak memory;
- a search of 6 trials whose tritonserver is stopped with SIGSTOP once 2 trials are done: the time
  from the fault to a fresh server serving the cut trial's config, and the study's end state.

    python benchmarks/overload_and_hangs.py [--parts measure,capacity,hang] [--tuner PATH --label NAME]

`--tuner PATH` runs the tuner from another checkout (say, a worktree of an older commit) for a
side-by-side comparison. Prints a table and writes benchmarks/results/overload_and_hangs[-NAME].json.
"""
from __future__ import annotations

import argparse
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from benchmarks.common import table, write_json  # noqa: E402

FAST = ["--max-measure-s", "4", "--min-samples", "200", "--remeasure", "1"]


def _hwm_mib(pid: int) -> float | None:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    return next((int(line.split()[1]) / 1024 for line in status.splitlines() if line.startswith("VmHWM:")), None)


def run(args: list[str], cwd: Path, tuner: Path, limit_s: float, on_poll=None) -> dict:
    """Runs `python -m tuner ARGS`; its peak memory, wall time, exit code and last line."""
    env = {**os.environ, "PYTHONPATH": str(tuner)}
    cwd.mkdir(parents=True, exist_ok=True)
    start = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "tuner", *args], cwd=cwd, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    peak = 0.0
    while proc.poll() is None and time.monotonic() - start < limit_s:
        peak = max(peak, _hwm_mib(proc.pid) or 0.0)
        if on_poll is not None:
            on_poll()
        time.sleep(0.2)
    if proc.poll() is None:
        proc.kill()
    out = proc.communicate()[0]
    last = [line for line in out.splitlines() if line.strip()]
    return {"command": " ".join(args), "exit": proc.returncode, "wall_s": round(time.monotonic() - start, 1),
            "peak_mib": round(peak), "last_line": last[-1][:160] if last else "", "output": out[-4000:]}


def _trials(db: Path) -> list[tuple[int, str]]:
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1) as conn:
            return conn.execute("SELECT number, state FROM trials ORDER BY number").fetchall()
    except sqlite3.Error:
        return []


def hang(work: Path, tuner: Path) -> dict:
    """SIGSTOP of the server once two trials are done; when the fresh server answers again."""
    run_dir, db = work / "runs", work / "study.db"
    pid_file = run_dir / "detector" / "tritonserver.pid"
    times: dict[str, float] = {}

    def watch() -> None:
        now = time.monotonic()
        done = sum(state == "COMPLETE" for _, state in _trials(db))
        if "fault" not in times and done >= 2 and pid_file.exists():
            times["stopped_pid"] = int(pid_file.read_text().split()[0])
            os.kill(int(times["stopped_pid"]), signal.SIGSTOP)
            times["fault"] = now
        elif "fault" in times and "new_server" not in times and pid_file.exists() \
                and int(pid_file.read_text().split()[0]) != times["stopped_pid"]:
            times["new_server"] = now
        elif "new_server" in times and "moving" not in times and done >= 3:
            times["moving"] = now

    result = run(["search", "--trials", "6", *FAST, "--storage", f"sqlite:///{db}", "--run-dir", str(run_dir)],
                 work, tuner, 900, watch)
    trials = _trials(db)
    hung = re.findall(r"stopped answering[^\n]*", result["output"])
    return {**result, "fault_to_new_server_s": round(times["new_server"] - times["fault"], 1)
            if "new_server" in times else None,
            "fault_to_next_trial_done_s": round(times["moving"] - times["fault"], 1) if "moving" in times else None,
            "stopped_server_gone": not Path(f"/proc/{int(times.get('stopped_pid', 0))}").exists(),
            "trials": [state for _, state in trials], "hang_reported": hung[:1]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--parts", default="measure,capacity,hang")
    ap.add_argument("--tuner", type=Path, default=HERE.parent, help="the checkout whose tuner runs")
    ap.add_argument("--work", type=Path, default=Path("/tmp/tuner_overload_and_hangs"))
    ap.add_argument("--label", default="", help="written to results/overload_and_hangs-LABEL.json")
    args = ap.parse_args()
    parts, rows, results = args.parts.split(","), [], {}
    if "measure" in parts:
        for name, extra in (("measure, concurrency 8", []), ("measure, 400 req/s", ["--request-rate", "400"])):
            results[name] = run(["measure", *extra, "--max-measure-s", "20", "--run-dir", str(args.work / "m")],
                                args.work, args.tuner, 600)
            results[name]["bound_s"] = 1 + 20 + 10
    if "capacity" in parts:
        db = args.work / "capacity.db"
        db.unlink(missing_ok=True)
        results["capacity search, SLO 100 ms"] = run(
            ["search", "--objective", "capacity", "--slo-p95-ms", "100", "--trials", "4", "--storage",
             f"sqlite:///{db}", "--run-dir", str(args.work / "c")], args.work, args.tuner, 1800)
    if "hang" in parts:
        (args.work / "hang" / "study.db").unlink(missing_ok=True)
        results["search, server SIGSTOP"] = hang(args.work / "hang", args.tuner)
    for name, r in results.items():
        rows.append([name, r["exit"], r["wall_s"], r.get("bound_s", ""), r["peak_mib"],
                     r.get("fault_to_new_server_s", ""), r.get("fault_to_next_trial_done_s", ""), r["last_line"][:70]])
    print(table(["run", "exit", "wall s", "bound s", "peak MiB", "to new server s", "to next trial s", "last line"],
                rows))
    name = "overload_and_hangs" + (f"-{args.label}" if args.label else "")
    print(f"wrote {write_json(name, {'tuner': str(args.tuner), 'results': results})}")


if __name__ == "__main__":
    main()
