"""Several models on one server, tuned together under a load mix, against the embedded Triton:
each model's own metrics on every trial, per-model SLOs as constraints and as the choice's
filter, the export of every model's config, and the refusals."""
import json
import math
import shutil

import pytest
from support import MODELS, load_study, search, tuner

from tuner.config.modelconfig import read_config
from tuner.measure.load import LoadSpec
from tuner.measure.measurement import Measurement
from tuner.study import trials as tr
from tuner.study.trials import SLO_VIOLATION, Key

TWO = ("--model", "fast", "--model", "slow")


@pytest.fixture
def repo(tmp_path):
    """fast and slow: two copies of tiny, whose per-execution sleep (delay_ms) the space searches."""
    root = tmp_path / "repo"
    for name in ("fast", "slow"):
        shutil.copytree(MODELS / "tiny", root / name)
        config = root / name / "config.pbtxt"
        config.write_text(config.read_text().replace('name: "tiny"', f'name: "{name}"'))
    return root


def _files(root):
    return {p: p.read_bytes() for p in root.rglob("*") if p.is_file()}


@pytest.mark.integration
def test_two_models_on_one_server_record_each_models_metrics_and_respect_its_own_slo(repo, workdir):
    # fast's SLO is loose and slow's tight: a config that slows fast down stays feasible, one that
    # slows slow down does not, although fast's P95 is then above slow's SLO
    space = workdir / "two.yaml"
    space.write_text("models:\n  fast: {parameters: {delay_ms: ['2', '25']}}\n"
                     "  slow: {parameters: {delay_ms: ['2', '30']}}\n")
    before = _files(repo)
    done = search(workdir, "--search-space", str(space), "--trials", "5", "--concurrency", "2",
                  "--slo-p95-ms", "fast=1000,slow=15", "--remeasure", "1",
                  target=("--model-repository", str(repo), *TWO))
    assert done.returncode == 0, done.stderr
    measured = [t for t in load_study(workdir, "fast+slow").get_trials() if tr.measured(t)]
    delays = {(t.user_attrs[Key.KNOBS]["parameters"]["delay_ms"],
               t.user_attrs[Key.KNOBS]["models"]["slow"]["parameters"]["delay_ms"])
              for t in measured if not tr.is_baseline(t)}
    assert delays == {("2", "2"), ("2", "30"), ("25", "2"), ("25", "30")}  # all of the space, and the baseline
    for t in measured:
        models = t.user_attrs[Key.METRICS]["models"]
        assert set(models) == {"fast", "slow"} and all(m["samples"] > 0 for m in models.values())
        assert t.user_attrs[Key.METRICS]["mode"] == "concurrency 2 (fast 1, slow 1)"
        # the study's values: the two models' total throughput and their worst P95
        assert math.isclose(t.values[0], sum(m["throughput"] for m in models.values()), rel_tol=1e-3)
        assert math.isclose(t.values[1], max(m["p95_ms"] for m in models.values()), rel_tol=1e-3)
        slow_delay = "2" if tr.is_baseline(t) else t.user_attrs[Key.KNOBS]["models"]["slow"]["parameters"]["delay_ms"]
        # each model against its own SLO: over it exactly when slow sleeps 30 ms, never for fast's 25 ms
        assert bool(t.user_attrs.get(Key.OVER_SLO)) == (slow_delay == "30"), t.user_attrs
        assert t.user_attrs[SLO_VIOLATION] == pytest.approx(max(models["fast"]["p95_ms"] - 1000,
                                                                models["slow"]["p95_ms"] - 15), abs=1e-3)
    manifest = json.loads((workdir / "out" / "fast" / "tuner_manifest.json").read_text())
    exported = next(t for t in measured if t.number == manifest["trial"])
    assert not exported.user_attrs.get(Key.OVER_SLO)
    assert set(manifest["models"]) == {"fast", "slow"}
    for name in ("fast", "slow"):  # each model's exported config is the chosen trial's
        assert read_config(workdir / "out" / name / "config.pbtxt").name == name
    # what each model got, in the report of the search
    assert "each model of trial" in done.stdout and " met" in done.stdout and "OVER" not in done.stdout
    verified = tuner(workdir, "export", "--storage", f"sqlite:///{workdir / 'study.db'}", "--out",
                     str(workdir / "out2"), "--verify", "--run-dir", str(workdir / "vr"))
    assert "re-measured" in verified.stdout and "FAILED" not in verified.stdout, verified.stdout + verified.stderr
    assert _files(repo) == before  # the user's repository is never modified


