"""What makes two runs of a study comparable (StudySettings): a resumed study, or a worker joining
one, must have been made with the same, or its trials would not compare."""
from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass

import optuna

from tuner.errors import ConfigError
from tuner.measure.inputs import Memory


@dataclass(frozen=True)
class StudySettings:
    """What makes two runs comparable; a resumed study must have been made with the same."""
    model: str
    load: str  # "concurrency 8" or "request rate 100/s"
    base_config: str  # fingerprint of the user's config.pbtxt
    search_space: dict
    slo_p95_ms: float | None = None  # a constraint inside the search, not only a filter afterwards
    max_memory_mib: float | None = None  # likewise: the server's resident memory
    max_output_error: float | None = None  # likewise: outputs vs the baseline's, relative to their scale
    inputs: dict | None = None  # shapes, input data (its digest), shared memory: what requests carry
    objective: str = "throughput"  # tuner.study.goal: what is raised, and the cost that is lowered
    cost: str = "p95"
    model_slos: dict | None = None  # several models on one server: each one's P95 limit


def check_settings(study: optuna.Study, wanted: dict, storage: str) -> None:
    deadline = time.monotonic() + 10
    while (found := study.user_attrs.get("settings")) is None and time.monotonic() < deadline:
        time.sleep(0.2)  # another worker has just created it and is writing its settings
    # a setting added since the study was made had its default then
    defaults = {f.name: f.default for f in dataclasses.fields(StudySettings) if f.default is not dataclasses.MISSING}
    found = {**defaults, **(found or {})}
    if isinstance(found.get("inputs"), dict):  # studies before CUDA shared memory stored a bool
        found["inputs"] = {**found["inputs"], "shared_memory": Memory.of(found["inputs"].get("shared_memory")).value}
    if found != wanted:
        changed = sorted(k for k in wanted if found.get(k) != wanted[k])
        raise ConfigError(f"study '{study.study_name}' in {storage} was made with other settings "
                          f"({', '.join(changed)}): its trials would not compare; pass --study-name for a new study")
