"""How a config is measured: the load (load), requests and their inputs (inputs, arrivals, cuda),
how they are sent (senders) and when a measurement stops (stopping), the load generator that
drives them (loadgen), what it found (measurement) with its intervals (stats), capacity under an
SLO (capacity), outputs against the baseline's (agreement), the engine-only ceiling (ceiling),
and one config end to end on a server (evaluate)."""
from tuner.measure.evaluate import Evaluator, Outcome
from tuner.measure.inputs import Inputs, Memory
from tuner.measure.load import PRECISION, LoadSpec, Race
from tuner.measure.loadgen import measure, measure_mix
from tuner.measure.measurement import Measurement

__all__ = ["Evaluator", "Inputs", "LoadSpec", "Measurement", "Memory", "Outcome", "PRECISION", "Race", "measure",
           "measure_mix"]
