"""report and export on a study made by a real search; the knobs' importances on a study made here."""
import json
import shutil
import sqlite3
import warnings

import optuna
import pytest
from support import MODELS, SPACES, load_study, search, tuner

from tuner.config.modelconfig import read_config
from tuner.output import choice
from tuner.output.report import importances
from tuner.study import trials as tr
from tuner.study.settings import StudySettings
from tuner.study.study import open_study


def _storage(workdir):
    return f"sqlite:///{workdir / 'study.db'}"


@pytest.mark.integration
def test_report_writes_pictures_table_and_diff(tiny_study, tmp_path):
    done = tuner(tiny_study, "report", "--storage", _storage(tiny_study), "--out", str(tmp_path / "r"))
    assert done.returncode == 0, done.stderr
    png = (tmp_path / "r" / "pareto.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 20_000
    page = (tmp_path / "r" / "report.html").read_text()
    assert "Pareto front" in page and "data:image/png;base64," in page and "#0" in page
    chosen = choice.chosen(load_study(tiny_study), "knee", None)  # the knee, or a cheaper stand-in
    if tr.is_baseline(chosen):  # the diff says so, rather than showing an empty one
        assert "(the chosen config is your own)" in page
    else:
        assert f"--- baseline (trial #0)\n+++ chosen (trial #{chosen.number})" in done.stdout


@pytest.mark.integration
def test_export_by_trial_with_manifest(tiny_study, tmp_path):
    done = tuner(tiny_study, "export", "--storage", _storage(tiny_study), "--trial", "0", "--out", str(tmp_path))
    assert done.returncode == 0, done.stderr
    assert read_config(tmp_path / "tiny" / "config.pbtxt").name == "tiny"
    manifest = json.loads((tmp_path / "tiny" / "tuner_manifest.json").read_text())
    assert manifest["trial"] == 0 and manifest["triton_version"] == "2.51.0"
    assert manifest["launcher"] == "embedded" and manifest["hardware"]["cpus"] >= 1
    assert manifest["metrics"]["p95_ci_ms"] and manifest["search_space"].endswith("tiny.yaml")


def _with_stored_intervals(tiny_study, tmp_path, throughput_ci, p95_ci) -> str:
    """A copy of the study whose trial #0 claims these intervals (to make the verdict certain)."""
    db = tmp_path / "study.db"
    shutil.copy(tiny_study / "study.db", db)
    with sqlite3.connect(db) as conn:
        (trial_id,) = conn.execute("SELECT trial_id FROM trials WHERE number = 0").fetchone()
        (text,) = conn.execute("SELECT value_json FROM trial_user_attributes WHERE trial_id = ? AND key = 'metrics'",
                               (trial_id,)).fetchone()
        metrics = {**json.loads(text), "throughput_ci": throughput_ci, "p95_ci_ms": p95_ci}
        conn.execute("UPDATE trial_user_attributes SET value_json = ? WHERE trial_id = ? AND key = 'metrics'",
                     (json.dumps(metrics), trial_id))
    return f"sqlite:///{db}"


@pytest.mark.integration
@pytest.mark.parametrize("throughput_ci, p95_ci, status, verdict", [
    ([0, 1e12], [0, 1e12], 0, "verdict      within the stored confidence intervals"),
    ([1e9, 2e9], [0, 1e12], 1, "verdict      NOT within the stored confidence intervals"),
])
def test_export_verify_remeasures_and_its_exit_status_is_the_verdict(tiny_study, tmp_path, throughput_ci, p95_ci,
                                                                     status, verdict):
    storage = _with_stored_intervals(tiny_study, tmp_path, throughput_ci, p95_ci)
    done = tuner(tiny_study, "export", "--storage", storage, "--trial", "0", "--out", str(tmp_path / "o"),
                 "--verify", "--run-dir", str(tmp_path / "runs"))
    assert "re-measured" in done.stdout and verdict in done.stdout, done.stderr
    assert done.returncode == status


@pytest.mark.integration
def test_unknown_trial_and_storage_are_refused(tiny_study, tmp_path):
    done = tuner(tiny_study, "export", "--storage", _storage(tiny_study), "--trial", "999")
    assert done.returncode == 2 and "--trial 999" in done.stderr
    done = tuner(tmp_path, "report", "--storage", f"sqlite:///{tmp_path / 'none.db'}")
    assert done.returncode == 2 and "no such database" in done.stderr


@pytest.mark.unit
def test_importance_is_for_high_throughput_and_low_p95():
    """Optuna 5's default (PED-ANOVA) ranks what matters for low values; throughput is maximized.
    Here `fast` alone decides the highest throughputs, and `slow` alone the lowest ones."""
    study = optuna.create_study(directions=["maximize", "minimize"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        study.set_metric_names(["throughput", "p95"])
    dist = {"fast": optuna.distributions.IntDistribution(0, 1), "slow": optuna.distributions.IntDistribution(0, 9)}
    for fast in (0, 1):
        for slow in range(10):
            for _ in range(3 if fast == 0 else 1):
                values = [1000.0 if fast else 10.0 * slow + 1, 5.0]
                study.add_trial(optuna.trial.create_trial(params={"fast": fast, "slow": slow}, distributions=dist,
                                                          values=values))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        scores = importances(study)["throughput"]
    assert scores["fast"] > scores["slow"]


@pytest.mark.unit
def test_export_and_report_choose_within_the_studys_slo_unless_told_otherwise(tmp_path):
    """A study searched under a 50 ms SLO (its trial #0, the queued baseline, never ran): the fastest
    config breaks it, the next one keeps it."""
    storage = f"sqlite:///{tmp_path / 's.db'}"
    study = open_study(storage, "tiny", StudySettings("tiny", "concurrency 8", "x", {}, slo_p95_ms=50.0))
    config = (MODELS / "tiny" / "config.pbtxt").read_text()
    for values, role in (([100.0, 40.0], "baseline"), ([300.0, 45.0], "search"), ([500.0, 80.0], "search")):
        study.add_trial(optuna.trial.create_trial(values=values, user_attrs={"role": role, "config_pbtxt": config}))

    def exported(*args: str) -> int:
        done = tuner(tmp_path, "export", "--storage", storage, "--policy", "max-throughput", "--out",
                     str(tmp_path / "out"), *args)
        assert done.returncode == 0, done.stderr
        return json.loads((tmp_path / "out" / "tiny" / "tuner_manifest.json").read_text())["trial"]

    assert exported() == 2  # within the study's SLO, although #2 serves more
    assert exported("--slo-p95-ms", "100") == 3  # another limit, asked for
    report = tuner(tmp_path, "report", "--storage", storage, "--policy", "max-throughput", "--out", str(tmp_path / "r"))
    assert report.returncode == 0, report.stderr
    assert [line.split()[1] for line in report.stdout.splitlines() if line.startswith("*")] == ["#2"]


@pytest.mark.integration
def test_a_study_stored_before_the_renames_resumes_and_reports(workdir):
    """A study whose trials carry the old attribute name (`screened`, now `stopped_early`) goes on
    where it stopped and reports those trials as stopped early."""
    first = search(workdir, "--search-space", str(SPACES / "tiny.yaml"), "--trials", "3")
    assert first.returncode == 0, first.stderr
    # the last search trial measured (not a repeat of another) stopped early too, if it did not already
    marked = max(t.number for t in load_study(workdir).get_trials() if tr.measured(t) and not tr.is_baseline(t))
    with sqlite3.connect(workdir / "study.db") as db:  # as a study stored before the rename
        db.execute("UPDATE trial_user_attributes SET key = 'screened' WHERE key = 'stopped_early'")
        db.execute("INSERT OR IGNORE INTO trial_user_attributes (trial_id, key, value_json) "
                   "SELECT trial_id, 'screened', 'true' FROM trials WHERE number = ?", (marked,))
    again = search(workdir, "--search-space", str(SPACES / "tiny.yaml"), "--trials", "4")
    assert again.returncode == 0, again.stderr
    study = load_study(workdir)
    assert sum(tr.measured(t) for t in study.get_trials()) == 4  # resumed: one more, none run twice
    assert tr.stopped_early(study.trials[marked])
    report = tuner(workdir, "report", "--storage", _storage(workdir), "--out", str(workdir / "r"))
    assert report.returncode == 0, report.stderr
    early = int(report.stdout.split(" stopped early")[0].rsplit("(", 1)[1])
    assert early >= 1
