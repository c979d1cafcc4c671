"""A search end to end against a real embedded Triton, a real model and a real SQLite Optuna storage:
its export, failed configs, constraints, resuming, and a server or a user that stops it."""
import json
import os
import shutil
import signal
import subprocess

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from optuna.trial import TrialState
from support import (
    MODELS,
    SPACES,
    finished_rows,
    load_study,
    search,
    search_command,
    servers_of,
    wait_for,
    wait_serving,
)

from tuner.config.modelconfig import read_config
from tuner.faults import Failure
from tuner.server import EmbeddedServer
from tuner.study import trials as tr
from tuner.study.selection import pareto_front


@pytest.mark.integration
def test_the_shipped_default_space_leaves_out_what_cannot_act_on_the_model(workdir):
    """A model without a batch dimension: the generic space's batching knobs cannot act on it, so
    the default search tunes its instances alone (a space the user names is refused instead)."""
    repo = workdir / "repo" / "tiny"
    shutil.copytree(MODELS / "tiny", repo)
    (repo / "config.pbtxt").write_text((MODELS / "tiny" / "config.pbtxt").read_text().replace(
        "max_batch_size: 8", "max_batch_size: 0"))
    done = search(workdir, "--trials", "2", target=("--model-repository", str(workdir / "repo")))
    assert done.returncode == 0, done.stderr
    assert ("the shipped space 'generic' is searched without what cannot act on 'tiny': dynamic_batching, "
            "max_batch_size, max_queue_delay_us, preferred_batch_sizes: the model has max_batch_size 0 (no batch "
            "dimension), so it cannot be batched") in done.stderr
    assert {name for t in load_study(workdir).get_trials() for name in t.params} <= {"instance_count"}


@pytest.mark.integration
def test_short_search_exports_a_config_that_loads(workdir):
    before = (MODELS / "tiny" / "config.pbtxt").read_text()
    done = search(workdir, "--search-space", str(SPACES / "tiny.yaml"), "--trials", "5", "--remeasure", "1")
    assert done.returncode == 0, done.stderr
    assert "Pareto front (re-measured: medians)" in done.stdout and "exported trial #" in done.stdout
    assert "(your config)" in done.stdout  # the baseline's own row, on the front or not

    study = load_study(workdir)
    trials = study.get_trials()
    assert len([t for t in trials if t.state == TrialState.COMPLETE]) == 5
    base = trials[0]
    assert base.user_attrs["role"] == "baseline" and base.params == {}
    assert study.metric_names == ["throughput_infer_per_s", "p95_latency_ms"]
    for t in (t for t in trials if not tr.is_repeat(t)):
        metrics = t.user_attrs["metrics"]
        assert metrics["samples"] >= 100 and metrics["errors"] == 0
        assert metrics["p95_ci_ms"][0] <= metrics["p95_ms"] <= metrics["p95_ci_ms"][1]
        assert t.values[0] > 0 and "instance_group" in t.user_attrs["config_pbtxt"]
    assert pareto_front(trials)
    # the baseline and the front's candidates were measured once more; the export is chosen on medians
    runs = study.user_attrs["remeasured"]["runs"]
    assert len(runs["0"]["throughput"]) == 2 and 2 <= len(runs) <= 5
    manifest = json.loads((workdir / "out" / "tiny" / "tuner_manifest.json").read_text())
    assert str(manifest["trial"]) in runs

    exported = workdir / "out" / "tiny" / "config.pbtxt"
    config = read_config(exported)  # parses as a ModelConfig
    assert (workdir / "out" / "tiny" / "tuner_manifest.json").exists()
    assert (MODELS / "tiny" / "config.pbtxt").read_text() == before, "the user's repository was modified"

    # the export is deployable: a fresh Triton loads it from a repository as a user would lay it out
    repo = workdir / "deploy"
    shutil.copytree(MODELS / "tiny" / "1", repo / "tiny" / "1")
    shutil.copy(exported, repo / "tiny" / "config.pbtxt")
    with EmbeddedServer(repo, workdir / "deploy-run") as server:
        server.control.load("tiny")
        loaded = server.control.model_config_json("tiny")
        assert loaded["max_batch_size"] == config.max_batch_size
        client = grpcclient.InferenceServerClient(server.url)
        x = np.arange(16, dtype=np.float32).reshape(1, 16)
        tensor = grpcclient.InferInput("INPUT0", x.shape, "FP32")
        tensor.set_data_from_numpy(x)
        assert np.array_equal(client.infer("tiny", [tensor]).as_numpy("OUTPUT0"), x * 2)
        client.close()


