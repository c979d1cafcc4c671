"""The search space: which knobs to search and over which values, read from a YAML file.

    knobs:
      max_batch_size: [1, 2, 4, 8]                # a list: choose one of these
      instance_count: {low: 1, high: 3}           # a range (integers when both ends are)
      max_queue_delay_us: {low: 100, high: 20000, log: true}
      instance_kind: KIND_CPU                     # a single value: set, not searched
      model_version: [1, 2]                       # which version folder Triton serves (FP32 / FP16 exports)
      parameters:                                 # backend settings -> config `parameters`
        intra_op_thread_count: ["1", "2"]

A pipeline (an ensemble, or a BLS model and the models it calls; tuner.config.pipeline) gives each
member its own knobs in a `models:` section, in the same form:

    models:
      preprocess: {instance_count: {low: 1, high: 4}}
      detector: {max_batch_size: [4, 8], dynamic_batching: [true, false]}

`suggest(trial)` turns an Optuna trial into a knob dict (a member's under `models`, its Optuna
names prefixed `member/`). Queue delay and preferred batch sizes
are only sampled when dynamic batching is on, and TensorRT's precision, workspace and engine cache
only when the accelerator is TensorRT, so the sampler never learns from knobs that did nothing.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
import yaml

from tuner.config.knobs import GATES, KNOBS, problems
from tuner.config.parameters import Condition
from tuner.errors import ConfigError


@dataclass(frozen=True)
class Choice:
    values: tuple

    @property
    def options(self) -> tuple[str, ...]:
        """The values this knob can take, as text (what the backend's checks see)."""
        return tuple(str(v) for v in self.values)


@dataclass(frozen=True)
class Range:
    low: float
    high: float
    log: bool = False
    step: float | None = None
    integer: bool = True

    @property
    def options(self) -> tuple[str, ...]:
        """A range's two ends: if both are valid, the values between are too."""
        return (str(self.low), str(self.high))


@dataclass(frozen=True)
class Fixed:
    value: Any

    @property
    def options(self) -> tuple[str, ...]:
        return (str(self.value),)


Spec = Choice | Range | Fixed


@dataclass(frozen=True)
class SearchSpace:
    knobs: dict[str, Spec]
    parameters: dict[str, Spec]
    source: str = "<search space>"
    start_with: tuple[dict, ...] = ()  # known-good configs (as Optuna params) measured first
    # backend parameters that act only when another sampled knob has certain values (tuner.config.knobs)
    conditions: dict[str, Condition] = dataclasses.field(default_factory=dict)
    models: dict[str, SearchSpace] = dataclasses.field(default_factory=dict)  # a pipeline's members' spaces

    @property
    def names(self) -> set[str]:
        return set(self.knobs) | ({"parameters"} if self.parameters else set())

    def problems(self, config, embedded: bool = False,
                 versions: set[int] | None = None) -> tuple[list[str], dict[str, Condition]]:
        """Why knobs of this space cannot act on a model of `config` (none: all can), and when its
        backend parameters act (tuner.config.knobs.problems)."""
        return problems(config, {k: s.options for k, s in self.knobs.items()},
                        {k: s.options for k, s in self.parameters.items()}, embedded, versions)

    def suggest(self, trial: optuna.Trial, prefix: str = "") -> dict:
        return self._knobs(lambda name, spec: _suggest(trial, name, spec), prefix)

    def knobs_of(self, params: dict) -> dict:
        """The knobs a trial with these Optuna params would run (a knob gated off by another's
        value left out, as `suggest` leaves it)."""
        return self._knobs(lambda name, spec: spec.value if isinstance(spec, Fixed) else params[name])

    def _knobs(self, draw: Callable[[str, Spec], Any], prefix: str = "") -> dict:
        knobs: dict = {}
        for name in sorted(self.knobs, key=lambda n: n not in GATES):  # the gates first: they decide the rest
            knob = KNOBS[name]
            if knob.after is not None and not knob.when(knobs.get(knob.after)):
                continue  # it would not act under the value just sampled
            knobs[name] = draw(prefix + name, self.knobs[name])
        if self.parameters:
            sampled: dict = {}
            for name in sorted(self.parameters, key=lambda n: n in self.conditions):  # gates first
                condition = self.conditions.get(name)
                if condition is not None and str(knobs.get(condition.gate, sampled.get(condition.gate))) \
                        not in condition.values:
                    continue
                sampled[f"param.{name}"] = str(draw(f"{prefix}param.{name}", self.parameters[name]))
            knobs["parameters"] = {k.removeprefix("param."): v for k, v in sampled.items()}
        if self.models:
            knobs["models"] = {name: space._knobs(draw, f"{prefix}{name}/") for name, space in self.models.items()}
        return knobs

    def describe(self) -> dict:
        """JSON-friendly form, stored with the study."""
        described = {"knobs": {k: _describe(s) for k, s in self.knobs.items()},
                     "parameters": {k: _describe(s) for k, s in self.parameters.items()}}
        if self.models:
            described["models"] = {name: space.describe() for name, space in self.models.items()}
        return described


def _suggest(trial: optuna.Trial, name: str, spec: Spec):
    if isinstance(spec, Fixed):
        return spec.value
    if isinstance(spec, Choice):
        return trial.suggest_categorical(name, spec.values)
    if spec.integer:
        return trial.suggest_int(name, int(spec.low), int(spec.high), log=spec.log, step=int(spec.step or 1))
    return trial.suggest_float(name, spec.low, spec.high, log=spec.log, step=spec.step)


def _describe(spec: Spec):
    if isinstance(spec, Fixed):
        return spec.value
    if isinstance(spec, Choice):
        return list(spec.values)
    return {"low": spec.low, "high": spec.high, "log": spec.log}


# --- reading and validating -------------------------------------------------------------------

class _Where:
    """Maps a key path to its line in the YAML file, for error messages."""

    def __init__(self, source: str, root: yaml.Node | None):
        self.source, self.root = source, root

    def error(self, path: list[str], message: str) -> ConfigError:
        node, line = self.root, None
        for key in path:
            if not isinstance(node, yaml.MappingNode):
                break
            match = next(((k, v) for k, v in node.value if k.value == key), None)
            if match is None:
                break
            line, node = match[0].start_mark.line + 1, match[1]
        where = f"{self.source}:{line}" if line else self.source
        return ConfigError(f"{where}: {'.'.join(path)}: {message}")


def load_space(path: Path) -> SearchSpace:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such search-space file")
    return parse_space(path.read_text(), str(path))


def parse_space(text: str, source: str = "<search space>") -> SearchSpace:
    try:
        data, root = yaml.safe_load(text), yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        at = f"{source}:{mark.line + 1}" if mark else source
        raise ConfigError(f"{at}: not valid YAML: {getattr(e, 'problem', e)}") from None
    where = _Where(source, root)
    if not isinstance(data, dict) or not (isinstance(data.get("knobs"), dict) or isinstance(data.get("models"), dict)):
        raise where.error(["knobs"], "the file needs a top-level 'knobs:' mapping (or 'models:' for a pipeline)")
    unknown_top = set(data) - {"knobs", "models", "description", "start_with"}
    if unknown_top:
        raise where.error([sorted(unknown_top)[0]],
                          "unknown top-level key (expected 'knobs', 'models', 'start_with', 'description')")
    models = {}
    for member, raw in (data.get("models") or {}).items():
        if not isinstance(raw, dict) or not raw:
            raise where.error(["models", str(member)], "must map knobs to values, a list or a range")
        models[str(member)] = SearchSpace(*_knobs(raw, where, ["models", str(member)]), source)
    space = SearchSpace(*_knobs(data.get("knobs") or {}, where, ["knobs"]), source, models=models)
    return dataclasses.replace(space, start_with=_start_with(data.get("start_with", []), space, where))


def _knobs(raw: dict, where: _Where, at: list[str]) -> tuple[dict[str, Spec], dict[str, Spec]]:
    """(knobs, backend parameters) of one `knobs:` mapping."""
    knobs, parameters = {}, {}
    for name, value in raw.items():
        path = [*at, str(name)]
        if name == "parameters":
            if not isinstance(value, dict) or not value:
                raise where.error(path, "must map backend parameter names to values, a list or a range")
            parameters = {str(k): _spec(v, where, path + [str(k)], _check_parameter) for k, v in value.items()}
        elif name in KNOBS:
            knobs[name] = _spec(value, where, path, KNOBS[name].check)
        else:
            raise where.error(path, f"unknown knob; known: {', '.join(sorted([*KNOBS, 'parameters']))}")
    return knobs, parameters


def _start_with(raw, space: SearchSpace, where: _Where) -> tuple[dict, ...]:
    """`start_with:` entries as Optuna params, each value checked against the knob's range."""
    if not isinstance(raw, list):
        raise where.error(["start_with"], "must be a list of {knob: value} mappings")
    specs = {**space.knobs, **{f"param.{k}": v for k, v in space.parameters.items()}}
    entries = []
    for i, entry in enumerate(raw):
        if not isinstance(entry, dict):
            raise where.error(["start_with"], f"entry {i} must map knob names to values")
        params = {}
        for name, value in {**{k: v for k, v in entry.items() if k != "parameters"},
                            **{f"param.{k}": v for k, v in (entry.get("parameters") or {}).items()}}.items():
            spec = specs.get(name)
            if spec is None or isinstance(spec, Fixed):
                raise where.error(["start_with"], f"entry {i}: '{name}' is not a searched knob of this space")
            if isinstance(spec, Choice):
                value = str(value) if name.startswith("param.") else value
                if value not in spec.values:
                    raise where.error(["start_with"], f"entry {i}: {name}={value!r} is not one of {list(spec.values)}")
            elif not spec.low <= value <= spec.high:
                raise where.error(["start_with"], f"entry {i}: {name}={value!r} is outside {spec.low}..{spec.high}")
            params[name] = value
        entries.append(params)
    return tuple(entries)


def _spec(raw, where: _Where, path: list[str], check) -> Spec:
    if isinstance(raw, list):
        if not raw:
            raise where.error(path, "an empty list leaves nothing to choose")
        values = tuple(",".join(str(int(x)) for x in v) if isinstance(v, list) else v for v in raw)
        for v in values:
            _checked(check, v, where, path)
        if len(set(values)) != len(values):
            raise where.error(path, "the list repeats a value")
        return Choice(values)
    if isinstance(raw, dict):
        unknown = set(raw) - {"low", "high", "log", "step"}
        if unknown or not {"low", "high"} <= set(raw):
            raise where.error(path, "a range is {low: N, high: M} with optional log: true, step: S")
        low, high = raw["low"], raw["high"]
        if not all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in (low, high)) or low > high:
            raise where.error(path, "low and high must be numbers with low <= high")
        log, step = bool(raw.get("log", False)), raw.get("step")
        if log and low <= 0:
            raise where.error(path, "a log-scale range needs low > 0")
        if step is not None and (not isinstance(step, (int, float)) or isinstance(step, bool) or step <= 0):
            raise where.error(path, f"step {step!r}: must be a number > 0")
        if step is not None and log:
            raise where.error(path, "a log-scale range takes no step (Optuna samples it continuously)")
        for v in (low, high):
            _checked(check, v, where, path)
        integer = isinstance(low, int) and isinstance(high, int)
        if step is not None and integer and not isinstance(step, int):
            raise where.error(path, f"step {step!r}: an integer range needs an integer step")
        return Range(low, high, log, step, integer)
    _checked(check, raw, where, path)
    return Fixed(raw)


def _checked(check, value, where: _Where, path: list[str]) -> None:
    problem = check(value)
    if problem:
        raise where.error(path, f"{value!r}: {problem}")


def _check_parameter(v) -> str | None:
    return None if isinstance(v, (str, int, float, bool)) else "must be a string, number or boolean"
