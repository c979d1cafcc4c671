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


def measurement_text(m) -> str:
    """One measurement, as `tuner measure` prints it."""
    lines = [f"mode            {m.mode}",
             f"throughput      {m.throughput:.1f} infer/s",
             f"latency (ms)    p50 {m.p50_ms:.2f}  p90 {m.p90_ms:.2f}  p95 {m.p95_ms:.2f}  p99 {m.p99_ms:.2f}",
             f"p95 95% CI      {m.p95_ci_ms[0]:.2f} - {m.p95_ci_ms[1]:.2f} ms",
             f"samples         {m.samples} in {m.duration_s:.1f} s, {m.windows} windows, "
             f"{'stable' if m.stable else 'NOT stable (time limit reached)'}",
             f"errors          {m.errors}" + (f" (first: {m.first_error})" if m.errors else ""),
             f"client CPU      {m.client_cpu:.2f} cores"]
    if m.server:
        s = m.server
        lines.append(f"server (ms/req) queue {s.queue_ms:.2f}  compute input {s.compute_input_ms:.2f}  "
                     f"infer {s.compute_infer_ms:.2f}  output {s.compute_output_ms:.2f}  "
                     f"avg batch {s.avg_batch_size:.2f}")
    return "\n".join(lines)
