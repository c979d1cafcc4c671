"""What the user reads at the end: the Pareto front as a table, with gain over the baseline."""
from __future__ import annotations

from optuna.trial import FrozenTrial

from tuner.faults import Side
from tuner.study import trials as tr
from tuner.study.goal import Cost, Goal, Objective
from tuner.study.selection import choosable, pareto_front
from tuner.study.settings import StudySettings
from tuner.study.trials import Key


def _knob_text(trial: FrozenTrial) -> str:
    if tr.is_baseline(trial):
        return "(your config)"
    # several models on one server: the first model's knobs are named after it too, as the others' are
    mixed = tr.models_of(trial)
    return " ".join(_flat(trial.user_attrs.get(Key.KNOBS, {}), f"{next(iter(mixed))}." if mixed else ""))


def _flat(knobs: dict, prefix: str = "") -> list[str]:
    """`name=value` per knob (prefixed `prefix`); a pipeline member's as `member.name=value`."""
    knobs = dict(knobs)
    params, models = knobs.pop("parameters", {}), knobs.pop("models", {})
    return [f"{prefix}{k}={v}" for k, v in {**knobs, **params}.items()] + \
        [text for name, each in models.items() for text in _flat(each, f"{name}.")]


_LABELS = {Objective.THROUGHPUT: "infer/s", Objective.GOODPUT: "goodput/s", Objective.CAPACITY: "holds req/s",
           Cost.P95: "p95 ms", Cost.INSTANCES: "instances", Cost.MEMORY: "MiB"}


def front_table(trials: list[FrozenTrial], base: FrozenTrial | None, chosen: FrozenTrial | None,
                goal: Goal = Goal()) -> str:
    front = pareto_front(trials)
    # after a re-measurement: the lowest and highest P95 measured; before: one measurement's 95% CI
    remeasured = any(Key.REMEASURED in t.user_attrs for t in front)
    rows = [("", "trial", _LABELS[goal.objective], "gain", _LABELS[goal.cost], "vs base",
             "p95 range ms" if remeasured else "p95 CI ms", "out err", "knobs")]
    # the baseline's own numbers, and a cheaper stand-in chosen from off the front
    shown = [*front, *(t for t in (base, chosen) if t is not None and t.number not in {f.number for f in front})]
    for t in shown:  # the baseline's own numbers too, on the front or not
        thr, p95 = t.values
        runs = t.user_attrs.get(Key.REMEASURED)
        ci = ([min(runs["p95_ms"]), max(runs["p95_ms"])] if runs else
              (t.user_attrs.get("metrics") or {}).get("p95_ci_ms") or [None, None])
        gain = f"{thr / base.values[0]:.2f}x" if base and base.values[0] > 0 else ""
        delta = f"{(p95 / base.values[1] - 1) * 100:+.0f}%" if base and base.values[1] > 0 else ""
        ci_text = f"{ci[0]:.1f}-{ci[1]:.1f}" if ci[0] is not None else ""
        error = t.user_attrs.get("output_error")
        rows.append(("*" if chosen and t.number == chosen.number else "", f"#{t.number}", f"{thr:.1f}", gain,
                     f"{p95:.1f}", delta, ci_text, "" if error is None else f"{error:.1g}", _knob_text(t)))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    lines = ["  ".join(c.ljust(w) if i in (0, 1) else c.rjust(w)
                       for i, (c, w) in enumerate(zip(r, widths, strict=False))) + "  " + r[-1] for r in rows]
    return "\n".join(lines)


def counts_line(trials: list[FrozenTrial], rejected: dict[int, str] | None = None) -> str:
    """How the study's trials ended, in one line."""
    done = sum(tr.measured(t) for t in trials)
    failed = sum(tr.config_failed(t) for t in trials)
    cut = sum(getattr(tr.failure(t), "side", None) is Side.ENVIRONMENT for t in trials)
    dups = sum(tr.is_repeat(t) for t in trials)
    early = sum(tr.stopped_early(t) and not tr.is_repeat(t) for t in trials)
    differ = sum(bool(t.user_attrs.get(Key.OUTPUTS_DIFFER)) and not tr.is_repeat(t) for t in trials)
    return (f"{done} trials measured ({early} stopped early, clearly behind the front), {failed} failed; "
            f"{dups} proposals repeated a config already measured (answered from it, not counted)"
            + (f", {cut} cut off by the environment and measured again (not counted)" if cut else "")
            + (f"; {differ} computed different outputs (beyond --max-output-error: never chosen)" if differ else "")
            + (f"; {len(rejected)} failed the final re-measurement (never chosen)" if rejected else ""))


