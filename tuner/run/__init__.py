"""A run from options to a finished study: the options (options), the checks made before any server
starts (checks), the model and its space (model, spaces), the servers (servers), and the study's
lifecycle (lifecycle)."""
from tuner.run.lifecycle import measure_once, search, work
from tuner.run.model import Model, find_model
from tuner.run.options import DEFAULT_STORAGE, Launcher, Options, Target
from tuner.run.servers import verify_server

__all__ = ["DEFAULT_STORAGE", "Launcher", "Model", "Options", "Target", "find_model", "measure_once", "search",
           "verify_server", "work"]
