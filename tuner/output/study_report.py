"""`tuner report`: the study's pictures, its front table, the chosen config's diff against the
user's, and an HTML page holding them."""
from __future__ import annotations

from pathlib import Path

import optuna

from tuner.output import report
from tuner.output.choice import pick
from tuner.study import guide
from tuner.study.confirm import confirmed, rejected
from tuner.study.selection import baseline_of
from tuner.study.settings import settings_of
from tuner.study.trials import Key


def write_report(study: optuna.Study, out: Path, policy: str, slo: float | None) -> str:
    """Writes the pictures and report.html into `out`; returns the text a terminal shows."""
    trials, final, failed_again = study.get_trials(deepcopy=False), confirmed(study), rejected(study)
    settings = settings_of(study)
    goal = settings.goal
    base, chosen = baseline_of(final), pick(final, policy, goal, slo)
    out.mkdir(parents=True, exist_ok=True)
    images = [(out / "pareto.png", f"{goal.objective.value} against {goal.cost.value}; the front, the baseline "
               "and the choice")]
    report.pareto_png(trials, base, chosen, images[0][0], title=f"study {study.study_name}:", goal=goal)
    curves = [t for t in (base, chosen) if t is not None and t.user_attrs.get(Key.CURVE)]
    if curves:
        report.curves_png(curves, out / "curves.png", settings.slo_p95_ms)
        images.append((out / "curves.png", "P95 against offered request rate, from the capacity search's "
                       "measurements: the baseline and the choice"))
    scores = report.importances(study)
    if scores:
        report.importance_png(scores, out / "importance.png")
        images.append((out / "importance.png", "which knobs mattered for high throughput, and for low P95"))
    table = report.front_table(final, base, chosen, goal)
    diff = report.config_diff(base, chosen) if base and chosen else ""
    summary = "\n".join(filter(None, [report.counts_line(trials, failed_again), guide.summary(study),
                                      report.steps_text(chosen) if chosen else "",
                                      report.models_text(chosen, base, settings) if chosen else ""]))
    measured = study.user_attrs.get("ceiling") or {}
    ceiling_of = next((t for t in (*final, *trials) if t.number == measured.get("trial") and t.values), None)
    if ceiling_of is not None:
        summary += "\n" + report.ceiling_text(measured, ceiling_of)
    (out / "report.html").write_text(report.html_page(f"tuner report: {study.study_name}", table, diff, images,
                                                      summary))
    return (f"{summary}\n{table}\n\n{diff}\n"
            f"wrote {', '.join(str(p) for p, _ in images)} and {out / 'report.html'}")
