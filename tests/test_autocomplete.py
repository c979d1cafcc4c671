"""Triton's config auto-completion is left off only where it can change no model's config: the
rule on model files, and models served with and without it."""
import json
import re
import shutil

import pytest
from support import MODELS, tuner
from support.configs import ENSEMBLE, ONNX_TRT, PYTHON

from tuner.config.autocomplete import can_change
from tuner.config.modelconfig import parse_config

PLAIN = "class TritonPythonModel:\n    def execute(self, requests):\n        return []\n"


def _python_model(tmp_path, source: str, versions=("1",)):
    for version in versions:
        (tmp_path / "m" / version).mkdir(parents=True)
        (tmp_path / "m" / version / "model.py").write_text(source)
    return tmp_path / "m"


@pytest.mark.unit
@pytest.mark.parametrize("source, changes", [
    (PLAIN, False),
    (PLAIN + "    def auto_complete_config(auto_complete_model_config):\n        return auto_complete_model_config\n",
     True),
    (PLAIN + "    @staticmethod\n    async def auto_complete_config(c):\n        return c\n", True),
    (PLAIN + "    auto_complete_config = staticmethod(lambda c: c)\n", True),
    (PLAIN.replace("TritonPythonModel:", "TritonPythonModel(Base):"), True),  # a base class might define it
    ("class TritonPythonModel(:\n", True),  # unreadable: unsure
    ("class Other:\n    pass\n", True),
], ids=["plain", "method", "async-static", "assigned", "base-class", "syntax-error", "no-model-class"])
def test_a_python_model_is_completed_only_if_its_model_class_can_complete_it(tmp_path, source, changes):
    assert can_change(_python_model(tmp_path, source), parse_config(PYTHON)) is changes


@pytest.mark.unit
def test_every_version_counts_and_a_model_without_files_is_completed(tmp_path):
    folder = _python_model(tmp_path, PLAIN, versions=("1", "2"))
    assert not can_change(folder, parse_config(PYTHON))
    (folder / "2" / "model.py").write_text(PLAIN + "    def auto_complete_config(c):\n        return c\n")
    assert can_change(folder, parse_config(PYTHON))
    assert can_change(tmp_path / "none", parse_config(PYTHON))


@pytest.mark.unit
def test_other_backends_are_completed_and_an_ensemble_is_not(tmp_path):
    assert can_change(tmp_path, parse_config(ONNX_TRT))  # ONNX Runtime fills inputs, outputs and batching
    assert not can_change(tmp_path, parse_config(ENSEMBLE))


def _strict(log: str) -> bool:
    """Triton's options table: strict_model_config is 1 when auto-completion is off."""
    found = re.search(r"\|\s*strict_model_config\s*\|\s*(\d)", log)
    assert found, "no options table in the server log"
    return found.group(1) == "1"


@pytest.mark.integration
def test_a_python_model_is_served_without_auto_completion_unless_its_model_completes_itself(workdir):
    """tiny's own config does not batch; a copy whose auto_complete_config turns dynamic batching on
    is served, and measured, as Triton completes it."""
    repo = workdir / "repo"
    shutil.copytree(MODELS / "tiny", repo / "tiny")
    shutil.copytree(MODELS / "tiny", repo / "completing")
    config = repo / "completing" / "config.pbtxt"
    config.write_text(config.read_text().replace('name: "tiny"', 'name: "completing"'))
    model = repo / "completing" / "1" / "model.py"
    model.write_text(model.read_text().replace("    def execute(self, requests):", """    @staticmethod
    def auto_complete_config(config):
        config.set_dynamic_batching()
        return config

    def execute(self, requests):"""))
    batches = {}
    for name, strict in (("tiny", True), ("completing", False)):
        done = tuner(workdir, "measure", "--model-repository", str(repo), "--model", name, "--min-samples", "200",
                     "--warmup-s", "0.3", "--window-s", "0.3", "--json", str(workdir / f"{name}.json"),
                     "--run-dir", str(workdir / name))
        assert done.returncode == 0, done.stderr
        assert _strict((workdir / name / "measure" / "tritonserver.log").read_text()) is strict
        batches[name] = json.loads((workdir / f"{name}.json").read_text())["server"]["avg_batch_size"]
    assert batches["tiny"] == 1.0 and batches["completing"] > 1.0
