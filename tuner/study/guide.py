"""Search guided by the performance model (tuner.study.costmodel): after each measurement the model
is fitted again, every unmeasured combination of the knobs it predicts across (instances, max
batch, batching, queue delay, preferred sizes) is predicted under the study's load, corrected by
the model's median error on the guided trials it predicted from measured ground (a cost of the
server's that the simulation misses, it misses alike for every config), and the one with the best
optimistic throughput (its prediction raised by its uncertainty) is measured next. The rest of a
proposal's knobs are the best trial's, so the model predicts within what it was fitted on (the
first search trial measures the baseline's instances and batching under the search's settings of
those knobs, where the baseline ran others). An
ensemble is modeled step by step (each step on its own statistics, simulated one after another),
and its proposals change one step at a time around the best search trial.

How far each guided trial's measurement was from its prediction is recorded on it: where the
last two were both off by more than TRUST, the sampler (TPE) proposes every other trial until
the model, refitted on what it measured, predicts well again. Once the model is trusted and no
unmeasured config is predicted, even optimistically, to beat the best measured one by more than
the measurement's precision, the search is done, whatever is left of --trials; but first each
value of a knob the model cannot predict across (a backend parameter, a graph level) that no trial
has run is run once with the best's other settings, since the model knows nothing of it.
"""
from __future__ import annotations

import itertools
import math
import statistics
from dataclasses import dataclass

import optuna
from optuna.trial import FrozenTrial

from tuner.config import pipeline
from tuner.config.modelconfig import ModelConfig, apply_knobs
from tuner.config.pipeline import Members
from tuner.config.space import Choice, Fixed, Range, SearchSpace, Spec
from tuner.measure.load import PRECISION, LoadSpec
from tuner.study import costmodel
from tuner.study import trials as tr
from tuner.study.selection import choose
from tuner.study.trials import Key

MODELED = ("instance_count", "max_batch_size", "dynamic_batching", "max_queue_delay_us", "preferred_batch_sizes")
TRUST = 0.15  # a prediction further off than this, twice in a row, hands the next proposal to the sampler
PRIOR = 0.15  # the uncertainty of a prediction before any guided trial has measured one
UNKNOWN = 0.25  # added where a config reaches beyond the batch sizes or instance counts measured
GRID = 5  # values tried across a range knob
_MAD_TO_SD = 1.4826  # a normal distribution's standard deviation over its median absolute deviation
DONE_ATTR = "search_done"  # study attr: when and why a guided search stopped before --trials


@dataclass(frozen=True)
class Proposal:
    params: dict  # Optuna params of the config to measure next
    throughput: float  # predicted: the model's figure, corrected by its bias
    p95_ms: float
    spread: float  # relative uncertainty of the prediction
    model: float  # the model's own figure, before the correction
    extrapolated: bool  # beyond the max batch sizes or instance counts measured


@dataclass(frozen=True)
class Step:
    proposal: Proposal | None  # None: a probe, the sampler's turn, or the end of the search
    done: bool = False  # no unmeasured config is predicted to beat the best by more than the precision
    why: str = ""
    probe: dict | None = None  # Optuna params: the best config with a knob the model cannot predict changed


def _values(spec: Spec) -> tuple:
    if isinstance(spec, Choice):
        return spec.values
    if isinstance(spec, Fixed):
        return (spec.value,)
    if spec.integer and spec.high - spec.low < GRID:
        return tuple(range(int(spec.low), int(spec.high) + 1))
    if spec.log:
        ratio = (spec.high / spec.low) ** (1 / (GRID - 1))
        points = [spec.low * ratio ** k for k in range(GRID)]
    else:
        points = [spec.low + (spec.high - spec.low) * k / (GRID - 1) for k in range(GRID)]
    return tuple(sorted({round(p) if spec.integer else p for p in points}))


def _combos(space: SearchSpace) -> list[dict]:
    """Every combination of the modeled knobs the space searches (a gated knob's values only
    where its gate lets it act)."""
    names = [n for n in MODELED if n in space.knobs and not isinstance(space.knobs[n], Fixed)]
    return [dict(zip(names, values, strict=True))
            for values in itertools.product(*(_values(space.knobs[n]) for n in names))]


def _guided(trials: list[FrozenTrial]) -> list[FrozenTrial]:
    return [t for t in trials if tr.measured(t) and t.user_attrs.get(Key.PREDICTED)]


def errors(trials: list[FrozenTrial]) -> list[float]:
    """Each guided trial's relative throughput error, measured against predicted, in order."""
    return [t.values[0] / t.user_attrs[Key.PREDICTED]["throughput"] - 1 for t in _guided(trials)]


