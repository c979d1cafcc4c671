"""What a config change costs to apply on the real ONNX Runtime demo: Triton applies a change of
instance count alone in place (the instances are added or removed, the model stays loaded); any
other change reloads the model; a cold load (unload, then load from the file) is what a deployment,
and the tuner's confirmation of a candidate, does.

    python benchmarks/reload.py [--rounds 10]

The three kinds are timed alternately, round by round, in one embedded Triton (each timed call
returns when the model is ready again). Prints a table and writes benchmarks/results/reload.json.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from benchmarks.common import scratch_repository, table, write_json  # noqa: E402
from tuner.config.modelconfig import apply_knobs, read_config, render_pbtxt, to_json  # noqa: E402
from tuner.config.shipped import DEMO_MODEL, DEMO_REPOSITORY  # noqa: E402
from tuner.server import EmbeddedServer  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--run-dir", type=Path, default=Path("/tmp/tuner_reload"))
    args = ap.parse_args()
    work = scratch_repository(args.run_dir, DEMO_REPOSITORY / DEMO_MODEL)
    base = read_config(work / DEMO_MODEL / "config.pbtxt")
    one, two = (apply_knobs(base, {"instance_count": n, "parameters": {"intra_op_thread_count": "1"}}) for n in (1, 2))
    other_threads = apply_knobs(base, {"instance_count": 1, "parameters": {"intra_op_thread_count": "2"}})
    seconds: dict[str, list[float]] = {}
    with EmbeddedServer(work, args.run_dir) as server:
        control = server.control

        def timed(kind: str, action) -> None:
            start = time.perf_counter()
            action()
            seconds.setdefault(kind, []).append(time.perf_counter() - start)

        def cold(config) -> None:
            (work / DEMO_MODEL / "config.pbtxt").write_text(render_pbtxt(config))
            control.unload(DEMO_MODEL)
            control.load(DEMO_MODEL)

        control.load(DEMO_MODEL, to_json(one))
        for _ in range(args.rounds):
            timed("instance count 1 -> 2 (in place)", lambda: control.load(DEMO_MODEL, to_json(two)))
            timed("instance count 2 -> 1 (in place)", lambda: control.load(DEMO_MODEL, to_json(one)))
            timed("thread count 1 -> 2 (reload)", lambda: control.load(DEMO_MODEL, to_json(other_threads)))
            timed("thread count 2 -> 1 (reload)", lambda: control.load(DEMO_MODEL, to_json(one)))
            timed("cold load, 2 instances", lambda: cold(two))
            timed("cold load, 1 instance", lambda: cold(one))
    rows = [[kind, f"{statistics.median(s) * 1e3:.1f}", f"{min(s) * 1e3:.1f}", f"{max(s) * 1e3:.1f}"]
            for kind, s in seconds.items()]
    print(f"{DEMO_MODEL} (ONNX Runtime backend), {args.rounds} rounds, alternating")
    print(table(["change", "median ms", "min ms", "max ms"], rows))
    path = write_json("reload", {"model": DEMO_MODEL, "rounds": args.rounds,
                                 "ms": {k: [round(v * 1e3, 2) for v in s] for k, s in seconds.items()}})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
