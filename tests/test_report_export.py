"""report and export on a study made by a real search."""
import json

from conftest import tuner
from tuner.modelconfig import read_config


def _storage(workdir):
    return f"sqlite:///{workdir / 'study.db'}"


def test_report_writes_pictures_table_and_diff(tiny_study, tmp_path):
    done = tuner(tiny_study, "report", "--storage", _storage(tiny_study), "--out", str(tmp_path / "r"))
    assert done.returncode == 0, done.stderr
    png = (tmp_path / "r" / "pareto.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 20_000
    page = (tmp_path / "r" / "report.html").read_text()
    assert "Pareto front" in page and "data:image/png;base64," in page and "#0" in page
    assert "--- baseline (trial #0)" in done.stdout or "(the chosen config is your own)" in page


def test_export_by_trial_with_manifest(tiny_study, tmp_path):
    done = tuner(tiny_study, "export", "--storage", _storage(tiny_study), "--trial", "0", "--out", str(tmp_path))
    assert done.returncode == 0, done.stderr
    assert read_config(tmp_path / "tiny" / "config.pbtxt").name == "tiny"
    manifest = json.loads((tmp_path / "tiny" / "tuner_manifest.json").read_text())
    assert manifest["trial"] == 0 and manifest["triton_version"] == "2.51.0"
    assert manifest["launcher"] == "embedded" and manifest["hardware"]["cpus"] >= 1
    assert manifest["metrics"]["p95_ci_ms"] and manifest["search_space"].endswith("tiny.yaml")


def test_export_verify_remeasures_and_says_whether_it_agrees(tiny_study, tmp_path):
    done = tuner(tiny_study, "export", "--storage", _storage(tiny_study), "--out", str(tmp_path / "o"),
                 "--verify", "--run-dir", str(tmp_path / "runs"))
    assert done.returncode == 0, done.stderr
    assert "re-measured" in done.stdout
    assert ("within the stored confidence intervals" in done.stdout
            or "NOT within the stored confidence intervals" in done.stdout)


def test_unknown_trial_and_storage_are_refused(tiny_study, tmp_path):
    done = tuner(tiny_study, "export", "--storage", _storage(tiny_study), "--trial", "999")
    assert done.returncode == 2 and "--trial 999" in done.stderr
    done = tuner(tmp_path, "report", "--storage", f"sqlite:///{tmp_path / 'none.db'}")
    assert done.returncode == 2 and "no such database" in done.stderr
