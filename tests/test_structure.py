"""The defects that one home per concept brought out, each against the real embedded Triton: checks
that need only files run before any server starts, input settings belong to the study, a config
Triton applies in place is confirmed cold before export, servers that do not start leave nothing."""
import dataclasses
import json
import shutil
import socket
import warnings
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from conftest import MODELS, SPACES, load_study, run_search, servers_of, tuner
from tuner import trials as tr
from tuner.errors import ConfigError, ServerError
from tuner.faults import Failure
from tuner.modelconfig import read_config
from tuner.report import importances
from tuner.server import EmbeddedServer
from tuner.server import embedded
from tuner.study import StudySettings, open_study

ALLTYPES = ("--model-repository", str(MODELS), "--model", "alltypes")


def test_a_missing_shape_is_refused_before_any_server_starts(workdir):
    done = run_search(workdir, "--trials", "2", "--search-space", str(SPACES / "tiny.yaml"), target=ALLTYPES)
    assert done.returncode == 2, done.stderr
    # the hint is the dims as config.pbtxt writes them, without the batch dimension; following it works (below)
    assert "input 'IN_DYNAMIC' has dynamic dims [-1]" in done.stderr
    assert "--shape IN_DYNAMIC:D (the batch dimension not included)" in done.stderr
    assert not (workdir / "runs").exists() and not (workdir / "study.db").exists()  # nothing started or made


def test_a_shape_that_does_not_fit_the_config_is_refused_before_any_server_starts(workdir):
    done = run_search(workdir, "--shape", "IN_DYNAMIC:1,5", target=ALLTYPES)
    assert done.returncode == 2 and "does not fit" in done.stderr and "without the batch dimension" in done.stderr
    assert not (workdir / "runs").exists()


def test_shapes_and_shared_memory_are_study_settings_and_verify_uses_them(workdir):
    inputs = ("--shape", "IN_DYNAMIC:5", "--shared-memory", "system")
    done = run_search(workdir, "--trials", "3", "--search-space", str(SPACES / "tiny.yaml"), *inputs, target=ALLTYPES)
    assert done.returncode == 0, done.stderr
    study = load_study(workdir, "alltypes")
    assert all(t.state == TrialState.COMPLETE for t in study.get_trials() if not tr.is_repeat(t))
    assert study.user_attrs["settings"]["inputs"] == {"shapes": {"IN_DYNAMIC": [5]}, "input_data": None,
                                                      "shared_memory": "system"}
    manifest = json.loads((workdir / "out" / "alltypes" / "tuner_manifest.json").read_text())
    assert manifest["inputs"]["shapes"] == {"IN_DYNAMIC": [5]} and manifest["inputs"]["shared_memory"] == "system"
    # a resume with other inputs would mix measurements of different requests: refused
    other = run_search(workdir, "--trials", "4", "--search-space", str(SPACES / "tiny.yaml"),
                       "--shape", "IN_DYNAMIC:7", "--shared-memory", "system", target=ALLTYPES)
    assert other.returncode == 2 and "other settings (inputs)" in other.stderr
    # verify measures with the study's inputs (before: no --shape, so it could not measure at all)
    verified = tuner(workdir, "export", "--storage", f"sqlite:///{workdir / 'study.db'}", "--out",
                     str(workdir / "v"), "--verify", "--run-dir", str(workdir / "vr"))
    assert "re-measured" in verified.stdout and "FAILED" not in verified.stdout, verified.stdout + verified.stderr


def test_input_data_in_a_search(workdir):
    data = workdir / "data.json"
    data.write_text(json.dumps({"data": [{"INPUT0": list(range(8))}]}))  # the only input checker accepts
    repo = workdir / "repo"
    shutil.copytree(MODELS / "checker", repo / "checker")
    done = run_search(workdir, "--trials", "2", "--search-space", str(SPACES / "tiny.yaml"), "--input-data", str(data),
                      target=("--model-repository", str(repo), "--model", "checker"))
    assert done.returncode == 0, done.stderr
    study = load_study(workdir, "checker")
    assert all(t.state == TrialState.COMPLETE for t in study.get_trials()
               if not tr.is_repeat(t))  # the checker refuses other data
    assert study.user_attrs["settings"]["inputs"]["input_data"]  # its digest: a resume with other data is refused


