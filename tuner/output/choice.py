"""The study's choice: which trial, within which limits, and the chosen config exported where a
model repository can take it, with the engine-only ceiling where that can be measured."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import optuna
from optuna.trial import FrozenTrial

from tuner.config.modelconfig import parse_config
from tuner.errors import ConfigError
from tuner.measure import ceiling
from tuner.measure.load import LoadSpec
from tuner.output.export import export
from tuner.study.cheapest import cheapest, cost_of
from tuner.study.confirm import confirmed
from tuner.study.goal import Goal
from tuner.study.selection import baseline_of, choose
from tuner.study.settings import settings_of
from tuner.study.trials import Key


def slo_within(study: optuna.Study, asked: float | None) -> float | None:
    """The P95 limit a choice keeps to: the one asked for, else the one the study was searched under."""
    return asked if asked is not None else settings_of(study).slo_p95_ms


def chosen(study: optuna.Study, policy: str, slo: float | None) -> FrozenTrial | None:
    """The trial the policy picks from the confirmed front, within the SLO (None: nothing meets it),
    or the cheapest the measurements cannot tell apart from it."""
    return pick(confirmed(study), policy, settings_of(study).goal, slo)


def pick(final: list[FrozenTrial], policy: str, goal: Goal, slo: float | None) -> FrozenTrial | None:
    """What `chosen` picks from trials already confirmed. Only throughput against P95 has the
    intervals to tell configs apart by."""
    picked = choose(final, policy, goal.chooses_within(slo))
    if picked is None or not goal.is_default:
        return picked
    return cheapest(picked, final, goal.chooses_within(slo))


def instead_of(final: list[FrozenTrial], trial: FrozenTrial, policy: str, goal: Goal, slo: float | None) -> str:
    """Where the export stands in for the policy's own pick: which, and why; empty otherwise."""
    if policy == "trial" or not goal.is_default:  # a trial asked for by number; a goal without stand-ins
        return ""
    picked = choose(final, policy, goal.chooses_within(slo))
    if picked is None or picked.number == trial.number:
        return ""
    return (f"; chosen over #{picked.number} ({policy}): the measurements cannot tell them apart and it costs less "
            f"({cost_of(trial).text(cost_of(picked))} against {cost_of(picked).text(cost_of(trial))})")


def numbered(study: optuna.Study, number: int) -> FrozenTrial:
    """A measured trial by its number, as confirmed (re-measured) where it was."""
    found = ([t for t in confirmed(study) if t.number == number]
             or [t for t in study.get_trials(deepcopy=False) if t.number == number])
    if not found or found[0].values is None:
        raise ConfigError(f"--trial {number}: no measured trial with that number in '{study.study_name}'")
    return found[0]


def unmet(study: optuna.Study, slo: float | None) -> str:
    """The limits no measured trial met, in words (with the SLO the choice kept to)."""
    return dataclasses.replace(settings_of(study).limits, slo_p95_ms=slo).text()


@dataclass(frozen=True)
class Exported:
    path: Path  # the config.pbtxt written
    summary: str  # what it serves, and its gain over the baseline
    ceiling: dict | None  # the engine-only ceiling and the fraction of it served, where measured


def export_choice(study: optuna.Study, model: str, trial: FrozenTrial, out: Path, storage: str, policy: str,
                  slo: float | None) -> Exported:
    """Writes the trial's config and manifest under `out`; the ceiling, where measured, is kept with
    the study too (for `tuner report`)."""
    context = {"study": study.study_name, "storage": storage, "search_settings": study.user_attrs.get("settings"),
               "policy": policy, "slo_p95_ms": slo, **study.user_attrs.get("context", {})}
    found = _ceiling(trial, model, context.get("model_repository"), context.get("load"))
    if found is not None:
        context["ceiling"] = {**found.to_json(), "trial": trial.number, "fraction": trial.values[0] / found.rate}
        study.set_user_attr("ceiling", context["ceiling"])
    settings = settings_of(study)
    goal = settings.goal
    path = export(trial, out, model, context, goal)
    final = confirmed(study)
    base = baseline_of(final)
    gain = (f", {trial.values[0] / base.values[0]:.2f}x the baseline's {goal.objective.value}"
            if base and base.values[0] > 0 else "")
    summary = f"{goal.text(trial.values, settings.slo_p95_ms)}{gain}{instead_of(final, trial, policy, goal, slo)}"
    return Exported(path, summary, context.get("ceiling"))


def _ceiling(trial: FrozenTrial, model: str, repository: str | None, load: dict | None) -> ceiling.Ceiling | None:
    """The engine-only ceiling of the exported config's model at the study's load, where the
    model's files are here and its framework can run it (tuner.measure.ceiling)."""
    config = parse_config(trial.user_attrs[Key.CONFIG])
    spec = LoadSpec.from_json(load) if load else LoadSpec()
    if repository is None or not ceiling.measurable(config, spec):
        return None
    return ceiling.measure(Path(repository) / model, config, spec)
