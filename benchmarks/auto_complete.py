"""What Triton's config auto-completion costs a python-backend model's loads: with it on (Triton's
default), each load starts a stub process of its own to call the model's `auto_complete_config`,
then stops it. The tuner's servers run without it where no model can be changed by it
(tuner.config.autocomplete); this measures the difference on the demo's python-backend twin.

    python benchmarks/auto_complete.py [--rounds 5]

Two embedded Tritons, one with auto-completion and one without, each take the same loads in turn,
round by round: a reload with a new batching config (what a trial does), and a cold load. Prints a
table and writes benchmarks/results/auto_complete.json.
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
from tuner.config.modelconfig import apply_knobs, read_config, to_json  # noqa: E402
from tuner.config.shipped import DEMO_REPOSITORY  # noqa: E402
from tuner.server import EmbeddedServer  # noqa: E402

MODEL = "detector_python"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--run-dir", type=Path, default=Path("/tmp/tuner_auto_complete"))
    args = ap.parse_args()
    work = scratch_repository(args.run_dir, DEMO_REPOSITORY / MODEL)
    base = read_config(work / MODEL / "config.pbtxt")
    batching = [apply_knobs(base, {"dynamic_batching": on, "max_batch_size": 4}) for on in (True, False)]
    seconds: dict[tuple[str, str], list[float]] = {}
    servers = {"on (Triton's default)": EmbeddedServer(work, args.run_dir / "on"),
               "off": EmbeddedServer(work, args.run_dir / "off", auto_complete=False)}
    try:
        for server in servers.values():
            server.start().control.load(MODEL)
        for i in range(args.rounds):
            for setting, server in servers.items():
                start = time.perf_counter()
                server.control.load(MODEL, to_json(batching[i % 2]))
                middle = time.perf_counter()
                server.control.unload(MODEL)
                server.control.load(MODEL)
                seconds.setdefault(("reload, new batching", setting), []).append(middle - start)
                seconds.setdefault(("cold load", setting), []).append(time.perf_counter() - middle)
    finally:
        for server in servers.values():
            server.stop()
    rows = [[kind, setting, f"{statistics.median(s):.2f}", f"{min(s):.2f}", f"{max(s):.2f}"]
            for (kind, setting), s in sorted(seconds.items())]
    print(f"{MODEL} (python backend), {args.rounds} rounds, the two servers in turn")
    print(table(["load", "auto-completion", "median s", "min s", "max s"], rows))
    path = write_json("auto_complete", {"model": MODEL, "rounds": args.rounds,
                                        "s": {f"{k} / {v}": [round(x, 3) for x in s]
                                              for (k, v), s in seconds.items()}})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