@pytest.mark.integration
def test_a_model_whose_own_config_does_not_load_spends_no_trial(workdir):
    model = workdir / "repo" / "tiny"
    shutil.copytree(MODELS / "tiny", model)
    config = model / "config.pbtxt"
    config.write_text(config.read_text() + 'parameters [ { key: "fail_on_load" value { string_value: "yes" } } ]\n')
    done = search(workdir, "--search-space", str(SPACES / "tiny_slo.yaml"), "--trials", "4",
                  target=("--model-repository", str(workdir / "repo"), "--model", "tiny"))
    assert done.returncode == 2
    assert "the model's own config does not load, so there is nothing to tune from" in done.stderr
    assert "fail_on_load is set" in done.stderr  # Triton's reason
    trials = load_study(workdir).get_trials()  # the start_with config and the baseline, still queued
    assert [t.state for t in trials] == [TrialState.WAITING] * 2 and not servers_of(workdir)


@pytest.mark.integration
def test_config_that_fails_to_load_is_a_failed_trial_and_the_study_goes_on(workdir):
    done = search(workdir, "--search-space", str(SPACES / "tiny_failing.yaml"), "--trials", "4")
    assert done.returncode == 0, done.stderr
    trials = load_study(workdir).get_trials()
    assert trials[0].state == TrialState.COMPLETE  # the baseline
    failed = [t for t in trials if tr.config_failed(t)]
    # the space has two configs (1 or 2 instances), both failing: each measured once, then the study stops
    assert sorted(t.params["instance_count"] for t in failed) == [1, 2]
    assert all(tr.failure(t) is Failure.LOAD and "fail_on_load is set" in tr.reason(t) for t in failed)
    # told as PRUNED with a violated constraint: the sampler learns to avoid the region (FAIL it ignores)
    assert all(t.state == TrialState.PRUNED and t.constraints["config_failed"] == 1.0 for t in failed)
    repeats = [t for t in trials if tr.is_repeat(t)]
    assert trials[-25:] == repeats[-25:] and not any(tr.counts(t) for t in repeats)  # proposals, not trials
    assert "25 configs in a row that were already measured" in done.stdout
    assert f"failed #{failed[0].number}: load failed" in done.stdout


def _counted(study):
    return tr.counted(study.get_trials())