def failures(trials: list[FrozenTrial], rejected: dict[int, str] | None = None) -> list[str]:
    """Every failed trial with its reason, the environment's marked as such."""
    lines = []
    for t in trials:
        found = tr.failure(t)
        if found is not None:
            side = "" if found.side is Side.CONFIG else " (environment; not counted)"
            lines.append(f"#{t.number}{side}: {tr.reason(t)}")
    return lines + [f"#{n} (final re-measurement): {why}" for n, why in (rejected or {}).items()]


def measurement_text(m) -> str:
    """One measurement, as `tuner measure` prints it."""
    lines = [f"mode            {m.mode}",
             f"throughput      {m.throughput:.1f} infer/s",
             f"latency (ms)    {'the worst model: ' if m.models else ''}p50 {m.p50_ms:.2f}  p90 {m.p90_ms:.2f}  "
             f"p95 {m.p95_ms:.2f}  p99 {m.p99_ms:.2f}",
             f"p95 95% CI      {m.p95_ci_ms[0]:.2f} - {m.p95_ci_ms[1]:.2f} ms",
             f"samples         {m.samples} in {m.duration_s:.1f} s, {m.windows} windows, "
             f"{'stable' if m.stable else 'NOT stable (time limit reached)'}",
             f"errors          {m.errors}" + (f" (first: {m.first_error})" if m.errors else ""),
             f"client CPU      {m.client_cpu:.2f} cores"]
    for name, each in m.models.items():  # several models: the totals above, then each one's own
        lines.append(f"{name:15} {each.mode}: {each.throughput:.1f} infer/s, p95 {each.p95_ms:.2f} ms, "
                     f"{each.errors} errors")
    if m.server:
        s = m.server
        lines.append(f"server (ms/req) queue {s.queue_ms:.2f}  compute input {s.compute_input_ms:.2f}  "
                     f"infer {s.compute_infer_ms:.2f}  output {s.compute_output_ms:.2f}  "
                     f"avg batch {s.avg_batch_size:.2f}")
    return "\n".join(lines)


def ceiling_text(ceiling: dict, trial: FrozenTrial) -> str:
    """How far a config is from the engine-only ceiling at the study's load (tuner.measure.ceiling),
    whether the load or the config is the limit, and where Triton spends a request."""
    served = trial.values[0]
    if "max_rate" not in ceiling:  # measured by an earlier tuner: at the max batch only
        lines = [f"engine-only ceiling {ceiling['rate']:.0f} infer/s ({ceiling['engine']}, batch {ceiling['batch']}): "
                 f"trial #{trial.number} serves {served:.0f}, {served / ceiling['rate']:.0%} of it"]
    else:
        offered = f", no more than the {ceiling['offered']:g}/s offered" if ceiling.get("offered") else ""
        lines = [f"engine-only ceiling at the study's load ({ceiling['load']}, batch size <= {ceiling['batch']}, "
                 f"{ceiling['parallel']} instance(s) busy{offered}): {ceiling['rate']:.0f} infer/s; trial "
                 f"#{trial.number} serves {served:.0f}, {served / ceiling['rate']:.0%} of it",
                 f"  at the config's own max batch ({ceiling['max_batch']}), every instance busy: "
                 f"{ceiling['max_rate']:.0f} infer/s: " + _limit(ceiling),
                 f"  ({ceiling['engine']}; {ceiling['where']})"]
    server = (trial.user_attrs.get(Key.METRICS) or {}).get("server")
    if server:
        lines.append(f"Triton per request (ms): queue {server['queue_ms']:.2f}, compute input "
                     f"{server['compute_input_ms']:.2f}, infer {server['compute_infer_ms']:.2f}, output "
                     f"{server['compute_output_ms']:.2f} (avg batch {server['avg_batch_size']:.1f})")
    return "\n".join(lines)


def _limit(ceiling: dict) -> str:
    if ceiling.get("larger_batches"):
        return "the load, not the config, is the limit (a heavier load would form larger batches)"
    if ceiling.get("lockstep"):
        return ("the load, not the config, is the limit: no request waits for an instance, so each idles while its "
                "clients' answers travel back and they send again (a heavier load would overlap that)")
    return "the config, not the load, is the limit"


