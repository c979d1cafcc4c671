"""The Optuna study: what a trial is and which trials count (trials), goals (goal), what a study
was made with and its limits (settings), the study's loop with racing and heartbeats (study), the
storage (storage), choosing from the front (selection), the final re-measurement (confirm), and
parallel workers (workers)."""
from tuner.study.confirm import confirmed, remeasure
from tuner.study.goal import Cost, Goal, Objective
from tuner.study.selection import baseline_of, choose, pareto_front
from tuner.study.settings import Limits, StudySettings, settings_of
from tuner.study.storage import load_existing
from tuner.study.study import open_study, search
from tuner.study.trials import Key, Role

__all__ = ["Cost", "Goal", "Key", "Limits", "Objective", "Role", "StudySettings", "baseline_of", "choose", "confirmed",
           "load_existing", "open_study", "pareto_front", "remeasure", "search", "settings_of"]