@pytest.mark.system
def test_interrupted_study_resumes_to_the_total_without_losing_a_trial(workdir):
    space = str(SPACES / "tiny.yaml")
    slow = ("--max-measure-s", "3", "--min-samples", "100000", "--no-racing")  # each trial measures 3 s
    proc = subprocess.Popen(search_command(workdir, "--search-space", space, "--trials", "8", *slow), cwd=workdir,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for(lambda: finished_rows(workdir) >= 3, "three finished trials", timeout=180)
    wait_serving(workdir / "runs" / "tiny", "tiny", 300, "the next trial's 3 s measurement")
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "rerun the same command to resume" in err
    assert not servers_of(workdir), "tritonserver left running after Ctrl-C"
    cut = [t for t in load_study(workdir).get_trials() if tr.failure(t) is Failure.INTERRUPTED]
    assert len(cut) == 1 and cut[0].params, "the signal did not land inside a trial"
    assert 3 <= len(_counted(load_study(workdir))) < 8  # a repeat is answered at once: maybe one more

    done = search(workdir, "--search-space", space, "--trials", "8", *slow)
    assert done.returncode == 0, done.stderr
    study = load_study(workdir)
    assert len(_counted(study)) == 8
    assert not study.get_trials(states=(TrialState.RUNNING, TrialState.WAITING))
    # the trial cut off mid-measurement was queued again with the same knobs, and measured first
    again = study.get_trials()[cut[0].number + 1]
    assert again.params == cut[0].params and again.state == TrialState.COMPLETE


@pytest.mark.integration
def test_resuming_with_other_settings_is_refused(workdir):
    assert search(workdir, "--search-space", str(SPACES / "tiny.yaml"), "--trials", "2").returncode == 0
    again = search(workdir, "--search-space", str(SPACES / "tiny.yaml"), "--trials", "3", "--concurrency", "4")
    assert again.returncode == 2 and "other settings (load)" in again.stderr


@pytest.mark.integration
def test_slo_is_a_constraint_inside_the_search_and_known_good_configs_go_first(workdir):
    done = search(workdir, "--search-space", str(SPACES / "tiny_slo.yaml"), "--trials", "4",
                  "--slo-p95-ms", "1000")
    assert done.returncode == 0, done.stderr
    trials = load_study(workdir).get_trials()
    # the known-good config first (a good config in hand within seconds), measured fully; then the baseline
    assert trials[0].user_attrs["role"] == "start_with" and tr.is_baseline(trials[1])
    assert trials[0].params == {"max_batch_size": 8, "instance_count": 2, "dynamic_batching": True,
                                "max_queue_delay_us": 500}
    for t in (t for t in trials if tr.measured(t)):  # what the constrained sampler learns from
        assert t.user_attrs["slo_violation_ms"] == pytest.approx(t.values[1] - 1000)
        # the SLO, then output agreement (same outputs as the baseline: -1, far inside the limit)
        assert t.constraints == {"slo_violation_ms": t.user_attrs["slo_violation_ms"],
                                 "output_violation": t.user_attrs["output_violation"]}
        assert t.user_attrs["output_violation"] == -1.0


@pytest.mark.system
def test_server_killed_mid_trial_is_restarted_and_the_config_measured_again(workdir):
    space = str(SPACES / "tiny.yaml")
    proc = subprocess.Popen(search_command(workdir, "--search-space", space, "--trials", "6",
                                           "--max-measure-s", "3", "--min-samples", "100000"),
                            cwd=workdir, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for(lambda: finished_rows(workdir) >= 2, "two finished trials")
    wait_serving(workdir / "runs" / "tiny", "tiny", 300, "the next trial's 3 s measurement")
    victims = servers_of(workdir)
    assert victims
    for pid in victims:
        os.kill(int(pid), signal.SIGKILL)
    out, err = proc.communicate(timeout=240)
    assert proc.returncode == 0, err
    study = load_study(workdir)
    # the environment's fault, not the config's: the same trial measured it again on a new server
    again = [t for t in study.get_trials() if t.user_attrs.get("attempts") == 2]
    assert len(again) == 1 and again[0].state == TrialState.COMPLETE
    assert all(t.state == TrialState.COMPLETE for t in study.get_trials() if not tr.is_repeat(t))
    assert len(_counted(study)) == 6  # the study went on to its total; nothing lost or spent
    assert not servers_of(workdir)


@pytest.mark.integration
def test_requests_past_their_deadline_on_two_fresh_servers_fail_the_trial(workdir):
    """Configs whose executions (1.5 s) outlast the requests' deadline (0.5 s): no answer ever
    comes, which is what a hung model shows, so the server is restarted and the config measured
    again; no answer on the fresh server either, and the config has failed."""
    done = search(workdir, "--search-space", str(SPACES / "tiny_hanging.yaml"), "--trials", "3",
                  "--request-timeout-s", "0.5", "--concurrency", "2")
    assert done.returncode == 0, done.stderr
    trials = load_study(workdir).get_trials()
    assert trials[0].state == TrialState.COMPLETE  # the baseline answers in time
    hung = [t for t in trials[1:] if not tr.is_repeat(t)]
    assert len(hung) == 2 and all(tr.failure(t) is Failure.STALLED for t in hung)
    assert all("got no answer" in tr.reason(t) and t.user_attrs["attempts"] == 2 for t in hung)


@pytest.mark.integration
def test_memory_limit_is_a_constraint_and_configs_over_it_are_never_exported(workdir):
    roomy = search(workdir, "--search-space", str(SPACES / "tiny.yaml"), "--trials", "3",
                   "--max-memory-mib", "100000", "--study-name", "roomy")
    assert roomy.returncode == 0, roomy.stderr
    for t in (t for t in load_study(workdir, "roomy").get_trials() if tr.measured(t)):
        assert 20 < t.user_attrs["memory_mib"] < 100000  # tritonserver and its python stubs, resident
        assert t.constraints == {"memory_violation_mib": t.user_attrs["memory_violation_mib"],
                                 "output_violation": t.user_attrs["output_violation"]}
    tight = search(workdir, "--search-space", str(SPACES / "tiny.yaml"), "--trials", "3",
                   "--max-memory-mib", "1", "--study-name", "tight")
    assert tight.returncode == 1 and "no measured trial meets memory <= 1.0 MiB" in tight.stderr
    assert all(t.user_attrs["over_memory"] for t in load_study(workdir, "tight").get_trials())


@pytest.mark.integration
def test_a_guided_search_measures_what_its_model_predicts_and_says_how_well(workdir):
    """A model whose batch of b costs 6 + 1 * b ms: after the baseline (no batching) the model,
    fitted from Triton's per-batch statistics, proposes configs; each guided trial keeps what was
    predicted for it, and the summary gives the model's errors."""
    repo = workdir / "repo" / "tiny"
    shutil.copytree(MODELS / "tiny", repo)
    (repo / "config.pbtxt").write_text((MODELS / "tiny" / "config.pbtxt").read_text() + (
        'parameters { key: "delay_ms" value { string_value: "6" } }\n'
        'parameters { key: "delay_per_request_ms" value { string_value: "1" } }\n'))
    done = search(workdir, "--trials", "4", "--guide", "model", "--search-space", str(SPACES / "tiny.yaml"),
                  target=("--model-repository", str(workdir / "repo"), "--model", "tiny"))
    assert done.returncode == 0, done.stderr
    trials = [t for t in load_study(workdir).get_trials() if tr.measured(t)]
    guided = [t for t in trials if t.user_attrs.get("predicted")]
    assert guided and all(t.params.get("dynamic_batching") for t in guided[:1])  # batching is what it predicts best
    assert all(t.user_attrs["metrics"]["server"]["batches"] for t in trials)
    assert "the performance model predicted" in done.stdout, done.stdout