def steps_text(trial: FrozenTrial) -> str:
    """A pipeline trial's members as Triton counted them over its measurement, and which one sets
    the pace (the most time per request, queue and compute)."""
    steps = (trial.user_attrs.get(Key.METRICS) or {}).get("steps") or {}
    if not steps:
        return ""
    cost = {name: sum(s[k] for k in ("queue_ms", "compute_input_ms", "compute_infer_ms", "compute_output_ms"))
            for name, s in steps.items()}
    lines = [f"steps of trial #{trial.number} (ms per request: queue, compute input, infer, output; avg batch):"]
    lines += [f"  {name:24} {s['queue_ms']:8.2f} {s['compute_input_ms']:8.2f} {s['compute_infer_ms']:8.2f} "
              f"{s['compute_output_ms']:8.2f}  {s['avg_batch_size']:.1f}" for name, s in steps.items()]
    lines.append(f"  slowest step: {max(cost, key=lambda n: cost[n])}")
    return "\n".join(lines)


def models_text(trial: FrozenTrial, base: FrozenTrial | None, settings: StudySettings) -> str:
    """Several models on one server: what each got in the trial beside the baseline (medians after a
    re-measurement), and whether it met its SLO. The study's values are the models' total
    throughput and their worst P95."""
    got = tr.models_of(trial)
    if not got:
        return ""
    before = tr.models_of(base) if base is not None else {}
    limits = settings.limits
    model_slos = limits.model_slos or (dict.fromkeys(got, limits.slo_p95_ms) if limits.slo_p95_ms else {})
    rows = [("model", "infer/s", "baseline", "p95 ms", "baseline", "SLO ms", "")]
    for name, (thr, p95) in got.items():
        b, limit = before.get(name), model_slos.get(name)
        rows.append((name, f"{thr:.1f}", f"{b[0]:.1f}" if b else "", f"{p95:.1f}", f"{b[1]:.1f}" if b else "",
                     f"{limit:g}" if limit else "", "" if not limit else "met" if p95 <= limit else "OVER"))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = [f"each model of trial #{trial.number}" + (f" and of the baseline (#{base.number})" if base else "")
             + f", {settings.load} (the front's values: their total and the worst P95):"]
    lines += ["  " + "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths,
                                                                                                   strict=True)))
              for r in rows]
    return "\n".join(lines)


def config_diff(base: FrozenTrial, chosen: FrozenTrial) -> str:
    """What to change in your config.pbtxt (a pipeline's: in each of its models'): the chosen
    trial's configs against the baseline's."""
    import difflib

    def configs(t: FrozenTrial) -> dict[str, str]:
        return {"": t.user_attrs[Key.CONFIG], **(t.user_attrs.get(Key.MEMBERS) or {})}

    def label(name: str, role: str, t: FrozenTrial) -> str:
        return f"{name + ' ' if name else ''}{role} (trial #{t.number})"

    old, new = configs(base), configs(chosen)
    return "".join("".join(difflib.unified_diff(old.get(name, "").splitlines(keepends=True),
                                                text.splitlines(keepends=True), label(name, "baseline", base),
                                                label(name, "chosen", chosen))) for name, text in new.items())


