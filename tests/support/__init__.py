"""What the tests share: where the test models and spaces are, how a test runs the tuner (in this
process, or as a process of its own where a signal or a crash must reach it), and how it waits
for a state instead of sleeping."""
from support.paths import MODELS, PIPELINES, ROOT, SPACES
from support.runs import FAST, TINY, Run, load_study, search, search_command, tuner
from support.serving import serving
from support.waiting import finished_rows, log_text, served, servers_of, trial_rows, wait_for, wait_serving

__all__ = ["FAST", "MODELS", "PIPELINES", "ROOT", "Run", "SPACES", "TINY", "finished_rows", "load_study", "log_text",
           "search", "search_command", "served", "servers_of", "serving", "trial_rows", "tuner", "wait_for",
           "wait_serving"]