def _bias(trials: list[FrozenTrial]) -> tuple[float, float]:
    """The model's bias (the median error of its own figures) and the spread of its errors around
    it (their median absolute deviation, as a standard deviation), widened for the few it rests on,
    from the guided trials whose configs lay within what the model had measured (a prediction beyond
    it is a guess, not a sample of the model's error); before two such, no bias and the prior's
    spread. Medians, because one measurement caught in a hiccup of the machine would otherwise
    shift every correction after it and hold the optimistic predictions above the best for good."""
    found = [t.values[0] / predicted["model"] - 1 for t in _guided(trials)
             if "model" in (predicted := t.user_attrs[Key.PREDICTED]) and not predicted.get("extrapolated")]
    if len(found) < 2:
        return 0.0, PRIOR
    bias = statistics.median(found)
    deviation = _MAD_TO_SD * statistics.median(abs(e - bias) for e in found)
    return bias, max(PRECISION, deviation * (1 + 1 / len(found) ** 0.5))


def _unmodeled(space: SearchSpace, prefix: str = "") -> dict[str, Spec]:
    """The knobs the model does not predict across (backend parameters, graph level, versions...),
    by Optuna param name, a pipeline's members' too."""
    specs = {**{prefix + k: v for k, v in space.knobs.items() if k not in MODELED},
             **{f"{prefix}param.{k}": v for k, v in space.parameters.items()}}
    for name, each in space.models.items():
        specs |= _unmodeled(each, f"{prefix}{name}/")
    return {k: v for k, v in specs.items() if not isinstance(v, Fixed)}


def _others(space: SearchSpace, reference: FrozenTrial | None) -> dict:
    """The params of the knobs the model does not predict across: the reference trial's, or
    without one (only the baseline measured) each knob's first value."""
    if reference is not None:
        return {k: v for k, v in reference.params.items() if k not in MODELED}
    return {k: _values(spec)[0] for k, spec in _unmodeled(space).items()}


def _nearest(spec: Spec, value) -> object:
    """The value `_values` offers that a sampled one is closest to (a range's grid point)."""
    if not isinstance(spec, Range) or not isinstance(value, (int, float)):
        return value
    scale = math.log if spec.log else float
    return min(_values(spec), key=lambda o: abs(scale(o) - scale(value)))


def _probe(space: SearchSpace, base: ModelConfig, reference: FrozenTrial, trials: list[FrozenTrial],
           measured: set, members: Members | None) -> dict | None:
    """The reference's params with one knob the model cannot predict across set to a value no
    trial has run yet (knobs in the space's order), or None once every such value has run: the
    model's "nothing left" holds only within the settings it was fitted on."""
    ran = [t.params for t in trials if tr.counts(t)]
    for name, spec in _unmodeled(space).items():
        tried = {_nearest(spec, p[name]) for p in ran if name in p}
        for value in (v for v in _values(spec) if v not in tried):
            params = {**reference.params, name: value}
            key, _ = _configs(space, base, params, members)
            if key not in measured:  # a value its gate turns off is the reference itself
                return params
    return None


def _anchor(space: SearchSpace, base: ModelConfig, baseline: list[ModelConfig], measured: set) -> dict | None:
    """The params of the baseline's instances and batching with the search's first settings of the
    knobs the model cannot predict across (None where the space cannot express them): a search
    trial changes those settings from the baseline's, and from the baseline the model could only
    guess at their cost, so it measures their cost where it knows the rest before predicting there."""
    batchers = [costmodel.batcher_of(c) for c in baseline]
    for params, configs in candidates(space, base, _others(space, None), measured):
        if [costmodel.batcher_of(c) for c in configs] == batchers:
            return params
    return None


def _configs(space: SearchSpace, base: ModelConfig, params: dict,
             members: Members | None) -> tuple[str, list[ModelConfig]]:
    """The fingerprint of the config that `params` give, and its configs: the model's, or each
    step's of a pipeline, in order."""
    knobs = space.knobs_of(params)
    entry, steps = apply_knobs(base, knobs), pipeline.apply(members or {}, knobs)
    return pipeline.fingerprint(entry, steps), list(steps.values()) or [entry]


def _signature(configs: list[ModelConfig]) -> tuple:
    return tuple(costmodel.signature(c) for c in configs)


def candidates(space: SearchSpace, base: ModelConfig, others: dict, measured: frozenset | set = frozenset(),
               members: Members | None = None) -> list[tuple[dict, list[ModelConfig]]]:
    """The configs the model can propose, each as its params and its configs (the model's, or
    each step's of a pipeline, in order), one per config the model tells apart, none `measured`
    (fingerprints, and the signatures of `_signature`). A pipeline's are the reference's
    (`others`, every param of it) with one step's modeled knobs changed."""
    found, seen = [], set(measured)
    spaces = {f"{name}/": each for name, each in space.models.items()} if members else {"": space}
    for prefix, knob_space in spaces.items():
        for combo in _combos(knob_space):
            params = {**others, **{prefix + knob: value for knob, value in combo.items()}}
            key, configs = _configs(space, base, params, members)
            keys = {key, _signature(configs)}
            if not keys & seen:  # a gated knob's values all give one config
                seen |= keys
                found.append((params, configs))
    return found