def _pyplot():
    """matplotlib, loaded only by the commands that draw (search and measure start faster), with
    the file backend: no display is needed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def pareto_png(trials: list[FrozenTrial], base: FrozenTrial | None, chosen: FrozenTrial | None, path,
               title: str = "", goal: Goal = Goal()) -> None:
    """Every measured trial as the goal's number against its cost (throughput against P95 by
    default), the front joined, baseline and choice marked."""
    plt = _pyplot()

    points = choosable(trials)
    front = sorted(pareto_front(trials), key=lambda t: t.values[1])
    fig, ax = plt.subplots(figsize=(8, 5.5), dpi=110)
    ax.scatter([t.values[1] for t in points], [t.values[0] for t in points], s=22, color="#9aa5b1",
               label=f"trials ({len(points)} measured)", zorder=2)
    ax.step([t.values[1] for t in front], [t.values[0] for t in front], where="post", color="#1f77b4",
            lw=1.8, zorder=3)
    ax.scatter([t.values[1] for t in front], [t.values[0] for t in front], s=40, color="#1f77b4",
               label="Pareto front", zorder=4)
    for trial, marker, color, label in ((base, "*", "#d62728", "baseline (your config)"),
                                        (chosen, "D", "#2ca02c", "chosen (exported)")):
        if trial is not None:
            ax.scatter([trial.values[1]], [trial.values[0]], marker=marker, s=220 if marker == "*" else 110,
                       color=color, edgecolor="black", label=f"{label}: #{trial.number}", zorder=5)
            ax.annotate(f"#{trial.number}  {trial.values[0]:.0f}/s, {trial.values[1]:.1f} {_LABELS[goal.cost]}",
                        (trial.values[1], trial.values[0]), textcoords="offset points", xytext=(10, -14), fontsize=9)
    if base is not None and chosen is not None and base.values[0] > 0 and base.values[1] > 0:
        gain = chosen.values[0] / base.values[0]
        title = (f"{title}  chosen: {gain:.2f}x {goal.objective.value}, {goal.cost.value} "
                 f"{(chosen.values[1] / base.values[1] - 1) * 100:+.0f}%")
    ax.set_xlabel(f"{goal.metric_names[1]}  - lower is better")
    ax.set_ylabel(f"{goal.metric_names[0]}  - higher is better")
    ax.set_title(title.strip(), fontsize=11)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=9)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def curves_png(trials: list[FrozenTrial], path, slo_p95_ms: float | None) -> None:
    """P95 against offered request rate for each trial, from its capacity search's measurements,
    the SLO drawn across: where each curve crosses it is that config's capacity."""
    plt = _pyplot()

    fig, ax = plt.subplots(figsize=(8, 5.5), dpi=110)
    for trial, color in zip(trials, ("#d62728", "#2ca02c", "#1f77b4", "#9467bd"), strict=False):
        steps = sorted(trial.user_attrs[Key.CURVE])
        label = "baseline (your config)" if tr.is_baseline(trial) else "chosen"
        ax.plot([s[0] for s in steps], [s[2] for s in steps], "o-", color=color,
                label=f"#{trial.number} {label}: holds {trial.values[0]:.0f} req/s")
        ax.scatter([s[0] for s in steps if not s[4]], [s[2] for s in steps if not s[4]], marker="x", s=60,
                   color=color, zorder=5)
    if slo_p95_ms:
        ax.axhline(slo_p95_ms, color="black", ls="--", lw=1, label=f"SLO: P95 {slo_p95_ms:g} ms")
    ax.set_yscale("log")
    ax.set_xlabel("offered load (requests/s, open loop)")
    ax.set_ylabel("P95 latency (ms, from when each request was due)  x: over the SLO")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=9)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def importances(study) -> dict[str, dict[str, float]]:
    """Parameter importance for each objective, over the searched trials: Optuna's PED-ANOVA, named
    (not left to Optuna's default, which changed in Optuna 5). PED-ANOVA ranks the knobs that
    matter for reaching *low* target values, so throughput is negated: what matters for reaching
    high throughput, and low P95."""
    import warnings

    import optuna

    searched = [t for t in choosable(study.get_trials(deepcopy=False)) if t.params]
    common = set.intersection(*(set(t.params) for t in searched)) if len(searched) >= 4 else set()
    if not common:
        return {}
    def lower_is_better(i: int):
        sign = -1.0 if study.directions[i] == optuna.study.StudyDirection.MAXIMIZE else 1.0
        return lambda t: sign * t.values[i]

    with warnings.catch_warnings():  # its reminder that low targets are better: ours are
        warnings.simplefilter("ignore", UserWarning)
        return {name: optuna.importance.get_param_importances(
            study, evaluator=optuna.importance.PedAnovaImportanceEvaluator(), params=sorted(common),
            target=lower_is_better(i)) for i, name in enumerate(study.metric_names or ["throughput", "p95"])}


def importance_png(values: dict[str, dict[str, float]], path) -> None:
    plt = _pyplot()

    fig, axes = plt.subplots(1, len(values), figsize=(5 * len(values), 3.6), dpi=110, squeeze=False)
    for ax, (objective, scores) in zip(axes[0], values.items(), strict=True):
        names = list(scores)[::-1]
        ax.barh(names, [scores[n] for n in names], color="#1f77b4")
        ax.set_xlabel("importance (normalised)")
        ax.set_title(objective, fontsize=10)
        ax.set_xlim(0, 1)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def html_page(title: str, table: str, diff: str, images: list, summary: str) -> str:
    import base64
    import html

    figures = "".join(f'<figure><img src="data:image/png;base64,{base64.b64encode(p.read_bytes()).decode()}" '
                      f'alt="{html.escape(alt)}"><figcaption>{html.escape(alt)}</figcaption></figure>'
                      for p, alt in images)
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            "<style>body{font-family:sans-serif;max-width:1100px;margin:2em auto}pre{background:#f5f5f5;"
            "padding:1em;overflow-x:auto}img{max-width:100%}</style></head><body>"
            f"<h1>{html.escape(title)}</h1><p>{html.escape(summary)}</p>{figures}"
            f"<h2>Pareto front</h2><pre>{html.escape(table)}</pre>"
            f"<h2>Change to your config.pbtxt</h2><pre>{html.escape(diff or '(the chosen config is your own)')}</pre>"
            "</body></html>")
