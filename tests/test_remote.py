"""--launcher remote against a Triton the user already runs (here: one we start, explicit mode)."""
import shutil

from conftest import FAST, MODELS, SPACES, load_study, tuner
from tuner.server import EmbeddedServer


def test_remote_search_tunes_only_its_model_and_restores_its_config(tmp_path):
    for model in ("tiny", "checker"):
        shutil.copytree(MODELS / model, tmp_path / "repo" / model)
    with EmbeddedServer(tmp_path / "repo", tmp_path / "user-server") as server:
        server.control.load("checker")  # another model the user serves: must be left alone
        server.control.load("tiny")
        before = server.control.model_config_json("tiny")
        done = tuner(tmp_path, "search", "--launcher", "remote", "--url", server.url, "--model", "tiny",
                     "--search-space", str(SPACES / "tiny.yaml"), "--trials", "3",
                     "--storage", f"sqlite:///{tmp_path / 'study.db'}", "--out", str(tmp_path / "out"), *FAST)
        assert done.returncode == 0, done.stderr
        assert server.control.is_model_ready("checker")
        assert server.control.model_config_json("tiny") == before
    trials = load_study(tmp_path).get_trials()
    assert len(trials) == 3 and all(t.values for t in trials)
    assert (tmp_path / "out" / "tiny" / "config.pbtxt").exists()


def test_remote_needs_url_and_model(tmp_path):
    done = tuner(tmp_path, "search", "--launcher", "remote")
    assert done.returncode == 2 and "--url HOST:PORT and --model NAME" in done.stderr
