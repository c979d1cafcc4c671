"""Writing the chosen trial's config where a model repository can take it, with a manifest, and
verifying it: deployed from the exported file into a fresh server and measured again."""
from __future__ import annotations

import json
import math
import os
import platform
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from optuna.trial import FrozenTrial

from tuner import __version__
from tuner.config.modelconfig import parse_config, read_config
from tuner.measure.evaluate import Evaluator
from tuner.measure.inputs import Inputs
from tuner.measure.load import LoadSpec
from tuner.measure.measurement import Measurement
from tuner.study import trials as tr
from tuner.study.cheapest import overlap, spans
from tuner.study.goal import Goal
from tuner.study.trials import Key


def hardware() -> dict:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor()) if Path("/proc/cpuinfo").exists() else ""
    info: dict[str, object] = {"cpu": cpu, "cpus": os.cpu_count(), "platform": platform.platform()}
    if shutil.which("nvidia-smi"):
        try:
            out = subprocess.run(["nvidia-smi", "--query-gpu=name,memory.total", "--format=csv,noheader"],
                                 capture_output=True, text=True, timeout=10).stdout
            info["gpus"] = [g.strip() for g in out.splitlines() if g.strip()]
        except (OSError, subprocess.TimeoutExpired):
            pass
    return info


def export(trial: FrozenTrial, out_dir: Path, model: str, context: dict | None = None, goal: Goal = Goal()) -> Path:
    """Writes `<out>/<model>/config.pbtxt` (and the other models' beside it, as a repository
    layout: `<out>/<member>/config.pbtxt`) and `<out>/<model>/tuner_manifest.json`; returns the
    config path. Only configs are written: copy the models' version folders beside them."""
    configs = {model: trial.user_attrs[Key.CONFIG], **(trial.user_attrs.get(Key.MEMBERS) or {})}
    for name, text in configs.items():
        parse_config(text, f"trial {trial.number}, {name}")  # what we write must parse as a ModelConfig
        (Path(out_dir) / name).mkdir(parents=True, exist_ok=True)
        (Path(out_dir) / name / "config.pbtxt").write_text(text)
    dest = Path(out_dir) / model
    path = dest / "config.pbtxt"
    role = tr.role(trial)
    manifest = {"trial": trial.number, "role": role.value if role else None,
                **dict(zip(goal.metric_names, trial.values, strict=True)), "curve": trial.user_attrs.get(Key.CURVE),
                "metrics": trial.user_attrs.get(Key.METRICS), "knobs": trial.user_attrs.get(Key.KNOBS),
                "remeasured": trial.user_attrs.get(Key.REMEASURED),  # every measurement behind the medians
                "models": {name: str(Path(out_dir) / name / "config.pbtxt") for name in configs},
                "tuner_version": __version__, "hardware": hardware(), **(context or {})}
    (dest / "tuner_manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return path


@dataclass(frozen=True)
class Verdict:
    measurement: Measurement | None
    reason: str  # why it could not be measured; empty when it was
    throughput_change: float = math.nan  # re-measured / stored - 1
    p95_change: float = math.nan
    within_ci: bool = False

    def text(self, stored: FrozenTrial) -> str:
        if self.measurement is None:
            return f"verify FAILED: {self.reason}"
        m = self.measurement
        ci, p95_ci = spans(stored)
        lines = [f"re-measured  {m.throughput:.1f} infer/s ({self.throughput_change * 100:+.1f}% vs stored "
                 f"{stored.values[0]:.1f}, stored CIs {_interval(ci)}), P95 {m.p95_ms:.1f} ms "
                 f"({self.p95_change * 100:+.1f}% vs stored {stored.values[1]:.1f}, stored CIs {_interval(p95_ci)})"]
        lines.append("verdict      within the stored confidence intervals" if self.within_ci else
                     "verdict      NOT within the stored confidence intervals: the machine's load or the model's "
                     "behaviour changed since the search; compare the numbers above")
        return "\n".join(lines)


def _interval(ci) -> str:
    return "n/a" if ci is None or ci[0] != ci[0] else f"{ci[0]:.1f}-{ci[1]:.1f}"


def verify(out_dir: Path, repository: Path, model: str, others: list[str], server_factory, spec: LoadSpec,
           inputs: Inputs, stored: FrozenTrial, work: Path) -> Verdict:
    """Lays out a repository as a user would deploy the export (each model's files plus its
    exported config.pbtxt: the model's, and the `others'`), loads it from disk in a fresh
    server and measures it again."""
    repo = work / "repository"
    shutil.rmtree(repo, ignore_errors=True)
    for name in (*others, model):
        shutil.copytree(repository / name, repo / name, ignore=shutil.ignore_patterns("config.pbtxt"))
        shutil.copy(out_dir / name / "config.pbtxt", repo / name / "config.pbtxt")
    configs = {name: read_config(repo / name / "config.pbtxt") for name in (*others, model)}
    with server_factory(repo, work) as server, Evaluator(server, model, spec, inputs) as evaluator:
        # from the files, as a deployment loads them
        outcome = evaluator.evaluate(configs.pop(model), cold=True, others=configs)
    if outcome.measurement is None:
        return Verdict(None, outcome.reason)
    m = outcome.measurement
    ci, p95_ci = spans(stored)
    within = overlap(ci, m.throughput_ci) and overlap(p95_ci, m.p95_ci_ms)
    return Verdict(m, "", m.throughput / stored.values[0] - 1, m.p95_ms / stored.values[1] - 1, bool(within))
