"""--launcher remote against a Triton the user already runs (here: one we start, explicit mode)."""
import shutil
import threading
import time

import pytest
from support import FAST, MODELS, SPACES, load_study, tuner, wait_serving
from support.proxy import Link

from tuner.config.modelconfig import read_config
from tuner.server import EmbeddedServer
from tuner.server.embedded import free_port
from tuner.study import trials as tr


@pytest.mark.integration
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
        # the same command resumed (nothing left to run) with --keep-chosen deploys the export
        again = tuner(tmp_path, "search", "--launcher", "remote", "--url", server.url, "--model", "tiny",
                      "--search-space", str(SPACES / "tiny.yaml"), "--trials", "3", "--keep-chosen",
                      "--storage", f"sqlite:///{tmp_path / 'study.db'}", "--out", str(tmp_path / "out"), *FAST)
        assert again.returncode == 0, again.stderr
        exported = read_config(tmp_path / "out" / "tiny" / "config.pbtxt")
        assert server.control.model_config_json("tiny")["max_batch_size"] == exported.max_batch_size
        assert "config loaded on" in again.stdout
    trials = load_study(tmp_path).get_trials()
    assert len(tr.counted(trials)) == 3 and all(t.values for t in trials if not tr.is_repeat(t))


@pytest.mark.integration
def test_remote_server_not_in_explicit_mode_is_refused(tmp_path):
    (tmp_path / "repo").mkdir()
    args = ("--model-control-mode=none",)
    with EmbeddedServer(tmp_path / "repo", tmp_path / "user-server", extra_args=args) as server:
        done = tuner(tmp_path, "search", "--launcher", "remote", "--url", server.url, "--model", "tiny",
                     "--storage", f"sqlite:///{tmp_path / 'study.db'}", *FAST)
    assert done.returncode == 2
    assert "not in explicit model-control mode" in done.stderr and "--model-control-mode=explicit" in done.stderr


@pytest.mark.unit
def test_a_remote_url_where_nothing_listens_is_said_at_once(tmp_path):
    started = time.monotonic()
    done = tuner(tmp_path, "search", "--launcher", "remote", "--url", f"127.0.0.1:{free_port()}", "--model", "tiny",
                 "--storage", f"sqlite:///{tmp_path / 'study.db'}", *FAST)
    assert done.returncode == 2 and "cannot connect (Connection refused)" in done.stderr, done.stderr
    assert time.monotonic() - started < 15  # not the 30 s readiness wait


@pytest.mark.unit
def test_remote_needs_url_and_model(tmp_path):
    done = tuner(tmp_path, "search", "--launcher", "remote")
    assert done.returncode == 2 and "--url HOST:PORT and --model NAME" in done.stderr


def _through(link: Link, tmp_path, *extra: str):
    return tuner(tmp_path, "search", "--launcher", "remote", "--url", link.url, "--model", "tiny",
                 "--search-space", str(SPACES / "tiny.yaml"), "--trials", "3",
                 "--storage", f"sqlite:///{tmp_path / 'study.db'}", "--out", str(tmp_path / "out"), *FAST, *extra)


def _cut_mid_measurement(link: Link, run_dir, restore_after_s: float | None) -> threading.Thread:
    def drop() -> None:
        wait_serving(run_dir, "tiny", 200, "a measurement")
        link.cut()
        if restore_after_s is not None:
            time.sleep(restore_after_s)
            link.restore()

    thread = threading.Thread(target=drop)
    thread.start()
    return thread


@pytest.mark.system
def test_a_remote_server_that_drops_off_the_network_for_a_while_costs_no_trial(tmp_path):
    shutil.copytree(MODELS / "tiny", tmp_path / "repo" / "tiny")
    with EmbeddedServer(tmp_path / "repo", tmp_path / "user-server") as server, \
            Link(int(server.url.rpartition(":")[2])) as link:
        drop = _cut_mid_measurement(link, tmp_path / "user-server", restore_after_s=6)
        done = _through(link, tmp_path)
        drop.join()
    assert done.returncode == 0, done.stderr
    trials = load_study(tmp_path).get_trials()
    assert len(tr.counted(trials)) == 3 and not any(tr.failure(t) for t in trials if not tr.is_repeat(t))
    assert [t.user_attrs.get("attempts") for t in trials].count(2) == 1  # the cut one, measured again


@pytest.mark.system
def test_a_remote_server_gone_for_longer_than_the_outage_bound_stops_the_study_and_the_rerun_finishes(tmp_path):
    shutil.copytree(MODELS / "tiny", tmp_path / "repo" / "tiny")
    with EmbeddedServer(tmp_path / "repo", tmp_path / "user-server") as server, \
            Link(int(server.url.rpartition(":")[2])) as link:
        drop = _cut_mid_measurement(link, tmp_path / "user-server", restore_after_s=None)
        stopped = _through(link, tmp_path, "--outage-s", "5")
        drop.join()
        assert stopped.returncode == 3, stopped.stderr
        assert f"{link.url} has been out of reach for 5 s" in stopped.stderr
        assert "rerun the same command to resume it" in stopped.stderr and "Traceback" not in stopped.stderr
        link.restore()
        resumed = _through(link, tmp_path)
        assert resumed.returncode == 0, resumed.stderr
    trials = load_study(tmp_path).get_trials()
    assert len(tr.counted(trials)) == 3 and not any(tr.failure(t) for t in tr.counted(trials))