def _contexts(configs: list[ModelConfig]) -> tuple[str, ...]:
    """What the model cannot predict across, of the model or of each step of a pipeline."""
    return tuple(costmodel.context(c) for c in configs)


def next_step(study: optuna.Study, space: SearchSpace, base: ModelConfig, spec: LoadSpec,
              slo_p95_ms: float | None = None, members: Members | None = None) -> Step:
    """What to measure next: the model's proposal, the sampler's turn, or the end of the search.
    An ensemble's `members` are modeled step by step, each from its own statistics, and its
    proposals change one step around the best search trial."""
    trials = study.get_trials(deepcopy=False)
    steps = tuple(members or {})
    usable = costmodel.usable(trials, steps)
    best = choose(usable, "max-throughput", slo_p95_ms) or choose(usable, "max-throughput")
    if best is None:
        return Step(None, why="nothing measured to fit the model on yet")
    reference = best if not tr.is_baseline(best) else choose(
        [t for t in usable if not tr.is_baseline(t)], "max-throughput")
    if steps and reference is None:
        return Step(None, why="a pipeline's proposals change one step of a search trial: the sampler measures one")
    parsed = {t.number: [costmodel.config_of(t, m) for m in steps or (None,)] for t in usable}  # once a step
    measured = {str(t.user_attrs.get(Key.FINGERPRINT)) for t in trials if tr.counts(t) or tr.is_repeat(t)} | {
        _signature(configs) for configs in parsed.values()}
    elsewhere = reference is None and bool(_others(space, None))  # not the context the model was fitted on
    if elsewhere and (anchor := _anchor(space, base, parsed[best.number], measured)) is not None:
        return Step(None, probe=anchor, why="the search's settings of the knobs the model cannot predict across "
                                            "are first measured at the baseline's instances and batching")
    home = _contexts(parsed[(reference or best).number])
    fitted_on = [t for t in usable if _contexts(parsed[t.number]) == home]
    models = [costmodel.fit(fitted_on, m) for m in steps or (None,)]
    assert all(models)  # `best` has per-batch statistics, of every step
    past = errors(trials)
    counted = sorted(tr.counted(trials), key=lambda t: t.number)
    if len(past) >= 2 and all(abs(e) > TRUST for e in past[-2:]) and counted[-1].user_attrs.get(Key.PREDICTED):
        # the sampler's turn: its measurement is the model's to learn from next
        return Step(None, why=f"the model's last two predictions were off by {past[-2]:+.0%} and {past[-1]:+.0%}")
    bias, spread = _bias(trials)
    proposal: Proposal | None = None
    for params, configs in candidates(space, base, _others(space, reference), measured, members):
        pairs = [(m, c) for m, c in zip(models, configs, strict=True) if m is not None]
        predicted = costmodel.predict_chain(pairs, spec)
        throughput = predicted.throughput * (1 + bias)
        beyond = elsewhere or any(m.extrapolates(c) for m, c in pairs)
        margin = spread + (UNKNOWN if beyond else 0.0)
        if slo_p95_ms is not None and predicted.p95_ms * (1 - margin) > slo_p95_ms:
            continue
        if proposal is None or throughput * (1 + margin) > proposal.throughput * (1 + proposal.spread):
            proposal = Proposal(params, throughput, predicted.p95_ms, margin, predicted.throughput, beyond)
    trusted = len(fitted_on) >= 3 and not (past and abs(past[-1]) > TRUST)
    if proposal is None or (trusted and proposal.throughput * (1 + proposal.spread) < best.values[0] * (1 + PRECISION)):
        probe = None if reference is None else _probe(space, base, reference, trials, measured, members)
        if probe is not None:
            return Step(None, probe=probe, why="nothing left to propose with the best search trial's other settings")
        return Step(None, done=trusted, why=(
            f"no unmeasured config is predicted to beat #{best.number}'s {best.values[0]:.1f} infer/s by more than "
            f"{PRECISION:.0%}, even optimistically" if trusted else "the model has no config left to propose"))
    return Step(proposal)


def predicted_attr(proposal: Proposal) -> dict:
    return {"throughput": round(proposal.throughput, 2), "p95_ms": round(proposal.p95_ms, 3),
            "spread": round(proposal.spread, 3), "model": round(proposal.model, 2),
            "extrapolated": proposal.extrapolated}


def summary(study: optuna.Study) -> str:
    """The guided search in words: how well the model predicted, and where it ended the search
    (empty for a search the model did not guide)."""
    trials = study.get_trials(deepcopy=False)
    found, lines = errors(trials), []
    if found:
        lines.append(f"the performance model predicted {len(found)} guided trial(s) within a median "
                     f"{statistics.median(abs(e) for e in found):.0%} of their measured throughput "
                     f"(largest miss {max(found, key=abs):+.0%})")
    done = study.user_attrs.get(DONE_ATTR)
    if done:
        lines.append(f"the search stopped after {done['after']} of {done['of']} trials, {done['of'] - done['after']} "
                     f"saved: {done['why']}")
    return "\n".join(lines)
