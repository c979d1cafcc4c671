"""What a trial changes: the search space (space), what each backend reads and where a knob acts
(knobs), config.pbtxt as a typed ModelConfig (modelconfig), a pipeline's members (pipeline), and
what the package ships (shipped: the search spaces and the demo repository). No server here."""
