"""Triton's PyTorch (libtorch) backend, built against the installed torch and loaded into the
embedded server: the demo detector as TorchScript, with its precision as model versions (1: FP32,
2: FP16), searched jointly with the config and held to output agreement. On this CPU the FP16
version is both slower and less exact, and the study must say so rather than export it."""
import filecmp
import sys

import pytest
from optuna.trial import TrialState
from support import SPACES, load_study, search

from tuner.config.parameters import parameter_problems
from tuner.config.shipped import DEMO_REPOSITORY
from tuner.study import trials as tr

sys.path.insert(0, str(DEMO_REPOSITORY / "detector_python" / "1"))


@pytest.fixture(scope="module")
def torch_repository(tmp_path_factory, real_backends):
    import build_torchscript

    repository = tmp_path_factory.mktemp("torch_repo")
    build_torchscript.write(repository, width=1, max_batch=4)
    return repository


@pytest.mark.integration
def test_the_precision_version_is_searched_and_an_fp16_that_disagrees_is_never_exported(torch_repository, workdir):
    space = workdir / "variants.yaml"
    space.write_text((SPACES / "torch_variants.yaml").read_text() + "start_with:\n  - {model_version: 2}\n")
    before = {p: p.read_bytes() for p in torch_repository.rglob("*") if p.is_file()}
    done = search(workdir, "--search-space", str(space), "--trials", "4", "--max-output-error", "5e-4",
                  target=("--model-repository", str(torch_repository), "--model", "detector_torch"))
    assert done.returncode == 0, done.stderr
    study = load_study(workdir, "detector_torch")
    assert all(t.state == TrialState.COMPLETE for t in study.get_trials() if not tr.is_repeat(t))
    measured = [t for t in study.get_trials() if t.values]
    by_version = {v: [t for t in measured if t.user_attrs.get("knobs", {}).get("model_version", 1) == v]
                  for v in (1, 2)}
    assert by_version[1] and by_version[2], [t.params for t in measured]
    for t in by_version[1]:  # the baseline's own version: identical answers
        assert t.user_attrs["output_error"] == 0.0 and t.constraints["output_violation"] <= 0
    for t in by_version[2]:  # FP16 convolutions: about 1e-3 of the output scale, over the 5e-4 asked
        assert 5e-4 < t.user_attrs["output_error"] < 1e-2
        assert t.constraints["output_violation"] > 0
    exported = (workdir / "out" / "detector_torch" / "config.pbtxt").read_text()
    assert "versions: 1" in exported and 'platform: "pytorch_libtorch"' in exported
    assert {p: p.read_bytes() for p in torch_repository.rglob("*") if p.is_file()} == before


@pytest.mark.integration
def test_a_version_the_model_lacks_is_refused_before_any_server_starts(torch_repository, workdir):
    space = workdir / "v3.yaml"
    space.write_text("knobs:\n  model_version: [1, 3]\n")
    done = search(workdir, "--search-space", str(space), "--trials", "2",
                  target=("--model-repository", str(torch_repository), "--model", "detector_torch"))
    assert done.returncode == 2
    assert "model_version: no version folder 3" in done.stderr and "it has 1, 2" in done.stderr
    assert not (workdir / "runs").exists()


@pytest.mark.unit
def test_the_pytorch_catalog_follows_the_backends_source():
    none = {}
    # cuDNN and cache cleaning act on CUDA devices only
    problems, _ = parameter_problems("pytorch", {"DISABLE_CUDNN": ("true",)}, {"KIND_CPU"}, none)
    assert problems and "KIND_GPU" in problems[0]
    # set once per process: a hot reload cannot change it
    problems, _ = parameter_problems("pytorch", {"INTER_OP_THREAD_COUNT": ("1", "2")}, {"KIND_CPU"}, none)
    assert problems and "once per process" in problems[0]
    # process-wide and kept when omitted: searchable only when the baseline states it
    problems, _ = parameter_problems("pytorch", {"INTRA_OP_THREAD_COUNT": ("1", "2")}, {"KIND_CPU"}, none)
    assert problems and "previous trial's value" in problems[0]
    problems, _ = parameter_problems("pytorch", {"INTRA_OP_THREAD_COUNT": ("1", "2")}, {"KIND_CPU"},
                                     {"INTRA_OP_THREAD_COUNT": "2"})
    assert problems == []
    # not read by r24.10 (its docs mention it; its ParseParameters does not)
    problems, _ = parameter_problems("pytorch", {"ENABLE_NVFUSER": ("true",)}, {"KIND_GPU"}, none)
    assert problems and "not read by the pytorch backend" in problems[0]
    problems, _ = parameter_problems("pytorch", {"INFERENCE_MODE": ("true", "maybe")}, {"KIND_CPU"}, none)
    assert problems and "'maybe' must be one of" in problems[0]


@pytest.mark.unit
def test_torchscript_export_is_deterministic(tmp_path):
    import build_torchscript

    a, b = build_torchscript.write(tmp_path / "a"), build_torchscript.write(tmp_path / "b")
    for version in ("1", "2"):
        assert filecmp.cmp(a / version / "model.pt", b / version / "model.pt", shallow=False) or \
            _same_weights(a / version / "model.pt", b / version / "model.pt")


def _same_weights(x, y) -> bool:
    """TorchScript archives carry a per-save id; the weights and code are what must match."""
    import torch

    mx, my = torch.jit.load(str(x)), torch.jit.load(str(y))
    return all(torch.equal(p, q) for p, q in zip(mx.state_dict().values(), my.state_dict().values(), strict=True)) \
        and mx.code == my.code
