"""Output agreement: every trial's outputs on fixed inputs against the baseline's, as a constraint."""
import numpy as np
import pytest
from support import SPACES, load_study, search

from tuner.measure.agreement import relative_error
from tuner.study import trials as tr


@pytest.mark.unit
def test_relative_error_is_relative_to_the_outputs_scale():
    ref = [{"y": np.array([[1.0, -4.0]], dtype=np.float32)}]
    assert relative_error(ref, ref) == 0.0
    assert relative_error(ref, [{"y": np.array([[1.0, -3.96]], dtype=np.float32)}]) == pytest.approx(0.01, rel=1e-4)
    assert relative_error(ref, [{"y": np.zeros((2, 2), dtype=np.float32)}]) == 1.0  # another shape
    assert relative_error(ref, [{"z": ref[0]["y"]}]) == 1.0  # another output
    words = [{"s": np.array([b"a"], dtype=object)}]
    assert relative_error(words, words) == 0.0
    assert relative_error(words, [{"s": np.array([b"b"], dtype=object)}]) == 1.0


@pytest.mark.integration
def test_configs_that_change_the_outputs_are_infeasible_and_never_exported(workdir):
    """tiny's `gain` parameter changes its answers, as a precision knob can."""
    space = workdir / "gain.yaml"
    space.write_text((SPACES / "tiny.yaml").read_text() + '  parameters:\n    gain: ["2", "2.002"]\n'
                     'start_with:\n  - {parameters: {gain: "2.002"}}\n  - {parameters: {gain: "2"}}\n')
    done = search(workdir, "--search-space", str(space), "--trials", "6", "--policy", "max-throughput")
    assert done.returncode == 0, done.stderr
    trials = [t for t in load_study(workdir).get_trials() if t.values]  # measured (repeats carry no values)
    base = next(t for t in trials if tr.is_baseline(t))
    assert base.user_attrs["output_error"] == 0.0
    for t in (t for t in trials if t is not base):
        gain = t.user_attrs["knobs"]["parameters"]["gain"]
        assert t.user_attrs["output_error"] == pytest.approx(0.001 if gain == "2.002" else 0.0, rel=1e-3)
        assert t.user_attrs.get("outputs_differ", False) == (gain == "2.002")
        assert (t.constraints["output_violation"] > 0) == (gain == "2.002")  # the sampler learns it
    assert "computed different outputs" in done.stdout
    exported = (workdir / "out" / "tiny" / "config.pbtxt").read_text()
    assert "2.002" not in exported
    # a looser limit admits them: the limit is the user's
    looser = search(workdir, "--search-space", str(space), "--trials", "3", "--study-name", "loose",
                    "--max-output-error", "0.01")
    assert looser.returncode == 0, looser.stderr
    assert not any(t.user_attrs.get("outputs_differ") for t in load_study(workdir, "loose").get_trials())
