"""tuner: auto-tuning of NVIDIA Triton Inference Server model configs."""

__version__ = "0.1.0"
