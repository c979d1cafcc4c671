"""What a study was made with (StudySettings, stored with it and read back typed by `settings_of`):
a resumed study, or a worker joining one, must have been made with the same, or its trials would
not compare. Its limits (Limits) constrain the search and every choice made from it afterwards,
by `search`, `export` and `report` alike, unless the user asks for another SLO."""
from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass

import optuna

from tuner.errors import ConfigError
from tuner.measure.inputs import Memory
from tuner.study.goal import Cost, Goal, Objective


@dataclass(frozen=True, kw_only=True)
class Limits:
    """What a config must keep to, to be chosen; each is a constraint inside the search too."""
    slo_p95_ms: float | None = None  # --slo-p95-ms: every model's P95
    model_slos: dict[str, float] = dataclasses.field(default_factory=dict)  # several models: each one's P95
    max_memory_mib: float | None = None  # the server's resident memory under load
    max_output_error: float | None = None  # outputs against the baseline's, relative to their scale

    def text(self) -> str:
        """The limits on throughput and latency a choice keeps to, in words."""
        parts = ([f"P95 <= {self.slo_p95_ms} ms"] if self.slo_p95_ms else []) + \
            [f"{name}'s P95 <= {limit:g} ms" for name, limit in self.model_slos.items()] + \
            ([f"memory <= {self.max_memory_mib} MiB"] if self.max_memory_mib else [])
        return " and ".join(parts) or "the limits"


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

    @property
    def limits(self) -> Limits:
        return Limits(slo_p95_ms=self.slo_p95_ms, model_slos=self.model_slos or {},
                      max_memory_mib=self.max_memory_mib, max_output_error=self.max_output_error)

    @property
    def goal(self) -> Goal:
        return Goal(Objective(self.objective), Cost(self.cost))


def settings_of(study: optuna.Study) -> StudySettings:
    """The settings the study was made with, typed (one added since an old study was made has its
    default, which is what that study had)."""
    found = study.user_attrs.get("settings") or {}
    known = {f.name for f in dataclasses.fields(StudySettings)}
    return StudySettings(**{k: v for k, v in found.items() if k in known})


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
