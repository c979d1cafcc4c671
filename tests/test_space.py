"""Search-space YAML: the shipped files load, bad files are refused naming file, line and key."""
import optuna
import pytest

from tuner.config.modelconfig import apply_knobs, parse_config
from tuner.config.shipped import SPACES
from tuner.config.space import load_space, parse_space
from tuner.errors import ConfigError

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("path", sorted(SPACES.glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_spaces_load_and_sample(path):
    space = load_space(path)
    study = optuna.create_study(directions=["maximize", "minimize"], sampler=optuna.samplers.RandomSampler(seed=1))
    base = parse_config('name: "m" platform: "onnxruntime_onnx" max_batch_size: 8 '
                        'input [ { name: "x" data_type: TYPE_FP32 dims: [ 4 ] } ] '
                        'output [ { name: "y" data_type: TYPE_FP32 dims: [ 4 ] } ]')
    for _ in range(30):
        trial = study.ask()
        config = apply_knobs(base, space.suggest(trial))
        assert all(s <= config.max_batch_size for s in config.dynamic_batching.preferred_batch_size)
        study.tell(trial, [1.0, 1.0])


def test_batcher_knobs_are_not_sampled_when_batching_is_off():
    space = parse_space("knobs:\n  dynamic_batching: false\n  max_queue_delay_us: {low: 1, high: 10}\n")
    trial = optuna.create_study().ask()
    assert space.suggest(trial) == {"dynamic_batching": False}
    assert trial.params == {}


@pytest.mark.parametrize("text, where", [
    ("knobs:\n  max_batch_size: [1, 2]\n  instance_count: {low: 0, high: 3}\n",
     r"bad.yaml:3: knobs.instance_count: 0: must be an integer >= 1"),
    ("knobs:\n  instance_cout: 2\n", r"bad.yaml:2: knobs.instance_cout: unknown knob"),
    ("knobs:\n  max_queue_delay_us: {low: 0, high: 100, log: true}\n", r"bad.yaml:2: .*log-scale range needs low > 0"),
    ("knobs:\n  precision: [FP32, INT4]\n", r"bad.yaml:2: knobs.precision: 'INT4': must be one of FP32, FP16"),
    ("knobs:\n  preferred_batch_sizes: [max, biggest]\n", r"bad.yaml:2: .*policy"),
    ("knobs:\n  parameters:\n    threads: {low: 1}\n", r"bad.yaml:3: knobs.parameters.threads: a range is"),
    ("knobs: [1, 2\n", r"bad.yaml:2: not valid YAML"),
    ("knob:\n  max_batch_size: 4\n", r"bad.yaml.*top-level 'knobs:'"),
    ("knobs:\n  max_batch_size: [4, 4]\n", r"bad.yaml:2: .*repeats"),
])
def test_invalid_space_is_refused_with_location(text, where):
    with pytest.raises(ConfigError, match=where):
        parse_space(text, "bad.yaml")


def test_yaml_is_read_safely():
    with pytest.raises(ConfigError):
        parse_space("knobs: !!python/object/apply:os.system ['true']\n", "evil.yaml")


def test_start_with_entries_become_checked_params():
    space = parse_space("knobs:\n  instance_count: {low: 1, high: 3}\n  parameters:\n    threads: ['1', '2']\n"
                        "start_with:\n  - {instance_count: 2, parameters: {threads: 1}}\n")
    assert space.start_with == ({"instance_count": 2, "param.threads": "1"},)


@pytest.mark.parametrize("entry, message", [
    ("{instance_count: 5}", r"instance_count=5 is outside 1..3"),
    ("{max_batch_size: 4}", r"'max_batch_size' is not a searched knob"),
    ("{parameters: {threads: 3}}", r"param.threads='3' is not one of"),
])
def test_start_with_entries_outside_the_space_are_refused(entry, message):
    text = (f"knobs:\n  instance_count: {{low: 1, high: 3}}\n  parameters:\n    threads: ['1', '2']\n"
            f"start_with:\n  - {entry}\n")
    with pytest.raises(ConfigError, match=rf"bad.yaml:5: start_with: entry 0: {message}"):
        parse_space(text, "bad.yaml")


@pytest.mark.parametrize("text, message", [
    ("knobs:\n  instance_count: {low: 1, high: 4, step: -1}\n", "step -1: must be a number > 0"),
    ("knobs:\n  max_queue_delay_us: {low: 100, high: 1000, log: true, step: 100}\n", "a log-scale range takes no step"),
    ("knobs:\n  instance_count: {low: 1, high: 4, step: 0.5}\n", "an integer range needs an integer step"),
])
def test_steps_optuna_would_refuse_mid_study_are_refused_up_front(text, message):
    with pytest.raises(ConfigError, match=message):
        parse_space(text, "s.yaml")
