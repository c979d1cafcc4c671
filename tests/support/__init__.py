"""What the tests share: where the test models and spaces are, how a test runs the tuner (in this
process, or as a process of its own where a signal or a crash must reach it), and how it waits
for a state instead of sleeping."""
from support.paths import MODELS, PIPELINES, ROOT, SPACES
from support.runs import FAST, TINY, Run, load_study, search, search_command, search_process, tuner, tuner_process
from support.waiting import finished_rows, servers_of, trial_rows, wait_for

__all__ = ["FAST", "MODELS", "PIPELINES", "ROOT", "Run", "SPACES", "TINY", "finished_rows", "load_study", "search",
           "search_command", "search_process", "servers_of", "trial_rows", "tuner", "tuner_process", "wait_for"]
