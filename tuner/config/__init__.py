"""What a trial changes: the search space (space), the knob catalog: what each knob writes and
where it acts (knobs), what each backend reads from `parameters` (parameters), config.pbtxt as a
typed ModelConfig (modelconfig), a pipeline's members (pipeline), whether Triton's auto-complete
can change a model (autocomplete), and what the package ships (shipped). No server here."""
from tuner.config.knobs import KNOBS, Knob
from tuner.config.modelconfig import ModelConfig, apply_knobs, parse_config, read_config, render_pbtxt
from tuner.config.parameters import PARAMETERS, backend_of
from tuner.config.shipped import DEMO_MODEL, DEMO_REPOSITORY, SPACES
from tuner.config.space import SearchSpace, load_space, parse_space

__all__ = ["DEMO_MODEL", "DEMO_REPOSITORY", "KNOBS", "Knob", "ModelConfig", "PARAMETERS", "SPACES", "SearchSpace",
           "apply_knobs", "backend_of", "load_space", "parse_config", "parse_space", "read_config",
           "render_pbtxt"]
