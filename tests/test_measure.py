"""`tuner measure`: one config measured like perf_analyzer, printed and written as JSON."""
import json

import pytest
from support import MODELS, tuner


@pytest.mark.integration
def test_measure_prints_and_writes_one_measurement(workdir):
    done = tuner(workdir, "measure", "--model-repository", str(MODELS), "--model", "tiny", "--min-samples", "200",
                 "--warmup-s", "0.3", "--window-s", "0.3", "--json", str(workdir / "m.json"),
                 "--run-dir", str(workdir / "runs"))
    assert done.returncode == 0, done.stderr
    found = json.loads((workdir / "m.json").read_text())
    assert found["samples"] >= 200 and found["errors"] == 0 and found["throughput"] > 0
    assert found["p95_ci_ms"][0] <= found["p95_ms"] <= found["p95_ci_ms"][1]
    assert f"throughput      {found['throughput']:.1f} infer/s" in done.stdout