def test_measure_prints_and_writes_one_measurement(workdir):
    done = tuner(workdir, "measure", "--model-repository", str(MODELS), "--model", "tiny", "--min-samples", "200",
                 "--warmup-s", "0.3", "--window-s", "0.3", "--json", str(workdir / "m.json"),
                 "--run-dir", str(workdir / "runs"))
    assert done.returncode == 0, done.stderr
    found = json.loads((workdir / "m.json").read_text())
    assert found["samples"] >= 200 and found["errors"] == 0 and found["throughput"] > 0
    assert found["p95_ci_ms"][0] <= found["p95_ms"] <= found["p95_ci_ms"][1]
    assert f"throughput      {found['throughput']:.1f} infer/s" in done.stdout


def _limited_tiny(workdir: Path) -> Path:
    """tiny that refuses more than two instances in its initialize, slow enough that instances matter."""
    repo = workdir / "repo"
    shutil.copytree(MODELS / "tiny", repo / "tiny")
    config = repo / "tiny" / "config.pbtxt"
    config.write_text(config.read_text() + 'parameters [ { key: "max_instances" value { string_value: "2" } },\n'
                      '  { key: "delay_ms" value { string_value: "20" } } ]\n')
    return repo


def test_a_config_triton_updates_in_place_but_that_fails_cold_is_never_exported(workdir):
    repo = _limited_tiny(workdir)
    space = workdir / "space.yaml"
    space.write_text("knobs:\n  instance_count: [1, 2, 3]\nstart_with:\n  - {instance_count: 2}\n"
                     "  - {instance_count: 3}\n")
    done = run_search(workdir, "--search-space", str(space), "--trials", "3", "--remeasure", "1",
                      target=("--model-repository", str(repo), "--model", "tiny"))
    assert done.returncode == 0, done.stderr
    trials = load_study(workdir).get_trials()
    three = next(t for t in trials if t.params == {"instance_count": 3})
    # Triton applied 2 -> 3 instances in place, initialising the new one with the old config: it measured
    assert three.state == TrialState.COMPLETE
    # loaded cold from its own config.pbtxt it fails: rejected by the final re-measurement, with the reason
    assert f"failed #{three.number} (final re-measurement): cold_load loaded cold" in done.stdout
    assert "at most 2" in done.stdout
    exported = read_config(workdir / "out" / "tiny" / "config.pbtxt")
    assert exported.instance_group[0].count <= 2
    deploy = workdir / "deploy"
    shutil.copytree(repo / "tiny", deploy / "tiny")
    shutil.copy(workdir / "out" / "tiny" / "config.pbtxt", deploy / "tiny" / "config.pbtxt")
    with EmbeddedServer(deploy, workdir / "deploy_run") as server:
        server.control.load("tiny")  # from the exported file, as a deployment loads it
        assert server.control.is_model_ready("tiny")


def test_a_port_taken_before_the_server_binds_it_gets_new_ports(workdir, monkeypatch):
    (workdir / "repo").mkdir()
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        taken = blocker.getsockname()[1]
        given = iter([taken])
        real = embedded.free_port
        monkeypatch.setattr(embedded, "free_port", lambda: next(given, None) or real())  # the race, made certain
        with EmbeddedServer(workdir / "repo", workdir / "run") as server:
            assert server.control.is_ready() and server.grpc_port != taken


def test_a_server_that_does_not_become_ready_is_not_left_running(workdir):
    (workdir / "repo").mkdir()
    server = EmbeddedServer(workdir / "repo", workdir / "run", ready_timeout_s=0)
    with pytest.raises(ServerError, match="not ready"):
        server.start()
    assert not servers_of(workdir / "run")


