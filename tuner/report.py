"""What the user reads at the end: the Pareto front as a table, with gain over the baseline."""
from __future__ import annotations

from optuna.trial import FrozenTrial, TrialState

from tuner.select import pareto_front


def _knob_text(trial: FrozenTrial) -> str:
    if trial.user_attrs.get("role") == "baseline":
        return "(your config)"
    knobs = dict(trial.user_attrs.get("knobs", {}))
    params = knobs.pop("parameters", {})
    return " ".join([f"{k}={v}" for k, v in knobs.items()] + [f"{k}={v}" for k, v in params.items()])


def front_table(trials: list[FrozenTrial], base: FrozenTrial | None, chosen: FrozenTrial | None) -> str:
    rows = [("", "trial", "infer/s", "gain", "p95 ms", "vs base", "p95 CI ms", "knobs")]
    for t in pareto_front(trials):
        thr, p95 = t.values
        ci = (t.user_attrs.get("metrics") or {}).get("p95_ci_ms") or [None, None]
        gain = f"{thr / base.values[0]:.2f}x" if base else ""
        delta = f"{(p95 / base.values[1] - 1) * 100:+.0f}%" if base else ""
        ci_text = f"{ci[0]:.1f}-{ci[1]:.1f}" if ci[0] is not None else ""
        rows.append(("*" if chosen and t.number == chosen.number else "", f"#{t.number}", f"{thr:.1f}", gain,
                     f"{p95:.1f}", delta, ci_text, _knob_text(t)))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    lines = ["  ".join(c.ljust(w) if i in (0, 1) else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))
             + "  " + r[-1] for r in rows]
    return "\n".join(lines)


def counts_line(trials: list[FrozenTrial]) -> str:
    done = sum(t.state == TrialState.COMPLETE for t in trials)
    failed = [t for t in trials if t.state == TrialState.FAIL and t.user_attrs.get("fail_reason") != "interrupted"]
    dups = sum("duplicate_of" in t.user_attrs for t in trials)
    return f"{done} trials measured ({dups} answered from an identical earlier config), {len(failed)} failed"


def failures(trials: list[FrozenTrial]) -> list[str]:
    return [f"#{t.number}: {t.user_attrs.get('fail_reason', 'unknown')}" for t in trials
            if t.state == TrialState.FAIL and t.user_attrs.get("fail_reason") not in (None, "interrupted")]
