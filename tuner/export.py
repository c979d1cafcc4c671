"""Writing the chosen trial's config where a model repository can take it, with a manifest."""
from __future__ import annotations

import json
import platform
from importlib.metadata import version
from pathlib import Path

from optuna.trial import FrozenTrial

from tuner.modelconfig import parse_config


def export(trial: FrozenTrial, out_dir: Path, model: str, context: dict | None = None) -> Path:
    """Writes `<out>/<model>/config.pbtxt` and `<out>/<model>/tuner_manifest.json`; returns the
    config path. Only the config is written: copy the model's version folders beside it."""
    text = trial.user_attrs["config_pbtxt"]
    parse_config(text, f"trial {trial.number}")  # what we write must parse as a ModelConfig
    dest = Path(out_dir) / model
    dest.mkdir(parents=True, exist_ok=True)
    path = dest / "config.pbtxt"
    path.write_text(text)
    manifest = {"trial": trial.number, "role": trial.user_attrs.get("role"),
                "throughput_infer_per_s": trial.values[0], "p95_latency_ms": trial.values[1],
                "metrics": trial.user_attrs.get("metrics"), "knobs": trial.user_attrs.get("knobs"),
                "tuner_version": version("tuner"), "host": platform.node(), **(context or {})}
    (dest / "tuner_manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return path
