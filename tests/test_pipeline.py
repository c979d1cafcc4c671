"""Pipelines against the embedded Triton: an ensemble tuned step by step, a BLS model tuned with
the model it calls, failures that name the member, and the export of every changed config."""
import json
import shutil

import pytest
from optuna.trial import TrialState
from support import MODELS, PIPELINES, load_study, search, tuner

from tuner.config.modelconfig import apply_knobs, read_config
from tuner.config.pipeline import read_members
from tuner.config.space import parse_space
from tuner.errors import ConfigError
from tuner.faults import Failure
from tuner.measure.evaluate import Evaluator
from tuner.measure.load import LoadSpec
from tuner.server import EmbeddedServer
from tuner.study import trials as tr
from tuner.study.trials import Key

CHAIN = ("--model", "chain")


@pytest.fixture
def repo(tmp_path):
    """chain (an ensemble of step_a and step_b, both copies of tiny), bls_caller and tiny."""
    root = tmp_path / "repo"
    shutil.copytree(PIPELINES, root)
    for name in ("step_a", "step_b", "tiny"):
        shutil.copytree(MODELS / "tiny", root / name)
        config = root / name / "config.pbtxt"
        config.write_text(config.read_text().replace('name: "tiny"', f'name: "{name}"'))
    return root


def _target(repo, *model):
    return ("--model-repository", str(repo), *model)


def _files(root):
    return {p: p.read_bytes() for p in root.rglob("*") if p.is_file()}


@pytest.mark.integration
def test_an_ensemble_is_tuned_step_by_step_and_its_export_serves(repo, workdir):
    space = workdir / "chain.yaml"
    space.write_text("models:\n"
                     "  step_a: {instance_count: {low: 1, high: 2}, dynamic_batching: [true, false]}\n"
                     "  step_b: {instance_count: {low: 1, high: 2}, parameters: {delay_ms: ['2', '6']}}\n")
    before = _files(repo)
    done = search(workdir, "--search-space", str(space), "--trials", "4", target=_target(repo, *CHAIN))
    assert done.returncode == 0, done.stderr
    study = load_study(workdir, "chain")
    measured = [t for t in study.get_trials() if t.values and not tr.is_repeat(t)]
    assert len(measured) == 4 and all(t.state == TrialState.COMPLETE for t in measured)
    for t in measured:  # each step's own share of every measurement, from Triton's statistics
        assert set(t.user_attrs[Key.METRICS]["steps"]) == {"step_a", "step_b"}
        assert set(t.user_attrs.get(Key.MEMBERS, {})) == {"step_a", "step_b"}
    searched = [t for t in measured if not tr.is_baseline(t)]
    assert all(set(t.user_attrs[Key.KNOBS]["models"]) == {"step_a", "step_b"} for t in searched)
    assert "slowest step:" in done.stdout
    out = workdir / "out"
    manifest = json.loads((out / "chain" / "tuner_manifest.json").read_text())
    assert set(manifest["models"]) == {"chain", "step_a", "step_b"}
    for name in ("step_a", "step_b"):  # each member's exported config is the chosen trial's
        assert read_config(out / name / "config.pbtxt").name == name
    # the exported set, laid out with the models' files, loads from disk and serves the ensemble
    verified = tuner(workdir, "export", "--storage", f"sqlite:///{workdir / 'study.db'}", "--out", str(out),
                     "--verify", "--run-dir", str(workdir / "vr"))
    assert "re-measured" in verified.stdout and "FAILED" not in verified.stdout, verified.stdout + verified.stderr
    assert _files(repo) == before  # the user's repository is never modified


@pytest.mark.integration
def test_a_guided_search_models_an_ensemble_step_by_step_and_gives_the_slow_step_its_instances(repo, workdir):
    config = repo / "step_b" / "config.pbtxt"  # 10 ms an execution against step_a's 2
    config.write_text(config.read_text() + 'parameters { key: "delay_ms" value { string_value: "10" } }\n')
    space = workdir / "chain.yaml"
    space.write_text("models:\n  step_a: {instance_count: {low: 1, high: 2}}\n"
                     "  step_b: {instance_count: {low: 1, high: 3}}\n")
    done = search(workdir, "--search-space", str(space), "--trials", "6", "--guide", "model", "--max-measure-s", "3",
                  target=_target(repo, *CHAIN))
    assert done.returncode == 0, done.stderr
    trials = [t for t in load_study(workdir, "chain").get_trials() if t.values and not tr.is_repeat(t)]
    guided = [t for t in trials if t.user_attrs.get(Key.PREDICTED)]
    assert guided and "the performance model predicted" in done.stdout, done.stdout
    best = max(trials, key=lambda t: t.values[0])
    assert best.params["step_b/instance_count"] == 3, [(t.params, t.values) for t in trials]
    # predicted from each step's own statistics: within a quarter of what was measured
    assert all(abs(t.values[0] / t.user_attrs[Key.PREDICTED]["throughput"] - 1) < 0.25 for t in guided
               if not t.user_attrs[Key.PREDICTED]["extrapolated"])


