"""The inputs a search sends: shapes for dynamic dimensions, real input data and shared memory,
checked against the model before any server starts and kept with the study (a resume with
other inputs is refused; `export --verify` measures with them)."""
import json
import shutil

import pytest
from optuna.trial import TrialState
from support import MODELS, SPACES, load_study, search, tuner

from tuner.study import trials as tr

ALLTYPES = ("--model-repository", str(MODELS), "--model", "alltypes")


@pytest.mark.unit
def test_a_missing_shape_is_refused_before_any_server_starts(workdir):
    done = search(workdir, "--trials", "2", "--search-space", str(SPACES / "tiny.yaml"), target=ALLTYPES)
    assert done.returncode == 2, done.stderr
    # the hint is the dims as config.pbtxt writes them, without the batch dimension; following it works (below)
    assert "input 'IN_DYNAMIC' has dynamic dims [-1]" in done.stderr
    assert "--shape IN_DYNAMIC:D (the batch dimension not included)" in done.stderr
    assert not (workdir / "runs").exists() and not (workdir / "study.db").exists()  # nothing started or made


@pytest.mark.unit
def test_a_shape_that_does_not_fit_the_config_is_refused_before_any_server_starts(workdir):
    done = search(workdir, "--shape", "IN_DYNAMIC:1,5", target=ALLTYPES)
    assert done.returncode == 2 and "does not fit" in done.stderr and "without the batch dimension" in done.stderr
    assert not (workdir / "runs").exists()


@pytest.mark.integration
def test_shapes_and_shared_memory_are_study_settings_and_verify_uses_them(workdir):
    inputs = ("--shape", "IN_DYNAMIC:5", "--shared-memory", "system")
    done = search(workdir, "--trials", "3", "--search-space", str(SPACES / "tiny.yaml"), *inputs, target=ALLTYPES)
    assert done.returncode == 0, done.stderr
    study = load_study(workdir, "alltypes")
    assert all(t.state == TrialState.COMPLETE for t in study.get_trials() if not tr.is_repeat(t))
    assert study.user_attrs["settings"]["inputs"] == {"shapes": {"IN_DYNAMIC": [5]}, "input_data": None,
                                                      "shared_memory": "system"}
    manifest = json.loads((workdir / "out" / "alltypes" / "tuner_manifest.json").read_text())
    assert manifest["inputs"]["shapes"] == {"IN_DYNAMIC": [5]} and manifest["inputs"]["shared_memory"] == "system"
    # a resume with other inputs would mix measurements of different requests: refused
    other = search(workdir, "--trials", "4", "--search-space", str(SPACES / "tiny.yaml"),
                   "--shape", "IN_DYNAMIC:7", "--shared-memory", "system", target=ALLTYPES)
    assert other.returncode == 2 and "other settings (inputs)" in other.stderr
    # verify measures with the study's inputs (before: no --shape, so it could not measure at all)
    verified = tuner(workdir, "export", "--storage", f"sqlite:///{workdir / 'study.db'}", "--out",
                     str(workdir / "v"), "--verify", "--run-dir", str(workdir / "vr"))
    assert "re-measured" in verified.stdout and "FAILED" not in verified.stdout, verified.stdout + verified.stderr


@pytest.mark.integration
def test_input_data_in_a_search(workdir):
    data = workdir / "data.json"
    data.write_text(json.dumps({"data": [{"INPUT0": list(range(8))}]}))  # the only input checker accepts
    repo = workdir / "repo"
    shutil.copytree(MODELS / "checker", repo / "checker")
    done = search(workdir, "--trials", "2", "--search-space", str(SPACES / "tiny.yaml"), "--input-data", str(data),
                  target=("--model-repository", str(repo), "--model", "checker"))
    assert done.returncode == 0, done.stderr
    study = load_study(workdir, "checker")
    assert all(t.state == TrialState.COMPLETE for t in study.get_trials()
               if not tr.is_repeat(t))  # the checker refuses other data
    assert study.user_attrs["settings"]["inputs"]["input_data"]  # its digest: a resume with other data is refused
