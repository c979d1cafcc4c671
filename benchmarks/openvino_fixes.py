"""Shows that each of the project's four OpenVINO r24.10 batching fixes is needed: builds the backend
once without each fix and runs tests/test_openvino.py's concurrency-8 scenarios against it.

    python benchmarks/openvino_fixes.py        # prints a table, writes benchmarks/results/openvino_fixes.json

Each row is a build; each column a scenario (named after the fix it needs); a cell is pass or fail.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from tuner import backends  # noqa: E402
from tuner.backends.openvino_fixes import BATCHING_FIXES  # noqa: E402


def scenario_results(without: str | None) -> dict[str, str]:
    env = {**os.environ, **({"TUNER_OV_WITHOUT": without} if without else {})}
    try:
        done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-rA", "-p", "no:cacheprovider",
                               str(HERE.parent / "tests" / "test_openvino.py"), "-k", "batching"],
                              cwd=HERE.parent, env=env, capture_output=True, text=True, timeout=600)
    except subprocess.TimeoutExpired:
        return {fix: "hung" for fix in BATCHING_FIXES}
    results = {}
    for line in done.stdout.splitlines():
        for fix in BATCHING_FIXES:
            if f"[{fix}]" in line and line.split()[0] in ("PASSED", "FAILED"):
                results[fix] = line.split()[0].lower()
    return results


def main() -> None:
    rows = {}
    for without in (None, *BATCHING_FIXES):
        started = time.monotonic()
        backends.build("openvino", leave_out=frozenset({without} if without else ()), say=lambda _: None)
        rows[without or "all fixes"] = scenario_results(without)
        print(f"built and ran without {without or 'nothing'} in {time.monotonic() - started:.0f} s", file=sys.stderr)
    head = ["build \\ scenario", *BATCHING_FIXES]
    print("  ".join(f"{h:18}" for h in head))
    for name, results in rows.items():
        label = name if name == "all fixes" else f"without {name}"
        print("  ".join(f"{c:18}" for c in [label, *(results.get(f, "?") for f in BATCHING_FIXES)]))
    out = HERE / "results" / "openvino_fixes.json"
    out.write_text(json.dumps({"date": time.strftime("%Y-%m-%d"), "results": rows}, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