@pytest.mark.integration
def test_a_step_that_fails_to_load_fails_the_trial_naming_it_and_the_study_goes_on(repo, workdir):
    space = workdir / "failing.yaml"
    space.write_text("models:\n  step_a: {instance_count: [1, 2]}\n"
                     "  step_b: {parameters: {fail_on_load: ['yes', 'no']}}\n")
    done = search(workdir, "--search-space", str(space), "--trials", "5", target=_target(repo, *CHAIN))
    assert done.returncode == 0, done.stderr
    trials = [t for t in load_study(workdir, "chain").get_trials() if not tr.is_repeat(t)]
    failed = [t for t in trials if tr.config_failed(t)]
    assert failed and all("load of 'step_b' failed" in tr.reason(t) for t in failed)
    assert all(t.user_attrs[Key.KNOBS]["models"]["step_b"]["parameters"]["fail_on_load"] == "yes" for t in failed)
    # every config whose members load was measured (the 4 configs and the baseline are all of --trials 5)
    assert all(t.values for t in trials if t not in failed)
    # the config after a failure loads the failed member afresh and serves: in this order, which the
    # sampler's random order does not always give, on a server of the test's own
    shutil.copytree(repo, workdir / "again")
    entry = read_config(repo / "chain" / "config.pbtxt")
    members = read_members(repo, entry)
    failing = {**members, "step_b": apply_knobs(members["step_b"], {"parameters": {"fail_on_load": "yes"}})}
    quick = LoadSpec(concurrency=2, warmup_s=0.2, window_s=0.3, min_samples=50, max_duration_s=2)
    with EmbeddedServer(workdir / "again", workdir / "again-run") as server, \
            Evaluator(server, "chain", quick) as evaluator:
        first, then = evaluator.evaluate(entry, others=failing), evaluator.evaluate(entry, others=members)
    assert first.failure is Failure.LOAD and "load of 'step_b' failed" in first.reason, first
    assert then.measurement is not None and then.measurement.samples > 0, then


@pytest.mark.integration
def test_a_bls_model_is_tuned_with_the_model_it_calls(repo, workdir):
    space = workdir / "bls.yaml"
    space.write_text("knobs:\n  instance_count: [1, 2]\nmodels:\n  tiny: {instance_count: [1, 2], "
                     "dynamic_batching: [true, false]}\n")
    done = search(workdir, "--search-space", str(space), "--trials", "3", "--with", "tiny",
                  target=_target(repo, "--model", "bls_caller"))
    assert done.returncode == 0, done.stderr
    measured = [t for t in load_study(workdir, "bls_caller").get_trials() if t.values]
    assert measured and all("tiny" in t.user_attrs[Key.METRICS]["steps"] for t in measured)
    assert (workdir / "out" / "tiny" / "config.pbtxt").is_file()


@pytest.mark.unit
def test_pipeline_mistakes_are_refused_before_any_server_starts(repo, workdir):
    cases = [
        (("--model", "chain"), "knobs:\n  instance_count: [1, 2]\n", "'chain' is an ensemble, with no instances"),
        (("--model", "chain"), "models:\n  nosuch: {instance_count: [1, 2]}\n",
         "models.nosuch: not a member of 'chain' (those are: step_a, step_b)"),
        (("--model", "chain"), "models:\n  step_a: {max_batch_size: [4, 8]}\n",
         "models.step_a.max_batch_size: values below the ensemble's max_batch_size (8)"),
        (("--model", "chain", "--with", "tiny"), "models:\n  step_a: {instance_count: [1, 2]}\n",
         "'chain' is an ensemble; its members are its steps (step_a, step_b)"),
        (("--model", "bls_caller", "--with", "nosuch"), "knobs:\n  instance_count: [1, 2]\n",
         "member 'nosuch' has no"),
    ]
    for target, text, message in cases:
        space = workdir / "space.yaml"
        space.write_text(text)
        done = search(workdir, "--search-space", str(space), target=_target(repo, *target))
        assert done.returncode == 2 and message in done.stderr, (target, done.stderr)
        assert not (workdir / "runs").exists()


@pytest.mark.unit
def test_a_nested_ensemble_is_refused_with_the_reason(repo):
    outer = repo / "outer"
    outer.mkdir()
    (outer / "config.pbtxt").write_text((repo / "chain" / "config.pbtxt").read_text()
                                        .replace('name: "chain"', 'name: "outer"').replace('"step_a"', '"chain"'))
    with pytest.raises(ConfigError, match="'chain' is an ensemble inside the ensemble 'outer'; nested"):
        read_members(repo, read_config(outer / "config.pbtxt"))


@pytest.mark.unit
def test_a_pipeline_space_gives_each_member_its_own_knobs():
    space = parse_space("models:\n  a: {instance_count: {low: 1, high: 3}}\n  b: {max_batch_size: [1, 4]}\n")
    assert set(space.models) == {"a", "b"} and not space.knobs
    assert space.describe()["models"]["b"] == {"knobs": {"max_batch_size": [1, 4]}, "parameters": {}}
    with pytest.raises(ConfigError, match="models.b.max_batch_size: 0: must be an integer >= 1"):
        parse_space("models:\n  b: {max_batch_size: [0]}\n", "s.yaml")


@pytest.mark.integration
def test_the_demo_pipeline_is_tuned_per_step(real_backends, workdir):
    """preprocess (python letterbox) -> detector (ONNX Runtime) -> postprocess (python NMS)."""
    done = search(workdir, "--search-space", "detector_pipeline", "--trials", "3",
                  target=("--model", "detector_pipeline"))
    assert done.returncode == 0, done.stderr
    measured = [t for t in load_study(workdir, "detector_pipeline").get_trials() if t.values]
    assert measured and all(set(t.user_attrs[Key.METRICS]["steps"]) == {"preprocess", "detector", "postprocess"}
                            for t in measured)
    exported = {p.name for p in (workdir / "out").iterdir()}
    assert {"preprocess", "detector", "postprocess", "detector_pipeline"} <= exported