def test_no_exception_leaves_a_trial_running(tmp_path):
    """A bug inside a trial (here: an evaluator that raises) fails it with the reason and queues its
    knobs again; it does not count."""
    from tuner.space import parse_space
    from tuner.study import StudySettings, open_study, run_trial

    class Broken:
        def evaluate(self, config, race=None, cold=False, first_rate=None, members=None):
            raise RuntimeError("a bug")

    space = parse_space("knobs:\n  instance_count: [1, 2]\n")
    study = open_study(f"sqlite:///{tmp_path / 's.db'}", "s", StudySettings("tiny", "concurrency 8", "x", {}))
    base = read_config(MODELS / "tiny" / "config.pbtxt")
    with pytest.raises(RuntimeError, match="a bug"):
        run_trial(study, Broken(), base, space)
    (cut, *again) = study.get_trials()
    assert cut.state == TrialState.FAIL and tr.failure(cut) is Failure.TUNER_ERROR and "a bug" in tr.reason(cut)
    assert not tr.counts(cut)
    assert [t.state for t in again] == [TrialState.WAITING] and tr.is_baseline(again[0])


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


def test_the_tuner_uses_only_optunas_public_interface():
    source = "\n".join(p.read_text() for p in Path(tr.__file__).parent.rglob("*.py"))
    assert "._storage" not in source and "._trial_id" not in source


def test_failed_configs_teach_the_sampler_to_avoid_them(tmp_path):
    """The study's own bookkeeping (run_trial) with a stand-in for the server whose answer is a pure
    function of the config: 5 or more instances fail to load, and more instances measure better, so
    a sampler that learns nothing from failures keeps walking into them (Optuna's samplers ignore
    FAIL; before this, 82 % of TPE's proposals after its 8 random ones failed here)."""
    from tuner.evaluate import Outcome
    from tuner.loadgen import Measurement
    from tuner.space import parse_space
    from tuner.study import StudySettings, open_study, run_trial

    class ByInstances:
        def evaluate(self, config, race=None, cold=False, first_rate=None, members=None):
            count, mbs = config.instance_group[0].count, config.max_batch_size
            if count >= 5:
                return Outcome(None, Failure.LOAD, "load failed: not enough memory for that many instances")
            m = Measurement(10.0 * count + mbs, 1, 1, 5.0 + mbs, 1, (1, 1), (1, 1), 100, 0, 1, 3, True, 0.1)
            return Outcome(m)

    space = parse_space("knobs:\n  instance_count: {low: 1, high: 10}\n  max_batch_size: [1, 2, 4, 8]\n")
    study = open_study(f"sqlite:///{tmp_path / 's.db'}", "s", StudySettings("tiny", "concurrency 8", "x", {}), seed=0)
    base = read_config(MODELS / "tiny" / "config.pbtxt")
    for _ in range(40):
        run_trial(study, ByInstances(), base, space)
    guesses = [t for t in study.get_trials() if t.number > 8]  # after the baseline and 8 random proposals
    failing = [t for t in guesses if tr.config_failed(t)]
    assert all(t.state == TrialState.PRUNED and tr.failure(t) is Failure.LOAD for t in failing)
    assert len(failing) < 0.5 * len(guesses), f"{len(failing)} of {len(guesses)} proposals failed"


def test_a_study_made_before_cuda_shared_memory_resumes(tmp_path):
    """Those stored shared memory as a bool; the same inputs now read "system"."""
    storage, inputs = f"sqlite:///{tmp_path / 's.db'}", {"shapes": {}, "input_data": None}
    old = dataclasses.asdict(StudySettings("tiny", "concurrency 8", "x", {}, inputs={**inputs, "shared_memory": True}))
    study = open_study(storage, "s", StudySettings("tiny", "concurrency 8", "x", {}))
    study.set_user_attr("settings", old)
    system, none = ({**inputs, "shared_memory": memory} for memory in ("system", "none"))
    open_study(storage, "s", StudySettings("tiny", "concurrency 8", "x", {}, inputs=system))
    with pytest.raises(ConfigError, match="other settings"):
        open_study(storage, "s", StudySettings("tiny", "concurrency 8", "x", {}, inputs=none))