@pytest.mark.integration
def test_two_real_backends_share_one_server_under_a_mix(real_backends, workdir):
    """The demo's ONNX Runtime and OpenVINO detectors, each with its backend's shipped knobs."""
    done = search(workdir, "--trials", "3", "--concurrency", "3", "--mix", "detector=2,detector_openvino=1",
                  target=("--model", "detector", "--model", "detector_openvino"))
    assert done.returncode == 0, done.stderr
    measured = [t for t in load_study(workdir, "detector+detector_openvino").get_trials() if tr.measured(t)]
    assert len(measured) == 3
    for t in measured:
        models = t.user_attrs[Key.METRICS]["models"]
        assert {n: m["mode"] for n, m in models.items()} == {"detector": "concurrency 2",
                                                              "detector_openvino": "concurrency 1"}
        assert all(m["samples"] > 0 and m["server"]["compute_infer_ms"] > 0 for m in models.values())
    searched = [t for t in measured if not tr.is_baseline(t)]
    assert searched and all(set(t.user_attrs[Key.KNOBS]["models"]) == {"detector_openvino"} for t in searched)
    assert {p.name for p in (workdir / "out").iterdir()} == {"detector", "detector_openvino"}


@pytest.mark.unit
@pytest.mark.parametrize("args, message", [
    (("--mix", "fast=1,other=1"), "--mix fast,other: name each --model once"),
    (("--slo-p95-ms", "fast=10,other=5"), "--slo-p95-ms other: not a --model of this study"),
    (("--concurrency", "1"), "--concurrency 1 for 2 models"),
    (("--objective", "capacity", "--slo-p95-ms", "50"), "--objective capacity with several models"),
    (("--with", "slow"), "--with names the models a BLS model calls"),
])
def test_shared_server_mistakes_are_refused_before_any_server_starts(repo, workdir, args, message):
    done = search(workdir, *args, target=("--model-repository", str(repo), *TWO))
    assert done.returncode == 2 and message in done.stderr, done.stderr
    assert not (workdir / "runs").exists() and not (workdir / "study.db").exists()


@pytest.mark.unit
def test_per_model_slos_and_a_mix_need_several_models(repo, workdir):
    one = ("--model-repository", str(repo), "--model", "fast")
    done = search(workdir, "--slo-p95-ms", "fast=10", target=one)
    assert done.returncode == 2 and "per-model SLOs are for several models" in done.stderr
    done = search(workdir, "--mix", "fast=1", target=one)
    assert done.returncode == 2 and "give --model more than once" in done.stderr


@pytest.mark.unit
def test_a_mix_splits_the_concurrency_by_largest_remainders_and_the_rate_by_share():
    spec = LoadSpec(concurrency=8, min_samples=1000, mix=(("a", 1), ("b", 1), ("c", 1)))
    assert {n: s.concurrency for n, s in spec.split().items()} == {"a": 3, "b": 3, "c": 2}
    assert spec.mode == "concurrency 8 (a 3, b 3, c 2)"
    small = LoadSpec(concurrency=2, mix=(("a", 9), ("b", 1)))  # every model keeps one request in flight
    assert {n: s.concurrency for n, s in small.split().items()} == {"a": 1, "b": 1}
    rate = LoadSpec(request_rate=100, min_samples=1000, mix=(("a", 3), ("b", 1)))
    parts = rate.split()
    assert parts["a"].request_rate == 75 and parts["b"].request_rate == 25 and parts["a"].min_samples == 750
    assert not parts["a"].mix and rate.mode == "request rate 100/s (a 75/s, b 25/s)"
    assert LoadSpec.from_json(json.loads(json.dumps(rate.to_json()))) == rate  # as the manifest stores it


@pytest.mark.unit
def test_the_slo_excess_is_the_model_furthest_over_its_own_slo():
    def m(p95: float) -> Measurement:
        return Measurement(1.0, p95, p95, p95, p95, (p95, p95), (1.0, 1.0), 1, 0, 1.0, 1, True, 0.0)

    joint = Measurement(2.0, 40, 40, 40, 40, (40, 40), (2, 2), 2, 0, 1.0, 1, True, 0.0,
                        models={"a": m(40), "b": m(12)})
    assert joint.slo_excess_ms({"a": 100, "b": 10}) == 2  # b, although a's P95 is higher
    assert joint.slo_excess_ms({"a": 100}) == -60  # a model without an SLO is not judged
